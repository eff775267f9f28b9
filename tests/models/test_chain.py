"""The shrinking-window chain gives exactly what running every stage on the whole shot gives."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from catalog.recipe import BUILTIN_RECIPES
from models.chain import run_chain
from models.clip import Clip
from models.synth import SynthConfig, render_film


@pytest.fixture(scope="module")
def shot() -> Clip:
    f = render_film(SynthConfig(width=160, height=120, shots=1, frames_per_shot=84, seed=4, fade=False))
    return Clip.from_uint(f.degraded, Fraction(24))


def whole(stages, clip: Clip) -> np.ndarray:
    for s in stages:
        clip = s(clip)
    return clip.frames


def test_chain_on_a_piece_with_halo_equals_the_whole_shot(shot):
    stages = BUILTIN_RECIPES["defects"].build()
    halo = sum(s.context_frames for s in stages)
    full = whole(stages, shot)
    a, b = 37, 47
    piece = shot.slice(a - halo, b + halo)
    out, reports = run_chain(stages, piece, halo, halo + b - a)
    assert out.num_frames == b - a and out.first_frame == a
    np.testing.assert_allclose(out.frames, full[a:b], atol=1e-5)
    assert [r["stage"] for r in reports] == [s.name for s in stages]
    dust = next(r for r in reports if r["stage"] == "dust")
    assert len(dust["dust_pixels"]) == b - a  # per-frame lists trimmed to the piece


def test_chain_at_the_shots_start_needs_no_halo_before(shot):
    stages = BUILTIN_RECIPES["defects"].build()
    halo = sum(s.context_frames for s in stages)
    full = whole(stages, shot)
    out, _ = run_chain(stages, shot.slice(0, 10 + halo), 0, 10)
    np.testing.assert_allclose(out.frames, full[:10], atol=1e-5)
    with pytest.raises(ValueError):
        run_chain(stages, shot, 5, 5)


@pytest.mark.parametrize("name", ["stabilise", "deflicker", "dust", "scratch", "denoise",
                                  pytest.param("upscale", marks=pytest.mark.slow)])  # the SR net on CPU: ~18 s
def test_every_stage_needs_no_more_than_its_stated_context(shot, name):
    # the promise the chunker relies on: a frame's output depends only on frames within
    # context_frames of it (inside one shot)
    from models.registry import make_stage

    stage = make_stage(name)
    c = stage.context_frames
    clip = shot.slice(20, 70)
    full = stage(clip).frames
    a, b = 22, 28
    part = stage(clip.slice(a - c, b + c)).frames[c:c + b - a]
    np.testing.assert_allclose(part, full[a:b], atol=1e-5)


def test_run_piece_gives_the_pieces_16_bit_frames_and_a_frame_rate_changer_goes_last(shot):
    """The stage loop's body (`run_piece`, what the flow, `reel stage` and the plain loop run): integer
    frames in, the piece's uint16 frames out; a last stage with frame_factor k gives k frames per frame at
    k times the rate; a chain that cannot run (a frame-rate changer before another stage) is refused."""
    from models.chain import check_chain, run_piece
    from models.registry import make_stage

    frames = shot.to_uint(np.uint16)[10:40]
    stages = [make_stage("deflicker"), make_stage("interpolate", {"factor": 2})]
    assert check_chain(stages) == 2
    halo = sum(s.context_frames for s in stages)
    out = run_piece(stages, frames, shot.fps, shot.color, read_start=10, start=10 + halo, end=20 + halo)
    assert out.frames.dtype == np.uint16 and out.frames.shape == (20, shot.height, shot.width, 3)
    assert out.fps == 2 * shot.fps and [r["stage"] for r in out.reports] == ["deflicker", "interpolate"]
    direct, _ = run_chain(stages[:1], Clip.from_uint(frames, shot.fps, 10, shot.color), halo, 10 + halo)
    assert np.array_equal(out.frames[::2], run_piece(stages[:1], frames, shot.fps, shot.color, 10, 10 + halo,
                                                     20 + halo).frames)  # frame 2i is input frame i
    assert np.array_equal(out.frames[::2], direct.to_uint(np.uint16))
    with pytest.raises(ValueError, match="last stage"):
        check_chain(stages[::-1])
