"""The automatic colour correction stage on frames whose clean colours are known."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from models.clip import Clip, luma
from models.colour import Colour
from models.grade import delta_e00
from models.synth import SynthConfig, render_film

FPS = Fraction(24)
H, W = 72, 96
# a faded print's cast: lifted, magenta-biased blacks and a green-starved gain
LIFT = np.array([0.07, 0.02, 0.06], np.float32)
GAIN = np.array([0.88, 0.72, 0.85], np.float32)


def cast(frames: np.ndarray, lift: np.ndarray = LIFT, gain: np.ndarray = GAIN) -> np.ndarray:
    return np.clip(lift + gain * frames, 0, 1).astype(np.float32)


def chart(t: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) clean frames: a neutral wedge (black to white) over the top half, coloured
    patches below; and the (H, W) mask of the wedge."""
    img = np.zeros((H, W, 3), np.float32)
    img[: H // 2] = np.linspace(0.0, 1.0, W, dtype=np.float32)[None, :, None]
    patches = [(0.7, 0.25, 0.2), (0.2, 0.55, 0.25), (0.2, 0.3, 0.7), (0.8, 0.7, 0.25),
               (0.55, 0.25, 0.6), (0.25, 0.6, 0.65)]
    pw = W // len(patches)
    for i, c in enumerate(patches):
        img[H // 2:, i * pw:(i + 1) * pw] = c
    rng = np.random.default_rng(0)
    frames = np.stack([np.clip(img + rng.normal(0, 0.004, img.shape), 0, 1) for _ in range(t)])
    wedge = np.zeros((H, W), bool)
    wedge[: H // 2] = True
    return frames.astype(np.float32), wedge


def chroma(px: np.ndarray) -> float:
    """Mean |R-G| + |G-B| of (..., 3) colours: 0 for neutrals."""
    return float(np.mean(np.abs(px[..., 0] - px[..., 1]) + np.abs(px[..., 1] - px[..., 2])))


def test_cast_removed_and_neutrals_made_neutral():
    clean, wedge = chart()
    faded = cast(clean)
    out, report = Colour(scope="shot", cast=1.0, levels=1.0).process(Clip(faded, FPS))  # full strength
    c_in, c_out = chroma(faded[:, wedge]), chroma(out.frames[:, wedge])
    de_in = float(delta_e00(faded, clean).mean())
    de_out = float(delta_e00(out.frames, clean).mean())
    print(f"wedge chroma {c_in:.4f} -> {c_out:.4f}; mean dE00 {de_in:.2f} -> {de_out:.2f}")
    assert c_out < c_in / 4, (c_in, c_out)
    assert de_out < 0.4 * de_in, (de_in, de_out)
    assert not report["colour"]["monochrome"]
    # the patches keep their colour (no monochrome collapse): still clearly chromatic
    assert chroma(out.frames[:, ~wedge]) > 0.5 * chroma(clean[:, ~wedge])


def _tinted_greyscale(t: int = 3) -> tuple[np.ndarray, np.ndarray]:
    clean, _ = chart(t)
    grey = np.repeat(luma(clean)[..., None], 3, axis=-1)
    sepia = cast(grey, np.array([0.06, 0.04, 0.02], np.float32), np.array([0.9, 0.8, 0.66], np.float32))
    return grey, sepia


def test_black_and_white_comes_out_exactly_neutral():
    _, tinted = _tinted_greyscale()
    assert chroma(tinted) > 0.05  # the input really is tinted
    out, report = Colour(scope="shot").process(Clip(tinted, FPS))
    assert report["colour"]["monochrome"] is True
    f = out.frames
    assert np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2])
    assert f.std() > 0.1  # not flattened to one grey


def test_keep_tint_keeps_the_tint_direction():
    _, tinted = _tinted_greyscale()
    out, report = Colour(scope="shot", monochrome="keep-tint").process(Clip(tinted, FPS))
    assert report["colour"]["monochrome"] is True
    f = out.frames
    mid = (luma(tinted) > 0.2) & (luma(tinted) < 0.8)
    din = tinted[mid] - luma(tinted)[mid][:, None]
    dout = f[mid] - luma(f)[mid][:, None]
    assert chroma(f[mid]) > 0.5 * chroma(tinted[mid])  # still tinted, not neutral
    cos = float((din.mean(0) @ dout.mean(0)) / (np.linalg.norm(din.mean(0)) * np.linalg.norm(dout.mean(0))))
    assert cos > 0.99, cos
    assert np.all(np.sign(dout.mean(0)) == np.sign(din.mean(0)))


def test_monochrome_off_is_not_flagged():
    _, tinted = _tinted_greyscale()
    out, report = Colour(scope="shot", monochrome="off").process(Clip(tinted, FPS))
    assert report["colour"]["monochrome"] is False
    f = out.frames
    assert not np.array_equal(f[..., 0], f[..., 2])


def test_bright_object_entering_does_not_pump_the_background():
    rng = np.random.default_rng(1)
    bg = np.clip(0.15 + 0.45 * rng.random((H, W, 3)) ** 2, 0, 1).astype(np.float32)  # peaks ~0.6
    frames = np.repeat(bg[None], 8, axis=0)
    obj = np.zeros((H, W), bool)
    obj[10:34, 20:50] = True  # ~10 % of the frame
    frames[4:, obj] = 1.0  # a white object enters half way
    frames = cast(frames)
    clip = Clip(frames, FPS)
    stage = Colour(scope="shot")
    stats = stage.solve([stage.analyse(clip)])[0]
    bound = stage.bind(stats=stats)
    out = bound(clip).frames
    for t in range(1, 8):
        assert np.array_equal(out[t][~obj], out[0][~obj]), t
    # chunk by chunk (as the flow runs it) gives the very same frames
    chunks = np.concatenate([bound(clip.slice(a, a + 2)).frames for a in range(0, 8, 2)])
    assert np.array_equal(chunks, out)
    # the test means something: corrections from each frame alone differ before/after the entry
    before = stage.solve([stage.analyse(clip.slice(0, 1))])[0]
    after = stage.solve([stage.analyse(clip.slice(7, 8))])[0]
    diff = np.abs(np.subtract(before["a"], after["a"])).max()
    pumped = np.abs(stage.apply(frames[:1], before) - stage.apply(frames[7:], after))[0][~obj].mean()
    print(f"per-frame gain difference {diff:.3f}, background change {pumped:.4f}")
    assert diff > 0.05 and pumped > 0.01, (diff, pumped)


@pytest.fixture(scope="module")
def faded_film():
    cfg = SynthConfig(width=160, height=120, shots=6, frames_per_shot=6, seed=5, fade=True, blotches=False,
                      scratches=False, flicker=False, grain=False, weave=False)
    f = render_film(cfg)
    return (Clip.from_uint(f.degraded, FPS), Clip.from_uint(f.clean, FPS), f.truth)


def _run_per_shot(stage: Colour, clip: Clip, truth: dict) -> tuple[np.ndarray, list[dict]]:
    spans = [(s["start"], s["end"]) for s in truth["shots"]]
    stats = stage.solve([stage.analyse(clip.slice(a, b)) for a, b in spans])
    out = np.concatenate([stage.bind(stats=s)(clip.slice(a, b)).frames for s, (a, b) in zip(stats, spans, strict=True)])
    return out, stats


def test_title_scope_pools_the_fade_over_shots(faded_film):
    degraded, clean, truth = faded_film
    title, stats = _run_per_shot(Colour(scope="title"), degraded, truth)
    shot, _ = _run_per_shot(Colour(scope="shot"), degraded, truth)
    de_in = float(delta_e00(degraded.frames, clean.frames).mean())
    de_title = float(delta_e00(title, clean.frames).mean())
    de_shot = float(delta_e00(shot, clean.frames).mean())
    print(f"mean dE00: input {de_in:.2f}, title {de_title:.2f}, shot {de_shot:.2f}")
    assert de_title < de_in and de_title < de_shot, (de_in, de_title, de_shot)
    assert truth["shots"][2]["greyscale"]
    assert [s["monochrome"] for s in stats] == [k == 2 for k in range(6)]
    g = title[12:18]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])


def test_sixteen_bit_ramp_keeps_its_levels():
    ramp = (np.arange(128 * 128) * 3 + 6000).astype(np.uint16)  # 16384 levels over ~0.09..0.84
    img = np.repeat((ramp.astype(np.float32) / 65535).reshape(128, 128)[..., None], 3, axis=-1)
    img[:, :8] = (0.7, 0.3, 0.2)  # some colour, so the shot is not monochrome
    img[:, -8:] = (0.2, 0.4, 0.7)
    frames = cast(img[None])
    out, report = Colour(scope="shot").process(Clip(frames, FPS))
    assert not report["colour"]["monochrome"]
    levels = np.unique(np.rint(out.frames[0, :, 8:-8, 1] * 65535)).size
    print(f"distinct 16-bit output levels: {levels}")
    assert levels > 4000, levels


def test_zero_strength_parameters_are_identity():
    clean, _ = chart(2)
    faded = cast(clean)
    stage = Colour(scope="shot", levels=0.0, cast=0.0, midtones=False)
    out, report = stage.process(Clip(faded, FPS))
    assert not report["colour"]["monochrome"]
    np.testing.assert_allclose(out.frames, faded, atol=1e-6)
    # and the default parameters do change it (so the comparison is not vacuous)
    assert np.abs(Colour(scope="shot")(Clip(faded, FPS)).frames - faded).max() > 0.05


def test_bound_stats_enter_the_spec():
    assert Colour.shot_analysis is True
    stage = Colour()
    clean, _ = chart(2)
    s1 = stage.solve([stage.analyse(Clip(cast(clean), FPS))])[0]
    s2 = stage.solve([stage.analyse(Clip(clean, FPS))])[0]
    assert "bound" not in stage.spec()
    b1, b2 = stage.bind(stats=s1).spec(), stage.bind(stats=s2).spec()
    assert b1["bound"] != b2["bound"]
    assert b1 == stage.bind(stats=dict(s1)).spec()
    assert b1["params"] == stage.spec()["params"]
    assert stage.bound == {}  # bind returns a copy


def test_defaults_do_no_harm_across_films():
    """The default (partial) correction improves every one of several faded films and never makes one
    worse than leaving it alone, pooled over the title as the flow runs it."""
    from models.grade import delta_e00

    ratios = []
    for seed in range(6):
        film = render_film(SynthConfig(width=96, height=72, shots=4, frames_per_shot=4, seed=seed, blotches=False,
                                       scratches=False, flicker=False, grain=False, weave=False))
        clean, deg = film.clean / np.float32(255), film.degraded.astype(np.float32) / 255
        stage = Colour()
        shots = film.truth["shots"]
        stats = stage.solve([stage.analyse(Clip(deg[s["start"]:s["end"]], FPS)) for s in shots])
        out = np.concatenate([stage.bind(stats=v)(Clip(deg[s["start"]:s["end"]], FPS)).frames
                              for s, v in zip(shots, stats, strict=True)])
        ratios.append(float(delta_e00(out, clean).mean() / delta_e00(deg, clean).mean()))
    print("default colour stage, ΔE00 after / before per film:", np.round(ratios, 2))
    assert max(ratios) < 1.0 and np.mean(ratios) < 0.75
