"""Denoise: motion-compensated temporal averaging with grain management.

Each frame is averaged with its ±radius neighbours warped onto it by optical
flow; each neighbour pixel is weighted by how well it matches (a robust
weight on the locally smoothed difference, scaled by the measured noise), so
occlusions and flow errors fall back to the frame itself instead of ghosting.

Grain is the film's texture and archivists often must keep it. `grain` says
what to do with it:

- "remove" (default): the denoised frame;
- "keep": put back `amount` x what was removed (0 = clean, 1 = the input untouched,
  up to 2 to exaggerate it);
- "resynth": measure the grain each frame lost (`models.grain`: luma-dependent
  std, spatial correlation, channel correlation) and add newly synthesised grain
  with those statistics: the texture stays, but as a new, clean random pattern
  (no scanner noise or compression structure copied from the source). The new
  grain is scaled per pixel so that, with what the temporal average leaves of
  the source grain, the output's total grain matches the source's at
  `amount` = 1 (where the average removed nothing, nothing is added; other
  amounts scale the new grain only). Frame t's grain is drawn from
  (`seed`, clip.first_frame + t) and its model is measured on frame t alone, so
  a chunk processed with its halo gives the same frames as the whole clip.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from models.clip import Clip, luma
from models.flow import FlowEstimator, warp
from models.grain import GrainModel, measure_grain, synthesize_grain
from models.stage import Stage, StageParams


class DenoiseParams(StageParams):
    radius: int = Field(2, ge=1, le=8, description="neighbour frames on each side")
    strength: float = Field(1.0, gt=0, le=4, description="match tolerance, in units of the measured noise")
    grain: Literal["remove", "keep", "resynth"] = Field(
        "remove", description="remove the grain, keep (put back) the removed part, or resynth: new grain like it")
    amount: float = Field(1.0, ge=0, le=2, description="keep: fraction of the removed grain put back; "
                          "resynth: new grain's level relative to the source's (1 = same texture)")
    seed: int = Field(0, ge=0, description="resynth: seed of the new grain (with the absolute frame index)")
    flow_preset: str = Field("fine", description="DIS preset: ultrafast, fast, medium, fine")

    @model_validator(mode="before")
    @classmethod
    def _legacy_keep(cls, data: Any) -> Any:
        """Version 1's `keep=x` (recipes written before v2) reads as grain="keep", amount=x (x = 0: "remove")."""
        if isinstance(data, dict) and "keep" in data:
            data = dict(data)
            keep = data.pop("keep")
            if "grain" in data or "amount" in data:
                raise ValueError("keep is the old form of grain='keep', amount=...; give one or the other")
            if keep in (0, 0.0, "0", "0.0"):
                data["grain"] = "remove"  # the same spec as Denoise(): same cache keys
            else:
                data["grain"], data["amount"] = "keep", keep
        return data


_RAW_TOLERANCE = 3.0  # raw differences up to ~this many of their robust sigmas count as noise


def _box3(x: np.ndarray) -> np.ndarray:
    return cv2.blur(x, (3, 3))


class Denoise(Stage):
    name = "denoise"
    version = "3"
    description = "Motion-compensated temporal denoise; remove, keep or resynthesise the grain"
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
        sigmas, models = [], []
        resynth = p.grain == "resynth"
        for t in range(n):
            neighbours = [s for s in range(t - p.radius, t + p.radius + 1) if s != t and 0 <= s < n]
            acc = frames[t].copy()
            weight_sum = np.ones(frames.shape[1:3], dtype=np.float32)
            weight_sq = np.ones(frames.shape[1:3], dtype=np.float32)
            warped, diffs, raws, weights = [], [], [], []
            for s in neighbours:
                ws = warp(frames[s], flow(frames[t], frames[s]))
                warped.append(ws)
                raws.append(luma(ws) - ys[t])
                diffs.append(_box3(raws[-1]))
            if diffs:
                # robust noise of the smoothed and of the raw differences, from the nearest neighbour pair
                near = np.argsort([abs(s - t) for s in neighbours])[:2]
                sigma = 1.4826 * float(np.median(np.abs(np.concatenate([diffs[i].ravel() for i in near]))))
                sigma_raw = 1.4826 * float(np.median(np.abs(np.concatenate([raws[i].ravel() for i in near]))))
                h = max(p.strength * 2.0 * sigma, 1e-4)
                # fine detail a neighbour does not line up with (a sub-pixel flow error) hides in the
                # smoothed difference; the raw one shows it once it stands out of the noise: on clean
                # footage (little noise) such neighbours get no weight, and the detail stays sharp
                h_raw = max(p.strength * _RAW_TOLERANCE * sigma_raw, 1e-4)
                sigmas.append(sigma)
                for ws, d, r in zip(warped, diffs, raws, strict=True):
                    wgt = np.exp(-0.5 * ((d / h) ** 2 + (r / h_raw) ** 2)).astype(np.float32)
                    acc += ws * wgt[..., None]
                    weight_sum += wgt
                    if resynth:
                        weight_sq += wgt * wgt
                        weights.append(wgt)
            den = acc / weight_sum[..., None]
            if p.grain == "keep":
                out[t] = den + np.float32(p.amount) * (frames[t] - den)
            elif resynth:
                out[t] = den + self._new_grain(frames[t], den, warped, weights, weight_sum, weight_sq,
                                               clip.first_frame + t, models)
            else:
                out[t] = den
        np.clip(out, 0.0, 1.0, out=out)
        report: dict[str, Any] = {"noise_sigma": round(float(np.median(sigmas)), 5) if sigmas else None}
        if models:
            report["grain"] = _grain_summary(models)
        return clip.with_frames(out), report

    def _new_grain(self, src: np.ndarray, den: np.ndarray, warped: list[np.ndarray], weights: list[np.ndarray],
                   wsum: np.ndarray, wsq: np.ndarray, frame_index: int, models: list[GrainModel]) -> np.ndarray:
        """Grain to add to `den` (frame `frame_index`): measured on this frame alone, drawn for this index.

        Measurement: against the plain mean of the k warped neighbours, on pixels where every
        neighbour matched (weight > 0.2); with independent grain of std s per frame that residual
        has std s * sqrt(1 + 1/k). (The match-weighted average is not used: its weights favour
        neighbours whose grain happens to agree with this frame's, which hides ~5-12 % of it.)

        Synthesis: with weights w (the frame's own is 1, W = sum w, Q = sum w^2 / W^2) the
        average leaves ~Q s^2 of the grain, so the new grain gets (1 - Q) amount^2 s^2 and
        the output carries ~s^2 in total at amount = 1; where nothing was averaged (Q = 1)
        nothing is added.
        """
        if warped:
            ref = np.mean(warped, axis=0)
            matched = np.min(weights, axis=0) > 0.2
            gain = np.where(matched, np.float32(np.sqrt(1.0 + 1.0 / len(warped))), np.float32(0.0))
            model = measure_grain(src, ref, residual_gain=gain)
        else:
            model = GrainModel.none()
        models.append(model)
        q = wsq / (wsum * wsum)
        g = synthesize_grain(model, luma(den), seed=self.params.seed, first_frame=frame_index)[0]
        return g * (np.float32(self.params.amount) * np.sqrt(np.maximum(1.0 - q, 0.0)))[..., None]


def _grain_summary(models: list[GrainModel]) -> dict[str, Any]:
    """Median over frames of the measured grain (for QC), on the 0-1 scale."""
    mids = [m.sigma_mid for m in models]
    return {
        "sigma_mid": round(float(np.median(mids)), 5),
        "sigma_mid_range": [round(float(min(mids)), 5), round(float(max(mids)), 5)],
        "blur_sigma": round(float(np.median([m.blur_sigma for m in models])), 3),
        "mono": round(float(np.median([m.mono for m in models])), 3),
        "frames": len(models),
    }
