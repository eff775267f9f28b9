"""The learned x2 super-resolution backend of the `upscale` stage (models/sr_net.py, method=model)."""

from __future__ import annotations

import json
import warnings
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models import sr_net
from models.clip import Clip
from models.metrics import psnr
from models.sr_net import DEFAULT_WEIGHTS, SRVGGNetCompact, load_sr_model, passes_for, upscale_frames
from models.upscale import Upscale, UpscaleParams


def params(**kw) -> UpscaleParams:
    return UpscaleParams(method="model", device="cpu", **kw)


def up(frames: np.ndarray, scale: float, p: UpscaleParams) -> tuple[np.ndarray, dict]:
    """upscale_frames with its lazy frames stacked."""
    out, info = upscale_frames(frames, scale, p)
    return np.asarray(out), info


def area_down(frames: np.ndarray, factor: int = 2) -> np.ndarray:
    return np.stack([cv2.resize(f, (f.shape[1] // factor, f.shape[0] // factor), interpolation=cv2.INTER_AREA)
                     for f in frames])


def smooth_random(h: int, w: int, seed: int = 0, t: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.2) for _ in range(t)])


def held_out_photos() -> np.ndarray:
    """skimage's "chelsea" and the top of "rocket", 288x448 each: photographs training never saw
    (benchmarks/train_sr.py HELDOUT_IMAGES), as (2, H, W, 3) float32."""
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat, rocket = skimage.data.chelsea(), skimage.data.rocket()
    return np.stack([cat[4:292, :448], rocket[:288, 96:544]]).astype(np.float32) / 255.0


def test_default_model_is_small_and_describes_itself():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    from safetensors import safe_open

    with safe_open(str(DEFAULT_WEIGHTS), framework="pt") as f:
        meta = f.metadata()
    m = load_sr_model(None, "cpu", False)
    assert m.scale == 2 and int(meta["scale"]) == 2 and m.name == "reel-sr-x2"
    assert int(meta["num_feat"]) == m.module.num_feat and int(meta["num_conv"]) == m.module.num_conv
    assert load_sr_model(None, "cpu", False) is m  # cached per process


# gains of the shipped model at the time it was trained (benchmarks/upscale.py has the full figures):
# these crops of chelsea / rocket +0.46 / +0.62 dB, this synthetic clip +1.75 dB; the thresholds keep room
@pytest.mark.parametrize("which, threshold", [("photos", 0.3), ("synthetic", 1.0)])
def test_default_model_beats_lanczos_on_held_out_pictures(which, threshold):
    if which == "photos":
        truth = held_out_photos()
    else:
        from benchmarks.train_sr import SYNTH_HELDOUT_SEEDS, synth_clean_frames

        truth = synth_clean_frames(SYNTH_HELDOUT_SEEDS[0], 256, 192, shots=1, frames_per_shot=3)[:2]
    clip = Clip(area_down(truth), Fraction(24))
    up_m, rep = Upscale(method="model", scale=2, device="cpu").process(clip)
    up_l, _ = Upscale(method="lanczos", scale=2).process(clip)
    gains = [psnr(m, t) - psnr(lz, t) for m, lz, t in zip(up_m.frames, up_l.frames, truth, strict=True)]
    assert rep["passes"] == 1 and rep["native_scale"] == 2 and rep["device"] == "cpu"
    assert min(gains) >= threshold, f"model beats Lanczos by only {np.round(gains, 2)} dB on held-out {which}"


def test_tiled_equals_untiled_and_tiles_are_used():
    frames = smooth_random(150, 131, seed=1)
    whole, info1 = up(frames, 2.0, params(tile=4096, tile_overlap=16))
    tiled, info2 = up(frames, 2.0, params(tile=64, tile_overlap=16, batch=3))
    assert info1["tiles"] == 1 and info2["tiles"] > 4
    assert whole.shape == tiled.shape == (1, 300, 262, 3)
    assert np.abs(whole - tiled).max() < 1e-4


@pytest.mark.parametrize("h, w", [(23, 37), (5, 3), (1, 1), (33, 97)])
def test_odd_sizes_and_frames_smaller_than_a_tile(h, w):
    frames = smooth_random(h, w, seed=2, t=2) if h > 1 else np.full((2, 1, 1, 3), 0.4, np.float32)
    out, info = up(frames, 2.0, params(tile=64, tile_overlap=8))
    assert out.shape == (2, 2 * h, 2 * w, 3) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # the enlargement stays faithful to the input: area-shrinking it back gives nearly the input
    if min(h, w) >= 5:
        assert np.abs(area_down(out) - frames).mean() < 0.02


def test_stage_api_sizes_scales_and_targets():
    clip = Clip(smooth_random(45, 61, seed=3, t=2), Fraction(24))
    out, rep = Upscale(method="model", scale=2, device="cpu").process(clip)
    assert (out.width, out.height) == (122, 90) and rep["size"] == [122, 90] and rep["passes"] == 1
    # target fit (the uhd rule at small size): 128x64 around a 61x45 picture -> 86x64, one pass then resample
    out, rep = Upscale(method="model", target="128x64", device="cpu").process(clip)
    assert (out.width, out.height) == (86, 64) and rep["passes"] == 1
    # a target smaller than the picture: no network pass, only the area resample
    out, rep = Upscale(method="model", target="32x32", device="cpu").process(clip)
    assert (out.width, out.height) == (32, 24) and rep["passes"] == 0
    # 4x: the x2 network twice
    out, rep = Upscale(method="model", scale=4, device="cpu").process(clip)
    assert (out.width, out.height) == (244, 180) and rep["passes"] == 2


def test_passes_and_scale_four():
    assert [passes_for(s, 2) for s in (0.5, 1.0, 1.5, 2.0, 2.0000001, 2.5, 4.0, 4.2, 8.0)] == [0, 0, 1, 1, 1, 2, 2, 3, 3]
    frames = smooth_random(20, 24, seed=4)
    out, info = up(frames, 4.0, params())
    assert info["passes"] == 2 and out.shape == (1, 80, 96, 3)
    two, _ = up(frames, 2.0, params())
    again, _ = up(two, 2.0, params())
    assert np.array_equal(out, again)
    same, info = upscale_frames(frames, 1.0, params())
    assert info["passes"] == 0 and same is frames


def test_reruns_are_bit_identical():
    frames = smooth_random(50, 70, seed=5, t=2)
    a, _ = up(frames, 2.0, params(tile=48, tile_overlap=8))
    sr_net._CACHE.clear()  # a fresh load too
    b, _ = up(frames, 2.0, params(tile=48, tile_overlap=8))
    assert np.array_equal(a, b)


def _reference(net: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    """What the tiled path must compute: the module on the frame reflect-padded by FRAME_PAD, cropped."""
    P, s = sr_net.FRAME_PAD, net.scale
    x = np.pad(img, ((P, P), (P, P), (0, 0)), mode="reflect")
    with torch.no_grad():
        y = net(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
    h, w = img.shape[:2]
    return np.clip(y[P * s:(P + h) * s, P * s:(P + w) * s], 0, 1)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_third_party_compact_checkpoint_loads(tmp_path, fmt):
    torch.manual_seed(7)
    net = SRVGGNetCompact(num_feat=12, num_conv=3, scale=4).eval()
    sd = net.state_dict()
    path = tmp_path / f"realesr-like.{fmt}"
    if fmt == "pth":
        torch.save({"params_ema": sd, "params": {k: torch.zeros_like(v) for k, v in sd.items()}}, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))  # no metadata: shapes say it all
    m = load_sr_model(str(path), "cpu", False)
    assert m.scale == 4 and m.module.num_feat == 12 and m.module.num_conv == 3
    img = smooth_random(30, 41, seed=6)
    out, info = up(img, 4.0, params(checkpoint=str(path), tile=40, tile_overlap=8))
    assert info["passes"] == 1 and info["native_scale"] == 4 and out.shape == (1, 120, 164, 3)
    np.testing.assert_allclose(out[0], _reference(net, img[0]), atol=1e-5)


def test_bad_checkpoints_are_value_errors_naming_the_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    corrupt_st = tmp_path / "corrupt.safetensors"
    corrupt_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" + b"\x00" * 64)
    corrupt_pth = tmp_path / "corrupt.pth"
    corrupt_pth.write_bytes(b"PK\x03\x04 this is no zip")
    other = tmp_path / "swinir-like.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(8, 3, 3, 3), "conv_first.bias": torch.zeros(8)}}, other)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(DEFAULT_WEIGHTS.read_bytes()[:5000])
    for path in (missing, corrupt_st, corrupt_pth, other, truncated):
        with pytest.raises(ValueError) as e:
            up(smooth_random(8, 8), 2.0, params(checkpoint=str(path)))
        assert path.name in str(e.value), str(e.value)
    with pytest.raises(ValueError, match="Compact"):
        load_sr_model(str(other), "cpu", False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            up(smooth_random(8, 8), 2.0, UpscaleParams(method="model", device="cuda"))


def test_reel_stage_upscale_with_the_model_from_the_command_line(tmp_path, capsys):
    from flows.cli import main
    from infra.media import probe, write_film

    rng = np.random.default_rng(8)
    base = cv2.GaussianBlur(rng.random((48, 64, 3)).astype(np.float32), (0, 0), 2) * 255
    frames = [np.clip(np.roll(base, i, axis=1), 0, 255).astype(np.uint8) for i in range(4)]
    src, out = tmp_path / "in.mkv", tmp_path / "up.mkv"
    write_film(src, frames, Fraction(24))
    assert main(["stage", "upscale", str(src), str(out), "--set", "method=model", "--set", "scale=2"]) == 0, \
        capsys.readouterr().err
    info = probe(out)
    assert (info.video.width, info.video.height) == (128, 96)
    assert json.loads(json.dumps(sr_net.compact_config(load_sr_model(None, "cpu", False).module.state_dict())))


def test_not_a_compact_state_dict_is_recognised():
    torch.manual_seed(0)
    sd = SRVGGNetCompact(8, 2, 2).state_dict()
    assert sr_net.compact_config(sd) == {"num_feat": 8, "num_conv": 2, "scale": 2}
    assert sr_net.compact_config({k: v for k, v in sd.items() if k != "body.1.weight"}) is None
    assert sr_net.compact_config({"conv_first.weight": torch.zeros(8, 3, 3, 3)}) is None
    assert Path(sr_net.__file__).parent == DEFAULT_WEIGHTS.parent.parent


def test_save_compact_round_trips_byte_for_byte(tmp_path):
    torch.manual_seed(1)
    net = SRVGGNetCompact(num_feat=6, num_conv=1, scale=2).eval()
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    sr_net.save_compact(net, a, {"name": "tiny"})
    sr_net.save_compact(net, b, {"name": "tiny"})
    assert a.read_bytes() == b.read_bytes()
    m = load_sr_model(str(a), "cpu", False)
    assert m.name == "tiny" and all(torch.equal(p, q) for p, q in zip(m.module.parameters(), net.parameters(), strict=True))
