"""Shot-boundary detection that survives old film.

Each frame is reduced to a signature: a small blurred luma thumbnail
normalised to zero mean and unit variance. Normalising removes global
brightness/contrast changes (flicker, and flashes, which blend a frame toward
white: an affine change of intensity); blur and the small size make gate weave
and slow pans negligible; luma works on black-and-white film, where hue-based
scores (PySceneDetect's default ContentDetector) see nothing.

The distance between two signatures is 1 - normalised correlation (0 equal,
~1 unrelated). A frame t starts a new shot when it is far from t-1, further
than the local level of change (fast pans raise every score), and the break
does not heal: if t-1 looks like one of t+1..t+`heal` again, frames t.. are a
transient (a flash, a big blotch, a dropped frame), not a cut.

Scores depend only on frames t-1..t+heal, so chunks processed in parallel with
that halo give exactly the serial result.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.clip import luma

SIGNATURE_SIZE = (32, 24)
HEAL = 3  # frames after a break searched for a return to the old picture
DETECTOR_VERSION = "1"  # bump when detected cuts can change


def signature(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> normalised (24*32,) float32 signature."""
    y = luma(frame)
    h, w = y.shape
    small = cv2.resize(y, (SIGNATURE_SIZE[0] * 2, SIGNATURE_SIZE[1] * 2), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 1.0)
    small = cv2.resize(small, SIGNATURE_SIZE, interpolation=cv2.INTER_AREA).ravel().astype(np.float32)
    small -= small.mean()
    std = float(small.std())
    return small / std if std > 1e-3 else np.zeros_like(small)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - normalised correlation of two signatures (flat frames count as unrelated to textured ones)."""
    if not a.any() and not b.any():
        return 0.0
    return float(1.0 - np.dot(a, b) / a.size)


def pair_scores(signatures: np.ndarray, first: int, count: int) -> np.ndarray:
    """Scores for frames first..first+count-1 of a window of signatures.

    signatures: (N, D) for consecutive frames; row `first` is frame t0, row
    first-1 must exist when t0 is not the film's first frame (else NaNs).
    Returns (count, 1 + HEAL): column 0 is d(t-1, t); column k is d(t-1, t+k)
    (NaN beyond the window's end).
    """
    out = np.full((count, 1 + HEAL), np.nan, dtype=np.float32)
    n = signatures.shape[0]
    for i in range(count):
        t = first + i
        if t - 1 < 0:
            continue
        prev = signatures[t - 1]
        for k in range(0, 1 + HEAL):
            if t + k < n:
                out[i, k] = distance(prev, signatures[t + k])
    return out


@dataclass(frozen=True)
class CutRule:
    threshold: float = 0.33       # d(t-1, t) above this may be a cut (synthetic non-cuts peak near 0.28)
    heal: float = 0.30            # d(t-1, t+k) below this means the picture came back
    contrast: float = 2.5         # d(t-1, t) must exceed this many times the local median level
    window: int = 8               # frames each side for the local level
    min_shot_frames: int = 2      # no two cuts closer than this


def decide_cuts(scores: np.ndarray, rule: CutRule = CutRule()) -> list[int]:
    """Cut frame indices from the (T, 1 + HEAL) score table of a whole film."""
    d = scores[:, 0]
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
        healed = np.flatnonzero(scores[t, 1:] < rule.heal)  # NaN compares False
        if healed.size:
            quiet_until = t + 1 + int(healed[0])  # transient: the old picture is back at that frame
            continue
        if cuts and t - cuts[-1] < rule.min_shot_frames:
            continue
        cuts.append(t)
    return cuts


def detect_cuts(frames: np.ndarray, rule: CutRule = CutRule()) -> list[int]:
    """Serial detection on (T, H, W, 3) float frames: the reference the chunked path must equal."""
    sigs = np.stack([signature(f) for f in frames])
    return decide_cuts(pair_scores(sigs, 0, len(sigs)), rule)
