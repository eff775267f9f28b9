from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from models.clip import Clip
from models.synth import SynthConfig, render_film

ONLY_NOTHING = dict(blotches=False, scratches=False, flicker=False, grain=False, fade=False, weave=False)


def film(**on) -> tuple[Clip, Clip, dict]:
    """(degraded, clean, truth) for a one-shot 320x240 film with only the named degradations on."""
    cfg = SynthConfig(shots=1, frames_per_shot=on.pop("frames", 16), seed=on.pop("seed", 3), **{**ONLY_NOTHING, **on})
    f = render_film(cfg)
    fps = Fraction(cfg.fps)
    return Clip.from_uint(f.degraded, fps), Clip.from_uint(f.clean, fps), f.truth


@pytest.fixture(scope="module")
def make_film():
    return film


def textured(seed: int = 0, t: int = 8, h: int = 96, w: int = 128, pan: float = 1.5) -> np.ndarray:
    """(T, H, W, 3) float frames of a smooth random texture panning right by `pan` px/frame."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((h + 40, w + 40 + int(pan * t) + 2)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min()) * 0.7 + 0.15
    out = []
    for i in range(t):
        m = np.float32([[1, 0, -pan * i - 20], [0, 1, -20]])
        y = cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR)
        out.append(np.repeat(y[..., None], 3, axis=2))
    return np.stack(out).astype(np.float32)
