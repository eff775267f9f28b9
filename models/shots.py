"""Shot-boundary detection that survives old film: hard cuts, fades and dissolves.

Per frame
---------
Each frame is reduced to a 64x48 luma thumbnail (area average; frames whose
size is nearly a multiple of 64x48 are centre-cropped to that multiple first,
which keeps the average exact and fast) and, from its Gaussian-blurred copy:

- a *signature*: the 32x24 thumbnail, its extreme 2% of values clipped (a
  large blotch or speck then weighs little), normalised to zero mean and unit
  variance. Normalising removes global brightness/contrast changes (flicker,
  and flashes, which blend a frame toward white: an affine change of
  intensity); blur and the small size make gate weave and slow pans
  negligible; luma works on black-and-white film, where hue-based scores
  (PySceneDetect's default ContentDetector) see nothing. A frame whose 32x24
  contrast (standard deviation) is below `FLAT_CONTRAST` shows no picture
  (black, white, grey leader; the contrast ignores the extreme 2% of the
  thumbnail, so dust on a black frame leaves it flat); its signature is all zeros.
- its raw mean and contrast (what the signature normalises away): fades are
  ramps of contrast to and from a flat frame;
- the global shift from the previous frame (phase correlation of the blurred
  thumbnails): the camera motion used to follow each picture through a dissolve;
- a 16x12 raw thumbnail: long-range comparisons for dissolves.

Score rows
----------
`score_rows` turns the features of consecutive frames into one row per frame
(`ROW_WIDTH` float32 columns, layout in the COL_* constants). A row depends
only on frames t-1..t+`HEAL`, so chunks scored in parallel with that halo give
exactly the serial rows (`tasks.shots`). Everything else is decided once over
the whole film's rows by `decide`.

The detector as one object
--------------------------
`ShotDetector` (the instance `SHOT_DETECTOR`) bundles all of this: its `version`
(part of the stored shot table's key), the halo a chunk needs, features of a frame
(RGB or a luma plane), score rows of a whole film (`score`), of frames pushed one
by one (`streaming`: the ingest) or of a chunk read with its halo (`score_chunk`:
the shot-score tasks), and the decision (`decide`). Every caller (ingest, the
chunk tasks, `reel shots`, `reel stage`) uses it.

Decisions
---------
Hard cuts (`hard_cuts`): the distance between signatures is 1 - normalised
correlation (0 equal, ~1 unrelated; two flat frames are equal, a flat and a
textured frame unrelated); between t-1 and t the smaller of the plain distance
and the distance after moving t-1 by the measured shift counts (a jolt of the
gate is not a cut). Frame t starts a new shot when it is far from t-1, further
than the local level of change (fast pans raise every score), and the break
does not heal: if t-1 looks like one of t+1..t+`HEAL` again, frames t.. are a
transient (a flash, a big blotch, a dropped frame), not a cut; nor is it a cut
when t looks like one of the `HEAL` frames before t-1 again (t-1 was the
transient).

Fades (`find_fades`): a run of dark frames (flat, or at most `dark_rel` of the
surrounding contrast; one or two brighter frames inside, dust, do not break
it) reached by a ramp of contrast falling over at least `fade_min` frames, the
frame next to the dark ones at most half the shot's contrast, ends a fade-out;
left by such a rising ramp it starts a fade-in. Through black or through white
(the kind is "fade_out"/"fade_in" either way). A short dark run entered or left
abruptly that returns to the same picture is a flash, never a fade.

Dissolves (`find_dissolves`): a run of frames each of which is (nearly) a
linear blend of the frame before the run and the frame after it, each end frame
moved along the camera motion measured just outside the run (pans during a
dissolve), with the blend weight rising monotonically from ~0 to ~1. Blends are
fitted by least squares on the normalised 16x12 thumbnails (a plane removed:
uneven flicker). Candidates come from a vectorised scan of (frame, half-length)
pairs; each is judged on the whole run and must also show: two different
pictures at its ends even after following the camera through it (a pan or a
moving object makes its ends differ too, but the motion explains it), the same
blend weight in every quarter of the frame (objects moving across a still
background blend differently in different places), middle frames explained
much better by both ends than by either alone (a hard cut fits the blend model
with a weight jumping 0 -> 1), and, once touching pieces of a long dissolve are
joined, more change across the run than over frames as far apart just before
and just after it, with a steady picture on both sides.

Transition ranges
-----------------
`Transition(start, end, kind)`: frames start .. end-1 (end exclusive).
- dissolve: the blended frames (the frame before is the last pure frame of the
  outgoing shot, frame `end` the first pure frame of the incoming one);
- fade_out: from the first frame of the ramp down through any held flat frames
  (the held black belongs to the fade-out); `end` is the first frame showing
  picture again (or the film's end);
- fade_in: from the first frame showing picture after the flat frames to the
  first frame back at full contrast (exclusive).
Cuts the cut rule finds inside a transition (the first black frame of a
fade-out, noisy dim frames) and at the start of a fade-in belong to the
transition and are not reported as cuts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import cv2
import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter

THUMB_SIZE = (64, 48)          # (width, height) of the luma thumbnail everything starts from
SIGNATURE_SIZE = (32, 24)
COARSE_SIZE = (16, 12)
HEAL = 3  # frames after a break searched for a return to the old picture
FLAT_CONTRAST = 0.005  # 32x24 luma standard deviation (in [0, 1] units) below which a frame shows no picture
DETECTOR_VERSION = "2"  # bump when detected cuts or transitions can change

LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # BT.709

# Score-row layout.
COL_CUT = 0                      # d(t-1, t); columns 1..HEAL: d(t-1, t+k)
COL_MEAN = 1 + HEAL              # raw mean luma of the 32x24 thumbnail
COL_CONTRAST = 2 + HEAL          # its standard deviation (extreme 2% clipped)
COL_CUT_MOVED = 3 + HEAL         # d(t-1, t) after moving t-1 by the measured shift (weave, pans)
COL_DX, COL_DY, COL_RESPONSE = 4 + HEAL, 5 + HEAL, 6 + HEAL  # shift t-1 -> t in thumbnail pixels, peak strength
COL_COARSE = 7 + HEAL            # 16x12 raw thumbnail, row-major
COARSE_DIM = COARSE_SIZE[0] * COARSE_SIZE[1]
ROW_WIDTH = COL_COARSE + COARSE_DIM

_WINDOW = cv2.createHanningWindow(THUMB_SIZE, cv2.CV_32F)


# --------------------------------------------------------------------------------------------------
# Per-frame features
# --------------------------------------------------------------------------------------------------


def shrink(img: np.ndarray) -> np.ndarray:
    """The picture every detector feature starts from (THUMB_SIZE, area-averaged): `frame_features(shrink(f))`
    equals `frame_features(f)` (shrinking a thumbnail changes nothing), so a reader may shrink first."""
    return _shrink(img)


def _shrink(img: np.ndarray) -> np.ndarray:
    """Area-average an (H, W[, C]) image to THUMB_SIZE, centre-cropping to an exact multiple when that loses <= 10%."""
    h, w = img.shape[:2]
    tw, th = THUMB_SIZE
    kx, ky = w // tw, h // th
    if kx >= 1 and ky >= 1:
        cw, ch = kx * tw, ky * th
        if w - cw <= 0.1 * w and h - ch <= 0.1 * h:
            x0, y0 = (w - cw) // 2, (h - ch) // 2
            img = img[y0:y0 + ch, x0:x0 + cw]
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        img = img.astype(np.float32)
    return cv2.resize(img, THUMB_SIZE, interpolation=cv2.INTER_AREA)


def thumbnail(frame: np.ndarray, scale: float | None = None, offset: float = 0.0,
              weights: Sequence[float] | None = None) -> np.ndarray:
    """(48, 64) float32 luma of an RGB frame (H, W, 3), a packed pixel array (H, W, C) or a luma plane (H, W).

    Values are code values * scale + offset: by default uint8 / 255, uint16 / 65535, floats as given
    (RGB in [0, 1]). A Y'CbCr source's luma plane can be passed directly with its range, e.g.
    scale=1/219, offset=-16/219 for 8-bit limited range. `weights` weigh the channels (default:
    BT.709 luma of R, G, B); e.g. a decoder's bgr0 buffer as it is, with weights (Kb, Kg, Kr, 0).
    """
    w = np.asarray(LUMA_WEIGHTS if weights is None else weights, dtype=np.float32)
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != w.size):
        raise ValueError(f"expected an (H, W, {w.size}) frame or an (H, W) luma plane, got shape {frame.shape}")
    if scale is None:
        scale = 1 / 255 if frame.dtype == np.uint8 else 1 / 65535 if frame.dtype == np.uint16 else 1.0
    small = _shrink(frame).astype(np.float32, copy=False)
    if small.ndim == 3:
        y = small @ (w * np.float32(scale))
    else:
        y = small * np.float32(scale)
    if offset:
        y = y + np.float32(offset)
    return y.astype(np.float32, copy=False)


@dataclass(frozen=True)
class FrameFeatures:
    """What the detector keeps of one frame (see the module doc)."""

    signature: np.ndarray   # (768,) float32, zero mean unit variance, or zeros for a flat frame
    blurred: np.ndarray     # (48, 64) float32 blurred thumbnail (motion)
    coarse: np.ndarray      # (192,) float32 raw 16x12 thumbnail
    mean: float
    contrast: float         # standard deviation of the 32x24 thumbnail, its extreme 2% clipped

    @property
    def flat(self) -> bool:
        return self.contrast < FLAT_CONTRAST


def features_from_thumbnail(y: np.ndarray) -> FrameFeatures:
    b = cv2.GaussianBlur(y, (5, 5), 1.0)
    small = cv2.resize(b, SIGNATURE_SIZE, interpolation=cv2.INTER_AREA).ravel()
    mean = float(small.mean())
    lo, hi = np.percentile(small, (2, 98))
    clipped = np.clip(small, np.float32(lo), np.float32(hi))  # big blotches and specks weigh no more than 2%
    contrast = float(clipped.std())
    if contrast >= FLAT_CONTRAST:
        sig = (clipped - np.float32(clipped.mean())) / np.float32(contrast)
    else:
        sig = np.zeros_like(small)
    coarse = cv2.resize(b, COARSE_SIZE, interpolation=cv2.INTER_AREA).ravel()
    return FrameFeatures(sig.astype(np.float32, copy=False), b, coarse, mean, contrast)


def frame_features(frame: np.ndarray) -> FrameFeatures:
    """Features of an RGB frame (uint8, uint16, or float in [0, 1]) or a luma plane."""
    return features_from_thumbnail(thumbnail(frame))


def signature(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB frame -> normalised (24*32,) float32 signature (zeros for a flat frame)."""
    return frame_features(frame).signature


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - normalised correlation of two signatures (flat frames count as unrelated to textured ones)."""
    if not a.any() and not b.any():
        return 0.0
    return float(1.0 - np.dot(a, b) / a.size)


def _shift(prev: FrameFeatures, cur: FrameFeatures) -> tuple[float, float, float]:
    if prev.flat or cur.flat:
        return np.nan, np.nan, 0.0
    # phaseCorrelate applies the window to its inputs in place: give it copies
    (dx, dy), response = cv2.phaseCorrelate(prev.blurred.copy(), cur.blurred.copy(), _WINDOW)
    return float(dx), float(dy), float(response)


def _moved_cut_distance(prev: np.ndarray, cur: np.ndarray, dx: float, dy: float) -> float:
    """1 - correlation of signature `cur` with `prev` moved by (dx, dy) thumbnail pixels, over the overlap."""
    if not np.isfinite(dx) or not np.isfinite(dy):
        return np.nan
    w, h = SIGNATURE_SIZE
    sx, sy = w / THUMB_SIZE[0], h / THUMB_SIZE[1]
    m = np.array([[1, 0, dx * sx], [0, 1, dy * sy]], dtype=np.float32)
    moved = cv2.warpAffine(prev.reshape(h, w), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=np.nan).ravel()
    ok = np.isfinite(moved)
    if ok.sum() < 0.5 * moved.size:
        return np.nan
    a = moved[ok].astype(np.float64)
    b = cur[ok].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    den = float(np.sqrt((a @ a) * (b @ b)))
    return 1.0 - float(a @ b) / den if den > 1e-12 else np.nan


def score_rows(feats: Sequence[FrameFeatures], first: int, count: int) -> np.ndarray:
    """Score rows for frames first..first+count-1 of a window of consecutive frames' features.

    feats[first] is frame t0; feats[first-1] must exist unless t0 is the film's first frame (then
    the pair columns are NaN). Returns (count, ROW_WIDTH) float32: column COL_CUT is d(t-1, t),
    column k d(t-1, t+k) (NaN beyond the window's end), then mean, contrast, shift and the coarse
    thumbnail (see the module doc).
    """
    out = np.full((count, ROW_WIDTH), np.nan, dtype=np.float32)
    n = len(feats)
    for i in range(count):
        t = first + i
        cur = feats[t]
        out[i, COL_MEAN] = cur.mean
        out[i, COL_CONTRAST] = cur.contrast
        out[i, COL_COARSE:] = cur.coarse
        if t - 1 < 0:
            continue
        prev = feats[t - 1]
        for k in range(0, 1 + HEAL):
            if t + k < n:
                out[i, COL_CUT + k] = distance(prev.signature, feats[t + k].signature)
        shift = _shift(prev, cur)
        out[i, COL_DX:COL_RESPONSE + 1] = shift
        out[i, COL_CUT_MOVED] = _moved_cut_distance(prev.signature, cur.signature, shift[0], shift[1])
    return out


class StreamingScores:
    """Score rows of a film's frames pushed one by one in order: each row is made as soon as the
    `HEAL` frames after it are in, from a window of `HEAL` + 2 frames' features (memory does not grow
    with the film; the rows do, ROW_WIDTH float32 each). Equal to `score_rows` over the whole film."""

    def __init__(self) -> None:
        self._window: list[FrameFeatures] = []  # features of frames next - 1 .. pushed - 1
        self._next = 0  # the next frame to get its row
        self._pushed = 0
        self._rows: list[np.ndarray] = []

    def push(self, frame: np.ndarray) -> None:
        """Add the next frame (as `frame_features` takes it)."""
        self._window.append(frame_features(frame))
        self._pushed += 1
        if self._pushed - self._next > HEAL:
            self._emit()

    def _emit(self) -> None:
        first = 1 if self._next > 0 else 0  # window[0] is frame next - 1, except at the film's start
        self._rows.append(score_rows(self._window, first, 1)[0])
        self._next += 1
        if first:
            self._window.pop(0)

    def finish(self) -> np.ndarray:
        """(frames, ROW_WIDTH) rows of every frame pushed (the last ones with the film's end in their window)."""
        while self._next < self._pushed:
            self._emit()
        return np.stack(self._rows) if self._rows else np.zeros((0, ROW_WIDTH), np.float32)


def pair_scores(signatures: np.ndarray, first: int, count: int) -> np.ndarray:
    """The cut columns only, from bare signatures: (count, 1 + HEAL), as `score_rows` columns 0..HEAL."""
    out = np.full((count, 1 + HEAL), np.nan, dtype=np.float32)
    n = signatures.shape[0]
    for i in range(count):
        t = first + i
        if t - 1 < 0:
            continue
        for k in range(0, 1 + HEAL):
            if t + k < n:
                out[i, k] = distance(signatures[t - 1], signatures[t + k])
    return out


def score_frames(frames: Iterable[np.ndarray | FrameFeatures]) -> np.ndarray:
    """Rows for a whole film, streaming: holds only HEAL + 2 frames' features at a time.

    Items are frames (anything `frame_features` takes) or precomputed FrameFeatures. Gives exactly
    `score_rows(all features, 0, T)`.
    """
    window: list[FrameFeatures] = []  # features of frames base-1 .. (one before the next row's frame)
    rows: list[np.ndarray] = []
    base = 0  # film index of the next row to emit
    offset = 0  # film index of window[0]
    for item in frames:
        window.append(item if isinstance(item, FrameFeatures) else frame_features(item))
        while offset + len(window) - 1 >= base + HEAL:  # frame base+HEAL is in: row `base` is complete
            rows.append(score_rows(window, base - offset, 1))
            base += 1
            if base - offset > 1:  # keep frame base-1
                window.pop(0)
                offset += 1
    while base < offset + len(window):
        rows.append(score_rows(window, base - offset, 1))
        base += 1
    return np.concatenate(rows) if rows else np.zeros((0, ROW_WIDTH), np.float32)


# --------------------------------------------------------------------------------------------------
# Hard cuts
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutRule:
    threshold: float = 0.33       # d(t-1, t) above this may be a cut (synthetic non-cuts peak near 0.28)
    heal: float = 0.30            # d(t-1, t+k) below this means the picture came back
    contrast: float = 2.5         # d(t-1, t) must exceed this many times the local median level
    window: int = 8               # frames each side for the local level
    min_shot_frames: int = 2      # no two cuts closer than this


def hard_cuts(scores: np.ndarray, rule: CutRule = CutRule()) -> list[int]:
    """Frames where the picture changes abruptly and does not come back (before transitions absorb any)."""
    d = scores[:, COL_CUT].astype(np.float64)
    moved = scores[:, COL_CUT_MOVED].astype(np.float64)
    d = np.where(np.isfinite(moved), np.fmin(d, moved), d)  # a jolt of the gate or a pan is not a cut
    n = d.size
    cuts: list[int] = []
    quiet_until = 0  # frames inside a healed transient are not compared with its odd frames
    for t in range(1, n):
        if t <= quiet_until or not d[t] > rule.threshold:
            continue
        lo, hi = max(1, t - rule.window), min(n, t + rule.window + 1)
        around = np.concatenate([d[lo:t], d[t + 1:hi]])
        around = around[np.isfinite(around)]
        level = float(np.median(around)) if around.size else 0.0
        if d[t] < rule.contrast * level:
            continue
        healed = np.flatnonzero(scores[t, COL_CUT + 1:COL_CUT + 1 + HEAL] < rule.heal)  # NaN compares False
        if healed.size:
            quiet_until = t + 1 + int(healed[0])  # transient: the old picture is back at that frame
            continue
        # t looks like a frame shortly before t-1 (row t-j, column j holds d(t-j-1, t)): frames t-j..t-1
        # were a transient that did not itself score as a break (a partial flash, a dropped frame)
        if any(scores[t - j, COL_CUT + j] < rule.heal for j in range(1, HEAL + 1) if t - j >= 1):
            continue
        if cuts and t - cuts[-1] < rule.min_shot_frames:
            continue
        cuts.append(t)
    return cuts


# --------------------------------------------------------------------------------------------------
# Transitions
# --------------------------------------------------------------------------------------------------

TRANSITION_KINDS = ("fade_out", "fade_in", "dissolve")


@dataclass(frozen=True, order=True)
class Transition:
    """Frames start .. end-1 (end exclusive) form a gradual transition of `kind`."""

    start: int
    end: int
    kind: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TransitionRule:
    # fades
    dark_rel: float = 0.12        # a frame at most this fraction of the surrounding contrast is dark
    fade_min: int = 4             # shortest ramp (frames) of a fade
    fade_search: int = 72         # frames searched for a ramp on each side of a dark run
    level_frames: int = 48        # frames next to a dark run whose contrast sets the shot's level
    plateau: float = 0.85         # a ramp ends where contrast reaches this fraction of the shot's level
    ramp_tol: float = 0.08        # contrast may go against the ramp by this fraction of the level (flicker)
    ramp_end: float = 0.5         # the frame next to the dark ones has at most this fraction of the level
    ramp_rank: float = 0.75       # |Spearman rank correlation| of contrast with time along a ramp
    flash_frames: int = 3         # a dark run this short that returns to the same picture may be a flash
    same_picture: float = 0.35    # coarse distance below which two frames show the same picture
    ramp_same: float = 0.5        # coarse distance (camera motion followed) along a fade's ramp, at most
    # dissolves
    spans: tuple[int, ...] = (3, 4, 6, 8, 11, 15, 20, 25)  # half-lengths scanned (dissolves ~2x these)
    ends_differ: float = 0.5      # distance between the frames before and after a dissolve, at least
    fit: float = 0.25             # mean residual fraction of the blend fits, at most
    gain: float = 0.12            # middle frames: one-end residual minus blend residual, at least
    rank: float = 0.9             # Spearman rank correlation of the blend weight with time, at least
    jump: float = 0.45            # largest step of the weight between two frames (a cut jumps ~1)
    dissolve_min: int = 4         # fewest blended frames
    dissolve_max: int = 60        # most blended frames
    min_contrast: float = 2.0     # frames below this many times FLAT_CONTRAST are not used in blend fits
    motion_frames: int = 6        # frames outside a dissolve over which each picture's motion is measured
    moved_ends_differ: float = 0.6  # ...and after following the camera motion measured through the run
    spread: float = 0.2           # blend weights fitted per quarter of the frame agree with the whole's this well
    stands_out: float = 1.8       # change across a dissolve / change over frames just outside it, at least
    context_frac: float = 0.5     # ...over this fraction of the dissolve's length
    context_min: int = 6          # ...but at least this many frames
    context_gap: float = 0.25     # ...starting this fraction of the dissolve's length away from it


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _spearman(x: np.ndarray) -> float:
    """Rank correlation of x with its index (NaN-free input; 0 for fewer than 3 values)."""
    n = x.size
    if n < 3:
        return 0.0
    r = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(np.float64)
    i = np.arange(n, dtype=np.float64)
    r -= r.mean()
    i -= i.mean()
    den = float(np.sqrt((r @ r) * (i @ i)))
    return float(r @ i) / den if den > 0 else 0.0


def _coarse_normalised(scores: np.ndarray) -> np.ndarray:
    """(T, 192) zero-mean unit-variance coarse thumbnails with the best-fitting plane removed (flicker slopes)."""
    c = scores[:, COL_COARSE:].astype(np.float64)
    w, h = COARSE_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    basis = np.stack([np.ones(h * w), (xx - xx.mean()).ravel(), (yy - yy.mean()).ravel()], axis=1)
    q, _ = np.linalg.qr(basis)
    c = c - (c @ q) @ q.T
    std = c.std(axis=1, keepdims=True)
    return np.where(std > 1e-9, c / np.maximum(std, 1e-12), 0.0).astype(np.float32)


def _cdist(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - a @ b / a.size)


class _Film:
    """The whole film's rows, prepared for transition decisions."""

    def __init__(self, scores: np.ndarray, cuts: list[int], rule: TransitionRule):
        self.n = scores.shape[0]
        self.rule = rule
        self.contrast = np.nan_to_num(scores[:, COL_CONTRAST].astype(np.float64), nan=0.0)
        self.mean = np.nan_to_num(scores[:, COL_MEAN].astype(np.float64), nan=0.0)
        shift = scores[:, [COL_DX, COL_DY]].astype(np.float64)
        self.shift_ok = np.asarray(np.isfinite(shift).all(axis=1))
        self.shift = np.where(self.shift_ok[:, None], shift, 0.0)
        self.x = _coarse_normalised(scores)
        self.smooth = median_filter(self.contrast, size=3, mode="nearest") if self.n else self.contrast
        wide = max(1, 2 * rule.fade_search + 1)
        self.level = maximum_filter1d(self.smooth, size=wide, mode="nearest") if self.n else self.smooth
        self.cuts = cuts
        # cuts between two frames that both show picture: real changes of picture, which no transition crosses
        self.barriers = [c for c in cuts
                         if min(self.contrast[c - 1], self.contrast[c]) >= 0.3 * self.level[c]]

    def barrier_between(self, a: int, b: int) -> bool:
        """A barrier cut at a frame in (a, b]."""
        return any(a < c <= b for c in self.barriers)


# --- fades ----------------------------------------------------------------------------------------


def _ramp(film: _Film, anchor: int, step: int, limit: int) -> tuple[int, float]:
    """Walk from the dark frame `anchor` away from it (step -1: back, +1: forward) while contrast rises.

    Returns (frames walked, the ramp's rank correlation toward the anchor), (0, 0.0) when there is no
    ramp: the frame next to the anchor is already bright, the walk never reaches the shot's contrast,
    or the picture changes along the way (a dissolve or a cut, not a fade).
    """
    r = film.rule
    c = film.smooth
    t = anchor
    lo, hi = (limit, anchor) if step < 0 else (anchor, limit)
    seg = c[lo:hi] if step > 0 else c[lo:hi][::-1]
    seg = seg[:r.level_frames]  # the shot's contrast next to the dark frames, not further shots'
    if seg.size < 2:
        return 0, 0.0
    level = float(np.percentile(seg, 75))
    if level <= 0:
        return 0, 0.0
    if not (lo <= anchor + step < hi) or film.contrast[anchor + step] > r.ramp_end * level:
        return 0, 0.0  # the picture next to the dark frame is (nearly) at full contrast: an abrupt change
    while True:
        nxt = t + step
        if not (lo <= nxt < hi):
            break
        if c[t] >= r.plateau * level:
            break
        if c[nxt] < c[t] - r.ramp_tol * level:
            break
        ahead = min(max(t + 3 * step, lo), hi - 1)
        if c[t] >= 0.6 * level and c[ahead] <= c[t] + 0.02 * level:
            break  # the rise has levelled off below the shot's typical contrast (flicker)
        t = nxt
    length = abs(t - anchor)
    if length == 0:
        return 0, 0.0
    frames = np.arange(min(t, anchor), max(t, anchor))
    if step > 0:
        frames = np.arange(anchor, t)
    values = film.contrast[frames]
    rank = _spearman(values) if step > 0 else -_spearman(values)
    if c[t] < 0.5 * level:  # never got near the shot's contrast: not a ramp from a picture
        return 0, 0.0
    # the same picture dims (or brightens) along a fade: compare the ramp's bright end with its
    # dimmest frame that still shows the picture clearly
    clear = [f for f in range(t, anchor, -step) if film.contrast[f] >= 0.5 * level]
    if len(clear) >= 2 and _moved_distance(film, min(clear[0], clear[-1]), max(clear[0], clear[-1])) > r.ramp_same:
        return 0, 0.0
    return length, rank


def _close(mask: np.ndarray, gap: int) -> np.ndarray:
    """Fill runs of at most `gap` False values between True values."""
    out = mask.copy()
    true = np.flatnonzero(mask)
    for a, b in zip(true[:-1], true[1:], strict=True):
        if 1 < b - a <= gap + 1:
            out[a:b] = True
    return out


def find_fades(film: _Film) -> list[Transition]:
    r = film.rule
    n = film.n
    if n < 3:
        return []
    flat = film.contrast < FLAT_CONTRAST
    dark = _close(flat | (film.contrast <= r.dark_rel * film.level), 2)  # a speck may lift one frame
    out: list[Transition] = []
    runs = _runs(dark)
    for k, (b0, b1) in enumerate(runs):
        prev_end = runs[k - 1][1] if k else 0
        next_start = runs[k + 1][0] if k + 1 < len(runs) else n
        lo = max(prev_end, b0 - r.fade_search, max([c for c in film.barriers if c <= b0 - 1], default=0))
        hi = min(next_start, b1 + r.fade_search, min([c for c in film.barriers if c > b1], default=n))
        # the held black belongs to the fade-out: the fade-in starts after the last flat frame
        flats = np.flatnonzero(flat[b0:b1])
        if flats.size:
            first_dark, last_dark = b0 + int(flats[0]), b0 + int(flats[-1])
        else:
            first_dark = last_dark = b0 + int(np.argmin(film.contrast[b0:b1]))
        split = last_dark + 1
        out_len, out_rank = _ramp(film, first_dark, -1, lo) if first_dark > 0 else (0, 0.0)
        in_len, in_rank = _ramp(film, last_dark, +1, hi) if split < n else (0, 0.0)
        in_len = max(0, in_len - 1)  # frames split .. split+in_len-1 rise to the plateau
        fade_out = out_len >= r.fade_min and out_rank >= r.ramp_rank
        fade_in = in_len >= r.fade_min and in_rank >= r.ramp_rank
        if not (fade_out or fade_in):
            continue
        if b1 - b0 <= r.flash_frames and b0 > 0 and b1 < n:
            if _moved_distance(film, b0 - 1, b1) < r.same_picture:
                continue  # a flash: the picture right after the dark frames is the one right before them
            before = max(first_dark - out_len - 1, 0)
            after = min(split + in_len, n - 1)
            if not (fade_out and fade_in) and _moved_distance(film, before, after) < r.same_picture:
                continue  # a flash (or a dip) that returns to the same picture
        if fade_out:
            out.append(Transition(first_dark - out_len, split, "fade_out"))
        if fade_in:
            out.append(Transition(split, split + in_len, "fade_in"))
    return out


# --- dissolves ------------------------------------------------------------------------------------


def _velocity(film: _Film, a: int, b: int) -> np.ndarray:
    """Mean per-frame shift (thumbnail pixels) over frames a+1..b (shifts t-1 -> t), zero if unknown."""
    a, b = max(a, 0), min(b, film.n - 1)
    if b <= a:
        return np.zeros(2)
    ok = film.shift_ok[a + 1:b + 1]
    if ok.sum() < max(1, (b - a) // 2):
        return np.zeros(2)
    return film.shift[a + 1:b + 1][ok].mean(axis=0)


def _moved(film: _Film, t: int, dx: float, dy: float) -> np.ndarray:
    """Coarse thumbnail of frame t moved by (dx, dy) thumbnail pixels; NaN where nothing moved in."""
    w, h = COARSE_SIZE
    sx, sy = w / THUMB_SIZE[0], h / THUMB_SIZE[1]
    img = film.x[t].reshape(h, w).astype(np.float32)
    m = np.array([[1, 0, dx * sx], [0, 1, dy * sy]], dtype=np.float32)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=np.nan).ravel().astype(np.float64)


def _blend_fit(x: np.ndarray, p: np.ndarray, q: np.ndarray) -> tuple[float, float, float]:
    """Least-squares x ~ a p + b q + c over cells where all are known: (residual fraction, weight of q, one-end residual)."""
    ok = np.isfinite(p) & np.isfinite(q)
    if ok.sum() < 0.4 * x.size:
        return np.nan, np.nan, np.nan
    x, p, q = x[ok], p[ok], q[ok]
    x = x - x.mean()
    p = p - p.mean()
    q = q - q.mean()
    xx, pp, qq, pq, px, qx = x @ x, p @ p, q @ q, p @ q, p @ x, q @ x
    if xx <= 1e-12 or pp <= 1e-12 or qq <= 1e-12:
        return np.nan, np.nan, np.nan
    det = pp * qq - pq * pq
    if det <= 1e-12 * pp * qq:
        return np.nan, np.nan, np.nan
    a = (qq * px - pq * qx) / det
    b = (pp * qx - pq * px) / det
    resid = max(0.0, 1.0 - (a * px + b * qx) / xx)
    one = 1.0 - max(px * px / (pp * xx), qx * qx / (qq * xx))
    weight = b / (a + b) if abs(a + b) > 1e-6 else np.nan
    return resid, weight, one


@dataclass
class _Fit:
    start: int
    end: int
    score: float


def _fit_run(film: _Film, before: int, after: int) -> np.ndarray:
    """Blend fits of frames before+1 .. after-1 to frames `before` and `after`, each moved along its camera motion.

    (n, 3) rows: residual fraction, weight of `after`, residual with the better end alone.
    """
    r = film.rule
    rows = []
    va = _velocity(film, before - r.motion_frames, before)
    vb = _velocity(film, after, after + r.motion_frames)
    for t in range(before + 1, after):
        p = _moved(film, before, *(va * (t - before)))
        q = _moved(film, after, *(-vb * (after - t)))
        rows.append(_blend_fit(film.x[t], p, q))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _moved_distance(film: _Film, a: int, b: int) -> float:
    """Distance from frame a, moved along the shifts measured frame to frame up to b, to frame b."""
    dx, dy = film.shift[a + 1:b + 1].sum(axis=0)
    p = _moved(film, a, dx, dy)
    ok = np.isfinite(p)
    if ok.sum() < 0.4 * p.size:
        return 1.0
    p, q = p[ok] - p[ok].mean(), film.x[b][ok] - film.x[b][ok].mean()
    den = float(np.sqrt((p @ p) * (q @ q)))
    return 1.0 - float(p @ q) / den if den > 1e-12 else 1.0


def _weight_spread(film: _Film, before: int, after: int, start: int, end: int) -> float:
    """How far blend weights fitted on each quarter of the frame stray from the whole frame's (middle frames)."""
    r = film.rule
    w, h = COARSE_SIZE
    va = _velocity(film, before - r.motion_frames, before)
    vb = _velocity(film, after, after + r.motion_frames)
    n = end - start
    spreads = []
    for t in range(start + n // 4, end - n // 4):
        p = _moved(film, before, *(va * (t - before))).reshape(h, w)
        q = _moved(film, after, *(-vb * (after - t))).reshape(h, w)
        x = film.x[t].reshape(h, w)
        whole = _blend_fit(x.ravel(), p.ravel(), q.ravel())[1]
        parts = []
        for i in range(2):
            for j in range(2):
                cell = (slice(i * h // 2, (i + 1) * h // 2), slice(j * w // 2, (j + 1) * w // 2))
                parts.append(_blend_fit(x[cell].ravel(), p[cell].ravel(), q[cell].ravel())[1])
        parts_ = np.array(parts, dtype=np.float64)
        if np.isfinite(whole) and np.isfinite(parts_).sum() >= 3:
            spreads.append(float(np.nanmax(np.abs(parts_ - whole))))
    return float(np.median(spreads)) if spreads else 1.0


def _judge(film: _Film, before: int, after: int) -> _Fit | None:
    """Is there a dissolve between pure frames `before` and `after`? The blended range and a score, or None."""
    r = film.rule
    if _cdist(film.x[before], film.x[after]) < r.ends_differ:
        return None
    fits = _fit_run(film, before, after)
    if not fits.size or not np.isfinite(fits).all():
        return None
    resid, weight, one = fits[:, 0], fits[:, 1], fits[:, 2]
    inside = np.flatnonzero((weight > 0.04) & (weight < 0.96))
    if inside.size < r.dissolve_min:
        return None
    i0, i1 = int(inside[0]), int(inside[-1]) + 1
    w = weight[i0:i1]
    n_in = i1 - i0
    if n_in > r.dissolve_max or np.abs(np.diff(weight)).max(initial=0.0) > r.jump:
        return None
    if _spearman(w) < r.rank or w[0] > 0.35 or w[-1] < 0.65:
        return None
    fit = float(resid[i0:i1].mean())
    mid = slice(i0 + n_in // 4, i1 - n_in // 4)
    gain = float((one[mid] - resid[mid]).mean())
    if fit > r.fit or gain < r.gain:
        return None
    start, end = before + 1 + i0, before + 1 + i1
    if _moved_distance(film, start - 1, end) < r.moved_ends_differ:
        return None  # one picture followed by the camera: a pan or a zoom, not two pictures
    if _weight_spread(film, before, after, start, end) > r.spread:
        return None  # parts of the frame blend differently: objects moving, not a dissolve
    return _Fit(start, end, gain - fit)


def find_dissolves(film: _Film, taken: list[Transition]) -> list[Transition]:
    r = film.rule
    n = film.n
    x = film.x
    usable = film.contrast >= r.min_contrast * FLAT_CONTRAST
    blocked = np.zeros(n, bool)
    for tr in taken:
        blocked[tr.start:tr.end] = True
    ok = usable & ~blocked
    barrier_at = np.zeros(n + 1, np.int64)
    for c in film.barriers:
        barrier_at[c] += 1
    barrier_cum = np.cumsum(barrier_at)  # barriers at frames <= i
    d = x.shape[1]
    cands: list[tuple[float, int, int]] = []
    for k in r.spans:
        if n <= 2 * k:
            continue
        mids = np.arange(k, n - k)
        a, b = mids - k, mids + k
        good = ok[a] & ok[b] & ok[mids] & (barrier_cum[b] - barrier_cum[a] == 0)
        p, q, xt = x[a], x[b], x[mids]
        pq = np.einsum("ij,ij->i", p, q) / d
        good &= (1 - pq) >= r.ends_differ
        px = np.einsum("ij,ij->i", p, xt) / d
        qx = np.einsum("ij,ij->i", q, xt) / d
        det = 1 - pq * pq
        with np.errstate(divide="ignore", invalid="ignore"):
            wa = (px - pq * qx) / det
            wb = (qx - pq * px) / det
            resid = 1 - (wa * px + wb * qx)
        one = 1 - np.maximum(px * px, qx * qx)
        score = (one - resid) - resid
        good &= (wa > 0.15) & (wb > 0.15) & (resid < 2 * r.fit) & (one - resid > 0.5 * r.gain)
        score = np.where(good, score, -np.inf)
        peak = good & (score >= maximum_filter1d(score, size=k + 1, mode="nearest"))  # one candidate per k/2 frames
        for i in np.flatnonzero(peak):
            cands.append((float(score[i]), int(mids[i]), k))
    cands.sort(key=lambda c: (-c[0], c[1], c[2]))
    pieces: list[tuple[int, int]] = []
    judged: dict[tuple[int, int], _Fit | None] = {}
    covered = np.zeros(n, bool)
    for _, t, k in cands:
        if covered[t]:
            continue
        best: _Fit | None = None
        for extra in (2, 0, 4):
            before, after = t - k - extra, t + k + extra
            before, after = max(before, 0), min(after, n - 1)
            while before < t and not ok[before]:
                before += 1
            while after > t and not ok[after]:
                after -= 1
            if after - before < r.dissolve_min + 1 or film.barrier_between(before, after):
                continue
            if blocked[before:after + 1].any() or covered[before] or covered[after]:
                continue
            if (before, after) not in judged:
                judged[(before, after)] = _judge(film, before, after)
            fit = judged[(before, after)]
            if fit is not None and (best is None or fit.score > best.score):
                best = fit
        if best is None:
            continue
        pieces.append((best.start, best.end))
        covered[best.start:best.end] = True
    # a long dissolve is often accepted piecewise: join touching pieces, then keep the runs whose change
    # stands out from the change just before and after them (a busy shot changes at the same pace throughout)
    found: list[Transition] = []
    for start, end in _merge(sorted(pieces), gap=2):
        if _stands_out(film, start, end, blocked):
            found.append(Transition(start, end, "dissolve"))
    return found


def _merge(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _context_change(film: _Film, edge: int, step: int, length: int, gap: int, blocked: np.ndarray) -> float | None:
    """Change (camera followed) over `length` frames beyond frame `edge` (step -1: before, +1: after).

    The window starts `gap` frames away from the edge when there is room (a dissolve found only in
    part goes on beyond its edges), never crosses a cut or another transition; None if under 3 frames.
    """
    barriers = set(film.barriers)
    far = edge
    while abs(far - edge) < gap + length:
        nxt = far + step
        if not 0 <= nxt < film.n or blocked[nxt] or (far if step < 0 else nxt) in barriers:
            break
        far = nxt
    room = abs(far - edge)
    if room < 3:
        return None
    near = edge + step * min(gap, room - 3)
    return _moved_distance(film, min(near, far), max(near, far))


def _stands_out(film: _Film, start: int, end: int, blocked: np.ndarray) -> bool:
    """The pictures either side of the run differ much more than pictures as far apart before and after it."""
    r = film.rule
    inside = _moved_distance(film, start - 1, end)
    length = max(r.context_min, int(round((end - start + 1) * r.context_frac)))
    gap = int((end - start) * r.context_gap)
    around = [_context_change(film, start - 1, -1, length, gap, blocked),
              _context_change(film, end, +1, length, gap, blocked)]
    changes = [a for a in around if a is not None]
    if len(changes) < len(around):
        return False  # a dissolve needs a steady picture on both sides to stand out from
    return inside >= r.stands_out * max(max(changes), 0.05)


# --------------------------------------------------------------------------------------------------
# The decision over a film
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """Hard cuts (first frame of each new shot) and gradual transitions of a film."""

    cuts: list[int]
    transitions: list[Transition]

    def to_dict(self) -> dict:
        return {"cuts": list(self.cuts), "transitions": [t.to_dict() for t in self.transitions]}


def _disjoint(transitions: list[Transition]) -> list[Transition]:
    """Sorted, non-overlapping: a transition starting inside the previous one starts where that one ends."""
    out: list[Transition] = []
    for t in sorted(transitions):
        if out and t.start < out[-1].end:
            if t.end <= out[-1].end + 1:
                continue
            t = Transition(out[-1].end, t.end, t.kind)
        out.append(t)
    return out


def _absorbed(c: int, transitions: list[Transition]) -> bool:
    for tr in transitions:
        if tr.start < c < tr.end or (tr.kind == "fade_in" and c == tr.start):
            return True
    return False


def decide(scores: np.ndarray, rule: CutRule = CutRule(), transition_rule: TransitionRule = TransitionRule()
           ) -> Detection:
    """Cuts and transitions from the (T, ROW_WIDTH) score rows of a whole film."""
    if scores.ndim != 2 or scores.shape[1] != ROW_WIDTH:
        raise ValueError(f"expected (T, {ROW_WIDTH}) score rows, got shape {scores.shape}")
    raw = hard_cuts(scores, rule)
    film = _Film(scores, raw, transition_rule)
    fades = _disjoint(find_fades(film))
    dissolves = find_dissolves(film, fades)
    transitions = _disjoint(fades + dissolves)
    cuts = [c for c in raw if not _absorbed(c, transitions)]
    return Detection(cuts, transitions)


def decide_cuts(scores: np.ndarray, rule: CutRule = CutRule()) -> list[int]:
    """Hard cuts only (transitions detected and their inner cuts dropped): `decide(scores).cuts`."""
    return decide(scores, rule).cuts


def detect(frames: Iterable[np.ndarray], rule: CutRule = CutRule(),
           transition_rule: TransitionRule = TransitionRule()) -> Detection:
    """Serial detection over frames (RGB, uint8/uint16 or float in [0, 1]): the reference chunks must equal."""
    return decide(score_frames(frames), rule, transition_rule)


def detect_cuts(frames: Iterable[np.ndarray], rule: CutRule = CutRule()) -> list[int]:
    return detect(frames, rule).cuts


@dataclass(frozen=True)
class ShotDetector:
    """The shot detector (after PySceneDetect's detectors: rules checked once, maths in this module's
    functions). Every path gives the same score rows for the same frames, and `decide` turns a whole
    film's rows into cuts and transitions once.

    - ingest: `streaming()` over its decode (rows as frames arrive, memory bounded);
    - shot-score tasks: frames `chunk_window(start, end, total)` read from the mezzanine, then
      `score_chunk(frames, start, end, read_start)`;
    - `reel shots` and `reel stage`: `score(features)` over a file, fed `features(luma, scale, offset)` of
      each decoded picture's luma plane.
    """

    cut_rule: CutRule = CutRule()
    transition_rule: TransitionRule = TransitionRule()

    version: ClassVar[str] = DETECTOR_VERSION  # bump DETECTOR_VERSION when cuts or transitions can change
    halo_before: ClassVar[int] = 1  # the row of frame t reads frames t-1 ..
    halo_after: ClassVar[int] = HEAL  # .. t+HEAL

    def features(self, frame: np.ndarray, scale: float | None = None, offset: float = 0.0,
                 weights: Sequence[float] | None = None) -> FrameFeatures:
        """What the detector keeps of one picture: an RGB frame, a packed pixel array or a luma plane, code
        values * scale + offset (see `thumbnail`)."""
        return features_from_thumbnail(thumbnail(frame, scale, offset, weights))

    def streaming(self) -> StreamingScores:
        """A scorer for a film's frames pushed in order (`push`, then `finish()` -> rows)."""
        return StreamingScores()

    def score(self, frames: Iterable[np.ndarray | FrameFeatures]) -> np.ndarray:
        """(T, ROW_WIDTH) rows of a whole film, streaming (frames or their `features`)."""
        return score_frames(frames)

    def chunk_window(self, start: int, end: int, total: int) -> tuple[int, int]:
        """Frames [lo, hi) to read for the rows of frames [start, end) of a film of `total` frames."""
        return max(0, start - self.halo_before), min(total, end + self.halo_after)

    def score_chunk(self, frames: Sequence[np.ndarray], start: int, end: int, read_start: int) -> np.ndarray:
        """Rows of frames [start, end) from `frames` = the film's frames read_start .. (`chunk_window`):
        equal to those rows of `score` over the whole film."""
        return score_rows([frame_features(f) for f in frames], start - read_start, end - start)

    def decide(self, rows: np.ndarray) -> Detection:
        """Cuts and transitions from a whole film's rows."""
        return decide(rows, self.cut_rule, self.transition_rule)

    def detect(self, frames: Iterable[np.ndarray | FrameFeatures]) -> Detection:
        return self.decide(self.score(frames))


SHOT_DETECTOR = ShotDetector()
