"""Film grain: measure it from what a denoiser removed, and synthesise new grain like it.

Model (the same shape as the synthetic film's, `models.synth`): per channel c,

    grain_c(p) = std_c(L(p)) * n_c(p),   n = blur(sqrt(1 - m^2) * z_c + m * z_mono) / norm

with z white unit Gaussians drawn afresh for every frame, `blur` a Gaussian of
`blur_sigma` pixels (renormalised so n has unit variance), `m` the mono fraction
(inter-channel correlation of n is m^2) and std_c(L) a curve of the luma L of the
clean picture, kept as values at up to 8 luma bins and interpolated linearly.

Measurement (`measure_grain`) works on the residual source - denoised. Every
scale is robust (a 3-sigma-truncated std started from the median absolute
deviation, see `_rscale`, never a plain variance), so flow failures, moving
objects and edges the denoiser blurred do not inflate it:

- std per bin (8 equal bins of the denoised luma) and channel: robust std of the
  residual in that bin; bins with fewer than `min_count` pixels are left out;
- spatial correlation: the lag-1 autocorrelation rho1 from the robust scale of
  neighbour differences, var(a - b) = 2 var(a) (1 - rho1), averaged over the
  horizontal and vertical directions, then inverted to the blur sigma whose
  (discrete, same kernel as synthesis) blurred white noise has that rho1;
- chroma: the inter-channel correlation from var(a - b) = var a + var b - 2 rho sa sb.

A temporal denoiser does not remove all the grain: what it leaves (and the part
of the residual that is really the neighbours' grain) makes the raw residual
smaller than the grain. The caller may pass `residual_gain`, the per-pixel ratio
std(residual) / std(grain) it expects (see `models.denoise`); the residual is
divided by it (pixels where it is below 0.3, i.e. where nothing was removed, are
left out). Without it, `measure_grain(frames, Denoise()(clip).frames)` reads
~20 % low on the synthetic films (0.77-0.80 of the true std).

`synthesize_grain` draws frame t's noise from `np.random.default_rng([seed,
first_frame + t])`: grain depends on the absolute frame index, not on where a
chunk starts, so chunked processing gives the same grain as whole-clip processing.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.clip import luma

N_BINS = 8
_MAD = 1.4826
_TRUNC3 = 0.98658  # std of a unit Gaussian truncated to |z| < 3
_MAX_ROWS = 256  # rows sampled per frame (keeps a 4K frame's measurement ~ as cheap as a 1080p one)


class GrainModel(BaseModel):
    """Measured grain statistics (JSON-able: `model_dump(mode="json")` / `model_validate`)."""

    model_config = ConfigDict(frozen=True)

    luma: list[float] = Field(description="mean clean luma of each populated bin, ascending")
    std: list[list[float]] = Field(description="grain std per bin and RGB channel, 0-1 units")
    count: list[int] = Field(description="residual pixels measured in each bin")
    blur_sigma: float = Field(ge=0, description="Gaussian blur (px) of white noise with the same lag-1 correlation")
    lag1: float = Field(description="measured lag-1 spatial autocorrelation (mean of horizontal and vertical)")
    mono: float = Field(ge=0, le=1, description="shared fraction m: inter-channel correlation is m^2")

    @classmethod
    def none(cls) -> GrainModel:
        """No grain at all."""
        return cls(luma=[0.5], std=[[0.0, 0.0, 0.0]], count=[0], blur_sigma=0.0, lag1=0.0, mono=0.0)

    def std_at(self, lum: np.ndarray | float) -> np.ndarray:
        """Grain std per channel at luma `lum`: shape (*lum.shape, 3), float32 (flat beyond the ends)."""
        y = np.asarray(lum, dtype=np.float32)
        xs = np.asarray(self.luma, dtype=np.float32)
        s = np.asarray(self.std, dtype=np.float32)
        return np.stack([np.interp(y, xs, s[:, c]).astype(np.float32) for c in range(3)], axis=-1)

    @property
    def sigma_mid(self) -> float:
        """Grain std at mid-grey (luma 0.5), mean over channels."""
        return float(self.std_at(0.5).mean())

    def scaled(self, factor: float) -> GrainModel:
        """The same grain with every std multiplied by `factor`."""
        return self.model_copy(update={"std": [[v * factor for v in row] for row in self.std]})


# --- spatial correlation <-> blur sigma ------------------------------------------------------------


def grain_kernel(blur_sigma: float) -> np.ndarray:
    """1-D Gaussian kernel used for synthesis (as `models.synth` draws its grain)."""
    if blur_sigma <= 0:
        return np.ones((1, 1), np.float32)
    ksz = 2 * int(math.ceil(3 * blur_sigma)) + 1
    return cv2.getGaussianKernel(ksz, blur_sigma, cv2.CV_32F)


def _lag1_of_kernel(k: np.ndarray) -> float:
    k = k.astype(np.float64).ravel()
    return float((k[1:] * k[:-1]).sum() / (k * k).sum()) if k.size > 1 else 0.0


@lru_cache(maxsize=1)
def _lag1_table() -> tuple[np.ndarray, np.ndarray]:
    sig = np.linspace(0.05, 8.0, 800)
    rho = np.array([_lag1_of_kernel(grain_kernel(s)) for s in sig])
    return sig, np.maximum.accumulate(rho)  # monotone for np.interp


def blur_for_lag1(rho1: float) -> float:
    """Blur sigma (px) whose blurred white noise has lag-1 autocorrelation `rho1` (0 if rho1 <= ~0)."""
    sig, rho = _lag1_table()
    if not np.isfinite(rho1) or rho1 <= rho[0]:
        return 0.0
    return float(np.interp(min(rho1, rho[-1]), rho, sig))


# --- measurement ---------------------------------------------------------------------------------


def _rscale(x: np.ndarray) -> float:
    """Robust std of a Gaussian core with outliers: 3-sigma-truncated std, started from the MAD.

    The median absolute deviation alone is a poor estimator on quantised data (residuals of
    8-bit frames are whole code values, so the MAD jumps in steps of 1/255); the truncated
    std is smooth in the data and bounded against outliers. Two refinements from the MAD,
    each corrected for the variance a 3-sigma truncation removes from a Gaussian.
    """
    x = np.asarray(x, np.float32).ravel()
    if x.size < 2:
        return float("nan")
    med = float(np.median(x))
    d = np.abs(x - med)
    s = _MAD * float(np.median(d))
    if not s > 0:
        s = float(d.std())
    if not s > 0:
        return 0.0
    for _ in range(2):
        inner = x[d < 3.0 * s]
        s = float(inner.std()) / _TRUNC3
    return s


def measure_grain(source: np.ndarray, denoised: np.ndarray, residual_gain: np.ndarray | None = None,
                  min_count: int = 1000) -> GrainModel:
    """Grain model of `source` given its denoised version (both (T, H, W, 3) or (H, W, 3), float in [0, 1]).

    residual_gain: optional (T, H, W) / (H, W) expected std(residual) / std(grain) per pixel.
    min_count:     bins with fewer residual pixels are left out (the curve is interpolated over them).
    """
    src = np.asarray(source, np.float32)
    den = np.asarray(denoised, np.float32)
    if src.shape != den.shape or src.shape[-1] != 3:
        raise ValueError(f"source and denoised must have the same (..., H, W, 3) shape, got {src.shape}, {den.shape}")
    if src.ndim == 3:
        src, den = src[None], den[None]
        if residual_gain is not None:
            residual_gain = np.asarray(residual_gain)[None]
    _, H, W, _ = src.shape
    m = max(2, min(H, W) // 32)  # borders: warps replicate edges there
    rows = np.arange(m, H - m - 1)
    if rows.size > _MAX_ROWS:
        rows = rows[np.linspace(0, rows.size - 1, _MAX_ROWS).round().astype(int)]
    cols = slice(m, W - m)

    res, res_dn, lum, ok = [], [], [], []
    for t in range(src.shape[0]):
        r = src[t] - den[t]
        a = r[rows, cols]  # sampled rows
        b = r[rows + 1, cols]  # the rows just below (vertical pairs)
        y = luma(den[t][rows, cols])
        valid = np.ones(y.shape, bool)
        if residual_gain is not None:
            g = np.asarray(residual_gain[t], np.float32)
            ga, gb = g[rows, cols], g[rows + 1, cols]
            valid = (ga >= 0.3) & (gb >= 0.3)
            a = a / np.maximum(ga, 0.3)[..., None]
            b = b / np.maximum(gb, 0.3)[..., None]
        res.append(a)
        res_dn.append(b)
        lum.append(y)
        ok.append(valid)
    a = np.concatenate(res, axis=1)  # (rows, T*cols, 3)
    b = np.concatenate(res_dn, axis=1)
    y = np.concatenate(lum, axis=1)
    valid = np.concatenate(ok, axis=1)

    # (a) std per luma bin and channel
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    idx = np.clip(np.digitize(y, edges) - 1, 0, N_BINS - 1)
    lvals, svals, counts = [], [], []
    for k in range(N_BINS):
        sel = (idx == k) & valid
        n = int(sel.sum())
        if n < min_count:
            continue
        v = a[sel]
        lvals.append(float(y[sel].mean()))
        svals.append([_rscale(v[:, c]) for c in range(3)])
        counts.append(n)
    if not counts:
        return GrainModel.none()

    # (b) lag-1 autocorrelation, horizontal and vertical, from robust scales of differences
    h_ok = valid[:, 1:] & valid[:, :-1]
    rhos = []
    for c in range(3):
        s0 = _rscale(a[..., c][valid])
        if not s0 > 0:
            continue
        dh = _rscale((a[:, 1:, c] - a[:, :-1, c])[h_ok])
        dv = _rscale((b[..., c] - a[..., c])[valid])
        rhos.append(1.0 - 0.5 * ((dh / s0) ** 2 + (dv / s0) ** 2) / 2.0)
    lag1 = float(np.mean(rhos)) if rhos else 0.0

    # (c) inter-channel correlation -> mono fraction
    s = [_rscale(a[..., c][valid]) for c in range(3)]
    cors = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        if s[i] > 0 and s[j] > 0:
            d = _rscale((a[..., i] - a[..., j])[valid])
            cors.append((s[i] ** 2 + s[j] ** 2 - d ** 2) / (2 * s[i] * s[j]))
    rho_c = float(np.clip(np.mean(cors), 0.0, 1.0)) if cors else 0.0

    return GrainModel(luma=lvals, std=svals, count=counts, blur_sigma=blur_for_lag1(lag1),
                      lag1=lag1, mono=math.sqrt(rho_c))


# --- synthesis -----------------------------------------------------------------------------------


def unit_grain(model: GrainModel, height: int, width: int, seed: int, frame_index: int) -> np.ndarray:
    """(H, W, 3) float32 unit-variance grain pattern of frame `frame_index` (blurred, channel-correlated)."""
    rng = np.random.default_rng([int(seed), int(frame_index)])
    m = float(model.mono)
    n = rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(math.sqrt(max(0.0, 1 - m * m)))
    n += rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(m)
    k = grain_kernel(model.blur_sigma)
    if k.size > 1:
        n = cv2.sepFilter2D(n, -1, k, k, borderType=cv2.BORDER_REFLECT)
        n *= np.float32(1.0 / float((k.astype(np.float64) ** 2).sum()))
    return n


def synthesize_grain(model: GrainModel, luma_frames: np.ndarray, seed: int = 0, first_frame: int = 0) -> np.ndarray:
    """(T, H, W, 3) float32 grain with `model`'s statistics for clean frames of luma `luma_frames` (T, H, W).

    Frame t's noise depends only on (seed, first_frame + t): deterministic, new every frame,
    and identical whichever chunk the frame is processed in.
    """
    y = np.asarray(luma_frames, np.float32)
    if y.ndim == 2:
        y = y[None]
    T, H, W = y.shape
    out = np.empty((T, H, W, 3), np.float32)
    for t in range(T):
        out[t] = unit_grain(model, H, W, seed, first_frame + t) * model.std_at(y[t])
    return out
