"""Stabilise: remove gate weave and jitter, keep the camera's own moves.

Weave is the film sliding about in the gate: a frame-to-frame translation of
the whole image, typically 0.5-3 px (at 320 px width) with an occasional hard
jolt, on top of the camera's intentional pans and zooms. After the classic
video-stabilisation pipeline (estimate, smooth, compensate):

1. Global motion between consecutive frames, measured on a downscaled luma
   (longer side <= 640 px) that is normalised to zero mean / unit std first so
   that brightness flicker does not matter: corner features tracked with
   pyramidal Lucas-Kanade (forward-backward checked), then a similarity
   (translation + rotation + scale) fitted with RANSAC, which rejects moving
   objects and static scratches. The translation of the image centre is kept;
   the scale part only makes that translation exact during zooms. Where too
   few features track, phase correlation (Hanning window) is the fallback.
   Measured on the synthetic films (pans + zoom + grain + flicker), this is
   ~0.06 px RMS per frame pair against the truth, where OpenCV's phase
   correlation alone is ~0.3 px and the median of a DIS flow field ~0.1 px.
   Estimates larger than `max_shift` are rejected and replaced by their
   neighbours' mean.
2. The increments are summed into a trajectory and smoothed with a robust
   local-linear fit (Gaussian weights over ±`radius` frames, three
   bisquare-reweighted passes so single-frame jolts do not drag their
   neighbours). A local *linear* fit follows a pan exactly, also at the clip's
   ends, where the window becomes one-sided instead of being padded.
3. Each frame is shifted by correction = strength x (smoothed - raw), clamped
   to ±`max_correction`, with bicubic interpolation.

Chunking: the correction of frame t only uses frames t-radius-1 .. t+radius+1
(the smoothing window, plus one for the outlier replacement), and it does not
depend on where the trajectory starts (smoothed - raw is invariant to a
constant offset), so `context_frames` = radius + 1 and a chunk processed with
its halo gives the same frames as the whole shot.

Borders: shifting uncovers a strip of up to a few pixels at the frame's
edges. "fill" (default) takes those pixels from the nearest neighbouring
frames (±1, ±2, ... up to 4) shifted into place (with a per-channel gain so
flicker does not show), and replicates the edge where no neighbour covers
them; "replicate" only replicates the edge; "zoom" applies one fixed zoom,
just enough to cover `max_correction` on every side, so nothing is uncovered.
The zoom depends only on the parameters and the frame size, never on the
clip's content, so every chunk of a shot gets the same zoom.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from models.clip import Clip, luma
from models.stage import Stage, StageParams

_REF_WIDTH = 320.0  # max_shift and max_correction are in pixels at this width
_ANALYSIS_SIDE = 640  # longer side of the luma the motion is measured on
_FILL_FRAMES = 4  # neighbours on each side tried for the uncovered border
_EPS = 1e-3


class StabiliseParams(StageParams):
    radius: int = Field(12, ge=1, le=60, description="frames on each side of the trajectory smoothing window; "
                        "longer keeps less of the weave's slow drift but follows camera moves less closely")
    max_shift: float = Field(20.0, gt=0, le=200, description="frame-to-frame motion estimates larger than this "
                             "(px at 320 px width, scaled with the width) are ignored as unreliable")
    max_correction: float = Field(5.0, gt=0, le=50, description="largest shift applied to a frame, on each axis "
                                  "(px at 320 px width, scaled with the width); 'zoom' zooms just enough to cover it")
    border: Literal["fill", "replicate", "zoom"] = Field(
        "fill", description="uncovered edges: fill from neighbouring frames, replicate the edge pixels, "
        "or zoom in slightly (fixed) so none are uncovered")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="1 = full correction, 0 = none")


# --------------------------------------------------------------------------------------------------
# Motion estimation
# --------------------------------------------------------------------------------------------------


def _analysis_frames(frames: np.ndarray) -> tuple[list[np.ndarray], float, float]:
    """uint8 luma at analysis size, each normalised to mean 128 / std 40; and the px scale back (sx, sy)."""
    _, h, w, _ = frames.shape
    s = min(1.0, _ANALYSIS_SIDE / max(h, w))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    out = []
    for f in frames:
        y = luma(f)
        if size != (w, h):
            y = cv2.resize(y, size, interpolation=cv2.INTER_AREA)
        y = cv2.GaussianBlur(y, (0, 0), 0.7)  # takes the edge off grain before corner detection / LK
        m, sd = float(y.mean()), float(y.std())
        out.append(np.clip((y - m) * (40.0 / max(sd, 1e-4)) + 128.0, 0, 255).astype(np.uint8))
    return out, w / size[0], h / size[1]


def _track_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Displacement (dx, dy) of the image centre from a to b: LK tracks + RANSAC similarity; None if unsure."""
    h, w = a.shape
    k = max(1.0, w / _REF_WIDTH)
    pts = cv2.goodFeaturesToTrack(a, maxCorners=int(400 * min(k, 2.0)), qualityLevel=0.01,
                                  minDistance=max(4.0, 8.0 * min(k, 2.0)), blockSize=7)
    if pts is None or len(pts) < 8:
        return None
    lk = dict(winSize=(21, 21), maxLevel=3,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    fwd, st1, _ = cv2.calcOpticalFlowPyrLK(a, b, pts, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, fwd, None, **lk)
    ok = (st1[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((back - pts)[:, 0], axis=1) < 0.5 * k)
    if ok.sum() < 8:
        return None
    p, q = pts[ok, 0], fwd[ok, 0]
    m, inliers = cv2.estimateAffinePartial2D(p, q, method=cv2.RANSAC, ransacReprojThreshold=0.5 * k,
                                             maxIters=2000, confidence=0.995, refineIters=10)
    if m is None or inliers is None or int(inliers.sum()) < max(6, 0.2 * ok.sum()):
        return None
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    return m[:, :2] @ c + m[:, 2] - c


def _phase_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Translation from a to b by phase correlation (Hanning window); None if the peak is weak."""
    h, w = a.shape
    if h < 8 or w < 8:
        return None
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), win)
    return np.array([dx, dy]) if response > 0.05 else None


def _pair_motion(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    try:
        d = _track_similarity(a, b)
        return d if d is not None else _phase_shift(a, b)
    except cv2.error:
        return None


def _increments(frames: np.ndarray, max_shift: float) -> tuple[np.ndarray, list[int]]:
    """(T, 2) full-resolution motion of frame t relative to t-1 (row 0 = 0), and the rejected t."""
    n = frames.shape[0]
    small, sx, sy = _analysis_frames(frames)
    inc = np.zeros((n, 2))
    valid = np.zeros(n, bool)
    for t in range(1, n):
        d = _pair_motion(small[t - 1], small[t])
        if d is not None and np.all(np.isfinite(d)):
            d = d * (sx, sy)
            if math.hypot(*d) <= max_shift:
                inc[t], valid[t] = d, True
    rejected = [t for t in range(1, n) if not valid[t]]
    for t in rejected:  # the mean of the valid neighbours (keeps a pan going); else no motion
        nb = [inc[s] for s in (t - 1, t + 1) if 1 <= s < n and valid[s]]
        inc[t] = np.mean(nb, axis=0) if nb else 0.0
    return inc, rejected


# --------------------------------------------------------------------------------------------------
# Trajectory smoothing
# --------------------------------------------------------------------------------------------------


def smooth_trajectory(traj: np.ndarray, radius: int, floor: float = 0.05, passes: int = 3) -> np.ndarray:
    """Robust local-linear smoothing of a (T, 2) trajectory over ±radius frames.

    At each t: weighted least-squares line through traj[t-radius .. t+radius] (Gaussian
    weights, sigma = radius / 2; the window is cut at the clip's ends, not padded),
    evaluated at t; then `passes - 1` bisquare reweightings on the residual lengths
    (scale 6 x median residual, at least `floor`). Adding a constant to traj adds it
    to the result; a straight line is returned unchanged.
    """
    n = traj.shape[0]
    sigma = max(radius / 2.0, 0.5)
    out = np.empty_like(traj, dtype=np.float64)
    for t in range(n):
        lo, hi = max(0, t - radius), min(n, t + radius + 1)
        k = np.arange(lo - t, hi - t, dtype=np.float64)
        y = traj[lo:hi].astype(np.float64) - traj[t]  # relative values: exact offset invariance
        w = np.exp(-0.5 * (k / sigma) ** 2)
        rw = np.ones_like(w)
        a = np.zeros(2)
        for it in range(passes):
            a, b = _weighted_line(k, y, w * rw)
            if it == passes - 1:
                break
            r = np.linalg.norm(y - a - np.outer(k, b), axis=1)
            scale = max(6.0 * float(np.median(r)), floor)
            u = np.minimum(r / scale, 1.0)
            rw = (1.0 - u * u) ** 2
        out[t] = traj[t] + a
    return out


def _weighted_line(k: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intercept at k=0 and slope of the weighted LS line y ~ a + b k (columns of y fitted separately)."""
    sw = w.sum()
    if sw <= 1e-12:
        return np.zeros(y.shape[1]), np.zeros(y.shape[1])
    km = (w * k).sum() / sw
    ym = (w[:, None] * y).sum(axis=0) / sw
    kc = k - km
    skk = (w * kc * kc).sum()
    if skk <= 1e-9 * sw:  # one effective point: the weighted mean
        return ym, np.zeros(y.shape[1])
    b = (w[:, None] * kc[:, None] * (y - ym)).sum(axis=0) / skk
    return ym - b * km, b


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------


def _covered(coord: np.ndarray, shift: float, size: int) -> np.ndarray:
    """Which output coordinates sample inside the source after a shift by `shift`."""
    src = coord - shift
    return (src >= -_EPS) & (src <= size - 1 + _EPS)


class Stabilise(Stage):
    name = "stabilise"
    version = "1"
    description = "Remove gate weave and jitter (global translation), keeping pans and zooms"
    Params = StabiliseParams

    @property
    def context_frames(self) -> int:
        return self.params.radius + 1

    def zoom_factor(self, width: int, height: int) -> float:
        """The fixed zoom of border='zoom' for this frame size (1.0 for the other modes)."""
        if self.params.border != "zoom":
            return 1.0
        lim = self.params.max_correction * width / _REF_WIDTH
        half = min(width - 1, height - 1) / 2.0
        return half / max(half - lim, 1.0)

    def corrections(self, clip: Clip) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(T, 2) raw trajectory, (T, 2) correction applied to each frame, rejected estimates."""
        p = self.params
        n, w = clip.num_frames, clip.width
        inc, rejected = _increments(clip.frames, p.max_shift * w / _REF_WIDTH)
        traj = np.cumsum(inc, axis=0)
        floor = 0.05 * w / _REF_WIDTH
        smooth = smooth_trajectory(traj, p.radius, floor=floor)
        lim = p.max_correction * w / _REF_WIDTH
        corr = np.clip(p.strength * (smooth - traj), -lim, lim)
        assert corr.shape == (n, 2)
        return traj, corr, rejected

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        p = self.params
        n, h, w = clip.num_frames, clip.height, clip.width
        if n <= 2 or p.strength == 0.0:
            zeros = [0.0] * n
            return clip, {"dx": zeros, "dy": zeros, "mean_correction": 0.0, "max_correction": 0.0,
                          "rejected": [], "border": p.border, "zoom": 1.0}
        traj, corr, rejected = self.corrections(clip)
        frames = clip.frames
        zoom = self.zoom_factor(w, h)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        out = np.empty_like(frames)
        means: dict[int, np.ndarray] = {}

        def mean_of(u: int) -> np.ndarray:
            if u not in means:
                means[u] = frames[u, ::4, ::4].reshape(-1, 3).mean(axis=0, dtype=np.float64)
            return means[u]

        for t in range(n):
            sx, sy = corr[t]
            if p.border == "zoom":
                m = np.array([[zoom, 0.0, zoom * (sx - cx) + cx], [0.0, zoom, zoom * (sy - cy) + cy]])
            else:
                m = np.array([[1.0, 0.0, sx], [0.0, 1.0, sy]])
            dst = out[t]
            cv2.warpAffine(frames[t], m, (w, h), dst=dst, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            if p.border == "fill":
                self._fill(dst, t, traj[t] + corr[t], traj, frames, mean_of)
            np.clip(dst, 0.0, 1.0, out=dst)  # bicubic overshoot

        mag = np.linalg.norm(corr, axis=1)
        report = {
            "dx": [round(float(v), 3) for v in corr[:, 0]],
            "dy": [round(float(v), 3) for v in corr[:, 1]],
            "mean_correction": round(float(mag.mean()), 4),
            "max_correction": round(float(mag.max()), 4),
            "rejected": [int(t) for t in rejected],
            "border": p.border,
            "zoom": round(zoom, 6),
        }
        return clip.with_frames(out), report

    @staticmethod
    def _fill(dst: np.ndarray, t: int, target: np.ndarray, traj: np.ndarray, frames: np.ndarray,
              mean_of: Any) -> None:
        """Fill the pixels of output frame t that its own shift left uncovered from nearby frames.

        Frame u's content sits at traj[u]; the output frame's at `target`, so u is
        brought into place by a shift of target - traj[u].
        """
        n, h, w, _ = frames.shape
        xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
        col_ok, row_ok = _covered(xs, target[0] - traj[t][0], w), _covered(ys, target[1] - traj[t][1], h)
        if col_ok.all() and row_ok.all():
            return
        nl = int(np.argmax(col_ok)) if col_ok.any() else w
        nr = int(np.argmax(col_ok[::-1])) if col_ok.any() else 0
        nt = int(np.argmax(row_ok)) if row_ok.any() else h
        nb = int(np.argmax(row_ok[::-1])) if row_ok.any() else 0
        # non-overlapping bands (y0, y1, x0, x1) that hold every uncovered pixel
        bands = [(0, h, 0, nl), (0, h, w - nr, w), (0, nt, nl, w - nr), (h - nb, h, nl, w - nr)]
        order = [u for d in range(1, _FILL_FRAMES + 1) for u in (t - d, t + d) if 0 <= u < n]
        for y0, y1, x0, x1 in bands:
            if y1 <= y0 or x1 <= x0:
                continue
            need = np.ones((y1 - y0, x1 - x0), bool)
            region = dst[y0:y1, x0:x1]
            for u in order:
                s = target - traj[u]
                cov = _covered(ys[y0:y1], s[1], h)[:, None] & _covered(xs[x0:x1], s[0], w)[None, :]
                take = need & cov
                if not take.any():
                    continue
                m = np.array([[1.0, 0.0, s[0] - x0], [0.0, 1.0, s[1] - y0]])
                patch = cv2.warpAffine(frames[u], m, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC,
                                       borderMode=cv2.BORDER_REPLICATE)
                gain = np.clip(mean_of(t) / np.maximum(mean_of(u), 1e-4), 0.8, 1.25).astype(np.float32)
                region[take] = patch[take] * gain
                need &= ~take
                if not need.any():
                    break
