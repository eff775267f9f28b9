"""Deflicker: match each frame's brightness to a temporally smoothed target.

After van Roosmalen's and Decencière's flicker models: a flickered frame is an
affine change of intensity, global and slowly varying in space. We measure
each frame's robust luma mean/std, take as target the running *median* over
±radius frames (a median keeps real steps such as a light switched on, where a
mean would smear them), and map the frame onto the target. A second, regional
pass does the same on a coarse grid of tiles and applies a smooth gain field.

The clip is one shot (or part of one with halo frames): the chunker never
hands this stage frames across a cut, so the window stops at cuts.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pydantic import Field
from scipy.ndimage import median_filter

from models.clip import Clip, luma
from models.stage import Stage, StageParams


class DeflickerParams(StageParams):
    radius: int = Field(7, ge=1, le=60, description="frames on each side in the target window")
    tiles: int = Field(4, ge=0, le=16, description="tiles across for regional flicker (0: global only)")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="1 = full correction, 0 = none")


def _robust_stats(y: np.ndarray) -> tuple[float, float]:
    """Level and spread of a luma image: median and IQR / 1.349 (the std for a normal spread).

    Both follow an affine change of intensity exactly (what flicker is) and ignore up to a
    quarter of the pixels being anything else: a large blotch must not set a frame's gain.
    """
    q1, med, q3 = np.percentile(y, [25, 50, 75])
    return float(med), float((q3 - q1) / 1.349)


def _tile_medians(thumbs: np.ndarray, gx: int, gy: int) -> np.ndarray:
    """(T, gy, gx) median luma of each tile (a blotch covering part of a tile barely moves it)."""
    t_count, h, w = thumbs.shape
    ys = np.linspace(0, h, gy + 1).round().astype(int)
    xs = np.linspace(0, w, gx + 1).round().astype(int)
    out = np.empty((t_count, gy, gx), dtype=np.float32)
    for i in range(gy):
        for j in range(gx):
            block = thumbs[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1]].reshape(t_count, -1)
            out[:, i, j] = np.median(block, axis=1)
    return out


def _thumbs(frames: np.ndarray, max_side: int = 256) -> np.ndarray:
    """(T, h, w) luma thumbnails for cheap statistics."""
    _, h, w, _ = frames.shape
    s = min(1.0, max_side / max(h, w))
    size = (max(4, round(w * s)), max(4, round(h * s)))
    return np.stack([cv2.resize(luma(f), size, interpolation=cv2.INTER_AREA) for f in frames])


def _temporal_median(x: np.ndarray, radius: int) -> np.ndarray:
    """Median over ±radius along axis 0, edges mirrored (window shrinks naturally at clip ends)."""
    size = [2 * radius + 1] + [1] * (x.ndim - 1)
    return median_filter(x, size=size, mode="nearest")


class Deflicker(Stage):
    name = "deflicker"
    version = "3"
    description = "Global + tile-wise brightness/contrast flicker removal toward a temporal median target"
    Params = DeflickerParams

    @property
    def context_frames(self) -> int:
        # the regional pass takes a temporal median of globally corrected frames, and each of
        # those frames' correction looks radius frames further: twice the radius in all
        return self.params.radius * (2 if self.params.tiles > 0 and self.params.strength > 0 else 1)

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        p = self.params
        frames = clip.frames
        thumbs = _thumbs(frames)
        stats = np.array([_robust_stats(t) for t in thumbs])  # (T, 2)
        target = _temporal_median(stats, p.radius)
        std = np.maximum(stats[:, 1], 1e-4)
        gain = 1.0 + p.strength * (target[:, 1] / std - 1.0)
        # y' = gain * (y - m) + m + strength * (m_target - m)  ==  gain * y + offset
        offset = (1.0 - gain) * stats[:, 0] + p.strength * (target[:, 0] - stats[:, 0])
        out = np.empty_like(frames)
        for t in range(clip.num_frames):
            out[t] = frames[t] * np.float32(gain[t]) + np.float32(offset[t])

        if p.tiles > 0 and p.strength > 0:
            out = self._regional(out, thumbs, gain, offset, p.tiles, p.radius, p.strength)
        np.clip(out, 0.0, 1.0, out=out)
        report = {
            "gain": [round(float(g), 4) for g in gain],
            "offset": [round(float(o), 4) for o in offset],
        }
        return clip.with_frames(out), report

    @staticmethod
    def _regional(frames: np.ndarray, thumbs: np.ndarray, gain: np.ndarray, offset: np.ndarray, tiles: int,
                  radius: int, strength: float) -> np.ndarray:
        t_count, h, w, _ = frames.shape
        gx = tiles
        gy = max(1, round(tiles * h / w))
        # tile levels of the globally corrected frames (the correction is affine: medians follow it)
        grid = _tile_medians(thumbs, gx, gy) * gain[:, None, None] + offset[:, None, None]
        target = _temporal_median(grid, radius)
        ratio = np.clip(target / np.maximum(grid, 1e-3), 0.7, 1.4)
        # flicker varies smoothly across the frame; a tile far off its neighbours' ratio holds
        # something else (a large blotch, an object), so it takes their median instead
        smooth = median_filter(ratio, size=(1, 3, 3), mode="nearest")
        ratio = np.where(np.abs(ratio - smooth) > 0.08, smooth, ratio) ** strength
        out = np.empty_like(frames)
        for t in range(t_count):
            field = cv2.resize(ratio[t].astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
            out[t] = frames[t] * field[..., None]
        return out
