"""Duplicated-frame detection: frames that repeat the previous picture up to noise.

Old transfers repeat frames: 16/18 fps material brought to 24/25 fps by printing
some frames twice, a frame doubled at a splice, a re-scan of the same print. The
copy is the same picture, but re-scanned: new grain and noise, a different
exposure (flicker) and a slightly different position in the gate (weave).

Signature (per frame, streamable): the frame area-downscaled so the longer side
is `size` px, as Y'CbCr (a moving object may differ from its background in
colour only), band-passed (Gaussian blur of 1.5 px to damp grain, minus a blur of
size/16 px to drop slow illumination changes such as a flicker gradient), minus
its mean and divided by the luma plane's std (global flicker gain/offset cancel).

Pair distance d(t) between frames t-1 and t: the translation between their luma
signatures is measured by phase correlation and, if it is at most `max_shift`
(a fraction of the longer side: weave, or a slow pan), removed (each signature
moved half-way, so both are resampled alike); the aligned difference is cut
into 8x8 blocks and d is the RMS of the worst 1 % of blocks. Taking the worst
blocks keeps a small moving object (that a mean over the frame would drown in
grain) decisive.

Rule (the decision is relative, because noise levels vary from film to film):
frame t is a duplicate when d(t) < `ratio` x the 75th percentile of the pair
distances within `window` pairs on each side (t itself left out). Consecutive
distinct frames differ by motion, so in a clip with repeats the repeated pair
stands out as much closer than its neighbours' pairs; the 75th percentile keeps
the reference on motion pairs even when every second frame is a repeat.

Consequences, stated:
- A static scene (nothing moves; only grain differs from frame to frame) has
  no pair much closer than the others, so nothing is reported. A real repeat
  there is undetectable from the pictures alone (it is the same picture as its
  neighbours) unless the copy is much cleaner than a rescan (e.g. a digital
  copy, distance ~0), which is then reported.
- Uniform slow motion: every pair alike, nothing reported.
- Pure camera pans slower than `max_shift` per frame are aligned away like
  weave; there only the rest of the motion (objects, zoom, parallax) separates
  repeats from motion.
- A motion that stops for exactly one frame and resumes looks like a repeat.
- Decisions need neighbours: with fewer than 3 pairs in the window nothing is
  reported; in streaming use a pair's verdict is final once `window` more
  frames have been pushed.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from models.clip import Clip, luma

_BLOCK = 8
_TOP = 0.01  # share of blocks whose RMS makes the distance
_FINE = 1.5  # px (signature): blur that damps grain


def signature(frame: np.ndarray, size: int = 256) -> tuple[np.ndarray, float]:
    """(signature, scale): band-passed, normalised small (h, w, 3) Y'CbCr of one (H, W, 3) RGB frame.

    `frame` is float RGB in [0, 1] or uint8/uint16 RGB; `scale` is signature px per source px.
    All three planes are divided by the luma plane's std, so chroma keeps its relative weight
    (a moving object can differ from its background in colour only) and a black-and-white
    film's near-zero chroma is not blown up.
    """
    f = np.asarray(frame)
    if f.dtype == np.uint8:
        f = f.astype(np.float32) / np.float32(255)
    elif f.dtype == np.uint16:
        f = f.astype(np.float32) / np.float32(65535)
    f = f.astype(np.float32, copy=False)
    h, w = f.shape[:2]
    s = min(1.0, size / max(h, w))
    if s < 1.0:
        f = cv2.resize(f, (max(16, round(w * s)), max(16, round(h * s))), interpolation=cv2.INTER_AREA)
    y = luma(f)
    ycc = np.stack([y, 0.5389 * (f[..., 2] - y), 0.6350 * (f[..., 0] - y)], axis=-1)
    lo = max(y.shape) / 16.0
    bp = cv2.GaussianBlur(ycc, (0, 0), _FINE) - cv2.GaussianBlur(ycc, (0, 0), lo)
    bp -= bp.mean(axis=(0, 1))
    sd = float(bp[..., 0].std())
    return (bp / sd if sd > 1e-8 else bp).astype(np.float32), y.shape[1] / w


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def pair_distance(a: np.ndarray, b: np.ndarray, max_shift_px: float, top: float = _TOP) -> tuple[float, float, float]:
    """(distance, dx, dy) between two signatures; dx, dy: the translation removed (signature px)."""
    h, w = a.shape[:2]
    win = cv2.createHanningWindow((w, h), cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(a[..., 0].astype(np.float64), b[..., 0].astype(np.float64), win)
    if np.hypot(dx, dy) > max_shift_px:
        dx = dy = 0.0
    # move each half-way: b by -shift/2 onto the middle, a by +shift/2 (both resampled alike)
    aa, bb = _shift(a, dx / 2, dy / 2), _shift(b, -dx / 2, -dy / 2)
    m = int(np.ceil(max_shift_px)) + 2
    r = (aa - bb)[m:h - m, m:w - m]
    r = r - r.mean(axis=(0, 1))
    e = (r * r).sum(axis=-1)
    bh, bw = e.shape[0] // _BLOCK, e.shape[1] // _BLOCK
    if bh < 1 or bw < 1:
        return float(np.sqrt(np.mean(e))), dx, dy
    blocks = e[:bh * _BLOCK, :bw * _BLOCK].reshape(bh, _BLOCK, bw, _BLOCK).mean(axis=(1, 3)).ravel()
    k = max(1, int(round(top * blocks.size)))
    worst = np.partition(blocks, blocks.size - k)[-k:]
    return float(np.sqrt(worst.mean())), dx, dy


class DuplicateDetector:
    """Streaming duplicate detection: `push` frames in order, ask `results()` at any time.

    Keeps one signature and one distance per pair, so QC can run it while frames stream by.
    """

    def __init__(self, ratio: float = 0.4, window: int = 4, max_shift: float = 0.02, size: int = 256,
                 first_frame: int = 0) -> None:
        if not 0 < ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.ratio, self.window, self.max_shift, self.size = ratio, window, max_shift, size
        self.first_frame = first_frame
        self._prev: np.ndarray | None = None
        self._dist: list[float] = []  # _dist[i]: pair (i, i+1), i relative to first_frame
        self._shifts: list[tuple[float, float]] = []

    def push(self, frame: np.ndarray) -> None:
        """Add the next frame ((H, W, 3) float RGB in [0, 1], or uint8/uint16)."""
        sig, scale = signature(frame, self.size)
        if self._prev is not None:
            if sig.shape != self._prev.shape:
                raise ValueError(f"frame size changed: signature {sig.shape} after {self._prev.shape}")
            d, dx, dy = pair_distance(self._prev, sig, self.max_shift * max(sig.shape[:2]))
            self._dist.append(d)
            self._shifts.append((dx / scale, dy / scale))
        self._prev = sig

    @property
    def distances(self) -> list[float]:
        """Pair distances so far: element i compares frame i + 1 with frame i."""
        return list(self._dist)

    @property
    def shifts(self) -> list[tuple[float, float]]:
        """The translation (dx, dy, source px) aligned away in each pair, as `distances`."""
        return list(self._shifts)

    @classmethod
    def from_distances(cls, distances: list[float], shifts: list[tuple[float, float]], **kwargs: Any
                       ) -> DuplicateDetector:
        """A detector holding pair distances measured elsewhere (e.g. piece by piece, each piece
        pushing the frame before it too), to decide over them all; `kwargs` as the constructor's."""
        if len(distances) != len(shifts):
            raise ValueError(f"{len(distances)} distances but {len(shifts)} shifts")
        det = cls(**kwargs)
        det._dist = [float(d) for d in distances]
        det._shifts = [(float(x), float(y)) for x, y in shifts]
        return det

    def results(self) -> list[dict[str, Any]]:
        """[{"frame", "of", "distance", "ratio", "shift"}] for each duplicate so far, in frame order.

        "of" is the last frame before it that is not itself a duplicate; "distance" compares it
        with the frame just before; "ratio" is that over its neighbourhood's reference distance;
        "shift" is the [dx, dy] (source px) aligned away between the two.
        """
        d = np.asarray(self._dist)
        out: list[dict[str, Any]] = []
        of_prev: dict[int, int] = {}
        for i in range(d.size):
            lo, hi = max(0, i - self.window), min(d.size, i + self.window + 1)
            others = np.concatenate([d[lo:i], d[i + 1:hi]])
            if others.size < 3:
                continue
            ref = float(np.percentile(others, 75))
            if ref <= 0 or d[i] >= self.ratio * ref:
                continue
            t = i + 1
            of = of_prev.get(t - 1, t - 1)
            of_prev[t] = of
            out.append({"frame": self.first_frame + t, "of": self.first_frame + of,
                        "distance": round(float(d[i]), 4), "ratio": round(float(d[i]) / ref, 3),
                        "shift": [round(v, 2) for v in self._shifts[i]]})
        return out


def find_duplicates(frames: np.ndarray | Clip, ratio: float = 0.4, window: int = 4, max_shift: float = 0.02,
                    size: int = 256) -> list[dict[str, Any]]:
    """Duplicated frames of (T, H, W, 3) `frames` (or a Clip: indices then count from its first_frame).

    ratio:     a pair is a repeat when its distance is below ratio x its neighbourhood's reference.
    window:    pairs on each side forming the neighbourhood.
    max_shift: largest translation treated as weave and aligned away, as a fraction of the
               longer side (0.02: 6 px at 320x240, 38 px at 1920x1080).
    size:      longer side of the signatures (px).
    See the module docstring for the rule and its limits.
    """
    first = 0
    if isinstance(frames, Clip):
        first, frames = frames.first_frame, frames.frames
    det = DuplicateDetector(ratio=ratio, window=window, max_shift=max_shift, size=size, first_frame=first)
    for f in frames:
        det.push(f)
    return det.results()


def duplicate_cadence(dups: list[dict[str, Any]], n: int, fps: Fraction | float | None = None) -> dict[str, Any]:
    """Summary of a repeat pattern over `n` frames: count, fraction, and the period if regular.

    Regular means at least 80 % of the gaps between successive repeats are the same k
    (k = 3: 1 repeat in 3 frames, e.g. 16 fps printed to 24; k = 4: 18 -> 24; ...). With
    `fps`, the rate of the original material, fps x (k - 1) / k, is given too.
    """
    frames = sorted(int(d["frame"]) for d in dups)
    out: dict[str, Any] = {"count": len(frames), "frames": n, "fraction": round(len(frames) / n, 4) if n else 0.0,
                           "period": None, "regular": False, "description": "no repeated frames"}
    if not frames:
        return out
    gaps = np.diff(frames)
    if gaps.size >= 2:
        k, c = Counter(gaps.tolist()).most_common(1)[0]
        if c >= 0.8 * gaps.size:
            out.update(period=int(k), regular=True, description=f"1 repeat every {k} frames")
            if fps is not None and k > 1:
                src = Fraction(fps) * (k - 1) / k
                out["source_fps"] = float(src)
                out["description"] += f" (~{float(src):g} fps material at {float(Fraction(fps)):g} fps)"
            return out
    out["description"] = f"{len(frames)} repeated frame(s), irregular"
    return out
