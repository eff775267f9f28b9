"""Dense optical flow and warping shared by the temporal stages.

Flow is computed with OpenCV's DIS (Kroeger et al., ECCV 2016) on a downscaled
8-bit luma and upsampled, which the leads note measured at 14-100 ms per 1080p
pair on these CPUs. Convention: `flow = dense_flow(ref, other)` gives, for each
pixel p of `ref`, the displacement such that `other(p + flow(p)) ~ ref(p)`;
`warp(other, flow)` therefore brings `other` into `ref`'s geometry.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models.clip import luma

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,  # + finest scale 0: sub-pixel accurate, ~3x slower
}


def flow_scale(height: int, width: int, max_side: int = 640) -> float:
    """Downscale factor (<= 1) so that the longer side is at most `max_side`."""
    return min(1.0, max_side / max(height, width))


def to_gray8(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> (H, W) uint8 luma."""
    return np.clip(luma(frame) * 255.0 + 0.5, 0, 255).astype(np.uint8)


class FlowEstimator:
    """DIS flow between pairs of frames, computed at reduced size.

    Not thread-safe (holds an OpenCV object); make one per worker/call. With `global_init`, each
    pair's search starts from the frames' global translation (see `_global_translation`): for stages that
    must follow fast pans (dust: its neighbours 2 frames apart move twice as far).
    """

    def __init__(self, preset: str = "medium", max_side: int = 640, global_init: bool = False) -> None:
        if preset not in _PRESETS:
            raise ValueError(f"flow preset must be one of {sorted(_PRESETS)}, got {preset!r}")
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
        if preset == "fine":
            # measured on synthetic 320x240 pans: aligned-neighbour PSNR 31.2 dB at the preset's
            # finest scale 1, 35.3 dB at scale 0 (what temporal denoising needs to beat grain)
            self._dis.setFinestScale(0)
        self.max_side = max_side
        self.global_init = global_init

    def _small(self, ref: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both frames as uint8 luma at flow size."""
        a = ref if ref.ndim == 2 else to_gray8(ref)
        b = other if other.ndim == 2 else to_gray8(other)
        h, w = a.shape
        s = flow_scale(h, w, self.max_side)
        if s < 1.0:
            size = (max(8, round(w * s)), max(8, round(h * s)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        return a, b

    def __call__(self, ref: np.ndarray, other: np.ndarray) -> np.ndarray:
        """Flow (H, W, 2) float32 in full-resolution pixels from `ref` to `other`.

        `ref`, `other`: (H, W) uint8 luma or (H, W, 3) float RGB in [0, 1].
        """
        h, w = ref.shape[:2]
        a, b = self._small(ref, other)
        init = None
        if self.global_init:
            g = _global_translation(a, b)
            if g is not None:
                init = np.empty(a.shape + (2,), np.float32)
                init[..., 0], init[..., 1] = g
        f = self._dis.calc(a, b, init)
        if a.shape != (h, w):
            fx = w / a.shape[1]
            fy = h / a.shape[0]
            f = cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
            f[..., 0] *= fx
            f[..., 1] *= fy
        return f.astype(np.float32, copy=False)

    def global_motion(self, ref: np.ndarray, other: np.ndarray) -> np.ndarray:
        """(dx, dy) in full-resolution pixels: the translation `global_init` starts the flow from
        (zeros where it starts from zero motion)."""
        h, w = ref.shape[:2]
        a, b = self._small(ref, other)
        g = _global_translation(a, b)
        if g is None:
            return np.zeros(2)
        return np.array([g[0] * w / a.shape[1], g[1] * h / a.shape[0]])


_INIT_MIN_SHIFT = 2.0  # px at flow size: below this DIS's own coarse-to-fine search needs no help
_INIT_MIN_RESPONSE = 0.05  # weaker phase-correlation peaks are no evidence of one global motion


def _global_translation(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    """The global translation from uint8 luma a to b (phase correlation, Hanning window), or None.

    DIS searches coarse to fine from zero motion, and its coarsest scale reaches a few tens of
    pixels at most: in a fast pan (30-40 px between two frames) it loses the background wherever
    texture is weak and returns near-zero or wildly inconsistent flow there. Starting it from the
    global motion leaves it only the local differences to find. Small or unclear global motion
    (a weak correlation peak) gives None: DIS starts from zero as usual.
    """
    h, w = a.shape
    if h < 8 or w < 8:
        return None
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), win)
    if response < _INIT_MIN_RESPONSE or math.hypot(dx, dy) < _INIT_MIN_SHIFT:
        return None
    return float(dx), float(dy)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Sample `image` at p + flow(p) (bicubic by default: bilinear visibly softens fine detail; border replicated).

    image: (H, W) or (H, W, C) float32; flow: (H, W, 2) float32. Same shape out.
    """
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], interpolation=interpolation,
                     borderMode=cv2.BORDER_REPLICATE)


def consistency_error(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Forward-backward error |f_ab(p) + f_ba(p + f_ab(p))| in pixels, (H, W).

    Large where `ref` pixels are occluded in `other` or the flow is unreliable.
    """
    back = warp(flow_ba, flow_ab, cv2.INTER_LINEAR)
    return np.linalg.norm(flow_ab + back, axis=-1)
