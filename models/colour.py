"""Automatic colour correction of faded stock, one fixed correction per shot.

What it fixes (objective faults of the print, not a look):
- lifted blacks and dull whites: the shot's luma is stretched so its 0.5th/99.5th percentiles
  reach `black_level`/`white_level`, the gain capped by `max_gain` so a night scene stays dark;
  what the stretch pushes past black or white is rolled off smoothly (toe and shoulder), not clipped;
- colour casts and dye fade (the magenta/red of a faded negative, the yellow of aged base):
  the darkest and brightest pixels of a shot are taken as neutral black and white (the
  white-patch/black-patch rule), and each channel is mapped linearly so they become neutral;
  a residual midtone cast is removed with a per-channel gamma that makes near-grey midtones grey;
- lost saturation, by an optional `saturation` factor (fading's desaturation cannot be measured
  blind, so it is a choice, 1 = unchanged).

Black-and-white material stays neutral: a shot whose colours, once the cast is removed, all lie
near the grey axis is monochrome, and its output is exactly R = G = B (or keeps its tint, with
`monochrome="keep-tint"`, for tinted or toned prints). No colour is invented.

Stability: the correction is a function of the shot's statistics only (`analyse` on frames
sampled from the whole shot; the flow binds the result), so every frame of a shot gets the same
per-channel curves: no pumping when a bright object enters. Without bound statistics the stage
analyses the clip it is given (fine for one-shot clips; the CLI analyses the whole file).
Working space: BT.709 R'G'B', full range, float32, so 10/16-bit sources keep their precision.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from models.clip import Clip, luma
from models.stage import Stage, StageParams

_MAX_SAMPLES = 400_000


class ColourParams(StageParams):
    # Partial by default: over 16 synthetic films these never made a film worse than leaving it alone
    # (worst 0.81 x the uncorrected ΔE00), where full strength was worse on 2 of them (up to 1.42 x).
    levels: float = Field(0.5, ge=0.0, le=1.0, description="how much of the black/white point restoration to apply")
    cast: float = Field(0.7, ge=0.0, le=1.0, description="how much of the measured colour cast to remove")
    black_level: float = Field(0.03, ge=0.0, le=0.3, description="where the shot's darkest 0.5% of luma should sit")
    white_level: float = Field(0.96, ge=0.6, le=1.0, description="where the shot's brightest 0.5% of luma should sit")
    max_gain: float = Field(1.8, ge=1.0, le=4.0, description="cap on the contrast stretch (keeps low-key shots low-key)")
    midtones: bool = Field(True, description="also neutralise a midtone cast with a per-channel gamma")
    saturation: float = Field(1.0, ge=0.0, le=2.0, description="saturation factor after correction (1 = unchanged)")
    monochrome: Literal["neutral", "keep-tint", "off"] = Field(
        "neutral", description="black-and-white shots: make exactly neutral, keep their tint, or treat as colour")
    scope: Literal["title", "shot"] = Field(
        "title", description="pool cast and levels over the title's shots (the print's fade) or use each shot alone")
    mono_threshold: float = Field(0.035, ge=0.0, le=0.2,
                                  description="a shot is monochrome when 98% of its cast-free chroma is below this")


def _sample_pixels(frames: np.ndarray, limit: int = _MAX_SAMPLES) -> np.ndarray:
    px = frames.reshape(-1, 3)
    if len(px) > limit:
        step = int(np.ceil(len(px) / limit))
        px = px[::step]
    return px.astype(np.float64)


_W = np.array([0.2126, 0.7152, 0.0722])


def pooled_cast(shots: list[dict[str, Any]], key: str) -> np.ndarray:
    """Median over shots of an anchor's cast (its colour minus its luma)."""
    casts = [np.asarray(s[key], np.float64) - np.asarray(s[key], np.float64) @ _W for s in shots]
    return np.median(np.asarray(casts), axis=0)


def _channel_map(dark: np.ndarray, bright: np.ndarray, yd: float, yh: float, gain: float, cast: float,
                 offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel x*a + b that sends the dark and bright anchors (taken as neutral, lumas yd, yh)
    to grey gain*y + offset, with `cast` in [0, 1] the share of the cast removed."""
    dark_t, bright_t = gain * yd + offset, gain * yh + offset
    spread = bright - dark
    ok = np.abs(spread) > 0.05
    a_full = np.where(ok, (bright_t - dark_t) / np.where(ok, spread, 1.0), gain)
    b_full = np.where(ok, dark_t - a_full * dark, offset)
    a = cast * a_full + (1 - cast) * gain
    b = cast * b_full + (1 - cast) * offset
    return np.clip(a, 0.2, 5.0), np.clip(b, -2.0, 2.0)


def _midtone_gammas(px: np.ndarray) -> np.ndarray:
    """Per-channel gamma making the least-chromatic midtone pixels grey on average."""
    y = px @ _W
    mid = (y > 0.25) & (y < 0.75)
    if mid.sum() < 64:
        return np.ones(3)
    m = px[mid]
    chroma = m.max(axis=1) - m.min(axis=1)
    grey = m[chroma <= np.percentile(chroma, 10)]
    means = np.clip(grey.mean(axis=0), 1e-3, 0.999)
    target = float(np.clip(means @ _W, 1e-3, 0.999))
    return np.log(target) / np.log(means)


_TOE, _SHOULDER = 0.04, 0.92


def _roll_off(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bring what the per-channel stretch y = a*x + b pushed out of [0, 1] back smoothly instead of
    clipping it: above the shoulder 0.92, [0.92, a + b] maps onto [0.92, 1] by 1 - (1 - t)^s; below
    the toe 0.04, [b, 0.04] onto [0, 0.04] likewise. Each piece meets the identity with slope 1 and
    is monotone, so detail in skies and shadows stays apart; a channel the stretch keeps inside
    [0, 1] is left exactly as it is."""
    for c in range(3):
        yc = y[..., c]
        top, bottom = float(a[c] + b[c]), float(b[c])
        if top > 1.0:
            hi = yc > _SHOULDER
            s = (top - _SHOULDER) / (1 - _SHOULDER)
            t = np.clip((yc[hi] - _SHOULDER) / (top - _SHOULDER), 0, 1)
            yc[hi] = _SHOULDER + (1 - _SHOULDER) * (1 - (1 - t) ** s)
        if bottom < 0.0:
            lo = yc < _TOE
            s = (_TOE - bottom) / _TOE
            u = np.clip((_TOE - yc[lo]) / (_TOE - bottom), 0, 1)
            yc[lo] = _TOE * (1 - u) ** s
    np.clip(y, 0.0, 1.0, out=y)
    return y


def _anchor_means(px: np.ndarray, y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    sel = (y >= lo) & (y <= hi)
    if sel.sum() < 16:
        return np.full(3, float(np.mean(y)))
    return px[sel].mean(axis=0)


class Colour(Stage):
    """Per-shot automatic correction of faded colour: levels, cast, dye fade; monochrome stays neutral."""

    name: ClassVar[str] = "colour"
    version: ClassVar[str] = "2"
    description: ClassVar[str] = "per-shot black/white point, cast and dye-fade correction; B&W kept neutral"
    Params = ColourParams
    params: ColourParams
    shot_analysis: ClassVar[bool] = True

    # ---------------------------------------------------------------- analysis
    def analyse(self, clip: Clip) -> dict[str, Any]:
        """Raw statistics of the shot `clip` was sampled from (JSON-able): luma percentiles, the mean
        colour of its darkest and brightest pixels, a midtone grey balance, and a monochrome flag."""
        p = self.params
        px = _sample_pixels(clip.frames)
        y = px @ _W
        y_lo, y_hi = np.percentile(y, [0.5, 99.5])
        d_lo, d_hi = np.percentile(y, [0.2, 2.0])
        b_lo, b_hi = np.percentile(y, [98.0, 99.8])
        dark, bright = _anchor_means(px, y, d_lo, d_hi), _anchor_means(px, y, b_lo, b_hi)
        # the shot's own neutral axis, for the monochrome test and the midtone balance
        a, b = _channel_map(dark, bright, float(dark @ _W), float(bright @ _W), 1.0, 1.0, 0.0)
        mapped = np.clip(px * a + b, 0, 1)
        chroma = mapped.max(axis=1) - mapped.min(axis=1)
        return {"frames": clip.num_frames, "y_lo": float(y_lo), "y_hi": float(y_hi),
                "dark": [float(v) for v in dark], "bright": [float(v) for v in bright],
                "gamma": [float(v) for v in _midtone_gammas(mapped)],
                "monochrome": bool(p.monochrome != "off" and float(np.percentile(chroma, 98)) < p.mono_threshold)}

    def solve(self, shots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One correction per shot from the shots' statistics. scope="title" pools the cast, the
        levels and the midtone balance over all shots (the fade belongs to the print, while any
        one shot's colours also belong to its scene); scope="shot" uses each shot on its own."""
        p = self.params
        if not shots:
            return []

        def pooled(key: str) -> np.ndarray:
            return np.median(np.asarray([s[key] for s in shots], np.float64), axis=0)

        out = []
        for s in shots:
            src = {k: (pooled(k) if p.scope == "title" else np.asarray(s[k], np.float64))
                   for k in ("y_lo", "y_hi", "gamma")}
            if p.scope == "title":  # casts (anchor minus its luma) pooled; the shot keeps its own anchor luma
                cd = pooled_cast(shots, "dark")
                cb = pooled_cast(shots, "bright")
            else:
                cd = np.asarray(s["dark"]) - np.asarray(s["dark"]) @ _W
                cb = np.asarray(s["bright"]) - np.asarray(s["bright"]) @ _W
            yd, yh = float(np.asarray(s["dark"]) @ _W), float(np.asarray(s["bright"]) @ _W)
            span = max(float(src["y_hi"] - src["y_lo"]), 1e-3)
            gain = min((p.white_level - p.black_level) / span, p.max_gain)
            gain = 1.0 + p.levels * (gain - 1.0)
            offset = p.levels * (p.black_level - float(src["y_lo"]) * gain) + (1 - p.levels) * 0.0
            if gain >= p.max_gain:  # capped: keep the middle of the range where it was
                mid = 0.5 * float(src["y_lo"] + src["y_hi"])
                offset = mid - gain * mid
            a, b = _channel_map(yd + cd, yh + cb, yd, yh, gain, p.cast, offset)
            gamma = 1.0 + p.cast * (np.clip(src["gamma"], 0.75, 1.33) - 1.0) if p.midtones else np.ones(3)
            out.append({"a": [float(v) for v in a], "b": [float(v) for v in b],
                        "gamma": [float(v) for v in gamma], "monochrome": bool(s["monochrome"]),
                        "gain": float(gain), "cast_dark": [float(v) for v in cd],
                        "cast_bright": [float(v) for v in cb], "scope": p.scope})
        return out

    # ---------------------------------------------------------------- apply
    def apply(self, frames: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
        p = self.params
        a = np.asarray(stats["a"], np.float32)
        b = np.asarray(stats["b"], np.float32)
        g = np.asarray(stats["gamma"], np.float32)
        out = np.empty(frames.shape, np.float32)
        for t in range(frames.shape[0]):
            x = _roll_off(frames[t] * a + b, a, b)
            if np.any(g != 1.0):
                np.power(x, g, out=x)
            if stats["monochrome"] and p.monochrome == "neutral":
                x[...] = luma(x)[..., None]
            elif stats["monochrome"] and p.monochrome == "keep-tint":
                ysrc = luma(frames[t])
                x = frames[t] * (luma(x) / np.maximum(ysrc, 1e-4))[..., None]
            elif p.saturation != 1.0:
                yx = luma(x)[..., None]
                x = yx + np.float32(p.saturation) * (x - yx)
            np.clip(x, 0.0, 1.0, out=x)
            out[t] = x
        return out

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        stats = self.bound.get("stats") or self.solve([self.analyse(clip)])[0]
        return clip.with_frames(self.apply(clip.frames, stats)), {"colour": stats}
