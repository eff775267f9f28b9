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
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim_luma(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM on BT.709 luma over frames. a, b: (T, H, W, 3) or (H, W, 3) floats in [0, 1]."""
    if a.shape != b.shape:
        raise ValueError(f"ssim needs equal shapes, got {a.shape} and {b.shape}")
    ya, yb = luma(a), luma(b)
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
    return float(np.mean([cv2.Laplacian(y, cv2.CV_32F).var() for y in luma(frames)]))


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
