"""Synthetic colour problems with known answers: an artist's look, and the fading of a print.

A `Look` is what a colourist might build in a grading suite: a tone curve (contrast around a
pivot, lifted or crushed blacks, a highlight roll-off), split toning (one hue pushed into the
shadows, another into the highlights) and a saturation change. A `Fade` is what decades do to a
colour print: dyes losing density unequally (per-channel gamma and gain), lifted blacks, dulled
whites, and lost saturation. Both are pure per-pixel functions of working-space R'G'B' (BT.709,
full range, float in [0, 1]), so a test can fade a clean clip, grade it, and know exactly what
the learned grade should have produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_W = np.array([0.2126, 0.7152, 0.0722], np.float32)


def _hue_rgb(hue_deg: float) -> np.ndarray:
    """A unit-luma-free RGB direction for a hue (zero mean luma), for toning."""
    h = np.deg2rad(hue_deg)
    rgb = np.array([np.cos(h), np.cos(h - 2 * np.pi / 3), np.cos(h + 2 * np.pi / 3)], np.float32)
    return rgb - np.float32(rgb @ _W)


@dataclass(frozen=True)
class Look:
    contrast: float = 1.25       # slope of the S-curve at the pivot
    pivot: float = 0.45
    lift: float = 0.02           # output black
    gain: float = 0.97           # output white
    shadow_hue: float = 200.0    # degrees: teal shadows ...
    shadow_amount: float = 0.06
    highlight_hue: float = 35.0  # ... orange highlights
    highlight_amount: float = 0.05
    saturation: float = 1.2

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(rgb, np.float32), 0, 1)
        # S-curve: a logistic around the pivot, normalised so 0 -> lift and 1 -> gain
        k = 4.0 * self.contrast

        def s(v: np.ndarray) -> np.ndarray:
            return 1.0 / (1.0 + np.exp(-k * (v - self.pivot)))

        lo, hi = s(np.float32(0)), s(np.float32(1))
        x = self.lift + (self.gain - self.lift) * (s(x) - lo) / (hi - lo)
        y = (x @ _W)[..., None]
        x = y + np.float32(self.saturation) * (x - y)
        shadows = np.clip(1.0 - y / 0.5, 0, 1) ** 2
        highs = np.clip((y - 0.5) / 0.5, 0, 1) ** 1.5
        x = x + shadows * self.shadow_amount * _hue_rgb(self.shadow_hue) \
            + highs * self.highlight_amount * _hue_rgb(self.highlight_hue)
        return np.clip(x, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class Fade:
    gamma: tuple[float, float, float] = (0.9, 1.15, 1.1)   # dye loss per channel (>1 darkens mids)
    black: tuple[float, float, float] = (0.10, 0.06, 0.08)  # lifted blacks (base + fog), per channel
    white: tuple[float, float, float] = (0.93, 0.82, 0.86)  # dulled whites per channel
    saturation: float = 0.7

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(rgb, np.float32), 0, 1)
        y = (x @ _W)[..., None]
        x = np.clip(y + np.float32(self.saturation) * (x - y), 0, 1)
        x = x ** np.asarray(self.gamma, np.float32)
        black, white = np.asarray(self.black, np.float32), np.asarray(self.white, np.float32)
        return np.clip(black + (white - black) * x, 0, 1).astype(np.float32)


# The benchmark's pair, and a second pair of a different character for tests.
TEAL_ORANGE = Look()
MAGENTA_FADE = Fade()
BLEACH_WARM = Look(contrast=1.6, pivot=0.5, lift=0.05, gain=0.92, shadow_hue=260.0, shadow_amount=0.04,
                   highlight_hue=60.0, highlight_amount=0.07, saturation=0.75)
YELLOW_FADE = Fade(gamma=(0.95, 0.97, 1.3), black=(0.07, 0.07, 0.03), white=(0.95, 0.92, 0.78), saturation=0.8)
