"""Upscale: resize to a scale or to fit a target frame (4K UHD by name).

Aspect rule: pixels are square; the picture is scaled uniformly to the
largest size that fits inside the target, with even dimensions (4:2:x
delivery codecs need them). Nothing is cropped and no bars are added: the
master keeps the film's own aspect ratio.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from models.clip import Clip
from models.stage import Stage, StageParams

_NAMED_TARGETS = {"uhd": (3840, 2160), "4k": (3840, 2160), "dci4k": (4096, 2160), "hd": (1920, 1080)}


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' or a name (uhd, 4k, dci4k, hd) -> (width, height)."""
    key = text.strip().lower()
    if key in _NAMED_TARGETS:
        return _NAMED_TARGETS[key]
    m = re.fullmatch(r"(\d{1,5})x(\d{1,5})", key)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"size must be WxH (e.g. 3840x2160) or one of {sorted(_NAMED_TARGETS)}, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


class UpscaleParams(StageParams):
    method: Literal["lanczos"] = Field("lanczos", description="resampling method")
    scale: float = Field(2.0, gt=0, le=16, description="scale factor (ignored when target is set)")
    target: str | None = Field(None, description="fit inside WxH or uhd/4k/dci4k/hd, aspect kept")

    @field_validator("target")
    @classmethod
    def _check_target(cls, v: str | None) -> str | None:
        if v is not None:
            parse_size(v)
        return v


class Upscale(Stage):
    name = "upscale"
    version = "1"
    description = "Resize by a scale or to fit a target such as 4K UHD (Lanczos)"
    Params = UpscaleParams

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        p = self.params
        if p.target is not None:
            tw, th = parse_size(p.target)
            s = min(tw / width, th / height)
        else:
            s = p.scale
        return _even(width * s), _even(height * s)

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        ow, oh = self.output_size(clip.width, clip.height)
        out = np.empty((clip.num_frames, oh, ow, 3), dtype=np.float32)
        for t, f in enumerate(clip.frames):
            out[t] = cv2.resize(f, (ow, oh), interpolation=cv2.INTER_LANCZOS4)
        np.clip(out, 0.0, 1.0, out=out)
        return clip.with_frames(out), {"size": [ow, oh]}
