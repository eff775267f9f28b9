"""Learning a grade as a 3D LUT, applying it, and the .cube format, on colours with known answers."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

from models.clip import Clip
from models.grade import (
    RIDGE_GRID,
    SMOOTH_GRID,
    Grade,
    HistogramTransfer,
    ReinhardTransfer,
    apply_lut,
    delta_e00,
    gray_world,
    identity_lut,
    learn_grade,
    read_cube,
    write_cube,
)
from models.synth import SynthConfig, render_film
from models.synth_grade import BLEACH_WARM, YELLOW_FADE

FPS = Fraction(24)


def _lut_of(fn, size: int = 17) -> np.ndarray:
    """A LUT sampling the per-pixel function `fn` on the lattice."""
    return fn(identity_lut(size)).astype(np.float32)


# ---------------------------------------------------------------------------------------- applying


def test_identity_lut_is_identity_and_keeps_16_bit_precision():
    rng = np.random.default_rng(0)
    x = rng.random((5000, 3), dtype=np.float32)
    for size in (2, 17, 33):
        np.testing.assert_allclose(apply_lut(identity_lut(size), x), x, atol=1e-5)
    code = np.linspace(0, 65535, 8192).round().astype(np.uint16)
    ramp = np.repeat((code.astype(np.float32) / 65535)[:, None], 3, axis=1).reshape(64, 128, 3)
    ramp[..., 1] = ramp[..., 1] ** 0.8  # not only greys
    out = apply_lut(identity_lut(33), ramp)
    assert out.dtype == np.float32 and out.shape == ramp.shape
    assert np.abs(out - ramp).max() < 2 / 65535
    levels = np.unique(np.rint(out[..., 0] * 65535)).size
    assert levels > 4000, levels


def test_apply_lut_is_trilinear_and_clamps():
    lut = _lut_of(lambda x: x ** 2, size=5)
    # lattice points come back exactly, and between them it is linear interpolation
    node = np.array([[0.25, 0.5, 0.75]], np.float32)
    np.testing.assert_allclose(apply_lut(lut, node), node ** 2, atol=1e-6)
    mid = np.array([[0.125, 0.125, 0.125]], np.float32)
    np.testing.assert_allclose(apply_lut(lut, mid), [[0.03125] * 3], atol=1e-6)
    # outside the cube: clamped first, so equals the cube's edge
    np.testing.assert_allclose(apply_lut(lut, np.array([[-0.5, 1.5, 0.5]], np.float32)), [[0.0, 1.0, 0.25]],
                               atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        apply_lut(np.zeros((4, 4, 3, 3), np.float32), node)


# ---------------------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def graded_film():
    """A clean 4-shot render, faded with YELLOW_FADE (stored at 16 bits) and graded with BLEACH_WARM."""
    cfg = SynthConfig(width=160, height=120, shots=4, frames_per_shot=5, seed=11, blotches=False,
                      scratches=False, flicker=False, grain=False, fade=False, weave=False)
    clean = render_film(cfg).clean.astype(np.float32) / 255
    faded = np.rint(YELLOW_FADE(clean) * 65535).astype(np.uint16).astype(np.float32) / 65535
    return faded, BLEACH_WARM(clean), cfg.frames_per_shot


def test_learned_grade_carries_to_held_out_frames(graded_film):
    faded, graded, fps_shot = graded_film
    train = [k * fps_shot + fps_shot // 2 for k in (0, 1, 3)]  # a middle frame of three of the shots
    test = [t for t in range(len(faded)) if t not in train]
    pairs = [(faded[t], graded[t]) for t in train]
    lut, report = learn_grade(pairs, size=17, smooth=1e-4, ridge=1e-7)
    assert lut.shape == (17, 17, 17, 3) and report["pairs"] == 3 and report["smooth"] == 1e-4
    assert "cv_delta_e00" not in report  # settings given: no cross-validation
    de = float(delta_e00(apply_lut(lut, faded[test]), graded[test]).mean())
    src, dst = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    de_reinhard = float(delta_e00(ReinhardTransfer().fit(src, dst).apply(faded[test]), graded[test]).mean())
    de_hist = float(delta_e00(HistogramTransfer().fit(src, dst).apply(faded[test]), graded[test]).mean())
    de_input = float(delta_e00(faded[test], graded[test]).mean())
    print(f"held-out mean dE00: LUT {de:.3f}, Reinhard {de_reinhard:.3f} (ratio {de / de_reinhard:.3f}), "
          f"histogram {de_hist:.3f}, ungraded {de_input:.3f}; train {report['train_delta_e00']}")
    assert de <= 1.5, de
    assert de <= 0.3 * de_reinhard, (de, de_reinhard)
    assert de < de_hist
    assert report["train_delta_e00"] < 1.0


def test_cross_validation_picks_the_best_setting(graded_film):
    faded, graded, fps_shot = graded_film
    pairs = [(faded[t, ::2, ::2], graded[t, ::2, ::2]) for t in (2, 7, 17)]
    lut, report = learn_grade(pairs, size=9, cv_samples=2000)
    grid = report["cv_grid"]
    assert len(grid) == len(SMOOTH_GRID) * len(RIDGE_GRID)
    best = min(grid, key=grid.get)
    assert best == f"smooth={report['smooth']:g},ridge={report['ridge']:g}"
    assert report["cv_delta_e00"] == min(grid.values())
    assert report["cv_delta_e00"] < 3.0, report
    assert lut.shape == (9, 9, 9, 3)


def _mid_range_pairs(truth, n: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    src = (0.2 + 0.4 * rng.random((n, 64, 64, 3))).astype(np.float32)  # colours in [0.2, 0.6]^3 only
    return [(s, truth(s)) for s in src]


GREY = np.repeat(np.linspace(0, 1, 1025, dtype=np.float32)[:, None], 3, axis=1)


def _grey_axis_drop(lut: np.ndarray) -> np.ndarray:
    """Per channel, the largest fall of the LUT's output along the grey axis (0 when monotone)."""
    g = apply_lut(lut, GREY)
    return (np.maximum.accumulate(g, axis=0) - g).max(axis=0)


def test_extrapolation_outside_the_seen_colours_is_gentle():
    gain = np.array([1.0, 0.9, 0.8], np.float32)
    gamma = np.array([0.8, 0.9, 1.0], np.float32)

    def truth(x):
        return np.clip(gain * np.clip(x, 0, 1) ** gamma, 0, 1).astype(np.float32)

    lut, _ = learn_grade(_mid_range_pairs(truth), size=17, smooth=1e-4, ridge=1e-7)
    assert lut.min() >= 0.0 and lut.max() <= 1.0
    # the grey axis stays monotone, well beyond the seen range
    drop = _grey_axis_drop(lut)
    assert np.all(drop < 1e-5), drop
    # colours outside the range land inside the cube, nearer the truth than doing nothing
    x = np.random.default_rng(4).random((20000, 3), dtype=np.float32)
    x = x[((x < 0.15) | (x > 0.65)).any(axis=1)]
    y = apply_lut(lut, x)
    assert y.min() >= 0.0 and y.max() <= 1.0
    err_lut = float(np.abs(y - truth(x)).mean())
    err_id = float(np.abs(x - truth(x)).mean())
    de_lut = float(delta_e00(y, truth(x)).mean())
    de_id = float(delta_e00(x, truth(x)).mean())
    print(f"outside the seen range: |err| LUT {err_lut:.4f} vs identity {err_id:.4f}; "
          f"dE00 {de_lut:.2f} vs {de_id:.2f}")
    assert err_lut < 0.5 * err_id, (err_lut, err_id)
    assert de_lut < 0.5 * de_id, (de_lut, de_id)


def test_extrapolating_a_darkening_gamma_keeps_the_grey_axis_monotone():
    """A print's dye loss darkens midtones (gamma > 1: YELLOW_FADE's blue has 1.3). Learned from
    mid-range colours only, the LUT must still be a rising curve down to black."""

    def truth(x):
        return (np.clip(x, 0, 1) ** 1.3).astype(np.float32)

    lut, _ = learn_grade(_mid_range_pairs(truth), size=17, smooth=1e-4, ridge=1e-7)
    g = apply_lut(lut, GREY)
    drop = _grey_axis_drop(lut)
    print(f"grey axis: in 0 -> {g[0, 1]:.4f}, in 1/16 -> {g[64, 1]:.4f}, largest fall {drop.max():.4f}")
    assert np.all(drop < 1e-3), f"grey axis falls by {drop} near black (0 -> {g[0]}, 1/16 -> {g[64]})"


def test_learn_grade_validates_inputs():
    a = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="at least one"):
        learn_grade([])
    with pytest.raises(ValueError, match="pair 0"):
        learn_grade([(a, np.zeros((8, 9, 3), np.float32))])
    with pytest.raises(ValueError, match=r"pair 1.*same \(H, W, 3\)"):
        learn_grade([(a, a), (a[..., :2], a[..., :2])])


# ---------------------------------------------------------------------------------------- .cube


def test_cube_round_trip_and_layout():
    lut = _lut_of(BLEACH_WARM, size=9)
    text = write_cube(lut, title='a "quoted"\ntitle', comments=["made by a test", "two\nlines"])
    head = text.splitlines()
    assert "LUT_3D_SIZE 9" in head
    assert head.count('TITLE "a \'quoted\'\'title"') == 1
    assert head[:3] == ["# made by a test", "# two", "# lines"]
    data = [ln for ln in head if ln and ln[0].isdigit()]
    assert len(data) == 9 ** 3
    # red changes fastest: the second entry is lut[1, 0, 0], the tenth lut[0, 1, 0]
    np.testing.assert_allclose([float(v) for v in data[1].split()], lut[1, 0, 0], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in data[9].split()], lut[0, 1, 0], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in data[81].split()], lut[0, 0, 1], atol=1e-6)
    back = read_cube(text)
    assert back.shape == lut.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, lut, atol=1e-6)


def _import_colour_science():
    """colour-science, without the MagicMock it puts in sys.modules for a missing matplotlib (which
    breaks later importers that probe for matplotlib, such as diffusers)."""
    import sys
    from unittest.mock import MagicMock

    had = {k for k in sys.modules if k.split(".")[0] == "matplotlib"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    for name in [k for k, v in sys.modules.items() if k.split(".")[0] == "matplotlib" and k not in had
                 and isinstance(v, MagicMock)]:
        del sys.modules[name]
    return colour


def test_cube_agrees_with_colour_science(tmp_path):
    colour = _import_colour_science()
    lut = _lut_of(lambda x: BLEACH_WARM(YELLOW_FADE(x)), size=17)
    path = tmp_path / "grade.cube"
    path.write_text(write_cube(lut))
    theirs = colour.read_LUT(str(path))
    assert theirs.size == 17
    rng = np.random.default_rng(5)
    x = rng.random((4000, 3)).astype(np.float32)
    a = apply_lut(lut, x)
    b = np.clip(theirs.apply(x), 0, 1)
    de = delta_e00(a, b)
    print(f"colour-science vs apply_lut: max dE00 {de.max():.2e}, max |diff| {np.abs(a - b).max():.2e}")
    assert de.max() < 1.0, de.max()
    np.testing.assert_allclose(theirs.table, lut, atol=1e-6)  # same [r, g, b] indexing


HAND_WRITTEN = """# a hand-written LUT
TITLE "tiny"
# entries below, red fastest

LUT_3D_SIZE 2
DOMAIN_MIN 0 0 0
DOMAIN_MAX 1.0 1.0 1.0
0.00 0.01 0.02
0.10 0.11 0.12
0.20 0.21 0.22
0.30 0.31 0.32
0.40 0.41 0.42
0.50 0.51 0.52
0.60 0.61 0.62
  0.70 0.71 0.72
"""


def test_read_hand_written_cube():
    lut = read_cube(HAND_WRITTEN)
    assert lut.shape == (2, 2, 2, 3)
    for r in (0, 1):
        for g in (0, 1):
            for b in (0, 1):
                k = r + 2 * g + 4 * b  # line order
                np.testing.assert_allclose(lut[r, g, b], [k / 10, k / 10 + 0.01, k / 10 + 0.02], atol=1e-6)


@pytest.mark.parametrize("text, message", [
    ("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n", "1D LUT"),
    (HAND_WRITTEN.replace("  0.70 0.71 0.72\n", ""), "needs 8 entries, found 7"),
    (HAND_WRITTEN + "0.8 0.8 0.8\n", "needs 8 entries, found 9"),
    (HAND_WRITTEN.replace("0.30 0.31 0.32", "0.30 abc 0.32"), "not a LUT entry"),
    (HAND_WRITTEN.replace("0.30 0.31 0.32", "0.30 0.31"), "three finite numbers"),
    (HAND_WRITTEN.replace("0.30 0.31 0.32", "0.30 nan 0.32"), "three finite numbers"),
    (HAND_WRITTEN.replace("DOMAIN_MAX 1.0 1.0 1.0", "DOMAIN_MAX 2.0 2.0 2.0"), "DOMAIN_MAX.*not supported"),
    (HAND_WRITTEN.replace("DOMAIN_MIN 0 0 0", "DOMAIN_MIN -0.1 0 0"), "DOMAIN_MIN.*not supported"),
    (HAND_WRITTEN.replace("LUT_3D_SIZE 2\n", ""), "no LUT_3D_SIZE"),
    (HAND_WRITTEN.replace("LUT_3D_SIZE 2", "LUT_3D_SIZE two"), "bad LUT_3D_SIZE"),
    (HAND_WRITTEN.replace("LUT_3D_SIZE 2", "LUT_3D_SIZE 1"), "must be 2..256"),
])
def test_read_cube_rejects_bad_files(text, message):
    with pytest.raises(ValueError, match=message):
        read_cube(text)


# ---------------------------------------------------------------------------------------- stage


def test_grade_stage_applies_its_bound_lut():
    rng = np.random.default_rng(2)
    clip = Clip(rng.random((2, 24, 32, 3), dtype=np.float32), FPS)
    with pytest.raises(ValueError, match="no LUT"):
        Grade().process(clip)
    lut = _lut_of(BLEACH_WARM)
    out, report = Grade().bind(lut=lut, label="bleach").process(clip)
    np.testing.assert_array_equal(out.frames, apply_lut(lut, clip.frames))
    assert report == {"lut_size": 17, "lut_label": "bleach"}
    assert np.abs(out.frames - clip.frames).max() > 0.05
    half = Grade(strength=0.5).bind(lut=lut)(clip).frames
    np.testing.assert_allclose(half, 0.5 * (clip.frames + out.frames), atol=1e-5)
    none = Grade(strength=0.0).bind(lut=lut)(clip).frames
    np.testing.assert_array_equal(none, clip.frames)


def test_grade_spec_carries_the_lut_digest():
    a, b = _lut_of(BLEACH_WARM), _lut_of(YELLOW_FADE)
    stage = Grade()
    assert "bound" not in stage.spec()
    sa, sb = stage.bind(lut=a).spec(), stage.bind(lut=b).spec()
    assert sa["bound"] != sb["bound"]
    assert sa == stage.bind(lut=a.copy()).spec()
    nudged = a.copy()
    nudged[8, 8, 8, 0] += 1e-4
    assert stage.bind(lut=nudged).spec()["bound"] != sa["bound"]
    assert "bound" not in stage.spec()  # binding made a copy


def test_gray_world_balances_channel_means():
    rng = np.random.default_rng(4)
    img = (rng.random((32, 32, 3)) * [0.9, 0.6, 0.5]).astype(np.float32)
    out = gray_world(img)
    means = out.reshape(-1, 3).mean(0)
    assert means.max() - means.min() < 1e-3
    assert means.max() - means.min() < 0.1 * np.ptp(img.reshape(-1, 3).mean(0))
