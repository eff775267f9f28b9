"""Each stage shown doing its job on frames where the truth is known."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from models.clip import Clip, luma
from models.deflicker import Deflicker
from models.denoise import Denoise
from models.dust import Dust
from models.metrics import flicker_index, mask_scores, psnr
from models.registry import STAGES, describe_stages, make_stage
from models.synth import blotch_masks, moving_object_masks
from models.upscale import Upscale, parse_size
from tests.models.conftest import textured


def test_deflicker_removes_most_flicker(make_film):
    degraded, clean, truth = make_film(flicker=True, frames=24)
    out = Deflicker()(degraded)
    before, after, base = flicker_index(degraded.frames), flicker_index(out.frames), flicker_index(clean.frames)
    # flicker index falls by at least 70 % of its excess over the clean film's own variation
    assert after - base < 0.3 * (before - base), (before, after, base)
    gain_db = psnr(out.frames, clean.frames) - psnr(degraded.frames, clean.frames)
    assert gain_db > 1.5, gain_db


def test_deflicker_keeps_a_real_lighting_step():
    frames = textured(t=20, pan=0.5)
    frames[10:] = np.clip(frames[10:] * 1.6, 0, 1)  # a light switched on and kept on
    out = Deflicker(radius=4)(Clip(frames, Fraction(24))).frames
    means_in = luma(frames).mean(axis=(1, 2))
    means_out = luma(out).mean(axis=(1, 2))
    # the step survives: the last frames stay as bright as the input's
    assert abs(means_out[-3:].mean() - means_in[-3:].mean()) < 0.02
    assert abs(means_out[:3].mean() - means_in[:3].mean()) < 0.02


def test_dust_detects_known_blotches_and_fills_them(make_film):
    degraded, clean, truth = make_film(blotches=True, grain=True, frames=16)
    dust = Dust()
    masks, _ = dust.detect(degraded)
    truth_masks = blotch_masks(truth)
    # pixel precision of the detection, and share of blotches found at all
    assert mask_scores(masks, truth_masks)["precision"] > 0.85
    hit = sum(bool(masks[b["frame"]][truth_masks[b["frame"]]].any()) and
              bool(masks[b["frame"], b["bbox"][1]:b["bbox"][3] + 1, b["bbox"][0]:b["bbox"][2] + 1].any())
              for b in truth["blotches"])
    assert hit >= 0.9 * len(truth["blotches"]), (hit, len(truth["blotches"]))
    # the replaced area (detection grown over soft edges) covers most blotch pixels
    filled = np.stack([dust._alpha(m) > 0 for m in masks])
    assert mask_scores(filled, truth_masks)["recall"] > 0.85
    out = dust(degraded)
    err_in = np.abs(degraded.frames - clean.frames)[truth_masks].mean()
    err_out = np.abs(out.frames - clean.frames)[truth_masks].mean()
    assert err_out < 0.3 * err_in, (err_in, err_out)
    # and nothing else changes much: outside blotches the output stays the input
    outside = ~filled
    assert np.abs(out.frames - degraded.frames)[outside].max() < 1e-6


def test_dust_leaves_fast_moving_objects_alone(make_film):
    degraded, clean, truth = make_film(blotches=False, grain=True, frames=16)
    moving = moving_object_masks(truth)
    assert moving.any()
    masks, _ = Dust().detect(degraded)
    # no blotch in this film: every detection is a false alarm; almost none may touch moving objects
    assert (masks & moving).sum() < 0.02 * moving.sum(), ((masks & moving).sum(), moving.sum())
    assert masks.mean() < 0.001


def test_deflicker_is_not_moved_by_a_large_blotch():
    # a white blotch over ~10 % of one frame is not flicker: the rest of that frame keeps its
    # brightness and the blotch stays white for the dust stage to find
    frames = textured(t=15, h=96, w=128)
    yy, xx = np.mgrid[:96, :128]
    blob = (xx - 40) ** 2 / 24 ** 2 + (yy - 50) ** 2 / 13 ** 2 < 1
    frames[7][blob] = 0.98
    out = Deflicker()(Clip(frames, Fraction(24))).frames
    assert np.abs(out[7] - frames[7])[~blob].mean() < 0.01
    assert out[7][blob].mean() > 0.9


def test_dust_removes_a_large_blotch_that_fools_the_flow():
    # A blotch much larger than the texture's features: flow computed from the blotched frame
    # is garbage inside it; the flow between its neighbours (which never see it) is not.
    frames = textured(t=7, h=96, w=128, pan=2.0)
    clean = frames.copy()
    yy, xx = np.mgrid[:96, :128]
    blob = (xx - 60) ** 2 / 22 ** 2 + (yy - 45) ** 2 / 14 ** 2 < 1
    frames[3][blob] = 0.04
    out = Dust()(Clip(frames, Fraction(24))).frames
    err_in = np.abs(frames[3] - clean[3])[blob].mean()
    err_out = np.abs(out[3] - clean[3])[blob].mean()
    assert err_out < 0.1 * err_in, (err_in, err_out)


def test_dust_ignores_one_pixel_threads():
    # isolated one-pixel-thin outliers (aliasing of fine periodic detail) are not blotches
    frames = textured(t=5)
    frames[2, 40, 30:42] += 0.3
    frames[2, 60:72, 90] -= 0.3
    masks, _ = Dust().detect(Clip(np.clip(frames, 0, 1), Fraction(24)))
    assert not masks.any()


def test_dust_does_not_touch_a_clean_pan():
    frames = textured(t=6)
    masks, _ = Dust().detect(Clip(frames, Fraction(24)))
    assert not masks.any()


def test_denoise_reduces_grain_and_keep_puts_it_back(make_film):
    degraded, clean, _ = make_film(grain=True, frames=10)
    full = Denoise()(degraded).frames
    half = Denoise(keep=0.5)(degraded).frames
    p_in, p_full = psnr(degraded.frames, clean.frames), psnr(full, clean.frames)
    assert p_full > p_in + 2, (p_in, p_full)
    grain_in = np.std(degraded.frames - clean.frames)
    grain_half = np.std(half - clean.frames)
    assert 0.35 * grain_in < grain_half < 0.8 * grain_in


def test_upscale_fits_uhd_keeping_aspect():
    assert parse_size("uhd") == (3840, 2160)
    up = Upscale(target="uhd")
    assert up.output_size(480, 368) == (2818, 2160)
    assert up.output_size(1440, 1080) == (2880, 2160)
    clip = Clip(textured(t=2, h=24, w=32), Fraction(24))
    out = Upscale(scale=2)(clip)
    assert out.frames.shape == (2, 48, 64, 3)
    with pytest.raises(ValueError):
        parse_size("big")


def test_registry_lists_every_stage_with_defaults():
    names = {row["name"] for row in describe_stages()}
    assert names == set(STAGES) >= {"deflicker", "dust", "denoise", "upscale"}
    with pytest.raises(ValueError, match="unknown stage"):
        make_stage("sharpen")
    with pytest.raises(ValueError, match="radius"):
        make_stage("deflicker", {"radius": -1})
    with pytest.raises(ValueError, match="bogus"):
        make_stage("dust", {"bogus": 1})
