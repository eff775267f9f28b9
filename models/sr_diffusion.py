"""Diffusion upscaling with structure anchored to the source and flow-guided temporal propagation.

The `diffusion` method of the `upscale` stage. A model is a local directory in diffusers'
`save_pretrained` layout (nothing is downloaded; `local_files_only`):

    DIR/unet/               UNet2DConditionModel or UNet2DModel (config.json + weights). Its input is the
                            noisy latent concatenated with the low-resolution conditioning image:
                            in_channels = latent channels + 3, out_channels = latent channels (the
                            Stable Diffusion x4 upscaler layout). When the UNet has class embeddings
                            (`num_class_embeds` / `class_embed_type`), it gets the noise level of the
                            noised conditioning image as `class_labels`, as SD x4 does.
    DIR/vae/                optional AutoencoderKL (its `scaling_factor` is used). Without it the
                            diffusion runs in pixel space (latent = RGB in [-1, 1] at output size).
    DIR/scheduler/          optional scheduler config; its betas and `prediction_type` (epsilon,
                            v_prediction, sample) drive a deterministic DDIM sampler (eta = 0).
    DIR/low_res_scheduler/  optional (SD x4): noise schedule for the conditioning image.
    DIR/prompt_embeds.safetensors  optional tensor "prompt_embeds" (1, L, cross_attention_dim) for a
                            cross-attention UNet. Reel has no text encoder: a real SD upscaler needs
                            its prompt embedding computed once elsewhere (e.g. the CLIP text encoder of
                            the model on an empty or "high quality film scan" prompt) and saved here;
                            without the file the UNet attends to zeros.
    DIR/model_index.json    optional; `max_noise_level` (SD x4: 350) bounds `noise_level`.
    DIR/reel.json           optional: {"noise_level": int (default 20 for class-label UNets, else 0),
                            "scale": native factor of a pixel-space model (default: any)}.

Geometry (SD x4 layout): latents live at latent resolution = output / VAE factor, and the
conditioning image is the source resized to that resolution; with a 4x VAE the latents are at the
source's own size and the decoder does the upsampling. The native factor is the VAE factor
(2 ** (VAE blocks - 1)); a pixel-space model works at the requested factor unless reel.json
says otherwise. The model is applied once: when the requested factor is below the native one the
source is first shrunk by area so that one pass lands on the target (1080p -> 4K with an x4 model
runs on 960x540); above it, `Upscale.process` resamples the native result (Lanczos) to the exact
size. Both cases are reported in the info dict.

Per frame (numbered as in a diffusers pipeline):
1. start latent: VAE-encoded (distribution mean, no sampling) Lanczos upscale of the source, noised
   to the schedule point `strength` (img2img: the last int(steps * strength) DDIM steps run), with
   noise from a CPU torch.Generator seeded from (seed, absolute frame index): a rerun, or the same
   frame reached from another piece, gets the same noise on any device.
2. temporal (a) flow-guided propagation, as in Upscale-A-Video / MGLD-VSR: the previous frame's final
   latent is warped along DIS flow between the low-resolution source frames (resized to latent
   resolution) and mixed into the start latent by `temporal_weight` where the flow is reliable
   (forward-backward consistency < 1 source px; occluded pixels are left alone).
3. denoising: at every step the UNet predicts on overlapping latent tiles whose predictions are
   blended with feathered weights before the step (MultiDiffusion, Bar-Tal et al. 2023: no seams).
   temporal (b) consistency term: the predicted x0 is pulled towards the warped previous final latent
   by `temporal_weight` on reliable pixels, and the DDIM step is taken from the pulled x0.
4. decode (VAE tiling above `tile`), then structure anchoring (DiffBIR's colour fix, in spirit):
   the output's low frequencies (Gaussian, sigma = anchor_sigma * factor output px) are replaced by
   those of the Lanczos-upscaled source, so colour and tone come from the film, not the model.
The first frame of the array starts fresh, and so does any frame whose flow to the previous one is
mostly unreliable (< 30 % of pixels: a cut or a flash); with `temporal=False` every frame does.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.flow import FlowEstimator, consistency_error, warp

_CACHE: dict[tuple, DiffusionModel] = {}
_CACHE_SIZE = 2
_MIN_RELIABLE = 0.3  # below this fraction of reliable flow pixels the propagation restarts
_FB_TOLERANCE_PX = 1.0  # forward-backward flow error (source px) above which a pixel is occluded


@dataclass
class DiffusionModel:
    """A loaded model directory: modules on `device` in `dtype`, plus what the sampler needs."""

    directory: Path
    unet: Any
    vae: Any  # AutoencoderKL or None (pixel space)
    scheduler: Any  # DDIMScheduler (its alphas_cumprod and prediction_type)
    low_res_scheduler: Any | None
    prompt_embeds: torch.Tensor | None
    device: torch.device
    dtype: torch.dtype
    latent_channels: int
    vae_factor: int  # output px per latent px (1 in pixel space)
    scaling_factor: float
    noise_level: int
    class_labels: bool
    unet_multiple: int  # latent tiles are padded to a multiple of this
    native_scale: float | None  # None: pixel-space model that works at any factor
    # one call at a time per loaded model (the VAE's tiling settings are set per call; one GPU anyway)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pixel_space(self) -> bool:
        return self.vae is None


def resolve_device(device: str, half: bool) -> tuple[torch.device, torch.dtype]:
    """'auto' | 'cpu' | 'cuda' -> (device, dtype); float16 only on CUDA."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda was asked for but torch sees no CUDA device here (use device=auto or cpu)")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    return dev, (torch.float16 if half and dev.type == "cuda" else torch.float32)


def _read_json(path: Path, directory: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"diffusion model {directory}: cannot read {path.name}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"diffusion model {directory}: {path.name} must hold a JSON object")
    return data


def _fingerprint(directory: Path) -> tuple:
    out = []
    for root, _dirs, files in os.walk(directory):
        for f in sorted(files):
            st = os.stat(os.path.join(root, f))
            out.append((os.path.relpath(os.path.join(root, f), directory), st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def load_model(directory: str | os.PathLike, device: str = "auto", half: bool = True) -> DiffusionModel:
    """Load (or take from the per-process cache) a diffusers model directory; see the module docstring.

    Raises ValueError naming the directory and what is wrong with it.
    """
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise ValueError(f"diffusion model directory {d} does not exist or is not a directory")
    d = d.resolve()
    dev, dtype = resolve_device(device, half)
    key = (str(d), _fingerprint(d), str(dev), str(dtype))
    if key in _CACHE:
        return _CACHE[key]
    model = _load(d, dev, dtype)
    for k in [k for k in _CACHE if k[0] == key[0]] + list(_CACHE)[: max(0, len(_CACHE) - _CACHE_SIZE + 1)]:
        _CACHE.pop(k, None)
    _CACHE[key] = model
    return model


def _load(d: Path, dev: torch.device, dtype: torch.dtype) -> DiffusionModel:
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler

    unet_cfg = _read_json(d / "unet" / "config.json", d)
    if not unet_cfg:
        raise ValueError(f"diffusion model {d} has no unet/ (expected diffusers save_pretrained layout: "
                         "unet/config.json + weights, optional vae/, scheduler/)")
    cls_name = unet_cfg.get("_class_name")
    if cls_name not in ("UNet2DConditionModel", "UNet2DModel"):
        raise ValueError(f"diffusion model {d}: unet/ is a {cls_name!r}; expected UNet2DConditionModel or UNet2DModel")
    try:
        kw = {"local_files_only": True, "torch_dtype": dtype, "low_cpu_mem_usage": False}
        unet = getattr(diffusers, cls_name).from_pretrained(d, subfolder="unet", **kw)
        vae = None
        vae_cfg = _read_json(d / "vae" / "config.json", d)
        if vae_cfg:
            # the SD x4 pipeline keeps its VAE in float32 (it overflows in float16): honour force_upcast
            vae_kw = {**kw, "torch_dtype": torch.float32} if vae_cfg.get("force_upcast", False) else kw
            vae = AutoencoderKL.from_pretrained(d, subfolder="vae", **vae_kw)
    except (OSError, RuntimeError, KeyError) as e:
        raise ValueError(f"diffusion model {d}: cannot load weights: {str(e).splitlines()[0]}") from None

    latent_channels = int(vae.config.latent_channels) if vae is not None else 3
    if unet.config.in_channels != latent_channels + 3 or unet.config.out_channels != latent_channels:
        raise ValueError(
            f"diffusion model {d}: unet takes {unet.config.in_channels} and gives {unet.config.out_channels} "
            f"channels; with {'a VAE of ' + str(latent_channels) + ' latent' if vae is not None else 'no VAE (pixel space, 3)'}"
            f" channels it must take {latent_channels + 3} (latent + RGB conditioning) and give {latent_channels}")
    vae_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
    scaling = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0) if vae is not None else 1.0

    sched_cfg = _read_json(d / "scheduler" / "scheduler_config.json", d)
    if sched_cfg:
        scheduler = DDIMScheduler.from_config({k: v for k, v in sched_cfg.items() if not k.startswith("_")})
    else:
        scheduler = DDIMScheduler(clip_sample=vae is None, set_alpha_to_one=True)
    if scheduler.config.prediction_type not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"diffusion model {d}: prediction_type {scheduler.config.prediction_type!r} is not supported")

    class_labels = unet.config.num_class_embeds is not None or unet.config.class_embed_type in ("timestep",
                                                                                                 "identity")
    reel = _read_json(d / "reel.json", d)
    index = _read_json(d / "model_index.json", d)
    noise_level = int(reel.get("noise_level", 20 if class_labels else 0))
    max_level = int(index.get("max_noise_level", unet.config.num_class_embeds or 1000))
    if not 0 <= noise_level <= max_level or (unet.config.num_class_embeds and noise_level >= unet.config.num_class_embeds):
        raise ValueError(f"diffusion model {d}: noise_level {noise_level} is outside 0..{max_level}")
    low_res = None
    if noise_level > 0:
        lr_cfg = _read_json(d / "low_res_scheduler" / "scheduler_config.json", d)
        low_res = DDPMScheduler.from_config({k: v for k, v in lr_cfg.items() if not k.startswith("_")}) if lr_cfg \
            else DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02)  # SD x4's

    prompt = None
    if hasattr(unet.config, "cross_attention_dim") and cls_name == "UNet2DConditionModel":
        dim = unet.config.cross_attention_dim
        dim = dim[0] if isinstance(dim, (list, tuple)) else dim
        pe = d / "prompt_embeds.safetensors"
        if pe.is_file():
            from safetensors.torch import load_file

            tensors = load_file(str(pe))
            if "prompt_embeds" not in tensors:
                raise ValueError(f"diffusion model {d}: prompt_embeds.safetensors has no tensor 'prompt_embeds'")
            prompt = tensors["prompt_embeds"].float()
            prompt = prompt[None] if prompt.ndim == 2 else prompt
            if prompt.ndim != 3 or prompt.shape[0] != 1 or prompt.shape[-1] != dim:
                raise ValueError(f"diffusion model {d}: prompt_embeds must be (1, L, {dim}), got {tuple(prompt.shape)}")
        else:
            prompt = torch.zeros(1, 1, dim)  # no text encoder: attend to zeros (see the module docstring)
        prompt = prompt.to(dev, dtype)

    native = float(reel["scale"]) if vae is None and "scale" in reel else (float(vae_factor) if vae else None)
    unet.to(dev).eval()
    if vae is not None:
        vae.to(dev).eval()
    return DiffusionModel(
        directory=d, unet=unet, vae=vae, scheduler=scheduler, low_res_scheduler=low_res, prompt_embeds=prompt,
        device=dev, dtype=dtype, latent_channels=latent_channels, vae_factor=vae_factor, scaling_factor=scaling,
        noise_level=noise_level, class_labels=class_labels,
        unet_multiple=2 ** (len(unet.config.block_out_channels) - 1), native_scale=native)


# --------------------------------------------------------------------------- pieces of the sampler


def frame_generator(seed: int, frame_index: int) -> torch.Generator:
    """CPU generator for one frame, from the stage seed and the absolute frame index."""
    state = np.random.SeedSequence([int(seed), int(frame_index) % 2**63]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


def _tiles(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    w = np.ones(n, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


def _unet_tiled(m: DiffusionModel, model_in: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None,
                tile: int, overlap: int, batch: int) -> torch.Tensor:
    """UNet output over (1, C, H, W) latents in overlapping tiles, blended with feathered weights."""
    _, _, h, w = model_in.shape
    th, tw = min(tile, h), min(tile, w)
    ys, xs = _tiles(h, th, overlap), _tiles(w, tw, overlap)
    mult = m.unet_multiple
    ph, pw = -th % mult, -tw % mult
    out = torch.zeros((1, m.latent_channels, h, w), dtype=torch.float32, device=m.device)
    acc = torch.zeros((1, 1, h, w), dtype=torch.float32, device=m.device)
    boxes = [(y, x) for y in ys for x in xs]
    for i in range(0, len(boxes), batch):
        chunk = boxes[i:i + batch]
        x_in = torch.cat([model_in[:, :, y:y + th, x:x + tw] for y, x in chunk])
        if ph or pw:
            x_in = torch.nn.functional.pad(x_in, (0, pw, 0, ph), mode="replicate")
        kw: dict[str, Any] = {}
        if class_labels is not None:
            kw["class_labels"] = class_labels.expand(len(chunk))
        if m.prompt_embeds is not None:
            kw["encoder_hidden_states"] = m.prompt_embeds.expand(len(chunk), -1, -1)
        pred = m.unet(x_in.to(m.dtype), t.expand(len(chunk)), **kw).sample.float()[:, :, :th, :tw]
        for k, (y, x) in enumerate(chunk):
            wy = _ramp(th, overlap, y == 0, y + th >= h)
            wx = _ramp(tw, overlap, x == 0, x + tw >= w)
            wt = torch.from_numpy(np.outer(wy, wx)).to(m.device)[None, None]
            out[:, :, y:y + th, x:x + tw] += pred[k:k + 1] * wt
            acc[:, :, y:y + th, x:x + tw] += wt
    return out / acc


def _to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) [0, 1] -> (1, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(device) * 2.0 - 1.0


def _vae_tiling(m: DiffusionModel, out_h: int, out_w: int, tile_px: int) -> None:
    vae = m.vae
    if max(out_h, out_w) > tile_px:
        vae.enable_tiling()
        vae.tile_sample_min_size = tile_px
        vae.tile_latent_min_size = max(8, tile_px // m.vae_factor)
    else:
        vae.disable_tiling()


def _encode(m: DiffusionModel, img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) [0, 1] at output size -> (1, C, h, w) float32 latent (scaled)."""
    x = _to_tensor(img, m.device)
    if m.pixel_space:
        return x
    return m.vae.encode(x.to(m.vae.dtype)).latent_dist.mean.float() * m.scaling_factor


def _decode(m: DiffusionModel, z: torch.Tensor) -> np.ndarray:
    x = z if m.pixel_space else m.vae.decode((z / m.scaling_factor).to(m.vae.dtype)).sample.float()
    return ((x[0].clamp(-1, 1) + 1.0) * 0.5).permute(1, 2, 0).cpu().numpy().astype(np.float32)


def _warp_latent(z: torch.Tensor, flow: np.ndarray) -> torch.Tensor:
    """Warp (1, C, h, w) latents with a (h, w, 2) flow (models.flow.warp, bilinear; 4 channels at a time)."""
    a = z[0].permute(1, 2, 0).cpu().numpy()
    parts = [warp(np.ascontiguousarray(a[..., c:c + 4]), flow, cv2.INTER_LINEAR) for c in range(0, a.shape[-1], 4)]
    parts = [p[..., None] if p.ndim == 2 else p for p in parts]
    return torch.from_numpy(np.concatenate(parts, axis=-1)).permute(2, 0, 1)[None].to(z.device)


def _latent_flow(est: FlowEstimator, cur: np.ndarray, prev: np.ndarray, lh: int, lw: int) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Flow (lh, lw, 2) in latent px that brings `prev` onto `cur`, and the reliable fraction (lh, lw) in [0, 1]."""
    f_cp = est(cur, prev)
    f_pc = est(prev, cur)
    ok = (consistency_error(f_cp, f_pc) < _FB_TOLERANCE_PX).astype(np.float32)
    h, w = cur.shape[:2]
    flow = cv2.resize(f_cp, (lw, lh), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= lw / w
    flow[..., 1] *= lh / h
    mask = cv2.resize(ok, (lw, lh), interpolation=cv2.INTER_AREA)
    return flow.astype(np.float32), np.clip(mask, 0.0, 1.0)


def anchor(out: np.ndarray, reference: np.ndarray, sigma_px: float) -> np.ndarray:
    """Replace the low frequencies (Gaussian, sigma in px) of `out` by those of `reference`; same shape."""
    if sigma_px <= 0:
        return out
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    return (out - blur(out) + blur(reference)).astype(np.float32)


def _lanczos(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    interp = cv2.INTER_AREA if w < img.shape[1] and h < img.shape[0] else cv2.INTER_LANCZOS4
    return np.clip(cv2.resize(img, (w, h), interpolation=interp), 0.0, 1.0)


# --------------------------------------------------------------------------- the stage's entry point


def diffusion_upscale(frames: np.ndarray, scale: float, p: Any, first_frame: int = 0,
                      model: DiffusionModel | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Upscale (T, H, W, 3) float32 RGB [0, 1] frames of one shot (or a piece with its halo) by diffusion.

    `p`: UpscaleParams (diffusion_model, steps, strength, seed, temporal, temporal_weight, anchor_sigma,
    tile, tile_overlap, batch, device, half). Returns frames at the model's native factor (see the
    module docstring), float32 [0, 1], and a JSON-able info dict.
    """
    # 1. check inputs
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    m = model if model is not None else load_model(p.diffusion_model, p.device, p.half)
    with m.lock, torch.inference_mode():
        return _run(m, frames, scale, p, first_frame)


def _run(m: DiffusionModel, frames: np.ndarray, scale: float, p: Any, first_frame: int) -> tuple[np.ndarray,
                                                                                                dict[str, Any]]:
    t_count, h0, w0 = frames.shape[:3]
    src_all = frames.astype(np.float32, copy=False)

    # 2. geometry: model input size, latent size, output size
    native = m.native_scale if m.native_scale is not None else scale
    if scale < native:  # one pass of the native factor should land on the target: shrink the source first
        iw, ih = max(8, round(w0 * scale / native)), max(8, round(h0 * scale / native))
    else:
        iw, ih = w0, h0
    ow, oh = round(iw * native), round(ih * native)
    ow, oh = ow - ow % m.vae_factor, oh - oh % m.vae_factor
    lw, lh = ow // m.vae_factor, oh // m.vae_factor
    lat_per_in = lw / iw
    tile_l = max(m.unet_multiple, round(p.tile * lat_per_in))
    overlap_l = min(round(p.tile_overlap * lat_per_in), tile_l // 2 - 1) if tile_l > 2 else 0
    if m.vae is not None:
        _vae_tiling(m, oh, ow, max(64, round(p.tile * ow / iw)))
    sigma_out = p.anchor_sigma * ow / w0

    # 3. schedule: the last int(steps * strength) DDIM steps (at least one)
    sched = type(m.scheduler).from_config(m.scheduler.config)  # a copy: set_timesteps keeps state
    sched.set_timesteps(p.steps)
    n_run = min(p.steps, max(1, int(p.steps * p.strength)))
    timesteps = sched.timesteps[p.steps - n_run:].tolist()
    alphas = sched.alphas_cumprod.double()
    final_alpha = float(sched.final_alpha_cumprod)
    pred_type = sched.config.prediction_type
    clip_x0 = bool(sched.config.clip_sample)
    clip_range = float(getattr(sched.config, "clip_sample_range", 1.0))

    est = FlowEstimator("medium") if p.temporal else None
    weight = float(p.temporal_weight) if p.temporal else 0.0
    out = np.empty((t_count, oh, ow, 3), np.float32)
    prev_final: torch.Tensor | None = None
    prev_src: np.ndarray | None = None
    restarts, reliable = 0, []

    for t_idx in range(t_count):
        src = _lanczos(src_all[t_idx], iw, ih)
        up = _lanczos(src, ow, oh)
        gen = frame_generator(p.seed, first_frame + t_idx)
        noise = torch.randn((1, m.latent_channels, lh, lw), generator=gen).to(m.device)

        # conditioning image at latent resolution (SD x4: the source itself), noise-augmented
        cond = _to_tensor(_lanczos(src, lw, lh), m.device)
        class_labels = None
        if m.low_res_scheduler is not None:
            cnoise = torch.randn(cond.shape, generator=gen).to(m.device)
            level = torch.tensor([m.noise_level], dtype=torch.long)
            cond = m.low_res_scheduler.add_noise(cond.cpu(), cnoise.cpu(), level).to(m.device)
        if m.class_labels:
            class_labels = torch.tensor([m.noise_level], dtype=torch.long, device=m.device)

        # 4. start latent, with the previous frame's result propagated along flow
        z0 = _encode(m, up)
        prev_w, mask_t = None, None
        if est is not None and weight > 0 and prev_final is not None and prev_src is not None:
            flow, mask = _latent_flow(est, src, prev_src, lh, lw)
            reliable.append(float(mask.mean()))
            if mask.mean() >= _MIN_RELIABLE:
                prev_w = _warp_latent(prev_final, flow)
                mask_t = torch.from_numpy(mask)[None, None].to(m.device) * weight
                z0 = z0 + mask_t * (prev_w - z0)
            else:
                restarts += 1
        a0 = float(alphas[timesteps[0]])
        x = math.sqrt(a0) * z0 + math.sqrt(1.0 - a0) * noise

        # 5. denoise (DDIM, eta 0) with tiled UNet and the temporal consistency pull on x0
        x0 = z0
        for i, t in enumerate(timesteps):
            a = float(alphas[t])
            a_prev = float(alphas[timesteps[i + 1]]) if i + 1 < len(timesteps) else final_alpha
            model_in = torch.cat([x, cond], dim=1)
            tt = torch.tensor([t], device=m.device)
            pred = _unet_tiled(m, model_in, tt, class_labels, tile_l, overlap_l, p.batch)
            sa, sb = math.sqrt(a), math.sqrt(1.0 - a)
            if pred_type == "epsilon":
                x0 = (x - sb * pred) / sa
            elif pred_type == "v_prediction":
                x0 = sa * x - sb * pred
            else:
                x0 = pred
            if clip_x0:
                x0 = x0.clamp(-clip_range, clip_range)
            if prev_w is not None and mask_t is not None:
                x0 = x0 + mask_t * (prev_w - x0)
            eps = (x - sa * x0) / sb
            x = math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps
        final = x0  # the last step's clean estimate

        # 6. decode and anchor the low frequencies to the (unshrunk) source
        img = _decode(m, final)
        ref = _lanczos(src_all[t_idx], ow, oh)
        out[t_idx] = np.clip(anchor(img, ref, sigma_out), 0.0, 1.0)
        prev_final, prev_src = final, src

    info = {
        "diffusion_model": m.directory.name, "native_scale": native, "model_input_size": [iw, ih],
        "model_output_size": [ow, oh], "prescaled": [iw, ih] != [w0, h0], "steps_run": n_run,
        "device": str(m.device), "dtype": str(m.dtype).replace("torch.", ""),
        "noise_level": m.noise_level if m.low_res_scheduler is not None or m.class_labels else None,
        "temporal": bool(p.temporal), "propagation_restarts": restarts,
        "flow_reliable": round(float(np.mean(reliable)), 4) if reliable else None,
        "latent_tile": tile_l, "anchor_sigma_out_px": round(sigma_out, 3),
    }
    return out, info


# --------------------------------------------------------------------------- tiny models for tests and benchmarks


def save_tiny_model(directory: str | os.PathLike, layout: str = "latent", seed: int = 0,
                    noise_level: int | None = None) -> Path:
    """Write a tiny random-weight model directory (seconds on a CPU) in the layout `load_model` reads.

    layout: "latent" (UNet2DConditionModel + 2-block AutoencoderKL, x2), "x4" (the SD x4 upscaler's
    layout at toy size: class-label noise level, low_res_scheduler, v-prediction, max_noise_level,
    VAE factor 2 here), "pixel" (UNet2DModel on RGB, no VAE). For tests and benchmarks only.
    """
    import diffusers

    lib: Any = diffusers  # diffusers' save_pretrained is not visible to type checkers
    AutoencoderKL, DDIMScheduler, DDPMScheduler = lib.AutoencoderKL, lib.DDIMScheduler, lib.DDPMScheduler
    UNet2DConditionModel, UNet2DModel = lib.UNet2DConditionModel, lib.UNet2DModel
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if layout == "pixel":
        UNet2DModel(sample_size=32, in_channels=6, out_channels=3, layers_per_block=1,
                    block_out_channels=(16, 32), norm_num_groups=8,
                    down_block_types=("DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D")).save_pretrained(d / "unet")
        DDIMScheduler(clip_sample=True).save_pretrained(d / "scheduler")
        (d / "reel.json").write_text(json.dumps({"scale": 2}))
        return d
    if layout not in ("latent", "x4"):
        raise ValueError(f"layout must be latent, x4 or pixel, got {layout!r}")
    x4 = layout == "x4"
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  layers_per_block=1, norm_num_groups=8, sample_size=64,
                  scaling_factor=0.08333 if x4 else 0.18215).save_pretrained(d / "vae")
    UNet2DConditionModel(sample_size=32, in_channels=7, out_channels=4, layers_per_block=1,
                         block_out_channels=(16, 32), norm_num_groups=8, cross_attention_dim=16,
                         attention_head_dim=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                         up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                         num_class_embeds=1000 if x4 else None).save_pretrained(d / "unet")
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085 if not x4 else 0.0001,
                  beta_end=0.012 if not x4 else 0.02, clip_sample=False, set_alpha_to_one=False,
                  prediction_type="v_prediction" if x4 else "epsilon").save_pretrained(d / "scheduler")
    if x4:
        DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0001,
                      beta_end=0.02).save_pretrained(d / "low_res_scheduler")
        (d / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionUpscalePipeline",
                                                        "max_noise_level": 350}))
    if noise_level is not None:
        (d / "reel.json").write_text(json.dumps({"noise_level": noise_level}))
    return d
