"""Quality metrics on frames in the working space (float RGB in [0, 1])."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from models.clip import luma


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two same-shaped float arrays in [0, 1] (inf when equal)."""
    if a.shape != b.shape:
        raise ValueError(f"psnr needs equal shapes, got {a.shape} and {b.shape}")
    d = np.subtract(a, b, dtype=np.float64)  # the float64 difference, without float64 copies of a and b
    np.square(d, out=d)
    mse = float(np.mean(d))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim_luma(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM on BT.709 luma over frames. a, b: (T, H, W, 3) or (H, W, 3) floats in [0, 1]."""
    if a.shape != b.shape:
        raise ValueError(f"ssim needs equal shapes, got {a.shape} and {b.shape}")
    return ssim_planes(luma(a), luma(b))


def ssim_planes(ya: np.ndarray, yb: np.ndarray) -> float:
    """`ssim_luma` of luma planes already computed: (T, H, W) or (H, W) floats in [0, 1]."""
    if ya.ndim == 2:
        ya, yb = ya[None], yb[None]
    return float(np.mean([structural_similarity(x, y, data_range=1.0) for x, y in zip(ya, yb, strict=True)]))


def resize_to(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, H, W, 3) float frames resized with area averaging (for comparing at source size)."""
    if frames.shape[2] == width and frames.shape[1] == height:
        return frames
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


def flicker_index(frames: np.ndarray, radius: int = 3) -> float:
    """Mean |frame mean luma - its running median over ±radius|, on the 0-1 scale.

    Near 0 for steady exposure (slow real changes and steps pass through the
    median); grows with frame-to-frame brightness pumping.
    """
    return flicker_from_means(luma(frames).reshape(frames.shape[0], -1).mean(axis=1), radius)


def flicker_from_means(means: np.ndarray, radius: int = 3) -> float:
    """`flicker_index` from per-frame mean luma values (for callers that stream frames)."""
    med = np.array([np.median(means[max(0, i - radius): i + radius + 1]) for i in range(means.size)])
    return float(np.mean(np.abs(means - med)))


def sharpness(frames: np.ndarray) -> float:
    """Mean variance of the Laplacian of luma (higher = more fine detail)."""
    return sharpness_planes(luma(frames))


def sharpness_planes(y: np.ndarray) -> float:
    """`sharpness` of luma planes already computed: (T, H, W) or (H, W)."""
    return float(np.mean([cv2.Laplacian(p, cv2.CV_32F).var() for p in (y[None] if y.ndim == 2 else y)]))


def mask_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pixel precision/recall/F1 of a boolean detection mask against a true mask."""
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    tp = float(np.logical_and(pred, truth).sum())
    fp = float(np.logical_and(pred, ~truth).sum())
    fn = float(np.logical_and(~pred, truth).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def cut_scores(found: list[int], truth: list[int], tolerance: int = 1) -> dict[str, float]:
    """Precision/recall/F1 of detected cut frames against true cuts, each matched at most once."""
    unmatched = sorted(truth)
    tp = 0
    for c in sorted(found):
        hit = next((t for t in unmatched if abs(t - c) <= tolerance), None)
        if hit is not None:
            unmatched.remove(hit)
            tp += 1
    precision = tp / len(found) if found else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --- motion / temporal stability ---------------------------------------------------------------------


def _norm_luma(x: np.ndarray) -> np.ndarray:
    y = luma(x) if x.ndim == 3 else x.astype(np.float32, copy=False)
    y = cv2.GaussianBlur(y, (0, 0), 1.0)
    return ((y - y.mean()) / max(float(y.std()), 1e-6)).astype(np.float32)


def global_shift(a: np.ndarray, b: np.ndarray, max_side: int = 640) -> tuple[float, float]:
    """Sub-pixel translation (dx, dy) of frame `b` relative to `a`: b(x + d) ~ a(x).

    a, b: (H, W, 3) float RGB or (H, W) luma, same shape. Each is reduced to luma
    normalised to zero mean / unit std (so brightness changes do not matter); phase
    correlation with a Hanning window gives the shift to about a pixel, and ECC
    (translation model) refines it to ~0.05 px. Frames larger than `max_side` are
    measured downscaled.
    """
    if a.shape != b.shape:
        raise ValueError(f"global_shift needs equal shapes, got {a.shape} and {b.shape}")
    ya, yb = _norm_luma(a), _norm_luma(b)
    h, w = ya.shape
    s = min(1.0, max_side / max(h, w))
    if s < 1.0:
        size = (max(8, round(w * s)), max(8, round(h * s)))
        ya = cv2.resize(ya, size, interpolation=cv2.INTER_AREA)
        yb = cv2.resize(yb, size, interpolation=cv2.INTER_AREA)
    fx, fy = w / ya.shape[1], h / ya.shape[0]
    win = cv2.createHanningWindow((ya.shape[1], ya.shape[0]), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(ya, yb, win)
    d = np.array([dx, dy])
    warp_m = np.float32([[1, 0, dx], [0, 1, dy]])
    try:
        _, warp_m = cv2.findTransformECC(ya, yb, warp_m, cv2.MOTION_TRANSLATION,
                                         (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5), None, 1)
        if np.all(np.isfinite(warp_m)) and np.hypot(*(warp_m[:, 2] - d)) < 2.0:
            d = warp_m[:, 2].astype(np.float64)
    except cv2.error:
        pass  # ECC did not converge: keep the phase-correlation estimate
    return float(d[0] * fx), float(d[1] * fy)


def _local_linear_trend(x: np.ndarray, radius: int) -> np.ndarray:
    """Least-squares line through x[t-radius .. t+radius] (cut at the ends), evaluated at t; x: (T, D)."""
    n = x.shape[0]
    out = np.empty_like(x, dtype=np.float64)
    for t in range(n):
        lo, hi = max(0, t - radius), min(n, t + radius + 1)
        k = np.arange(lo - t, hi - t, dtype=np.float64)
        y = x[lo:hi].astype(np.float64)
        kc = k - k.mean()
        skk = float((kc * kc).sum())
        slope = (kc[:, None] * (y - y.mean(axis=0))).sum(axis=0) / skk if skk > 0 else 0.0
        out[t] = y.mean(axis=0) - slope * k.mean()
    return out


def frame_shifts(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T, 2) `global_shift(reference[t], frames[t])` for each frame."""
    if frames.shape != reference.shape:
        raise ValueError(f"frame_shifts needs equal shapes, got {frames.shape} and {reference.shape}")
    return np.array([global_shift(r, f) for r, f in zip(reference, frames, strict=True)]).reshape(-1, 2)


def residual_weave(frames: np.ndarray, reference: np.ndarray, radius: int = 6) -> float:
    """RMS length (px) of the fast part of each frame's shift relative to the reference.

    shift_t = global_shift(reference[t], frames[t]); its slow part (a centred
    moving average over ±radius frames, as a local line so the ends are not biased)
    is removed, and the RMS of what remains is returned. A degraded film against
    its clean version gives its weave; a perfectly stabilised one ~0 (a constant
    offset or slow drift does not count).
    """
    d = frame_shifts(frames, reference)
    if d.shape[0] < 2:
        return 0.0
    r = d - _local_linear_trend(d, radius)
    return float(np.sqrt(np.mean(np.sum(r * r, axis=1))))


def warping_error(frames: np.ndarray, flow_frames: np.ndarray | None = None, preset: str = "medium") -> float:
    """Temporal consistency: mean |frame t - frame t-1 warped onto t| over non-occluded pixels.

    Flow is DIS (`models.flow`) on `flow_frames` if given (e.g. the clean film, so the
    motion is not learnt from the artefacts being measured), else on `frames`;
    pixels whose forward-backward flow error is >= 1 px are not counted. Averaged
    over the pairs; lower = more stable. (T, H, W, 3) floats in [0, 1].
    """
    from models.flow import FlowEstimator, consistency_error, warp

    src = frames if flow_frames is None else flow_frames
    if src.shape != frames.shape:
        raise ValueError(f"flow_frames must match frames, got {src.shape} and {frames.shape}")
    est = FlowEstimator(preset)
    errs = []
    for t in range(1, frames.shape[0]):
        f_tp = est(src[t], src[t - 1])  # frame t-1 sampled at p + f lands on frame t
        f_pt = est(src[t - 1], src[t])
        ok = consistency_error(f_tp, f_pt) < 1.0
        if not ok.any():
            continue
        prev = warp(frames[t - 1], f_tp)
        diff = np.abs(frames[t].astype(np.float32) - prev).mean(axis=-1)
        errs.append(float(diff[ok].mean()))
    return float(np.mean(errs)) if errs else 0.0


def colour_jitter(mean_rgb: np.ndarray) -> float:
    """Temporal colour jitter of a shot: mean CIEDE2000 between consecutive frames' mean colours.

    mean_rgb: (T, 3) per-frame mean working-space colour. A steady grade keeps this at the
    content's own value; a per-frame correction that pumps raises it.
    """
    from skimage import color as skcolor

    m = np.clip(np.asarray(mean_rgb, np.float64).reshape(-1, 3), 0, 1)
    if len(m) < 2:
        return 0.0
    lab = skcolor.rgb2lab(m[None])[0]
    return float(np.mean(skcolor.deltaE_ciede2000(lab[:-1], lab[1:])))


# --- noise ---------------------------------------------------------------------------------------------

# Immerkaer's Laplacian-difference kernel: zero response to constant, linear and (separably) quadratic
# image content; white noise of std s comes out with std 6 s (the kernel's L2 norm is 6).
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(frame: np.ndarray) -> float:
    """Robust estimate of the noise/grain standard deviation of a frame's luma, on the 0-1 scale.

    frame: (H, W, 3) float RGB or (H, W) luma in [0, 1]. The luma is high-passed with
    Immerkaer's 3x3 kernel (which cancels smooth shading) and sigma is the median absolute
    deviation of the response / 0.6745 / 6, so edges and texture, being a minority of the
    pixels, barely move it (Immerkaer, CVIU 1996; Donoho's MAD rule). White Gaussian noise of
    std s on a flat or smoothly shaded frame reads ~s; film grain, being spatially correlated,
    reads lower than its true std but moves the same way (less after denoising).
    """
    y = luma(frame) if frame.ndim == 3 else np.asarray(frame, np.float32)
    if min(y.shape[:2]) < 3:
        return 0.0
    r = cv2.filter2D(np.ascontiguousarray(y, np.float32), cv2.CV_32F, _NOISE_KERNEL,
                     borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    mad = float(np.median(np.abs(r - np.median(r))))
    return mad / 0.6745 / 6.0

