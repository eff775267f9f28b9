"""Where the learned upscalers run: PyTorch eager, or the network exported to ONNX and run by OpenVINO
or ONNX Runtime on the CPU (the `upscale` stage's `runtime` parameter: auto | torch | openvino |
onnxruntime).

Export. The PyTorch module (Reel's Compact model, a third-party Compact checkpoint, Real-ESRGAN x4plus or
animevideov3) is exported once with `torch.onnx.export` (TorchScript exporter, opset 17, batch, height
and width dynamic) to

    $REEL_MODEL_CACHE/<name>-<digest>.onnx      (default: $XDG_CACHE_HOME/reel/models, else ~/.cache/reel/models)

where <digest> is a sha256 of everything that decides the exported graph: the module's class, every
parameter and buffer (name, dtype, shape, bytes), the torch version, the opset and the exporter. Same
weights -> same path; other weights, or another torch, -> another file (nothing stale is reused). The
file is written to a temporary name and renamed into place, so workers exporting at the same time
cannot read half a file. Nothing is written into the repository or the store.

Runtimes. `onnxruntime` runs the file with the CPU execution provider, `openvino` compiles it for the CPU
with `INFERENCE_PRECISION_HINT=f32` (OpenVINO would otherwise run bf16 on CPUs that have it). Both use as
many threads as PyTorch would (`torch.get_num_threads()`; one in a Reel worker), so the comparison in
`make bench-upscale` is like for like. Both packages are optional and imported only here, lazily.

Choice. `torch` always runs PyTorch. `openvino` / `onnxruntime` run that runtime, or PyTorch when it is
not installed or the export fails (the stage report says which ran, and why). `auto` (the default) takes
PyTorch on a GPU, else the first of AUTO_ORDER that is installed and passes the check below, else PyTorch;
the order is the measured one (docs/benchmarks.md: OpenVINO was fastest on every network here).

Check. Before a runtime is used, it runs a seeded probe batch next to PyTorch; the largest absolute
difference of the outputs must be at most TOLERANCE (1e-4 on the [0, 1] scale; measured: 3e-7 to 5e-6).
A runtime that differs more is not used (PyTorch runs instead, and the report says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
AUTO_ORDER = ("openvino", "onnxruntime")  # fastest first, measured by benchmarks/upscale.py --runtimes
TOLERANCE = 1e-4  # largest |runtime - PyTorch| accepted on the probe, [0, 1] scale
OPSET = 17
EXPORTER = "torch.onnx.export/torchscript"
PROBE_SHAPE = (2, 3, 40, 48)  # the probe batch: odd multiples so no size is a special case

Runner = Callable[[np.ndarray], np.ndarray]  # (N, 3, h, w) float32 -> (N, 3, h*s, w*s) float32


def cache_dir() -> Path:
    """Where exported models are kept: $REEL_MODEL_CACHE, else $XDG_CACHE_HOME/reel/models, else
    ~/.cache/reel/models."""
    if os.environ.get("REEL_MODEL_CACHE"):
        return Path(os.environ["REEL_MODEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "reel" / "models"


def installed(runtime: str) -> bool:
    """Whether the runtime's Python package can be imported (found without importing it)."""
    if runtime == "torch":
        return True
    return importlib.util.find_spec(runtime) is not None


def model_digest(module: nn.Module) -> str:
    """16 hex digits identifying the graph an export of `module` gives (class, tensors, torch, opset)."""
    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}|{torch.__version__}|"
                       f"{OPSET}|{EXPORTER}".encode())
    for name, t in sorted(module.state_dict().items()):
        arr = t.detach().to("cpu").contiguous()
        h.update(f"\0{name}|{arr.dtype}|{tuple(arr.shape)}\0".encode())
        h.update(arr.numpy().tobytes() if arr.dtype != torch.bfloat16 else arr.float().numpy().tobytes())
    return h.hexdigest()[:16]


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "model"


_EXPORT_LOCK = threading.Lock()


def exported(module: nn.Module, name: str) -> Path:
    """The module as an ONNX file in the cache (exported now when it is not there yet)."""
    path = cache_dir() / f"{_safe_name(name)}-{model_digest(module)}.onnx"
    if path.is_file():
        return path
    with _EXPORT_LOCK:
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        module = module.to("cpu", torch.float32).eval()
        probe = torch.zeros(1, 3, 32, 32)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".onnx.tmp", dir=path.parent)
        os.close(fd)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
                torch.onnx.export(module, (probe,), tmp, dynamo=False, opset_version=OPSET, input_names=["x"],
                                  output_names=["y"], do_constant_folding=True,
                                  dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "ho", 3: "wo"}})
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache other users share must be readable
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return path


def onnxruntime_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0])

    return run


def openvino_runner(path: Path, threads: int) -> Runner:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": max(1, threads),
                                                          "INFERENCE_PRECISION_HINT": "f32",
                                                          "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    lock = threading.Lock()  # one request: calls from several threads take turns

    def run(x: np.ndarray) -> np.ndarray:
        with lock:
            request.infer({0: np.ascontiguousarray(x, np.float32)})
            return np.array(request.get_output_tensor(0).data, copy=True)

    return run


_MAKERS: dict[str, Callable[[Path, int], Runner]] = {"onnxruntime": onnxruntime_runner, "openvino": openvino_runner}


def probe_difference(module: nn.Module, run: Runner) -> float:
    """Largest |run(x) - module(x)| on a seeded probe batch in [0, 1]."""
    x = np.random.default_rng(0).random(PROBE_SHAPE, dtype=np.float32)
    with torch.inference_mode():
        ref = module.to("cpu", torch.float32)(torch.from_numpy(x)).numpy()
    got = run(x)
    if got.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(got - ref)))


def runner_for(module: nn.Module, name: str, runtime: str, device: torch.device,
               threads: int | None = None) -> tuple[Runner | None, dict[str, Any]]:
    """(the runner to use, None for PyTorch; what ran and why, for the stage report).

    runtime: auto | torch | openvino | onnxruntime (see the module doc)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    info: dict[str, Any] = {"runtime": "torch", "runtime_asked": runtime}
    if runtime == "torch":
        return None, info
    if device.type != "cpu":
        info["runtime_note"] = f"{device.type}: PyTorch runs on the GPU (ONNX runtimes here are for CPUs)"
        return None, info
    candidates = AUTO_ORDER if runtime == "auto" else (runtime,)
    notes = []
    n = threads if threads is not None else torch.get_num_threads()
    for rt in candidates:
        if not installed(rt):
            notes.append(f"{rt} is not installed")
            continue
        try:
            run = _MAKERS[rt](exported(module, name), n)
            diff = probe_difference(module, run)
        except Exception as e:  # an export or compile failure: PyTorch, with the reason
            notes.append(f"{rt} failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            continue
        if not diff <= TOLERANCE:
            notes.append(f"{rt} differs from PyTorch by {diff:.2g} (> {TOLERANCE:g})")
            continue
        info.update(runtime=rt, runtime_threads=n, runtime_probe_max_diff=float(f"{diff:.3g}"))
        if notes:
            info["runtime_note"] = "; ".join(notes)
        return run, info
    info["runtime_note"] = "; ".join(notes)
    return None, info
