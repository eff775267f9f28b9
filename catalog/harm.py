"""Do no harm: a shot whose restored picture moved away from its source further than restoration can
justify, which stage did it, and what the recipe's `on_harm` policy does about it.

Pure data: the checks read a shot's QC metrics and its stages' reports (each stage reports how much it
changed the piece: `change.ssim`, `change.sharpness`; stabilise its corrections), nothing else.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

HarmPolicy = Literal["fallback", "review", "off"]


class HarmLimits(BaseModel):
    """When a restored shot counts as harmed. Measured (0.9, `defects`): legitimate restorations of
    synthetic films, degraded hand-held video and real old film keep luma SSIM 0.81-0.99 and 0.63-0.93 of
    the source's sharpness (grain removal lowers it); re-framing hand-held video as weave gave SSIM 0.33."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_ssim: float = Field(0.5, ge=0, le=1, description="structure kept: luma SSIM vs the source below this")
    min_sharpness: float = Field(0.4, ge=0, le=1, description="sharpness (Laplacian energy) kept vs the "
                                 "source below this")
    max_reframe_pct: float = Field(1.0, gt=0, description="mean stabilise correction above this % of the "
                                   "frame width: the framing moved, not just the weave")
    max_upscale_de00: float = Field(2.0, gt=0, description="an upscaler's output, shrunk back to its input, "
                                    "further than this mean CIEDE2000 from it on some frame: it invented colour")


def _stage_means(reports: list[dict[str, Any]], key: str) -> dict[str, float]:
    """{stage: mean of its pieces' change[key]} for stages that reported it."""
    vals: dict[str, list[float]] = {}
    for rep in reports:
        v = (rep.get("change") or {}).get(key)
        if v is not None:
            vals.setdefault(rep["stage"], []).append(float(v))
    return {k: float(np.mean(v)) for k, v in vals.items()}


def harm_findings(metrics: dict[str, Any], reports: list[dict[str, Any]], width: int,
                  limits: HarmLimits) -> list[dict[str, Any]]:
    """What is wrong with a restored shot, each with the stage that did most of it (None: unknown):
    [{"check", "value", "limit", "stage", "reason"}]."""
    out = []
    ssim = metrics.get("ssim_luma")
    if ssim is not None and ssim < limits.min_ssim:
        by = _stage_means(reports, "ssim")
        stage = min(by, key=lambda k: by[k]) if by else None
        out.append({"check": "structure", "value": ssim, "limit": limits.min_ssim, "stage": stage,
                    "reason": f"luma SSIM vs the source {ssim:.3f} < {limits.min_ssim}"
                              + (f"; {stage} changed the picture most (SSIM {by[stage]:.3f})" if stage else "")})
    s_src, s_res = metrics.get("sharpness_source"), metrics.get("sharpness_restored")
    if s_src and s_res is not None and s_res / s_src < limits.min_sharpness:
        by = _stage_means(reports, "sharpness")
        stage = min(by, key=lambda k: by[k]) if by else None
        out.append({"check": "sharpness", "value": round(s_res / s_src, 4), "limit": limits.min_sharpness,
                    "stage": stage, "reason": f"sharpness kept {s_res / s_src:.2f} < {limits.min_sharpness}"
                    + (f"; {stage} softened it most ({by[stage]:.2f})" if stage else "")})
    shifts = [float(np.hypot(x, y)) for rep in reports if rep.get("stage") == "stabilise"
              for x, y in zip(rep.get("dx", []), rep.get("dy", []), strict=True)]
    if shifts and width:
        pct = 100.0 * float(np.mean(shifts)) / width
        if pct > limits.max_reframe_pct:
            out.append({"check": "framing", "value": round(pct, 4), "limit": limits.max_reframe_pct,
                        "stage": "stabilise", "reason": f"stabilise moved the frames by {pct:.2f} % of the "
                        f"width on average (> {limits.max_reframe_pct} %): the framing changed"})
    fid = metrics.get("upscale_fidelity_de00")
    if fid is not None and fid > limits.max_upscale_de00:
        out.append({"check": "fidelity", "value": fid, "limit": limits.max_upscale_de00, "stage": "upscale",
                    "reason": f"upscale's output shrunk back is {fid:.2f} mean ΔE00 from its input on its worst "
                              f"frame (> {limits.max_upscale_de00})"})
    return out


def offending_stages(findings: list[dict[str, Any]], stages: list[str]) -> list[str]:
    """The stages to drop for a fallback: the ones the findings name, in recipe order."""
    named = {f["stage"] for f in findings if f.get("stage")}
    return [s for s in stages if s in named]
