"""Learned single-image super-resolution for the `upscale` stage (`method=model`).

The network is Real-ESRGAN's SRVGGNetCompact layout (Wang et al., "Real-ESRGAN", 2021; spandrel calls
the family "Compact"): a plain stack of 3x3 convolutions with PReLU activations at low resolution, one
PixelShuffle at the end, and the nearest-upsampled input added, so the convolutions only learn the
detail missing from a blocky enlargement. The state-dict keys are the family's own:

    body.0          conv 3 -> num_feat
    body.1          PReLU(num_feat)
    body.2k, 2k+1   conv num_feat -> num_feat, PReLU          (k = 1..num_conv)
    body.2n+2       conv num_feat -> 3 * scale**2            (n = num_conv), then PixelShuffle(scale)

so Reel's weights load in tools that know that family, and third-party Compact checkpoints (.pth/.pt or
.safetensors, bare or wrapped in "params"/"params_ema") load here with Reel's own module. Any other
checkpoint family goes through spandrel (optional extra `reel[spandrel]`, GPU machines).

Frames are (T, H, W, 3) float32 RGB in [0, 1] (the working space of `models.clip`). Inference runs in
overlapping tiles blended with feathered weights (tiled == untiled to float rounding), `batch` tiles per
forward pass; memory holds one frame's full-resolution output plus one batch of tiles.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "reel-sr-x2.safetensors"
# a factor a hair above an exact power (float sizes: 2.0000001) must not cost another pass
_SCALE_EPS = 1e-3


class SRVGGNetCompact(nn.Module):
    """Compact SR network (Real-ESRGAN's SRVGGNetCompact, PReLU variant).

    Input (N, 3, H, W) float in [0, 1]; output (N, 3, H*scale, W*scale), unclamped.
    """

    def __init__(self, num_feat: int = 32, num_conv: int = 6, scale: int = 2, num_in_ch: int = 3,
                 num_out_ch: int = 3) -> None:
        super().__init__()
        if num_feat < 1 or num_conv < 0 or scale < 1:
            raise ValueError(f"bad Compact shape: num_feat={num_feat}, num_conv={num_conv}, scale={scale}")
        self.num_feat, self.num_conv, self.scale = num_feat, num_conv, scale
        self.num_in_ch, self.num_out_ch = num_in_ch, num_out_ch
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")

    def config(self) -> dict[str, int]:
        return {"num_feat": self.num_feat, "num_conv": self.num_conv, "scale": self.scale}


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedModel:
    """A loaded SR network and what inference needs to know about it.

    module: takes (N, 3, h, w) in [0, 1] on `device` in `dtype`, returns (N, 3, h*scale, w*scale).
    scale: native factor. name: for QC reports. pad_multiple: input sides must be multiples of it.
    """

    module: nn.Module
    scale: int
    name: str
    device: torch.device
    dtype: torch.dtype
    pad_multiple: int = 1
    runner: Any = None  # models.sr_runtime.Runner running an export of `module` (None: PyTorch itself)
    runtime: dict[str, Any] = field(default_factory=lambda: {"runtime": "torch"})  # what runs it, for reports

    def infer(self, tiles: torch.Tensor) -> np.ndarray:
        """(N, 3, h, w) float tiles in [0, 1] -> (N, 3, h*scale, w*scale) float32 (unclamped)."""
        if self.runner is not None:
            return np.asarray(self.runner(tiles.numpy()), np.float32)
        with torch.inference_mode():
            return self.module(tiles.to(self.device, self.dtype)).float().cpu().numpy()

    def on_runtime(self, runtime: str) -> LoadedModel:
        """This model run by `runtime` (auto | torch | openvino | onnxruntime; models.sr_runtime), cached."""
        key = (id(self.module), runtime, torch.get_num_threads())
        with _CACHE_LOCK:
            hit = _RUNTIME_CACHE.get(key)
            if hit is not None and hit.module is self.module:
                _RUNTIME_CACHE.move_to_end(key)
                return hit
        from models.sr_runtime import runner_for

        runner, info = runner_for(self.module, self.name, runtime, self.device)
        made = replace(self, runner=runner, runtime=info)
        with _CACHE_LOCK:
            _RUNTIME_CACHE[key] = made
            while len(_RUNTIME_CACHE) > _CACHE_SIZE:
                _RUNTIME_CACHE.popitem(last=False)
        return made


def _unwrap(sd: Any) -> Any:
    """A state dict from a checkpoint object: bare, or under params_ema / params / state_dict."""
    if isinstance(sd, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in sd and isinstance(sd[key], dict):
                return _unwrap(sd[key])
    return sd


def compact_config(sd: dict[str, torch.Tensor]) -> dict[str, int] | None:
    """num_feat / num_conv / scale inferred from a Compact state dict's shapes, or None if it is not one."""
    conv_ids = sorted(int(k.split(".")[1]) for k in sd
                      if k.startswith("body.") and k.endswith(".weight") and k.count(".") == 2
                      and k.split(".")[1].isdigit() and getattr(sd[k], "ndim", 0) == 4)
    if not conv_ids or conv_ids[0] != 0 or any(not k.startswith("body.") for k in sd):
        return None
    last = conv_ids[-1]
    if conv_ids != list(range(0, last + 1, 2)) or last < 2:
        return None
    w0, wl = sd["body.0.weight"], sd[f"body.{last}.weight"]
    num_feat, num_in = int(w0.shape[0]), int(w0.shape[1])
    out_ch = int(wl.shape[0])
    scale = math.isqrt(out_ch // 3)
    if num_in != 3 or wl.shape[1] != num_feat or scale < 1 or 3 * scale * scale != out_ch:
        return None
    num_conv = (last - 2) // 2
    expected = {f"body.{i}.weight" for i in range(0, last + 1)} | {f"body.{i}.bias" for i in range(0, last + 1, 2)}
    if set(sd) != expected:
        return None
    return {"num_feat": num_feat, "num_conv": num_conv, "scale": scale}


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, safetensors metadata) of a checkpoint file; ValueError naming the file when unreadable."""
    if not path.is_file():
        raise ValueError(f"SR checkpoint {str(path)!r} does not exist (or is not a file)")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = dict(f.metadata() or {})
                sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
            return sd, meta
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors / pickle errors have many types; the caller needs one
        raise ValueError(f"SR checkpoint {str(path)!r} could not be read ({type(e).__name__}: {e})") from e
    sd = _unwrap(obj)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()) or not sd:
        raise ValueError(f"SR checkpoint {str(path)!r} holds no state dict of tensors")
    return sd, {}


def _via_spandrel(path: Path) -> tuple[nn.Module, int, str, int]:
    try:
        from spandrel import ModelLoader
    except Exception as e:  # ImportError, or torchvision failing to load next to a mismatched torch
        raise ValueError(
            f"SR checkpoint {str(path)!r} is not a Compact (SRVGGNetCompact) checkpoint, which is the family "
            f"Reel loads itself; other families need spandrel: pip install 'reel[spandrel]' with a torch/"
            f"torchvision pair that match (spandrel failed to import here: {type(e).__name__}: {e})") from e
    try:
        desc = ModelLoader().load_from_file(str(path))
    except Exception as e:
        raise ValueError(f"SR checkpoint {str(path)!r} is not a Compact checkpoint and spandrel could not load it "
                         f"({type(e).__name__}: {e})") from e
    if getattr(desc, "input_channels", 3) != 3 or getattr(desc, "output_channels", 3) != 3:
        raise ValueError(f"SR checkpoint {str(path)!r} is not an RGB -> RGB model")
    pad = int(getattr(getattr(desc, "size_requirements", None), "multiple_of", 1) or 1)
    return desc.model, int(desc.scale), f"{desc.architecture.name}", pad


_CACHE: OrderedDict[tuple, LoadedModel] = OrderedDict()
_RUNTIME_CACHE: OrderedDict[tuple, LoadedModel] = OrderedDict()  # (module id, runtime, threads) -> model
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def resolve_device(device: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' -> a torch device; ValueError when cuda is asked for and absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device=cuda was requested but torch sees no CUDA device (use device=auto or cpu)")
        return torch.device("cuda")
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")


def build_from_state_dict(sd: dict[str, torch.Tensor], meta: dict[str, str] | None = None,
                          source: str = "<state dict>") -> SRVGGNetCompact:
    """A Compact module from its state dict (shapes inferred; metadata, when present, must agree)."""
    cfg = compact_config(sd)
    if cfg is None:
        raise ValueError(f"SR checkpoint {source!r} is not a Compact (SRVGGNetCompact) state dict")
    for k in ("num_feat", "num_conv", "scale"):
        if meta and k in meta and meta[k].strip() != str(cfg[k]):
            raise ValueError(f"SR checkpoint {source!r}: metadata says {k}={meta[k]}, tensors say {cfg[k]}")
    net = SRVGGNetCompact(**cfg)
    net.load_state_dict(sd, strict=True)
    return net.eval()


def load_sr_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                  half: bool = False) -> LoadedModel:
    """Load an SR checkpoint (None = Reel's default x2 model), cached per process.

    The cache key holds the resolved path, the file's size and mtime (a replaced file is reloaded),
    the device and the dtype. Half precision is used only on CUDA. ValueError (naming the file) for a
    missing, unreadable or unsupported checkpoint.
    """
    p = Path(path).expanduser().resolve() if path is not None else DEFAULT_WEIGHTS
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    dtype = torch.float16 if half and dev.type == "cuda" else torch.float32
    try:
        st = p.stat()
    except OSError as e:
        raise ValueError(f"SR checkpoint {str(p)!r} does not exist or cannot be read ({e.strerror})") from e
    key = (str(p), st.st_size, st.st_mtime_ns, str(dev), str(dtype))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    sd, meta = _read_state_dict(p)
    pad = 1
    if compact_config(sd) is not None:
        module: nn.Module = build_from_state_dict(sd, meta, str(p))
        scale = module.scale  # type: ignore[assignment]
        c = module.config()  # type: ignore[operator]
        name = meta.get("name") or f"compact-{c['num_feat']}x{c['num_conv']}-x{scale}"
    else:
        module, scale, name, pad = _via_spandrel(p)
    module = module.to(device=dev, dtype=dtype).eval()
    for prm in module.parameters():
        prm.requires_grad_(False)
    loaded = LoadedModel(module=module, scale=int(scale), name=str(name), device=dev, dtype=dtype, pad_multiple=pad)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return loaded


def save_compact(net: SRVGGNetCompact, path: str | os.PathLike, extra_meta: dict[str, str] | None = None) -> None:
    """Write a Compact network as safetensors with num_feat/num_conv/scale in the metadata.

    Written here rather than with `safetensors.torch.save_file`, whose metadata order varies from run to
    run: same weights and metadata -> the same bytes (tensors sorted by name, float32 little-endian,
    header padded to 8 bytes as the format allows).
    """
    import json
    import struct

    meta = {k: str(v) for k, v in net.config().items()}
    meta.update({"architecture": "SRVGGNetCompact", "act_type": "prelu"})
    meta.update({k: str(v) for k, v in (extra_meta or {}).items()})
    sd = net.state_dict()
    header: dict[str, Any] = {"__metadata__": dict(sorted(meta.items()))}
    blobs, off = [], 0
    for name in sorted(sd):
        b = sd[name].detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(sd[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# --------------------------------------------------------------------------------------------------
# Tiled inference
# --------------------------------------------------------------------------------------------------

# reflected context around the frame (LR px): wider than the receptive field of the default network
# (num_conv + 2 = 8 px), so border pixels get the same context whether or not the frame is tiled
FRAME_PAD = 16


def _tile_weights(n: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1-D blend weights over a tile n long (output px).

    On a side that meets another tile, the outer `overlap` px are context only (weight 0) and the next
    `overlap` px ramp up linearly (feathering); sides at the frame's border keep weight 1.
    """
    w = np.ones(n, np.float32)
    if overlap > 0:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not first:
            w[:overlap] = 0.0
            w[overlap:2 * overlap] = ramp
        if not last:
            w[n - overlap:] = 0.0
            w[n - 2 * overlap:n - overlap] = np.minimum(w[n - 2 * overlap:n - overlap], ramp[::-1])
    return w


def _starts(size: int, tile: int, step: int) -> list[int]:
    """Tile origins covering [0, size) with tiles `tile` long, at most `step` apart, the last ending at size."""
    if size <= tile:
        return [0]
    n = math.ceil((size - tile) / step) + 1
    return [((size - tile) * i) // (n - 1) for i in range(n)]


def _upscale_one(img: np.ndarray, m: LoadedModel, tile: int, overlap: int, batch: int) -> tuple[np.ndarray, int]:
    """One (H, W, 3) float32 frame through the network once -> (H*s, W*s, 3) float32 in [0, 1], tile count.

    The frame is reflect-padded by FRAME_PAD; tiles of `tile` padded-input px, neighbours overlapping
    by 2*overlap: each side's outer `overlap` px are context (weight 0), the next `overlap` px are
    feathered, so the network's own zero padding at tile edges never reaches the output, and tiled
    output equals untiled output to float rounding when overlap >= the receptive field.
    """
    h, w = img.shape[:2]
    s, P = m.scale, FRAME_PAD
    x = np.pad(img, ((P, P), (P, P), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    hp, wp = h + 2 * P, w + 2 * P
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = _starts(hp, th, th - 2 * overlap), _starts(wp, tw, tw - 2 * overlap)
    num = np.zeros((hp * s, wp * s, 3), np.float32)
    den = np.zeros((hp * s, wp * s, 1), np.float32)
    jobs = [(y0, x0) for y0 in ys for x0 in xs]
    mult = m.pad_multiple
    eh, ew = (-th) % mult, (-tw) % mult
    for b in range(0, len(jobs), batch):
        chunk = jobs[b:b + batch]
        tiles = torch.cat([x[:, :, y0:y0 + th, x0:x0 + tw] for y0, x0 in chunk])
        if eh or ew:  # architectures that need sides divisible by some number
            tiles = F.pad(tiles, (0, ew, 0, eh), mode="reflect" if eh < th and ew < tw else "replicate")
        res = m.infer(tiles)[:, :, :th * s, :tw * s]
        for (y0, x0), r in zip(chunk, res, strict=True):
            wy = _tile_weights(th * s, overlap * s, y0 == 0, y0 + th == hp)
            wx = _tile_weights(tw * s, overlap * s, x0 == 0, x0 + tw == wp)
            wgt = (wy[:, None] * wx[None, :])[..., None]
            num[y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += r.transpose(1, 2, 0) * wgt
            den[y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += wgt
    out = num[P * s:(P + h) * s, P * s:(P + w) * s]  # a view: divide in place, no second full-size array
    out /= den[P * s:(P + h) * s, P * s:(P + w) * s]
    np.clip(out, 0.0, 1.0, out=out)
    return out, len(jobs)


def passes_for(scale: float, native: int) -> int:
    """Network passes needed so native**k >= scale (0 when scale <= 1)."""
    if scale <= 1.0 + _SCALE_EPS or native <= 1:
        return 0
    return max(1, math.ceil(math.log(scale - _SCALE_EPS) / math.log(native) - 1e-9))


class UpscaledFrames:
    """The network's output frames, computed one at a time when iterated (or indexed).

    A sequence of T (H', W', 3) float32 arrays in [0, 1]; only the frame being made (and one batch of
    tiles) is in memory, so a 4K piece never holds all its full-resolution frames at once.
    `np.asarray(x)` stacks them into (T, H', W', 3).
    """

    def __init__(self, frames: np.ndarray, m: LoadedModel, passes: int, tile: int, overlap: int, batch: int) -> None:
        self._frames, self._m, self._k = frames, m, passes
        self._tile, self._overlap, self._batch = tile, overlap, batch
        f = m.scale ** passes
        t, h, w = frames.shape[:3]
        self.shape = (t, h * f, w * f, 3)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        cur = np.ascontiguousarray(self._frames[i], dtype=np.float32)
        for _ in range(self._k):
            cur, _n = _upscale_one(cur, self._m, self._tile, self._overlap, self._batch)
        return cur

    def __iter__(self):  # noqa: ANN204
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.empty(self.shape, np.float32)
        for i, f in enumerate(self):
            out[i] = f
        return out if dtype is None else out.astype(dtype)


def tile_count(h: int, w: int, tile: int, overlap: int) -> int:
    """Tiles `_upscale_one` runs for an (h, w) input."""
    hp, wp = h + 2 * FRAME_PAD, w + 2 * FRAME_PAD
    th, tw = min(tile, hp), min(tile, wp)
    return len(_starts(hp, th, th - 2 * overlap)) * len(_starts(wp, tw, tw - 2 * overlap))


def upscale_frames(frames: np.ndarray, scale: float, p: Any) -> tuple[np.ndarray | UpscaledFrames, dict[str, Any]]:
    """Run the SR network over (T, H, W, 3) float32 RGB frames in [0, 1].

    scale: the factor wanted; the network runs k times at its native factor n, with n**k >= scale
    (k = 0, the input returned as is, when scale <= 1). p: `UpscaleParams` (checkpoint, tile,
    tile_overlap, batch, device, half). Returns the frames at n**k times the input size with values in
    [0, 1], as an `UpscaledFrames` sequence made lazily frame by frame (`np.asarray` stacks it), and a
    JSON-able info dict for QC. The caller resamples each frame to the exact output size.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    m = load_sr_model(p.checkpoint, p.device, p.half)
    k = passes_for(scale, m.scale)
    info: dict[str, Any] = {"model": m.name, "native_scale": m.scale, "passes": k, "device": str(m.device),
                            "dtype": str(m.dtype).replace("torch.", ""), "tiles": 0}
    if k == 0:
        return frames, info
    m = m.on_runtime(getattr(p, "runtime", "torch"))
    info.update(m.runtime)
    t, h, w = frames.shape[:3]
    tiles = 0
    for i in range(k):
        f = m.scale ** i
        tiles += tile_count(h * f, w * f, p.tile, p.tile_overlap)
    info["tiles"] = tiles * t
    return UpscaledFrames(frames, m, k, p.tile, p.tile_overlap, p.batch), info
