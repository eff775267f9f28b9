"""Frame interpolation: doubled frame rate, rebuilt frames, never across a cut."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from models.clip import Clip
from models.interpolate import Interpolate, Interpolator
from models.metrics import psnr
from models.registry import make_stage
from models.synth import SynthConfig, render_film
from tests.models.conftest import ONLY_NOTHING, textured


@pytest.fixture(scope="module")
def moving() -> np.ndarray:
    """(17, 240, 320, 3) float clean synthetic shot: textured pan plus moving objects."""
    f = render_film(SynthConfig(shots=1, frames_per_shot=17, seed=2, **ONLY_NOTHING))
    return f.clean.astype(np.float32) / 255


def test_doubling_the_rate_beats_blending_by_the_issues_margin(moving):
    # drop every other frame, rebuild them, compare with the true dropped frames
    kept = Clip(moving[::2].copy(), Fraction(12))
    out = Interpolate(factor=2)(kept).frames
    blend = Interpolate(factor=2, method="blend")(kept).frames
    truth = moving[1::2]
    flow_db = np.mean([psnr(out[2 * i + 1], truth[i]) for i in range(len(truth))])
    blend_db = np.mean([psnr(blend[2 * i + 1], truth[i]) for i in range(len(truth))])
    assert flow_db >= blend_db + 1.5, (flow_db, blend_db)
    assert flow_db > 28


def test_frame_count_timing_and_held_last_frame(moving):
    clip = Clip(moving[:5].copy(), Fraction(24), first_frame=10)
    out, report = Interpolate(factor=3).process(clip)
    assert out.num_frames == 15 and out.fps == 72 and out.first_frame == 30
    np.testing.assert_array_equal(out.frames[::3], clip.frames)  # originals untouched
    np.testing.assert_array_equal(out.frames[13], clip.frames[4])  # last frame: holds
    np.testing.assert_array_equal(out.frames[14], clip.frames[4])
    assert not np.array_equal(out.frames[1], clip.frames[0])
    assert report["frames_synthesised"] == 8 and report["frames_out"] == 15
    one = Interpolate(factor=1)(clip)
    np.testing.assert_array_equal(one.frames, clip.frames)
    assert one.fps == 24 and Interpolate(factor=2).frame_factor == 2 and Interpolate(factor=2).context_frames == 1


def test_pure_translation_in_between_is_the_true_frame():
    x = textured(seed=1, t=5, h=96, w=128, pan=3.0)
    out = Interpolate(factor=2)(Clip(x[::2].copy(), Fraction(12))).frames
    inner = (slice(8, -8), slice(8, -8))
    for i in range(2):
        flow_db = psnr(out[2 * i + 1][inner], x[2 * i + 1][inner])
        blend_db = psnr((0.5 * (x[2 * i] + x[2 * i + 2]))[inner], x[2 * i + 1][inner])
        assert flow_db > 40 and flow_db > blend_db + 8, (flow_db, blend_db)


def test_rebuild_frames_repairs_a_damaged_frame(moving):
    clip = Clip(moving[:9].copy(), Fraction(24), first_frame=100)
    bad = clip.frames.copy()
    cv2.circle(bad[4], (160, 120), 40, (1.0, 1.0, 1.0), -1)  # a large white blotch
    cv2.line(bad[4], (60, 0), (60, 239), (0.0, 0.0, 0.0), 3)
    before = psnr(bad[4], moving[4])
    out, report = Interpolate(factor=1, rebuild_frames=[104]).process(clip.with_frames(bad))
    after = psnr(out.frames[4], moving[4])
    assert after > before + 10 and after > 30, (before, after)
    np.testing.assert_array_equal(out.frames[3], bad[3])  # other frames untouched
    assert report["frames_rebuilt"] == 1
    # parsed from the command line form too; frames outside the clip are ignored
    assert make_stage("interpolate", {"rebuild_frames": "104,7"}).params.rebuild_frames == (7, 104)


def test_repeated_frames_are_replaced_by_in_betweens(moving):
    frames = moving[:14].copy()
    frames[6] = frames[5]  # a frame doubled, as at a splice: the true frame 6 is lost
    out, report = Interpolate(factor=1, replace_duplicates=True).process(Clip(frames, Fraction(24)))
    assert report["duplicates_replaced"] == 1
    assert psnr(out.frames[6], moving[6]) > psnr(frames[6], moving[6]) + 5
    np.testing.assert_array_equal(out.frames[5], frames[5])


def test_stage_needs_no_more_than_its_stated_context(moving):
    # the promise the chunker relies on (as in test_chain): output frames of input frames a..b
    # depend only on input frames within context_frames of them
    small = render_film(SynthConfig(width=160, height=120, shots=1, frames_per_shot=32, seed=2, **ONLY_NOTHING))
    x = small.clean.astype(np.float32) / 255
    x[15] = x[14]  # a repeat inside the piece
    x[11] = x[10]  # and one in the halo
    clip = Clip(x, Fraction(24))
    for stage in (Interpolate(factor=2), Interpolate(factor=2, rebuild_frames=[8, 9]),
                  Interpolate(factor=2, replace_duplicates=True)):
        c, k = stage.context_frames, stage.frame_factor
        full = stage(clip).frames
        a, b = 13, 18
        part = stage(clip.slice(a - c, b + c)).frames[c * k:(c + b - a) * k]
        np.testing.assert_allclose(part, full[a * k:b * k], atol=1e-5)


def test_occlusion_masks_find_what_a_moving_object_covers():
    # a textured disc moving right over a static textured background
    rng = np.random.default_rng(0)
    h, w, d = 144, 192, 16

    def tex(ww: int) -> np.ndarray:
        t = cv2.GaussianBlur(rng.random((h, ww)).astype(np.float32), (0, 0), 3)
        return (t - t.min()) / (t.max() - t.min())

    bg, fg = tex(w) * 0.6 + 0.2, tex(w + d) * 0.5 + 0.1
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(2):
        disc = (xx - 60 - d * i) ** 2 + (yy - 72) ** 2 < 30 ** 2
        frames.append(np.repeat(np.where(disc, fg[:, d * (1 - i):d * (1 - i) + w], bg)[..., None], 3, 2))
    pair = Interpolator("flow").pair(frames[0], frames[1])
    ahead = (xx > 60 + 30 + 3) & (xx < 60 + 30 + d - 3) & (np.abs(yy - 72) < 8)  # covered in frame 1
    behind = (xx > 60 - 30 + 3) & (xx < 60 - 30 + d - 3) & (np.abs(yy - 72) < 8)  # uncovered in frame 1
    far = (xx < 20) | (xx > 150)
    assert pair.v0[ahead].mean() < 0.2 and pair.v1[behind].mean() < 0.2
    assert pair.v0[far].mean() > 0.95 and pair.v1[far].mean() > 0.95
    mid = pair.at(0.5)
    assert psnr(mid, 0.5 * (frames[0] + frames[1])) < psnr(mid, frames[0]) + 10  # not a cross-fade


def test_bad_parameters_are_value_errors():
    for params in ({"factor": 0}, {"factor": 9}, {"method": "magic"},
                   {"rebuild_frames": [-1]}, {"rebuild_frames": [3, 4, 5, 6]}, {"preset": "slow"}):
        with pytest.raises(ValueError):
            make_stage("interpolate", params)
    from models.interpolate import WEIGHTS

    if not WEIGHTS.is_file():  # nothing shipped: asking for it is a clear error, not a stub
        with pytest.raises(ValueError, match="no learned interpolation model"):
            Interpolate(method="learned")


def test_learned_refiner_starts_from_the_flow_method(tmp_path):
    # the refinement CNN's last layer starts at zero: untrained, it gives the flow result exactly
    from models.interpolate import load_refiner, make_refiner

    x = textured(seed=2, t=3, h=48, w=64, pan=2.0)
    it = Interpolator("flow")
    want = it.pair(x[0], x[2]).at(0.5)
    it.net = make_refiner(8).eval()
    np.testing.assert_array_equal(it.pair(x[0], x[2]).at(0.5), want)
    with pytest.raises(ValueError, match="no learned interpolation model"):
        load_refiner(tmp_path / "missing.safetensors")


def test_deterministic(moving):
    clip = Clip(moving[:4].copy(), Fraction(24))
    a = Interpolate(factor=2, replace_duplicates=True)(clip).frames
    b = Interpolate(factor=2, replace_duplicates=True)(clip).frames
    np.testing.assert_array_equal(a, b)


def test_command_line_doubles_the_rate_and_holds_at_the_cut(tmp_path, monkeypatch, capsys):
    from flows.cli import main
    from infra.media import probe, read_frames, write_film

    cfg = SynthConfig(width=160, height=120, shots=2, frames_per_shot=10, seed=5, **ONLY_NOTHING)
    f = render_film(cfg)
    src, out = tmp_path / "two.mkv", tmp_path / "two-48.mkv"
    write_film(src, f.clean, Fraction(cfg.fps))
    monkeypatch.setenv("REEL_PIECE_FRAMES", "4")  # pieces inside a shot: halos must carry the successor
    assert main(["stage", "interpolate", str(src), str(out), "--set", "factor=2"]) == 0
    info = probe(out)
    assert info.video.fps == 48 and info.video.frames in (None, 40)
    got = read_frames(out, 0, 40, depth=16).astype(np.float32) / 65535
    assert f.truth["cuts"] == [10]
    # the in-between after the last frame of shot 1 is a hold of it, not a mix with shot 2
    np.testing.assert_allclose(got[19], got[18], atol=1 / 65535)
    assert psnr(got[19], f.clean[9] / 255) > 45 and psnr(got[19], f.clean[10] / 255) < 30
    np.testing.assert_allclose(got[39], got[38], atol=1 / 65535)
    # pieces with halos give what the whole shot gives (in-betweens at piece ends included)
    for shot in (0, 1):
        ref = Interpolate(factor=2)(Clip.from_uint(f.clean[10 * shot:10 * shot + 10], Fraction(24))).frames
        np.testing.assert_allclose(got[20 * shot:20 * shot + 20], ref, atol=2 / 65535)
    np.testing.assert_allclose(got[::2], f.clean / 255, atol=1 / 65535)
