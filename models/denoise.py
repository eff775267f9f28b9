"""Denoise: motion-compensated temporal averaging with grain management.

Each frame is averaged with its ±radius neighbours warped onto it by optical
flow; each neighbour pixel is weighted by how well it matches (a robust
weight on the locally smoothed difference, scaled by the measured noise), so
occlusions and flow errors fall back to the frame itself instead of ghosting.

Grain is the film's texture and archivists often must keep it: `keep` puts
back a stated fraction of what was removed (0 = clean, 1 = untouched).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pydantic import Field

from models.clip import Clip, luma
from models.flow import FlowEstimator, warp
from models.stage import Stage, StageParams


class DenoiseParams(StageParams):
    radius: int = Field(2, ge=1, le=8, description="neighbour frames on each side")
    strength: float = Field(1.0, gt=0, le=4, description="match tolerance, in units of the measured noise")
    keep: float = Field(0.0, ge=0, le=1, description="fraction of the removed grain/noise to put back")
    flow_preset: str = Field("fine", description="DIS preset: ultrafast, fast, medium, fine")


def _box3(x: np.ndarray) -> np.ndarray:
    return cv2.blur(x, (3, 3))


class Denoise(Stage):
    name = "denoise"
    version = "1"
    description = "Motion-compensated temporal denoise; keep a fraction of the grain if asked"
    Params = DenoiseParams

    @property
    def context_frames(self) -> int:
        return self.params.radius

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        p = self.params
        frames = clip.frames
        n = clip.num_frames
        flow = FlowEstimator(p.flow_preset)
        ys = [luma(f) for f in frames]
        out = np.empty_like(frames)
        sigmas = []
        for t in range(n):
            neighbours = [s for s in range(t - p.radius, t + p.radius + 1) if s != t and 0 <= s < n]
            acc = frames[t].copy()
            weight_sum = np.ones(frames.shape[1:3], dtype=np.float32)
            warped, diffs = [], []
            for s in neighbours:
                ws = warp(frames[s], flow(frames[t], frames[s]))
                warped.append(ws)
                diffs.append(_box3(luma(ws) - ys[t]))
            if diffs:
                # robust noise of the smoothed differences, from the nearest neighbour pair
                near = np.argsort([abs(s - t) for s in neighbours])[:2]
                sigma = 1.4826 * float(np.median(np.abs(np.concatenate([diffs[i].ravel() for i in near]))))
                h = max(p.strength * 2.0 * sigma, 1e-4)
                sigmas.append(sigma)
                for ws, d in zip(warped, diffs, strict=True):
                    wgt = np.exp(-0.5 * (d / h) ** 2).astype(np.float32)
                    acc += ws * wgt[..., None]
                    weight_sum += wgt
            den = acc / weight_sum[..., None]
            out[t] = den + np.float32(p.keep) * (frames[t] - den)
        np.clip(out, 0.0, 1.0, out=out)
        report = {"noise_sigma": round(float(np.median(sigmas)), 5) if sigmas else None}
        return clip.with_frames(out), report
