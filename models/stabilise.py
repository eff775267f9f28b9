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
ANALYSIS_RUN = 96  # consecutive frames from the middle of a shot that decide weave or camera
_MIN_DECISION_FRAMES = 6
_WEAVE_LAG1 = 0.6  # jitter around a smooth camera this correlated from frame to frame is not weave
_NOISE_PX = 0.2  # jitter below this (px on the analysis frames) is within the motion estimates' own error
_UNTOUCHED_PX = 0.02  # frames whose correction is smaller are passed through as they came
_UNDECIDED = {"decision": "none", "reason": "too few frames, or correction switched off", "evidence": {}}


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
    mode: Literal["auto", "weave", "follow", "off"] = Field(
        "auto", description="auto: decide per shot from the evidence (weave over a smooth camera, a moving "
        "camera to follow, or nothing to correct); weave / follow force one; off: no correction")
    max_weave: float = Field(0.5, gt=0, le=5, description="largest RMS jitter a film gate produces, in % of the "
                             "frame width: a shot that jitters more is the camera's own motion, kept")
    min_weave: float = Field(0.04, ge=0, le=1, description="weave below this RMS (% of the frame width) is not "
                             "corrected: the frames come out untouched")


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
# Weave or camera: the per-shot decision
# --------------------------------------------------------------------------------------------------


def _lag1(x: np.ndarray) -> float:
    """Mean over the columns of x (T, D) of the lag-1 autocorrelation (0 where a column is constant)."""
    vals = []
    for col in x.T:
        c = col - col.mean()
        den = float((c * c).sum())
        vals.append(float((c[:-1] * c[1:]).sum()) / den if den > 1e-12 else 0.0)
    return float(np.mean(vals)) if vals else 0.0


def _cv_model() -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity camera: transition F and the process noise of unit white acceleration."""
    return np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[1 / 3, 1 / 2], [1 / 2, 1.0]])


def _log_likelihoods(z: np.ndarray, qs: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """Innovation log-likelihood of a 1-D trajectory z under camera (acceleration noise q) plus white
    jitter (variance r), for every (q, r) pair at once (diffuse start: the first two innovations skipped)."""
    f, q1 = _cv_model()
    g = len(qs)
    x = np.zeros((g, 2))
    x[:, 0] = z[0]
    p = np.zeros((g, 2, 2))
    p[:, 0, 0], p[:, 1, 1] = rs, 1e6
    ll = np.zeros(g)
    for t in range(1, len(z)):
        x = x @ f.T
        p = f @ p @ f.T + qs[:, None, None] * q1
        s = p[:, 0, 0] + rs
        e = z[t] - x[:, 0]
        if t >= 2:
            ll -= 0.5 * (np.log(2 * np.pi * s) + e * e / s)
        k = p[:, :, 0] / s[:, None]
        x = x + k * e[:, None]
        p = p - k[:, :, None] * p[:, None, 0, :]
    return ll


def fit_camera_and_jitter(z: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (q, r) of z (a trajectory in fractions of the frame width): a smooth camera
    (constant velocity, white acceleration of variance q) plus white jitter of variance r."""
    lq, lr = np.meshgrid(np.linspace(-13.0, -2.0, 23), np.linspace(-11.0, -3.0, 25))
    qs, rs = 10.0 ** lq.ravel(), 10.0 ** lr.ravel()
    i = int(np.argmax(_log_likelihoods(np.asarray(z, np.float64), qs, rs)))
    return float(qs[i]), float(rs[i])


def _rts(z: np.ndarray, q: float, r: float) -> np.ndarray:
    """Rauch-Tung-Striebel smoothed positions of a 1-D trajectory (relative to z[0]: offset invariant)."""
    n = len(z)
    f, q1 = _cv_model()
    qm = q * q1
    y = z - z[0]
    xf, pf = np.zeros((n, 2)), np.zeros((n, 2, 2))
    xp, pp = np.zeros((n, 2)), np.zeros((n, 2, 2))
    x, p = np.zeros(2), np.diag([r, 1e6])
    for t in range(n):
        if t:
            x, p = f @ x, f @ p @ f.T + qm
        xp[t], pp[t] = x, p
        s = p[0, 0] + r
        k = p[:, 0] / s
        x = x + k * (y[t] - x[0])
        p = p - np.outer(k, p[0])
        xf[t], pf[t] = x, p
    for t in range(n - 2, -1, -1):
        c = pf[t] @ f.T @ np.linalg.inv(pp[t + 1])
        xf[t] = xf[t] + c @ (xf[t + 1] - xp[t + 1])
        pf[t] = pf[t] + c @ (pf[t + 1] - pp[t + 1]) @ c.T
    return xf[:, 0] + z[0]


def follow_trajectory(traj: np.ndarray, radius: int, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The camera's own path through a (T, 2) trajectory that also carries white jitter: at each t, the
    RTS smoother over t-radius .. t+radius (cut at the clip's ends) with the shot's (q, r) per axis,
    evaluated at t. Local, so a chunk with its halo gives the same path as the whole shot."""
    n = traj.shape[0]
    out = np.empty_like(traj, dtype=np.float64)
    for t in range(n):
        lo, hi = max(0, t - radius), min(n, t + radius + 1)
        for a in range(traj.shape[1]):
            out[t, a] = _rts(traj[lo:hi, a].astype(np.float64), float(q[a]), max(float(r[a]), 1e-12))[t - lo]
    return out


def weave_evidence(frames: np.ndarray, radius: int, max_shift: float, max_weave: float, min_weave: float,
                   mode: str = "auto", motion: tuple[np.ndarray, list[int]] | None = None) -> dict[str, Any]:
    """Is the jitter of this shot gate weave, the camera's own motion, or nothing to correct?

    Gate weave is the film moving in the gate: fast (it changes from one frame to the next), small
    (well under 0.5 % of the frame width) and the same for the whole picture. The global trajectory
    is measured, then read two ways:

    1. Around a slow camera (the robust local line over ±radius frames that follows pans and zooms):
       jitter at most `max_weave` % of the width, with little frame-to-frame correlation (lag-1
       autocorrelation below 0.6; measured: synthetic weave -0.15-0.33, real old film 0.26-0.52,
       hand-held video 0.90-0.92) is weave: decision "weave" (that smoother corrects it).
    2. Otherwise the camera moves faster than that line (hand-held, fast pans): a camera model
       (constant velocity, white acceleration) plus white jitter is fitted by maximum likelihood.
       The white part is what a gate could add: between `min_weave` and `max_weave` % it is corrected
       along the fitted camera path ("follow"); more than a gate can do is camera shake and is kept.

    Jitter below `min_weave` % (or below 0.2 px on the analysis frames, the motion estimates' own
    error) is not corrected ("none"). Every figure is a fraction of the frame width,
    so the evidence measured on downscaled frames applies at full size.
    """
    n, _, w, _ = frames.shape
    if n < _MIN_DECISION_FRAMES:
        return {"decision": "none", "reason": f"{n} frames: too few to tell weave from camera motion",
                "evidence": {"frames": int(n)}}
    inc, rejected = motion or _increments(frames, max_shift * w / _REF_WIDTH)
    traj = np.cumsum(inc, axis=0) / w  # fractions of the width
    jitter = traj - smooth_trajectory(traj, radius, floor=0.05 / _REF_WIDTH)
    jit_pct = 100.0 * float(np.sqrt(np.mean(np.sum(jitter ** 2, axis=1))))
    corr = _lag1(jitter)
    fits = [fit_camera_and_jitter(traj[:, a]) for a in range(2)]
    q, r = [f[0] for f in fits], [f[1] for f in fits]
    white_pct = 100.0 * float(np.sqrt(sum(r)))
    measured = 1.0 - len(rejected) / max(1, n - 1)
    small_w = w * min(1.0, _ANALYSIS_SIDE / max(frames.shape[1:3]))
    min_weave = max(min_weave, 100.0 * _NOISE_PX / small_w)  # what the motion estimates can resolve
    evidence = {"frames": int(n), "jitter_pct": round(jit_pct, 4), "jitter_lag1": round(corr, 3),
                "white_jitter_pct": round(white_pct, 4), "pairs_measured": round(measured, 3),
                "max_weave_pct": max_weave, "min_weave_pct": min_weave}
    out = {"evidence": evidence, "camera_q": q, "weave_var": r}
    slow_camera = jit_pct <= max_weave and corr < _WEAVE_LAG1
    if measured < 0.5:
        return {**out, "decision": "none",
                "reason": f"motion measured on only {measured:.0%} of the frame pairs: no evidence"}
    if mode == "weave" or (mode == "auto" and slow_camera):
        if mode == "auto" and jit_pct < min_weave:
            return {**out, "decision": "none", "reason": f"jitter {jit_pct:.3f} % of the width, below "
                    f"{min_weave} %: nothing to correct"}
        return {**out, "decision": "weave", "reason": f"weave: jitter {jit_pct:.3f} % of the width (a gate: "
                f"<= {max_weave} %), fast (lag-1 correlation {corr:.2f}) around a smooth camera"}
    if mode == "auto" and white_pct < min_weave:
        return {**out, "decision": "none", "reason": f"camera motion (jitter {jit_pct:.2f} % of the width, "
                f"lag-1 correlation {corr:.2f}) with no fast jitter beyond it ({white_pct:.3f} %): kept"}
    if mode == "auto" and white_pct > max_weave:
        return {**out, "decision": "none", "reason": f"fast jitter {white_pct:.2f} % of the width is more than "
                f"a gate produces ({max_weave} %): camera shake, kept"}
    return {**out, "decision": "follow", "reason": f"camera motion (jitter {jit_pct:.2f} % of the width, lag-1 "
            f"correlation {corr:.2f}) followed; fast jitter {white_pct:.3f} % of the width removed as weave"}


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------


def _covered(coord: np.ndarray, shift: float, size: int) -> np.ndarray:
    """Which output coordinates sample inside the source after a shift by `shift`."""
    src = coord - shift
    return (src >= -_EPS) & (src <= size - 1 + _EPS)


class Stabilise(Stage):
    name = "stabilise"
    version = "2"
    description = "Remove gate weave (global translation jitter), keeping pans, zooms and hand-held camera moves"
    Params = StabiliseParams
    shot_analysis = True
    analysis_run = ANALYSIS_RUN  # analyse() wants consecutive frames (a motion trajectory), not samples

    def analyse(self, clip: Clip) -> dict[str, Any]:
        """The shot's weave decision from up to ANALYSIS_RUN consecutive frames (any size: every figure
        is kept as a fraction of the frame width)."""
        p = self.params
        return weave_evidence(clip.frames, p.radius, p.max_shift, p.max_weave, p.min_weave, p.mode)

    def solve(self, shots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return shots  # each shot is decided on its own evidence

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

    def motion(self, clip: Clip) -> tuple[np.ndarray, list[int]]:
        """(T, 2) frame-to-frame motion in pixels and the rejected estimates (see `_increments`)."""
        return _increments(clip.frames, self.params.max_shift * clip.width / _REF_WIDTH)

    def decision(self, clip: Clip, motion: tuple[np.ndarray, list[int]] | None = None) -> dict[str, Any]:
        """The shot's decision: bound by the flow (whole-shot evidence), else from this clip (whose
        `motion` is measured once for the decision and the corrections)."""
        if self.bound.get("stats"):
            return self.bound["stats"]
        p = self.params
        return weave_evidence(clip.frames, p.radius, p.max_shift, p.max_weave, p.min_weave, p.mode,
                              motion=motion)

    def corrections(self, clip: Clip, decision: dict[str, Any] | None = None,
                    motion: tuple[np.ndarray, list[int]] | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(T, 2) raw trajectory, (T, 2) correction applied to each frame, rejected estimates."""
        p = self.params
        n, w = clip.num_frames, clip.width
        inc, rejected = motion or self.motion(clip)
        decision = decision or self.decision(clip, (inc, rejected))
        traj = np.cumsum(inc, axis=0)
        if decision["decision"] == "weave":
            smooth = smooth_trajectory(traj, p.radius, floor=0.05 * w / _REF_WIDTH)
        elif decision["decision"] == "follow":
            smooth = follow_trajectory(traj, p.radius, np.asarray(decision["camera_q"]) * w * w,
                                       np.asarray(decision["weave_var"]) * w * w)
        else:
            smooth = traj
        lim = p.max_correction * w / _REF_WIDTH
        corr = np.clip(p.strength * (smooth - traj), -lim, lim)
        corr[np.abs(corr).max(axis=1) < _UNTOUCHED_PX] = 0.0
        assert corr.shape == (n, 2)
        return traj, corr, rejected

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        p = self.params
        n, h, w = clip.num_frames, clip.height, clip.width
        idle = n <= 2 or p.strength == 0.0 or p.mode == "off"
        motion = None if idle or self.bound.get("stats") else self.motion(clip)
        decision = _UNDECIDED if idle else self.decision(clip, motion)
        said = {"decision": decision["decision"], "reason": decision["reason"],
                "evidence": decision.get("evidence", {})}
        if decision["decision"] == "none":
            zeros = [0.0] * n
            return clip, {"dx": zeros, "dy": zeros, "mean_correction": 0.0, "max_correction": 0.0,
                          "rejected": [], "border": p.border, "zoom": 1.0, **said}
        traj, corr, rejected = self.corrections(clip, decision, motion)
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
            if p.border != "zoom" and sx == 0.0 and sy == 0.0:
                out[t] = frames[t]  # nothing to correct: the frame as it came
                continue
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
            **said,
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
