"""A synthetic multi-shot "old film" with exact ground truth.

Used by tests, benchmarks and `reel demo`. `render_film(cfg)` draws a clean
film (several shots of textured, camera-moving scenes with moving objects),
then degrades a copy the way an old print and a scanner would, recording every
degradation in a JSON-serialisable `truth` dict. Everything is deterministic
for a given `SynthConfig` (same seed -> byte-identical arrays and truth); each
component draws from its own `np.random.default_rng([seed, stream])`, so
switching one degradation off leaves the others (and the content) unchanged.

Conventions
-----------
- Frames are RGB in the working space of `models.clip` (BT.709, full range),
  rendered as float32 in [0, 1] and stored as uint8 code values (0..255).
- Pixel (x, y) has its centre at integer coordinates (OpenCV's convention);
  boxes are `[x0, y0, x1, y1]` with exclusive ends; spans are `[y, x0, x1]`
  with exclusive `x1`.
- Frame indices in the truth are 0-based indices into the whole film.
- All pixel sizes, speeds and offsets are defined at a 320x240 reference and
  scaled by `s = min(width / 320, height / 240)`.

Degradations, applied to the clean film in this order: fade + colour cast,
flicker, gate weave, grain, line scratches, dust/dirt blotches.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from models.clip import to_uint

__all__ = [
    "SynthConfig",
    "SynthFilm",
    "render_film",
    "blotch_masks",
    "scratch_masks",
    "moving_object_masks",
]

_REF_W, _REF_H = 320, 240
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

# Independent random streams: np.random.default_rng([seed, stream, ...]).
_S_CONTENT, _S_OBJECTS, _S_FADE, _S_FLICKER, _S_WEAVE, _S_GRAIN, _S_SCRATCH, _S_BLOTCH, _S_AUDIO = range(1, 10)


# --------------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthConfig:
    """What to render.

    width, height:    frame size in pixels; each must be even and >= 32 (even so the
                      film can be encoded with 4:2:0 chroma subsampling).
    shots:            number of shots (>= 1); shot k covers frames [k*F, (k+1)*F).
    frames_per_shot:  F (>= 3).
    fps:              frame rate (> 0), stored as an exact Fraction.
    seed:             non-negative integer; same config -> byte-identical output.
    blotches, scratches, flicker, grain, fade, weave: switch each degradation on/off.
    audio_sample_rate: Hz (>= 8000).
    """

    width: int = 320
    height: int = 240
    shots: int = 4
    frames_per_shot: int = 24
    fps: Fraction = Fraction(24)
    seed: int = 0
    blotches: bool = True
    scratches: bool = True
    flicker: bool = True
    grain: bool = True
    fade: bool = True
    weave: bool = True
    audio_sample_rate: int = 48000

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 32 or v % 2:
                raise ValueError(f"SynthConfig.{name} must be an even integer >= 32, got {v!r}")
        if not isinstance(self.shots, int) or self.shots < 1:
            raise ValueError(f"SynthConfig.shots must be an integer >= 1, got {self.shots!r}")
        if not isinstance(self.frames_per_shot, int) or self.frames_per_shot < 3:
            raise ValueError(f"SynthConfig.frames_per_shot must be an integer >= 3, got {self.frames_per_shot!r}")
        fps = self.fps
        if not isinstance(fps, Fraction):
            fps = Fraction(fps).limit_denominator(1_000_000) if isinstance(fps, float) else Fraction(fps)
            object.__setattr__(self, "fps", fps)
        if fps <= 0:
            raise ValueError(f"SynthConfig.fps must be positive, got {fps}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"SynthConfig.seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.audio_sample_rate, int) or self.audio_sample_rate < 8000:
            raise ValueError(f"SynthConfig.audio_sample_rate must be an integer >= 8000, got {self.audio_sample_rate!r}")

    @property
    def num_frames(self) -> int:
        return self.shots * self.frames_per_shot

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (fps as "num/den")."""
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        return d


@dataclass(frozen=True)
class SynthFilm:
    """A rendered synthetic film.

    clean:             (T, H, W, 3) uint8 RGB, the film before degradation (no weave).
    degraded:          (T, H, W, 3) uint8 RGB, what a scanner would hand us.
    audio:             (2, N) int16 stereo, N = round(T / fps * audio_sample_rate).
    audio_sample_rate: Hz.
    truth:             JSON-serialisable ground truth (schema in `render_film`).
    """

    clean: np.ndarray
    degraded: np.ndarray
    audio: np.ndarray
    audio_sample_rate: int
    truth: dict


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _scale(width: int, height: int) -> float:
    return min(width / _REF_W, height / _REF_H)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _luma(img: np.ndarray) -> np.ndarray:
    return img @ _LUMA


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int,
                 persistence: float = 0.5) -> np.ndarray:
    """(h, w) float32 multi-octave value noise, normalised to mean 0.5, std ~0.18."""
    total = np.zeros((h, w), np.float32)
    amp = 1.0
    for k in range(octaves):
        c = max(cell / 2 ** k, 1.0)
        gh, gw = int(math.ceil(h / c)) + 2, int(math.ceil(w / c)) + 2
        grid = rng.random((gh, gw), dtype=np.float32)
        up = cv2.resize(grid, (max(w, int(round(gw * c))), max(h, int(round(gh * c)))),
                        interpolation=cv2.INTER_CUBIC)
        total += np.float32(amp) * up[:h, :w]
        amp *= persistence
    std = float(total.std()) or 1.0
    return ((total - total.mean()) * np.float32(0.18 / std) + np.float32(0.5)).astype(np.float32)


def _noise_1d(rng: np.random.Generator, n: int, knots: int) -> np.ndarray:
    """(n,) float32 smooth noise in [0, 1]."""
    k = rng.random(max(knots, 2) + 2).astype(np.float32)
    return np.clip(cv2.resize(k[None, :], (n, 1), interpolation=cv2.INTER_CUBIC)[0], 0.0, 1.0)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _spans(mask: np.ndarray, y0: int, x0: int) -> list[list[int]]:
    """Row runs of a 2-D bool mask as [[y, xa, xb), ...] in frame coordinates."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    ys, xs = np.nonzero(d == 1)
    _, xe = np.nonzero(d == -1)  # row-major order: ends pair up with starts
    return [[int(y + y0), int(a + x0), int(b + x0)] for y, a, b in zip(ys, xs, xe, strict=True)]


def _ar1(rng: np.random.Generator, n: int, phi: float, std: float) -> np.ndarray:
    """AR(1) series with stationary standard deviation `std`."""
    e = rng.normal(0.0, std * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, std)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


# --------------------------------------------------------------------------------------------------
# Moving objects (shared by the renderer and `moving_object_masks`)
# --------------------------------------------------------------------------------------------------


def _object_alpha(kind: str, cx: float, cy: float, rx: float, ry: float, width: int, height: int,
                  ) -> tuple[int, int, np.ndarray]:
    """Anti-aliased coverage of a disc/rect: (y0, x0, alpha (h, w) float32 in [0, 1])."""
    x0 = max(0, int(math.floor(cx - rx - 0.5)))
    x1 = min(width, int(math.ceil(cx + rx + 0.5)) + 1)
    y0 = max(0, int(math.floor(cy - ry - 0.5)))
    y1 = min(height, int(math.ceil(cy + ry + 0.5)) + 1)
    if x1 <= x0 or y1 <= y0:
        return y0, x0, np.zeros((0, 0), np.float32)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    if kind == "disc":
        d = np.sqrt((dx / np.float32(rx)) ** 2 + (dy / np.float32(ry)) ** 2) * np.float32(rx)
        alpha = np.clip(np.float32(rx + 0.5) - d, 0.0, 1.0)
    else:
        alpha = (np.clip(np.float32(rx + 0.5) - np.abs(dx), 0.0, 1.0)
                 * np.clip(np.float32(ry + 0.5) - np.abs(dy), 0.0, 1.0))
    return y0, x0, alpha.astype(np.float32)


def _bounce_path(rng: np.random.Generator, n: int, speed: float, rx: float, ry: float,
                 width: int, height: int) -> np.ndarray:
    """(n, 2) centres moving `speed` px/frame, reversing an axis instead of leaving the frame."""
    lo = np.array([rx + 1.0, ry + 1.0])
    hi = np.array([width - 2.0 - rx, height - 2.0 - ry])
    ang = rng.uniform(0, 2 * math.pi)
    v = speed * np.array([math.cos(ang), math.sin(ang)])
    room = np.maximum(hi - lo, 0.0)
    v = np.sign(v) * np.minimum(np.abs(v), room / 2.0)  # only binds on tiny frames
    p = lo + rng.random(2) * room
    out = np.empty((n, 2))
    for i in range(n):
        out[i] = p
        nxt = p + v
        flip = (nxt < lo) | (nxt > hi)
        v = np.where(flip, -v, v)
        p = p + v
    return out


# --------------------------------------------------------------------------------------------------
# Scenes (clean content)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Scene:
    canvas: np.ndarray            # (Hc, Wc, 3) float32
    centers: np.ndarray           # (F, 2) view centre in canvas coordinates
    zooms: np.ndarray             # (F,) magnification
    objects: list[dict]           # truth records (+ private render fields)


def _make_scene(cfg: SynthConfig, shot: int, target_luma: float, greyscale: bool) -> tuple[_Scene, dict]:
    W, H, F = cfg.width, cfg.height, cfg.frames_per_shot
    s = _scale(W, H)
    rng = _rng(cfg.seed, _S_CONTENT, shot)

    # --- camera: pan 0.5-3 px/frame and/or slow zoom ------------------------------------------
    speed = rng.uniform(0.5, 3.0) * s
    speed = min(speed, max(W, H) / F)  # long shots: keep the canvas bounded
    ang = rng.uniform(0, 2 * math.pi)
    pan = np.array([math.cos(ang), math.sin(ang)]) * speed
    zoom_rate = 0.0
    if rng.random() < 0.5:
        zoom_rate = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.002, 0.006))
        zoom_rate = float(np.clip(zoom_rate, -0.2 / F, 0.2 / F))
    t = np.arange(F, dtype=np.float64)
    zooms = np.exp(zoom_rate * t)
    rel = pan[None, :] * t[:, None]
    half = np.stack([(W - 1) / 2 / zooms, (H - 1) / 2 / zooms], axis=1)
    margin = 6.0
    lo = (rel - half).min(axis=0) - margin
    hi = (rel + half).max(axis=0) + margin
    Wc, Hc = int(math.ceil(hi[0] - lo[0])) + 1, int(math.ceil(hi[1] - lo[1])) + 1
    centers = rel - lo[None, :]

    # --- palette ----------------------------------------------------------------------------------
    hue = rng.random()
    sat_scale = 0.06 if greyscale else 1.0

    def colour(v: float, dh: float = 0.12) -> np.ndarray:
        return _hsv(hue + rng.uniform(-dh, dh), rng.uniform(0.15, 0.45) * sat_scale, v)

    col_a, col_b = colour(rng.uniform(0.25, 0.45)), colour(rng.uniform(0.55, 0.8))

    # --- background: multi-octave noise between two colours, a gradient, fine luminance noise ----
    cell = rng.uniform(50, 90) * s
    n1 = np.clip(_value_noise(rng, Hc, Wc, cell, 4), 0, 1)[..., None]
    canvas = col_a[None, None, :] * (1 - n1) + col_b[None, None, :] * n1
    gdir = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:Hc, 0:Wc].astype(np.float32)
    proj = (xx * math.cos(gdir) + yy * math.sin(gdir)) / max(Hc, Wc)
    canvas *= (1 + rng.uniform(0.15, 0.35) * (proj - proj.mean()))[..., None]
    detail = _value_noise(rng, Hc, Wc, 4.0 * s, 2) - 0.5
    canvas += (rng.uniform(0.06, 0.12) * detail)[..., None]

    # Where the camera looks in mid-shot: put shapes and test patterns there.
    mid = centers[F // 2]
    view_w, view_h = W / zooms[F // 2], H / zooms[F // 2]

    def spot(pad: float) -> tuple[float, float]:
        return (mid[0] + rng.uniform(-0.5, 0.5) * max(view_w - 2 * pad, 1),
                mid[1] + rng.uniform(-0.5, 0.5) * max(view_h - 2 * pad, 1))

    tex = _value_noise(rng, Hc, Wc, 8.0 * s, 3)
    sh = 4  # cv2 sub-pixel shift bits
    for _ in range(int(rng.integers(3, 7))):
        m = np.zeros((Hc, Wc), np.uint8)
        size = rng.uniform(15, 60) * s
        cx, cy = spot(size)
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.ellipse(m, (int(cx * 16), int(cy * 16)), (int(size * 16), int(size * rng.uniform(0.4, 1) * 16)),
                        float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA, sh)
        elif kind == 1:
            box = cv2.boxPoints(((cx, cy), (size * 2, size * rng.uniform(0.5, 2)), float(rng.uniform(0, 90))))
            cv2.fillPoly(m, [np.round(box * 16).astype(np.int32)], 255, cv2.LINE_AA, sh)
        else:
            a0 = rng.uniform(0, 2 * math.pi)
            pts = [(cx + size * math.cos(a0 + k * 2.1 + rng.uniform(-0.3, 0.3)),
                    cy + size * math.sin(a0 + k * 2.1 + rng.uniform(-0.3, 0.3))) for k in range(3)]
            cv2.fillPoly(m, [np.round(np.array(pts) * 16).astype(np.int32)], 255, cv2.LINE_AA, sh)
        a = (m.astype(np.float32) / 255.0)[..., None]
        fill = colour(rng.uniform(0.2, 0.85), 0.2)[None, None, :] * (0.85 + 0.3 * tex[..., None])
        canvas = canvas * (1 - a) + fill * a

    # Fine detail: stripes, checker, Siemens star, line grid (sharpness / SR targets).
    kinds = rng.permutation(4)[: int(rng.integers(2, 4))]
    for kind in kinds:
        ps = int(round(rng.uniform(30, 60) * s))
        cx, cy = spot(ps)
        x0, y0 = int(cx - ps / 2), int(cy - ps / 2)
        x0, y0 = int(np.clip(x0, 0, Wc - ps)), int(np.clip(y0, 0, Hc - ps))
        py, px = np.mgrid[0:ps, 0:ps].astype(np.float32)
        if kind == 0:
            period = max(rng.uniform(3, 6) * s, 2.0)
            th = rng.uniform(0, math.pi)
            pat = (np.mod((px * math.cos(th) + py * math.sin(th)) / period, 1.0) < 0.5).astype(np.float32)
        elif kind == 1:
            c = max(int(round(rng.uniform(2, 4) * s)), 1)
            pat = ((px.astype(np.int32) // c + py.astype(np.int32) // c) % 2).astype(np.float32)
        elif kind == 2:
            spokes = int(rng.integers(12, 25))
            pat = (np.sin(spokes * np.arctan2(py - ps / 2, px - ps / 2)) > 0).astype(np.float32)
        else:
            gap = max(int(round(rng.uniform(5, 9) * s)), 3)
            lw = max(int(round(s)), 1)
            pat = (((px.astype(np.int32) % gap) < lw) | ((py.astype(np.int32) % gap) < lw)).astype(np.float32)
        lo_c, hi_c = colour(rng.uniform(0.15, 0.35), 0.2), colour(rng.uniform(0.65, 0.85), 0.2)
        canvas[y0:y0 + ps, x0:x0 + ps] = lo_c * (1 - pat[..., None]) + hi_c * pat[..., None]

    # Thin lines (wires, branches).
    lines = np.zeros((Hc, Wc), np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        p0, p1 = spot(0), spot(0)
        d = np.array(p1) - np.array(p0)
        d = d / (np.linalg.norm(d) + 1e-6) * max(view_w, view_h)
        q0, q1 = np.array(p0) - d, np.array(p0) + d
        cv2.line(lines, tuple(int(v) for v in q0 * 16), tuple(int(v) for v in q1 * 16), 255,
                 max(int(round(s)), 1), cv2.LINE_AA, sh)
    a = (lines.astype(np.float32) / 255.0 * rng.uniform(0.5, 0.8))[..., None]
    canvas = canvas * (1 - a) + colour(0.12, 0.1)[None, None, :] * a

    # Match the requested mean brightness (some shots deliberately alike).
    canvas = np.clip(canvas, 0, 1)
    canvas = np.clip(canvas + np.float32(target_luma - float(_luma(canvas).mean())), 0.04, 0.96)
    canvas = np.ascontiguousarray(canvas, dtype=np.float32)

    shot_info = {"greyscale": bool(greyscale), "pan": [float(pan[0]), float(pan[1])],
                 "zoom_rate": float(zoom_rate), "mean_luma": float(target_luma)}
    return _Scene(canvas, centers, zooms, []), shot_info


def _make_objects(cfg: SynthConfig, shot: int, want_fast: bool, greyscale: bool, target_luma: float,
                  first_id: int) -> list[dict]:
    W, H, F = cfg.width, cfg.height, cfg.frames_per_shot
    s = _scale(W, H)
    rng = _rng(cfg.seed, _S_OBJECTS, shot)
    n = int(rng.integers(1, 4))
    fast_flags = [False] * n
    if want_fast:
        fast_flags[-1] = True  # drawn last: always on top
    start = shot * F
    hue = rng.random()
    objs = []
    for i, fast in enumerate(fast_flags):
        kind = "disc" if rng.random() < 0.6 else "rect"
        if fast:
            r = max(rng.uniform(4.0, 8.0) * s, 1.5)
            speed = rng.uniform(8.0, 14.0) * s
        else:
            r = max(rng.uniform(10.0, 30.0) * s, 3.0)
            speed = rng.uniform(0.5, 3.0) * s
        rx = r
        ry = r if kind == "disc" else max(r * rng.uniform(0.6, 1.0), 1.5)
        path = _bounce_path(rng, F, speed, rx, ry, W, H)
        v = float(np.clip(target_luma + rng.choice([-1, 1]) * rng.uniform(0.2, 0.35), 0.12, 0.88))
        col = _hsv(hue + rng.uniform(-0.3, 0.3), rng.uniform(0.15, 0.45) * (0.06 if greyscale else 1.0), v)
        centers, boxes = {}, {}
        for k in range(F):
            cx, cy = float(path[k, 0]), float(path[k, 1])
            y0, x0, alpha = _object_alpha(kind, cx, cy, rx, ry, W, H)
            ys, xs = np.nonzero(alpha > 0)
            if ys.size == 0:
                continue
            centers[str(start + k)] = [cx, cy]
            boxes[str(start + k)] = [int(x0 + xs.min()), int(y0 + ys.min()), int(x0 + xs.max() + 1),
                                     int(y0 + ys.max() + 1)]
        objs.append({
            "id": first_id + i, "shot": shot, "kind": kind, "fast": fast,
            "radius": [float(rx), float(ry)], "speed": float(speed),
            "centers": centers, "frames": boxes,
            "_colour": col, "_theta": float(rng.uniform(0, math.pi)),
            "_period": float(max(rng.uniform(3.0, 7.0) * s, 2.0)),
        })
    return objs


def _render_clean_frame(scene: _Scene, k: int, t: int, W: int, H: int) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: frame k of the shot (global index t)."""
    z = scene.zooms[k]
    c = scene.centers[k]
    inv = 1.0 / z
    M = np.array([[inv, 0.0, c[0] - (W - 1) / 2 * inv],
                  [0.0, inv, c[1] - (H - 1) / 2 * inv]], dtype=np.float64)
    frame = cv2.warpAffine(scene.canvas, M, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
    for ob in scene.objects:
        key = str(t)
        if key not in ob["centers"]:
            continue
        cx, cy = ob["centers"][key]
        rx, ry = ob["radius"]
        y0, x0, alpha = _object_alpha(ob["kind"], cx, cy, rx, ry, W, H)
        h, w = alpha.shape
        if h == 0:
            continue
        u = np.arange(x0, x0 + w, dtype=np.float32)[None, :] - np.float32(cx)
        v = np.arange(y0, y0 + h, dtype=np.float32)[:, None] - np.float32(cy)
        th, per = ob["_theta"], ob["_period"]
        texture = (1.0 + 0.15 * np.sin(2 * np.pi * (u * math.cos(th) + v * math.sin(th)) / per)
                   + 0.08 * np.sin(2 * np.pi * (-u * math.sin(th) + v * math.cos(th)) / (1.7 * per)))
        if ob["kind"] == "disc":
            texture = texture * (1.0 - 0.3 * np.clip((u * u + v * v) / (rx * ry), 0, 1))
        fill = ob["_colour"][None, None, :] * texture[..., None]
        a = alpha[..., None]
        roi = frame[y0:y0 + h, x0:x0 + w]
        roi[...] = roi * (1 - a) + fill * a
    np.clip(frame, 0.0, 1.0, out=frame)
    return frame


# --------------------------------------------------------------------------------------------------
# Degradation parameters
# --------------------------------------------------------------------------------------------------


def _fade_params(cfg: SynthConfig) -> dict:
    if not cfg.fade:
        ident = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
        return {"enabled": False, "saturation": 1.0, "black": 0.0, "white": 1.0, "cast": "none",
                "gain": [1.0, 1.0, 1.0], "offset": [0.0, 0.0, 0.0], "matrix": ident}
    rng = _rng(cfg.seed, _S_FADE)
    sat = float(rng.uniform(0.45, 0.75))
    black = float(rng.uniform(0.05, 0.12))
    white = float(rng.uniform(0.82, 0.92))
    cast = str(rng.choice(["magenta", "red", "yellow"]))
    k = float(rng.uniform(0.04, 0.09))
    gain = {"magenta": [1.0 + k, 1.0 - k, 1.0 + k / 2], "red": [1.0 + k, 1.0 - k / 2, 1.0 - k],
            "yellow": [1.0 + k / 2, 1.0 + k / 3, 1.0 - k]}[cast]
    off = {"magenta": [k / 4, -k / 4, k / 5], "red": [k / 3, 0.0, -k / 4], "yellow": [k / 4, k / 5, -k / 3]}[cast]
    # v -> L + sat (v - L)  (L = BT.709 luma), then black + (white - black) v, then gain v + offset.
    S = sat * np.eye(3) + (1 - sat) * np.tile(_LUMA.astype(np.float64), (3, 1))
    A = (white - black) * S
    b = np.full(3, black)
    g = np.array(gain)
    M = np.concatenate([g[:, None] * A, (g * b + np.array(off))[:, None]], axis=1)
    return {"enabled": True, "saturation": sat, "black": black, "white": white, "cast": cast,
            "gain": [float(x) for x in gain], "offset": [float(x) for x in off],
            "matrix": [[float(x) for x in row] for row in M]}


def _flicker_params(cfg: SynthConfig) -> dict:
    T = cfg.num_frames
    if not cfg.flicker:
        return {"enabled": False, "gain": [1.0] * T, "offset": [0.0] * T, "spatial_slope": [0.0] * T}
    rng = _rng(cfg.seed, _S_FLICKER)
    smooth = _ar1(rng, T, 0.85, 0.05)
    step = np.zeros(T)
    n_jumps = max(1, T // 30)
    for j in rng.choice(T, size=min(n_jumps, T), replace=False):
        mag = rng.choice([-1, 1]) * rng.uniform(0.07, 0.14)
        decay = rng.uniform(0.5, 0.85)
        step[j:] += mag * decay ** np.arange(T - j)
    gain = 1.0 + np.clip(smooth + step, -0.2, 0.2)
    offset = np.clip(_ar1(rng, T, 0.7, 0.01), -0.03, 0.03)
    slope = np.clip(_ar1(rng, T, 0.95, 0.04), -0.08, 0.08)
    return {"enabled": True, "gain": [float(x) for x in gain], "offset": [float(x) for x in offset],
            "spatial_slope": [float(x) for x in slope]}


def _weave_params(cfg: SynthConfig) -> list[list[float]]:
    T = cfg.num_frames
    if not cfg.weave:
        return [[0.0, 0.0] for _ in range(T)]
    s = _scale(cfg.width, cfg.height)
    rng = _rng(cfg.seed, _S_WEAVE)
    sd = rng.uniform(0.5, 1.0) * s
    dy = _ar1(rng, T, 0.5, sd)
    dx = _ar1(rng, T, 0.5, 0.6 * sd)
    for j in np.nonzero(rng.random(T) < 0.06)[0]:  # occasional hard jolts of 2-3 px
        ang = rng.uniform(0, 2 * math.pi)
        mag = rng.uniform(2.0, 3.0) * s
        dx[j], dy[j] = mag * math.cos(ang), mag * math.sin(ang)
    return [[float(a), float(b)] for a, b in zip(dx, dy, strict=True)]


def _grain_params(cfg: SynthConfig) -> dict:
    s = _scale(cfg.width, cfg.height)
    if not cfg.grain:
        return {"enabled": False, "sigma": 0.0, "sigma_code": 0.0, "blur_sigma": 0.0, "mono": 0.0,
                "model": "none"}
    rng = _rng(cfg.seed, _S_GRAIN)
    code = float(rng.uniform(3.0, 5.0))
    return {"enabled": True, "sigma": code / 255.0, "sigma_code": code, "blur_sigma": 0.7 * s, "mono": 0.8,
            "model": "std(L) = sigma * (0.4 + 2.4 L (1 - L)), L = luma; unit-variance noise blurred by blur_sigma"}


def _scratch_columns(x: float, w: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns a scratch of width w centred at x touches, and their coverage in (0, 1]."""
    a, b = x - w / 2 + 0.5, x + w / 2 + 0.5  # pixel i covers [i, i + 1) in these units
    cols = np.arange(int(math.floor(a)), int(math.ceil(b)))
    cov = np.minimum(cols + 1, b) - np.maximum(cols, a)
    keep = (cols >= 0) & (cols < width) & (cov > 0)
    return cols[keep], cov[keep].astype(np.float32)


def _scratch_params(cfg: SynthConfig) -> list[dict]:
    if not cfg.scratches:
        return []
    W, H, F = cfg.width, cfg.height, cfg.frames_per_shot
    s = _scale(W, H)
    rng = _rng(cfg.seed, _S_SCRATCH)
    out = []
    for i in range(int(rng.integers(1, 4))):
        shot = int(rng.integers(cfg.shots))
        dur = min(int(rng.integers(10, 41)), F)
        start = shot * F + int(rng.integers(0, F - dur + 1))
        width = max(rng.uniform(1.0, 3.0) * s, 0.75)
        drift = rng.uniform(-0.2, 0.2) * s
        steps = np.clip(drift + rng.normal(0, 0.05 * s, dur), -0.3 * s, 0.3 * s)
        steps[0] = 0.0
        xs = rng.uniform(0.1, 0.9) * (W - 1) + np.cumsum(steps)
        polarity = "dark" if rng.random() < 0.5 else "bright"
        base = rng.uniform(0.25, 0.55)
        strength = base * np.clip(1 + _ar1(rng, dur, 0.8, 0.15), 0.6, 1.3)
        prof0, prof1 = _noise_1d(rng, H, 8), _noise_1d(rng, H, 8)
        top = 0 if rng.random() < 0.7 else int(rng.integers(0, H // 3))
        bot = H if rng.random() < 0.7 else int(rng.integers(2 * H // 3, H + 1))
        broken = bool(rng.random() < 0.5)
        gaps = []
        if broken:
            for _ in range(int(rng.integers(1, 4))):
                gaps.append((rng.uniform(0, H), rng.uniform(0.05, 0.25) * H, rng.normal(0, 0.01 * H)))
        segments = []
        for k in range(dur):
            present = np.zeros(H, bool)
            present[top:bot] = True
            for g0, glen, gv in gaps:
                c = g0 + gv * k
                present[max(0, int(c - glen / 2)):max(0, int(c + glen / 2))] = False
            segments.append([[int(a[0]), int(a[1])] for a in _runs(present)])
        out.append({
            "id": i, "shot": shot, "start": int(start), "end": int(start + dur), "width": float(width),
            "polarity": polarity, "broken": broken,
            "x": [float(x) for x in xs], "strength": [float(v) for v in strength],
            "segments": segments,
            "_profiles": (prof0, prof1),
        })
    return out


def _runs(present: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], present.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0], strict=True))


def _blotch_shape(rng: np.random.Generator, radius: float) -> np.ndarray:
    """(P, P) float32 alpha in [0, 1]: an irregular blob with a soft ~1 px edge."""
    P = 2 * int(math.ceil(radius * 1.5)) + 5
    c = (P - 1) / 2
    yy, xx = np.mgrid[0:P, 0:P].astype(np.float32)
    r2 = ((xx - c) ** 2 + (yy - c) ** 2) / np.float32(radius * radius)
    noise = rng.standard_normal((P, P)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), max(radius / 3.5, 0.8))
    noise /= float(noise.std()) or 1.0
    binary = ((1.0 - r2) + 0.55 * noise > 0).astype(np.float32)
    if binary.sum() == 0:
        binary = (r2 <= 1.0).astype(np.float32)
    return np.clip(cv2.GaussianBlur(binary, (0, 0), 0.6) * 1.15, 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------------


def _audio(cfg: SynthConfig) -> tuple[np.ndarray, list[dict]]:
    rate = cfg.audio_sample_rate
    T, F = cfg.num_frames, cfg.frames_per_shot
    n = round(Fraction(T) / cfg.fps * rate)
    rng = _rng(cfg.seed, _S_AUDIO)
    out = np.zeros((2, n), np.float64)
    chords = []
    for shot in range(cfg.shots):
        a = round(Fraction(shot * F) / cfg.fps * rate)
        b = round(Fraction((shot + 1) * F) / cfg.fps * rate)
        m = b - a
        if m <= 0:
            continue
        root = 110.0 * 2 ** (int(rng.integers(0, 25)) / 12)
        intervals = [0, 4, 7] if rng.random() < 0.5 else [0, 3, 7]
        freqs = [root * 2 ** (k / 12) for k in intervals]
        t = np.arange(m) / rate
        for ch in range(2):
            sig = np.zeros(m)
            for j, f in enumerate(freqs):
                pan = 0.7 + 0.3 * ((j + ch) % 2)
                sig += 0.08 * pan * np.sin(2 * np.pi * f * (1 + 0.001 * ch) * t + rng.uniform(0, 2 * np.pi))
            out[ch, a:b] = sig
        fade = min(int(0.01 * rate), m // 4)
        if fade > 0:
            ramp = np.linspace(0.0, 1.0, fade)
            out[:, a:a + fade] *= ramp
            out[:, b - fade:b] *= ramp[::-1]
        chords.append({"shot": shot, "start_sample": int(a), "end_sample": int(b),
                       "freqs": [float(f) for f in freqs]})
    out += rng.normal(0, 0.003, out.shape)
    return np.clip(np.rint(out * 32767), -32768, 32767).astype(np.int16), chords


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


class _Damage:
    """The degradations of `cfg` (fade, flicker, weave, grain, scratches, blotches), applied frame by frame
    in that order; the truth of each is kept (blotches as they are made)."""

    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        self.fade = _fade_params(cfg)
        self.flick = _flicker_params(cfg)
        self.weave = _weave_params(cfg)
        self.grain = _grain_params(cfg)
        self.scratches = _scratch_params(cfg)
        self.blotches: list[dict] = []
        self._fade_m = np.array(self.fade["matrix"], dtype=np.float32)
        self._gain = np.array(self.flick["gain"], np.float32)
        self._off = np.array(self.flick["offset"], np.float32)
        self._slope = np.array(self.flick["spatial_slope"], np.float32)
        self._xcoord = (2.0 * np.arange(cfg.width, dtype=np.float32) / np.float32(cfg.width - 1) - 1.0)[None, :, None]
        if cfg.grain:
            gs = self.grain["blur_sigma"]
            self._gk = cv2.getGaussianKernel(2 * int(math.ceil(3 * gs)) + 1, gs, cv2.CV_32F)
            self._g_norm = np.float32(1.0 / float((self._gk.astype(np.float64) ** 2).sum()))  # back to unit std
            self._grain_rng = _rng(cfg.seed, _S_GRAIN, 1)
        self._blotch_rng = _rng(cfg.seed, _S_BLOTCH)

    def apply(self, x: np.ndarray, t: int) -> np.ndarray:
        """Frame t (float32 RGB in [0, 1], changed in place where convenient) degraded, as uint8."""
        cfg, (H, W) = self.cfg, (self.cfg.height, self.cfg.width)
        if cfg.fade:
            x = cv2.transform(x, self._fade_m)
            np.clip(x, 0.0, 1.0, out=x)
        if cfg.flicker:
            x = x * (self._gain[t] * (1.0 + self._slope[t] * self._xcoord)) + self._off[t]
            np.clip(x, 0.0, 1.0, out=x)
        if cfg.weave:
            dx, dy = self.weave[t]
            m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
            x = cv2.warpAffine(x, m, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            np.clip(x, 0.0, 1.0, out=x)
        if cfg.grain:
            g = self.grain
            n = self._grain_rng.standard_normal((H, W, 3), dtype=np.float32)
            n = n * np.float32(math.sqrt(1 - g["mono"] ** 2)) + \
                self._grain_rng.standard_normal((H, W, 1), dtype=np.float32) * np.float32(g["mono"])
            n = cv2.sepFilter2D(n, -1, self._gk, self._gk, borderType=cv2.BORDER_REFLECT)
            L = _luma(x)
            amp = (np.float32(g["sigma"]) * self._g_norm) * (0.4 + 2.4 * L * (1.0 - L))
            x += n * amp[..., None]
            np.clip(x, 0.0, 1.0, out=x)
        for sc in self.scratches:
            if sc["start"] <= t < sc["end"]:
                _apply_scratch(x, sc, t - sc["start"], H, W)
        q = to_uint(x, np.uint8)
        if cfg.blotches:
            _apply_blotches(self._blotch_rng, x, q, t, _scale(W, H), self.blotches)
        return q


def degrade_footage(clean: np.ndarray, seed: int = 0, *, flicker: bool = True, weave: bool = True,
                    grain: bool = True, scratches: bool = True, blotches: bool = True,
                    fade: bool = False) -> tuple[np.ndarray, dict]:
    """Real footage (T, H, W, 3) uint8 with the synthetic film's damage added, as one shot: (degraded
    uint8, truth: flicker, weave, grain, scratches, blotches as `render_film` describes them). Weave
    lands on top of whatever the camera did, so a clean hand-held clip keeps its own motion."""
    t, h, w, _ = clean.shape
    cfg = SynthConfig(width=w, height=h, shots=1, frames_per_shot=t, seed=seed, flicker=flicker, weave=weave,
                      grain=grain, scratches=scratches, blotches=blotches, fade=fade)
    damage = _Damage(cfg)
    out = np.stack([damage.apply(f.astype(np.float32) / np.float32(255.0), i) for i, f in enumerate(clean)])
    truth = {"seed": seed, "width": w, "height": h, "frames": t, "cuts": [], "config": cfg.to_dict(),
             "fade": damage.fade, "flicker": damage.flick, "weave": damage.weave, "grain": damage.grain,
             "scratches": damage.scratches, "blotches": damage.blotches}
    return out, truth


def render_film(cfg: SynthConfig) -> SynthFilm:
    """Render the clean and degraded film, audio and ground truth for `cfg`.

    Truth schema (all JSON types; frame indices are global, 0-based):
      seed, width, height, frames (T), fps ("num/den"), scale (s), config (SynthConfig.to_dict()),
      cuts:      [F, 2F, ...] first frame of each shot after the first
      shots:     [{start, end (exclusive), greyscale, pan [vx, vy] px/frame, zoom_rate (log/frame),
                   mean_luma}]
      moving_objects: [{id, shot, kind ("disc"|"rect"), fast, radius [rx, ry], speed (px/frame),
                        centers {"t": [cx, cy]}, frames {"t": [x0, y0, x1, y1]}}]   (clean-frame coords)
      fade:      {enabled, saturation, black, white, cast, gain [r,g,b], offset [r,g,b],
                  matrix (3x4: rgb' = M[:, :3] @ rgb + M[:, 3])}
      flicker:   {enabled, gain [T], offset [T], spatial_slope [T]}:
                 v' = v * gain * (1 + slope * (2 x / (W - 1) - 1)) + offset
      weave:     [[dx, dy]] * T: content moved right by dx, down by dy (px; replicate border)
      grain:     {enabled, sigma (in [0,1] units at mid-grey), sigma_code, blur_sigma, mono, model}
      scratches: [{id, shot, start, end (exclusive), width, polarity ("dark"|"bright"), broken,
                   x [end-start] centre column per frame, strength [..], segments [[[y0, y1], ...]] per frame}]
      blotches:  [{id, frame, bbox [x0, y0, x1, y1], polarity, opacity, radius, spans [[y, x0, x1], ...]}]
                 spans: exactly the pixels the blotch changed by > 2 code values in some channel
      audio:     {sample_rate, samples, chords [{shot, start_sample, end_sample, freqs}]}
    """
    W, H, F, T = cfg.width, cfg.height, cfg.frames_per_shot, cfg.num_frames
    s = _scale(W, H)

    # --- per-film choices ---------------------------------------------------------------------
    rng = _rng(cfg.seed, _S_CONTENT)
    lumas = rng.uniform(0.36, 0.55, cfg.shots)
    if cfg.shots >= 2:
        lumas[1] = np.clip(lumas[0] + rng.uniform(-0.02, 0.02), 0.3, 0.6)  # a look-alike pair
    fast_shot = int(rng.integers(cfg.shots))
    fast_shots = [k == fast_shot or rng.random() < 0.5 for k in range(cfg.shots)]
    grey_shot = 2 if cfg.shots >= 3 else -1

    damage = _Damage(cfg)
    fade, flick, weave, grain, scratches, blotches = (damage.fade, damage.flick, damage.weave, damage.grain,
                                                      damage.scratches, damage.blotches)

    clean = np.empty((T, H, W, 3), np.uint8)
    degraded = np.empty((T, H, W, 3), np.uint8)
    shots_info, objects = [], []

    for shot in range(cfg.shots):
        grey = shot == grey_shot
        scene, info = _make_scene(cfg, shot, float(lumas[shot]), grey)
        scene.objects = _make_objects(cfg, shot, fast_shots[shot], grey, float(lumas[shot]), len(objects))
        objects.extend(scene.objects)
        shots_info.append({"start": shot * F, "end": (shot + 1) * F, **info})

        for k in range(F):
            t = shot * F + k
            x = _render_clean_frame(scene, k, t, W, H)
            clean[t] = to_uint(x, np.uint8)

            q = damage.apply(x, t)
            degraded[t] = q

    audio, chords = _audio(cfg)
    for ob in objects:
        for key in [k for k in ob if k.startswith("_")]:
            del ob[key]
    for sc in scratches:
        del sc["_profiles"]

    truth = {
        "seed": cfg.seed, "width": W, "height": H, "frames": T,
        "fps": f"{cfg.fps.numerator}/{cfg.fps.denominator}", "scale": float(s),
        "config": cfg.to_dict(),
        "cuts": [k * F for k in range(1, cfg.shots)],
        "shots": shots_info,
        "moving_objects": objects,
        "fade": fade, "flicker": flick, "weave": weave, "grain": grain,
        "scratches": scratches, "blotches": blotches,
        "audio": {"sample_rate": cfg.audio_sample_rate, "samples": int(audio.shape[1]), "chords": chords},
    }
    return SynthFilm(clean=clean, degraded=degraded, audio=audio, audio_sample_rate=cfg.audio_sample_rate,
                     truth=truth)


def _apply_scratch(x: np.ndarray, sc: dict, k: int, H: int, W: int) -> None:
    cols, cov = _scratch_columns(sc["x"][k], sc["width"], W)
    if cols.size == 0:
        return
    dur = sc["end"] - sc["start"]
    p0, p1 = sc["_profiles"]
    f = k / max(dur - 1, 1)
    prof = (0.55 + 0.45 * ((1 - f) * p0 + f * p1)).astype(np.float32)
    present = np.zeros(H, np.float32)
    for y0, y1 in sc["segments"][k]:
        present[y0:y1] = 1.0
    inten = np.float32(sc["strength"][k]) * (prof * present)[:, None] * cov[None, :]  # (H, ncols)
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    roi = x[:, c0:c1]
    if sc["polarity"] == "dark":
        roi *= (1.0 - inten)[..., None]
    else:
        roi += inten[..., None] * (1.0 - roi)


def _apply_blotches(rng: np.random.Generator, x: np.ndarray, q: np.ndarray, t: int, s: float,
                    blotches: list[dict]) -> None:
    """Dust/dirt on frame t: edits q (uint8) in place, appends truth records."""
    H, W = q.shape[:2]
    if rng.random() >= 0.4:
        return
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, 6))):
        radius = max((2.0 + 10.0 * rng.random() ** 2) * s, 1.0)
        polarity = "dark" if rng.random() < 0.7 else "bright"
        opacity = float(rng.uniform(0.7, 1.0))
        alpha = _blotch_shape(rng, radius) * np.float32(opacity)
        level = rng.uniform(0.02, 0.09) if polarity == "dark" else rng.uniform(0.9, 0.98)
        tint = np.array([1.08, 1.0, 0.9], np.float32) if polarity == "dark" else np.ones(3, np.float32)
        P = alpha.shape[0]
        texture = 1.0 + 0.3 * cv2.GaussianBlur(rng.random((P, P), dtype=np.float32) - 0.5, (0, 0), 0.8)
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        placed = None
        for _try in range(10):
            bx0, by0 = int(cx) - P // 2, int(cy) - P // 2
            box = (bx0 - 1, by0 - 1, bx0 + P + 1, by0 + P + 1)
            if all(box[2] <= o[0] or o[2] <= box[0] or box[3] <= o[1] or o[3] <= box[1] for o in taken):
                placed = (bx0, by0)
                break
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        if placed is None:
            continue
        bx0, by0 = placed
        taken.append((bx0 - 1, by0 - 1, bx0 + P + 1, by0 + P + 1))
        fx0, fy0 = max(bx0, 0), max(by0, 0)
        fx1, fy1 = min(bx0 + P, W), min(by0 + P, H)
        if fx1 <= fx0 or fy1 <= fy0:
            continue
        a = alpha[fy0 - by0:fy1 - by0, fx0 - bx0:fx1 - bx0][..., None]
        target = np.clip(level * texture[fy0 - by0:fy1 - by0, fx0 - bx0:fx1 - bx0][..., None] * tint, 0, 1)
        pre = x[fy0:fy1, fx0:fx1]
        q1 = to_uint(pre * (1 - a) + target * a, np.uint8)
        q0 = q[fy0:fy1, fx0:fx1]
        changed = (np.abs(q1.astype(np.int16) - q0.astype(np.int16)) > 2).any(axis=-1)
        if not changed.any():
            continue
        q0[changed] = q1[changed]
        ys, xs = np.nonzero(changed)
        blotches.append({
            "id": len(blotches), "frame": int(t),
            "bbox": [int(fx0 + xs.min()), int(fy0 + ys.min()), int(fx0 + xs.max() + 1), int(fy0 + ys.max() + 1)],
            "polarity": polarity, "opacity": opacity, "radius": float(radius),
            "spans": _spans(changed, fy0, fx0),
        })


# --------------------------------------------------------------------------------------------------
# Masks rebuilt from the truth
# --------------------------------------------------------------------------------------------------


def _empty_masks(truth: dict) -> np.ndarray:
    return np.zeros((int(truth["frames"]), int(truth["height"]), int(truth["width"])), bool)


def blotch_masks(truth: dict) -> np.ndarray:
    """(T, H, W) bool: exactly the pixels blotches changed (by > 2 code values in some channel)."""
    m = _empty_masks(truth)
    for b in truth["blotches"]:
        frame = m[int(b["frame"])]
        for y, x0, x1 in b["spans"]:
            frame[y, x0:x1] = True
    return m


def scratch_masks(truth: dict) -> np.ndarray:
    """(T, H, W) bool: where line scratches lie (every column a scratch touches, on its present rows).

    Pixels outside this mask are never changed by scratches; inside it they may be changed
    by as little as nothing (faint edge coverage, saturated content).
    """
    m = _empty_masks(truth)
    W = int(truth["width"])
    for sc in truth["scratches"]:
        for k, t in enumerate(range(int(sc["start"]), int(sc["end"]))):
            cols, _ = _scratch_columns(sc["x"][k], sc["width"], W)
            if cols.size == 0:
                continue
            for y0, y1 in sc["segments"][k]:
                m[t, y0:y1, int(cols[0]):int(cols[-1]) + 1] = True
    return m


def moving_object_masks(truth: dict, fast_only: bool = True) -> np.ndarray:
    """(T, H, W) bool: pixels covered by moving objects in the clean frames.

    By default only the small fast objects (those a dust detector must not mistake
    for dirt); `fast_only=False` includes the slow, larger ones too.
    """
    m = _empty_masks(truth)
    H, W = int(truth["height"]), int(truth["width"])
    for ob in truth["moving_objects"]:
        if fast_only and not ob["fast"]:
            continue
        rx, ry = ob["radius"]
        for key, (cx, cy) in ob["centers"].items():
            y0, x0, alpha = _object_alpha(ob["kind"], cx, cy, rx, ry, W, H)
            h, w = alpha.shape
            if h:
                m[int(key), y0:y0 + h, x0:x0 + w] |= alpha > 0
    return m
