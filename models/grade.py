"""Learning a colourist's grade from a few (original, graded) frame pairs, as a 3D LUT.

The transform is a lattice of `size`^3 output colours over the working space's R'G'B' cube
(BT.709, gamma-encoded, full range, [0, 1]; see `models.clip`), read with trilinear
interpolation, which is what a `.cube` file means to DaVinci Resolve, OCIO and colour-science.

Fitting (`fit_lut`) is regularised least squares over the lattice:

    minimise  sum_i |L(x_i) - y_i|^2                     data: every pixel of every pair
            + smooth * n * sum |second differences of L|^2   along each axis: bends are costly,
                                                           straight lines are free
            + prior * n * sum |L - P|^2                    a weak pull towards a global
                                                           colour-matrix-plus-curves fit P

so inside the colours seen the lattice follows the data, between them it interpolates smoothly,
and far from them it continues the global fit instead of inventing colour ("extrapolate
gently"). One preconditioned conjugate-gradient solve per channel; 33^3 takes well under a second.

Baselines for the benchmark, fitted on the same pairs: gray-world white balance, Reinhard
mean/std transfer in CIELAB, and per-channel histogram matching.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field
from scipy import sparse
from scipy.sparse.linalg import cg
from skimage import color as skcolor
from threadpoolctl import threadpool_limits

from models.clip import Clip
from models.stage import ShotFacts, Stage, StageParams

DEFAULT_SIZE = 33


# --------------------------------------------------------------------------------------------------
# Applying a lattice
# --------------------------------------------------------------------------------------------------


def _cell(rgb: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower lattice index (int) and fractional position (float32) of each colour, clamped to the cube."""
    pos = np.clip(rgb.astype(np.float32), 0.0, 1.0) * np.float32(size - 1)
    i0 = np.minimum(pos.astype(np.int32), size - 2)
    return i0, pos - i0


def apply_lut(lut: np.ndarray, rgb: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """`rgb` (..., 3) float in [0, 1] through `lut` (N, N, N, 3) indexed [r, g, b], trilinear.

    Colours outside the cube are clamped to it first (as `.cube` readers do). `strength`
    mixes the graded result with the input (1 = the full grade). float32 out, clipped to [0, 1].
    """
    lut = np.asarray(lut, np.float32)
    size = lut.shape[0]
    if lut.shape != (size, size, size, 3) or size < 2:
        raise ValueError(f"LUT must have shape (N, N, N, 3) with N >= 2, got {lut.shape}")
    shape = rgb.shape
    flat = rgb.reshape(-1, 3)
    table = lut.reshape(-1, 3)
    out = np.empty(flat.shape, np.float32)
    step = 1 << 18  # cache-sized blocks, bounded temporaries on 4K frames
    for a in range(0, flat.shape[0], step):
        i0, f = _cell(flat[a:a + step], size)
        base = (i0[:, 0] * size + i0[:, 1]) * size + i0[:, 2]
        acc = None
        for dr in (0, 1):
            wr = f[:, 0:1] if dr else 1 - f[:, 0:1]
            for dg in (0, 1):
                wrg = wr * (f[:, 1:2] if dg else 1 - f[:, 1:2])
                for db in (0, 1):
                    w = wrg * (f[:, 2:3] if db else 1 - f[:, 2:3])
                    corner = np.take(table, base + ((dr * size + dg) * size + db), axis=0) * w
                    acc = corner if acc is None else acc + corner
        out[a:a + step] = acc
    if strength != 1.0:
        out = flat.astype(np.float32) + np.float32(strength) * (out - flat.astype(np.float32))
    np.clip(out, 0.0, 1.0, out=out)
    return out.reshape(shape)


def identity_lut(size: int = DEFAULT_SIZE) -> np.ndarray:
    axis = np.linspace(0.0, 1.0, size, dtype=np.float64)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Learning a lattice
# --------------------------------------------------------------------------------------------------


def _interp_matrix(x: np.ndarray, size: int) -> sparse.csr_matrix:
    """Sparse (n, size^3) matrix whose rows hold the 8 trilinear weights of each colour."""
    i0, f = _cell(x, size)
    n = x.shape[0]
    rows = np.repeat(np.arange(n), 8)
    cols = np.empty((n, 8), np.int64)
    vals = np.empty((n, 8), np.float64)
    k = 0
    for dr in (0, 1):
        wr = f[:, 0] if dr else 1 - f[:, 0]
        for dg in (0, 1):
            wg = f[:, 1] if dg else 1 - f[:, 1]
            for db in (0, 1):
                wb = f[:, 2] if db else 1 - f[:, 2]
                cols[:, k] = ((i0[:, 0] + dr) * size + (i0[:, 1] + dg)) * size + (i0[:, 2] + db)
                vals[:, k] = wr * wg * wb
                k += 1
    return sparse.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(n, size ** 3))


def _second_differences(size: int) -> sparse.csr_matrix:
    """Stacked second-difference operators along r, g and b over the flattened [r, g, b] lattice."""
    d1 = sparse.diags([np.ones(size - 2), -2 * np.ones(size - 2), np.ones(size - 2)], [0, 1, 2],
                      shape=(size - 2, size))
    eye = sparse.identity(size, format="csr")
    ops = [sparse.kron(sparse.kron(d1, eye), eye), sparse.kron(sparse.kron(eye, d1), eye),
           sparse.kron(sparse.kron(eye, eye), d1)]
    return sparse.vstack(ops).tocsr()


def _curve_basis(x: np.ndarray) -> np.ndarray:
    """Features of the global prior: each channel, its square and cube, and 1 (a colour matrix with
    cubic curves; finite slopes everywhere, so the extrapolated grey axis cannot dip near black)."""
    x = np.clip(x.astype(np.float64), 0.0, 1.0)
    return np.concatenate([x, x * x, x * x * x, np.ones((x.shape[0], 1))], axis=1)


def fit_prior(src: np.ndarray, dst: np.ndarray, ridge: float = 1e-7) -> np.ndarray:
    """Global fit dst ~ F(src) @ W over per-channel curve features (a colour matrix with curves);
    returns W (10, 3). Ridge-regularised towards the identity so few colours cannot make it wild."""
    feats = _curve_basis(src)
    w0 = np.zeros((feats.shape[1], 3))
    w0[:3] = np.eye(3)
    a = feats.T @ feats / len(feats) + ridge * np.eye(feats.shape[1])
    b = feats.T @ (dst.astype(np.float64) - feats @ w0) / len(feats)
    return w0 + np.linalg.solve(a, b)


def _sample(src: np.ndarray, dst: np.ndarray, max_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    src = src.reshape(-1, 3)
    dst = dst.reshape(-1, 3)
    if src.shape != dst.shape:
        raise ValueError(f"original and graded colours differ in count: {src.shape} vs {dst.shape}")
    if len(src) > max_samples:
        idx = np.random.default_rng(seed).choice(len(src), max_samples, replace=False)
        src, dst = src[idx], dst[idx]
    return src.astype(np.float64), dst.astype(np.float64)


def fit_lut(src: np.ndarray, dst: np.ndarray, size: int = DEFAULT_SIZE, smooth: float = 1e-4,
            prior: float = 1e-5, ridge: float = 1e-7, max_samples: int = 2_000_000, seed: int = 0) -> np.ndarray:
    """Learn a (size, size, size, 3) LUT mapping colours `src` (..., 3) to `dst` (..., 3), both
    float in [0, 1] in the working space. See the module docstring for the objective."""
    if not 2 <= size <= 129:
        raise ValueError(f"LUT size must be in 2..129, got {size}")
    x, y = _sample(src, dst, max_samples, seed)
    if len(x) < 16:
        raise ValueError(f"need at least 16 colour samples to learn a grade, got {len(x)}")
    n = float(len(x))
    a = _interp_matrix(x, size)
    d2 = _second_differences(size)
    nodes = identity_lut(size).reshape(-1, 3).astype(np.float64)
    p = _curve_basis(nodes) @ fit_prior(x, y, ridge)
    # solve for the residual r = L - P: smoothness and the pull to zero act on the residual, so
    # far from the data the lattice becomes the global fit itself, curvature and all
    # the pull to the prior is per unit of colour volume (as at size 17), so it means the same at any size
    pull = prior * n * (16.0 / (size - 1)) ** 3
    m = (a.T @ a + (smooth * n) * (d2.T @ d2) + pull * sparse.identity(size ** 3)).tocsr()
    rhs = a.T @ (y - a @ p)
    precond = sparse.diags(1.0 / m.diagonal())
    out = np.empty_like(p)
    for c in range(3):
        # vectors of a few thousand entries: BLAS threads only add synchronisation (10x slower on 2 cores)
        with threadpool_limits(1):
            sol, info = cg(m, rhs[:, c], rtol=1e-8, maxiter=5000, M=precond)
        if info != 0:
            raise RuntimeError(f"LUT fit did not converge (channel {c}, info {info})")
        out[:, c] = p[:, c] + sol
    return np.clip(out, 0.0, 1.0).reshape(size, size, size, 3).astype(np.float32)


SMOOTH_GRID = (1e-5, 3e-5, 1e-4, 3e-4)
RIDGE_GRID = (1e-7, 1e-5)
CV_SIZE = 17


def resample_lut(lut: np.ndarray, size: int) -> np.ndarray:
    """The same trilinear function on a `size` lattice. Exact when (size-1) is a multiple of
    (N-1) (17 -> 33 -> 65): every coarse cell is then split into whole fine cells."""
    if lut.shape[0] == size:
        return np.asarray(lut, np.float32)
    return apply_lut(lut, identity_lut(size))


def learn_grade(pairs: list[tuple[np.ndarray, np.ndarray]], size: int = DEFAULT_SIZE,
                smooth: float | None = None, ridge: float | None = None, cv_size: int = CV_SIZE,
                cv_samples: int = 40_000, max_samples: int = 600_000) -> tuple[np.ndarray, dict[str, Any]]:
    """Learn a grade from (original, graded) frame pairs, each (H, W, 3) float in [0, 1].

    With `smooth`/`ridge` left None and two or more pairs, they are chosen by leave-one-pair-out
    cross-validation (mean CIEDE2000 on the left-out frame), which is the question that matters:
    how well does the grade carry to a frame the colourist did not grade. Returns the LUT and a
    report (chosen settings, cross-validated and training ΔE00).

    Cross-validation fits at `cv_size` (17: 8x fewer unknowns); the final lattice is fitted at
    `size` (finer is better on held-out frames: 0.12-0.24 vs 0.20-0.30 ΔE00 in the benchmark).
    """
    if not pairs:
        raise ValueError("need at least one (original, graded) pair")
    for i, (o, g) in enumerate(pairs):
        if o.shape != g.shape or o.ndim != 3 or o.shape[-1] != 3:
            raise ValueError(f"pair {i}: original {o.shape} and graded {g.shape} must be the same (H, W, 3)")
    smooths = SMOOTH_GRID if smooth is None else (smooth,)
    ridges = RIDGE_GRID if ridge is None else (ridge,)
    cv_size = min(cv_size, size)
    report: dict[str, Any] = {"pairs": len(pairs), "size": size, "cv_size": cv_size}
    rng = np.random.default_rng(0)
    if len(pairs) >= 2 and (len(smooths) > 1 or len(ridges) > 1):
        held = []
        for o, g in pairs:
            idx = rng.choice(o.shape[0] * o.shape[1], min(cv_samples, o.shape[0] * o.shape[1]), replace=False)
            held.append((o.reshape(-1, 3)[idx], g.reshape(-1, 3)[idx]))
        scores = {}
        for sm in smooths:
            for rd in ridges:
                errs = []
                for k in range(len(pairs)):
                    src = np.concatenate([p[0].reshape(-1, 3) for j, p in enumerate(pairs) if j != k])
                    dst = np.concatenate([p[1].reshape(-1, 3) for j, p in enumerate(pairs) if j != k])
                    lut = fit_lut(src, dst, size=cv_size, smooth=sm, ridge=rd, max_samples=max_samples)
                    errs.append(float(delta_e00(apply_lut(lut, held[k][0]), held[k][1]).mean()))
                scores[(sm, rd)] = float(np.mean(errs))
        (smooth, ridge), cv = min(scores.items(), key=lambda kv: kv[1])
        report.update(cv_delta_e00=round(cv, 4), cv_grid={f"smooth={a:g},ridge={b:g}": round(v, 4)
                                                            for (a, b), v in scores.items()})
    smooth = smooths[len(smooths) // 2] if smooth is None else smooth
    ridge = ridges[0] if ridge is None else ridge
    src = np.concatenate([o.reshape(-1, 3) for o, _ in pairs])
    dst = np.concatenate([g.reshape(-1, 3) for _, g in pairs])
    lut = fit_lut(src, dst, size=size, smooth=smooth, ridge=ridge, max_samples=max_samples)
    sub = rng.choice(len(src), min(len(src), 4 * cv_samples), replace=False)
    report.update(smooth=smooth, ridge=ridge,
                  train_delta_e00=round(float(delta_e00(apply_lut(lut, src[sub]), dst[sub]).mean()), 4))
    return lut, report


# --------------------------------------------------------------------------------------------------
# The .cube format (Adobe Cube LUT Specification 1.0, as DaVinci Resolve reads and writes it)
# --------------------------------------------------------------------------------------------------


def write_cube(lut: np.ndarray, title: str = "Reel grade", comments: list[str] | None = None) -> str:
    """Text of a `.cube` 3D LUT: TITLE, LUT_3D_SIZE, DOMAIN_MIN/MAX, then size^3 lines "R G B"
    with red changing fastest, then green, then blue."""
    lut = np.asarray(lut, np.float64)
    size = lut.shape[0]
    if lut.shape != (size, size, size, 3) or size < 2:
        raise ValueError(f"LUT must have shape (N, N, N, 3) with N >= 2, got {lut.shape}")
    safe_title = re.sub(r'["\r\n]', "'", title)[:200]
    lines = [f"# {c}" for c in (comments or []) for c in c.splitlines()]
    lines += [f'TITLE "{safe_title}"', f"LUT_3D_SIZE {size}", "DOMAIN_MIN 0.0 0.0 0.0",
              "DOMAIN_MAX 1.0 1.0 1.0"]
    rows = lut.transpose(2, 1, 0, 3).reshape(-1, 3)  # [b, g, r] order: red fastest
    lines += [f"{r:.7f} {g:.7f} {b:.7f}" for r, g, b in rows]
    return "\n".join(lines) + "\n"


def read_cube(text: str) -> np.ndarray:
    """Parse a `.cube` 3D LUT into (N, N, N, 3) float32 indexed [r, g, b].

    Accepts comments, TITLE, DOMAIN_MIN/MAX (the domain must be [0, 1]: Reel's working space)
    and LUT_1D_SIZE-free files; a 1D LUT, a wrong line count or a non-number is a ValueError.
    """
    size = None
    values: list[list[float]] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = line.split()[0].upper()
        if key == "TITLE":
            continue
        if key == "LUT_1D_SIZE":
            raise ValueError("this is a 1D LUT (LUT_1D_SIZE); Reel applies 3D LUTs")
        if key == "LUT_3D_SIZE":
            try:
                size = int(line.split()[1])
            except (IndexError, ValueError):
                raise ValueError(f"line {no}: bad LUT_3D_SIZE: {raw.strip()[:60]!r}") from None
            if not 2 <= size <= 256:
                raise ValueError(f"line {no}: LUT_3D_SIZE must be 2..256, got {size}")
            continue
        if key in ("DOMAIN_MIN", "DOMAIN_MAX"):
            want = 0.0 if key == "DOMAIN_MIN" else 1.0
            try:
                dom = [float(v) for v in line.split()[1:4]]
            except ValueError:
                raise ValueError(f"line {no}: bad {key}") from None
            if len(dom) != 3 or any(abs(v - want) > 1e-6 for v in dom):
                raise ValueError(f"line {no}: {key} {dom} is not supported (Reel's domain is 0..1)")
            continue
        parts = line.split()
        try:
            row = [float(v) for v in parts]
        except ValueError:
            raise ValueError(f"line {no}: not a LUT entry or keyword: {raw.strip()[:60]!r}") from None
        if len(row) != 3 or not all(math.isfinite(v) for v in row):
            raise ValueError(f"line {no}: a LUT entry needs three finite numbers")
        values.append(row)
    if size is None:
        raise ValueError("no LUT_3D_SIZE line: not a 3D .cube LUT")
    if len(values) != size ** 3:
        raise ValueError(f"LUT_3D_SIZE {size} needs {size ** 3} entries, found {len(values)}")
    arr = np.asarray(values, np.float32).reshape(size, size, size, 3)  # [b, g, r]
    return np.ascontiguousarray(arr.transpose(2, 1, 0, 3))


# --------------------------------------------------------------------------------------------------
# Colour difference and baselines
# --------------------------------------------------------------------------------------------------


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of working-space colours (sRGB/BT.709 primaries, display transfer)."""
    return skcolor.rgb2lab(np.clip(np.asarray(rgb, np.float64), 0, 1))


def delta_e00(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 difference per pixel between two working-space images."""
    return skcolor.deltaE_ciede2000(to_lab(a), to_lab(b))


def gray_world(rgb: np.ndarray) -> np.ndarray:
    """Per-image gray-world white balance: scale channels so their means equal the mean grey."""
    x = np.asarray(rgb, np.float64)
    means = x.reshape(-1, 3).mean(axis=0)
    gains = means.mean() / np.maximum(means, 1e-6)
    return np.clip(x * gains, 0, 1).astype(np.float32)


class ReinhardTransfer:
    """Reinhard et al. (2001) colour transfer: match per-channel mean and std in CIELAB."""

    def fit(self, src: np.ndarray, dst: np.ndarray) -> ReinhardTransfer:
        ls, ld = to_lab(src).reshape(-1, 3), to_lab(dst).reshape(-1, 3)
        self.mu_s, self.sd_s = ls.mean(0), ls.std(0) + 1e-6
        self.mu_d, self.sd_d = ld.mean(0), ld.std(0)
        return self

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        lab = to_lab(rgb)
        lab = (lab - self.mu_s) / self.sd_s * self.sd_d + self.mu_d
        return np.clip(skcolor.lab2rgb(lab), 0, 1).astype(np.float32)


class HistogramTransfer:
    """Per-channel histogram matching fitted on the pairs: a 1D curve per channel that maps the
    originals' cumulative distribution onto the graded one."""

    def fit(self, src: np.ndarray, dst: np.ndarray, bins: int = 1024) -> HistogramTransfer:
        q = np.linspace(0, 1, bins)
        s, d = src.reshape(-1, 3), dst.reshape(-1, 3)
        self.curves = []
        for c in range(3):
            xs, ys = np.quantile(s[:, c], q), np.quantile(d[:, c], q)
            xs, idx = np.unique(xs, return_index=True)
            self.curves.append((xs, ys[idx]))
        return self

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        out = np.empty(rgb.shape, np.float32)
        for c, (xs, ys) in enumerate(self.curves):
            out[..., c] = np.interp(rgb[..., c], xs, ys)
        return out


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------


class GradeParams(StageParams):
    strength: float = Field(1.0, ge=0.0, le=1.0, description="mix of the graded result with the input (1 = full grade)")
    cube: str | None = Field(None, description="a .cube 3D LUT file to apply (else the recipe's learned grade)")


class Grade(Stage):
    """Apply a colourist's grade: a 3D LUT learned from reference pairs (the recipe's `grade`
    section) or read from a `.cube` file. The flow binds the LUT (`bind(lut=...)`); the same
    LUT applies to every frame, so a grade cannot pump."""

    name: ClassVar[str] = "grade"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "apply a 3D LUT grade learned from hand-graded frames or read from a .cube"
    Params = GradeParams
    params: GradeParams

    def prepare(self, shots: Sequence[ShotFacts]) -> list[dict[str, Any]]:
        """Each shot's grade, as the title gives it (`ShotFacts.look`): its LUT and label, or no LUT
        (label "ungraded": the shot is left as it is). Nothing where no look is known (a LUT bound by the
        caller, as `reel grade apply` does, stays)."""
        return [{} if f.look is None else {"lut": f.look.lut, "label": f.look.label} for f in shots]

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        if "lut" not in self.bound:
            raise ValueError("grade stage has no LUT: name reference pairs in the recipe's 'grade' section, "
                             "set cube=FILE, or use `reel grade apply`")
        lut = self.bound["lut"]
        if lut is None:  # a shot no grade reference covers: left as it is
            return clip, {"lut_size": 0, "lut_label": "ungraded"}
        frames = apply_lut(np.asarray(lut, np.float32), clip.frames, self.params.strength)
        return clip.with_frames(frames), {"lut_size": int(np.asarray(lut).shape[0]),
                                          "lut_label": self.bound.get("label", "")}
