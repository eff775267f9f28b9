"""The learned upscalers on a runtime made for inference (models/sr_runtime.py): the ONNX export, OpenVINO
and ONNX Runtime equal to PyTorch within the stated tolerance, the content-hashed cache, the choice and
its fallbacks, and the stage report that records them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from models import sr_runtime
from models.clip import Clip
from models.sr_net import SRVGGNetCompact, load_sr_model
from models.sr_runtime import TOLERANCE, cache_dir, exported, installed, model_digest, runner_for
from models.upscale import Upscale

RUNTIMES = [pytest.param(rt, marks=pytest.mark.skipif(not installed(rt), reason=f"{rt} is not installed"))
            for rt in ("openvino", "onnxruntime")]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test exports into its own cache (never the user's, never the repository)."""
    monkeypatch.setenv("REEL_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def clip(seed: int = 0, t: int = 2, h: int = 70, w: int = 90) -> Clip:
    """Smooth random frames (a camera would not give white noise) of an odd size, so tiles do not divide it."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = np.stack([cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.0) for _ in range(t)])
    return Clip(frames, Fraction(24))


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("method, extra", [("model", {}), ("realesrgan", {"variant": "animevideov3", "temporal": False})])
def test_the_stage_on_a_runtime_equals_pytorch_within_the_tolerance(runtime, method, extra):
    c = clip(t=2 if method == "model" else 1, h=70 if method == "model" else 40)
    kw = dict(method=method, scale=2, device="cpu", tile=48, tile_overlap=8, **extra)
    ref, rep_ref = Upscale(runtime="torch", **kw).process(c)
    out, rep = Upscale(runtime=runtime, **kw).process(c)
    assert rep_ref["runtime"] == "torch" and rep["runtime"] == runtime and rep["runtime_asked"] == runtime
    assert rep["runtime_probe_max_diff"] <= TOLERANCE
    diff = float(np.abs(out.frames - ref.frames).max())
    assert out.frames.shape == ref.frames.shape and diff <= TOLERANCE, f"{runtime} {method}: max |diff| {diff}"


def test_auto_takes_the_first_installed_runtime_and_says_so():
    rep = Upscale(method="model", scale=2, device="cpu").process(clip(t=1))[1]
    expected = next((rt for rt in sr_runtime.AUTO_ORDER if installed(rt)), "torch")
    assert rep["runtime_asked"] == "auto" and rep["runtime"] == expected


def test_the_export_is_cached_under_a_content_hash(own_cache):
    m = load_sr_model(None, "cpu", False)
    path = exported(m.module, m.name)
    assert path.parent == own_cache == cache_dir() and path.suffix == ".onnx"
    assert path.name == f"{m.name}-{model_digest(m.module)}.onnx"
    assert Path(__file__).resolve().parents[2] not in path.resolve().parents  # not in the repository
    stamp = path.stat().st_mtime_ns
    assert exported(m.module, m.name) == path and path.stat().st_mtime_ns == stamp  # reused, not re-exported
    other = SRVGGNetCompact(**m.module.config())
    other.load_state_dict(m.module.state_dict())
    assert model_digest(other) == model_digest(m.module)  # same weights: same file
    with torch.no_grad():
        other.body[0].bias[0] += 1e-3
    assert model_digest(other) != model_digest(m.module)  # other weights: another file
    assert not list(own_cache.glob("*.tmp"))


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("REEL_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "reel" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "reel" / "models"


def test_pytorch_when_the_runtime_is_not_installed(monkeypatch):
    monkeypatch.setattr(sr_runtime, "installed", lambda rt: rt == "torch")
    m = load_sr_model(None, "cpu", False)
    for asked in ("auto", "openvino", "onnxruntime"):
        run, info = runner_for(m.module, m.name, asked, torch.device("cpu"))
        assert run is None and info["runtime"] == "torch" and "not installed" in info["runtime_note"]


def test_pytorch_when_the_export_fails_or_the_runtime_differs(monkeypatch):
    m = load_sr_model(None, "cpu", False)

    def broken(module, name):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(sr_runtime, "installed", lambda rt: True)
    monkeypatch.setattr(sr_runtime, "exported", broken)
    run, info = runner_for(m.module, m.name, "auto", torch.device("cpu"))
    assert run is None and info["runtime"] == "torch" and "exporter exploded" in info["runtime_note"]

    monkeypatch.setattr(sr_runtime, "exported", lambda module, name: Path("unused.onnx"))
    off = {rt: (lambda path, threads: (lambda x: np.zeros((x.shape[0], 3, 2 * x.shape[2], 2 * x.shape[3]),
                                                            np.float32)))
           for rt in ("openvino", "onnxruntime")}
    monkeypatch.setattr(sr_runtime, "_MAKERS", off)  # a runtime that returns the wrong numbers
    run, info = runner_for(m.module, m.name, "openvino", torch.device("cpu"))
    assert run is None and info["runtime"] == "torch" and "differs from PyTorch" in info["runtime_note"]


def test_torch_and_gpus_run_pytorch_and_unknown_runtimes_are_refused():
    m = load_sr_model(None, "cpu", False)
    assert runner_for(m.module, m.name, "torch", torch.device("cpu"))[0] is None
    run, info = runner_for(m.module, m.name, "auto", torch.device("cuda"))  # nothing is moved to the GPU here
    assert run is None and info["runtime"] == "torch" and "GPU" in info["runtime_note"]
    with pytest.raises(ValueError, match="runtime must be one of"):
        runner_for(m.module, m.name, "tensorflow", torch.device("cpu"))
    with pytest.raises(ValueError):
        Upscale(method="model", runtime="tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_realesrgan_x4plus_on_a_runtime_equals_pytorch(runtime):
    c = clip(t=1, h=40, w=52)
    kw = dict(method="realesrgan", variant="x4plus", scale=2, device="cpu", tile=64, tile_overlap=8)
    ref = Upscale(runtime="torch", **kw).process(c)[0].frames
    out, rep = Upscale(runtime=runtime, **kw).process(c)
    assert rep["runtime"] == runtime and float(np.abs(out.frames - ref).max()) <= TOLERANCE
