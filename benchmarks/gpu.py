"""GPU throughput of the learned upscalers at real size, 1080p -> 4K UHD (random weights).

    .venv/bin/python -m benchmarks.gpu [--out bench-out] [--frames 3] [--steps 20] [--strength 0.5] [--smoke]

For a machine with a CUDA device; nothing in the build or the default tests needs it. `--smoke` runs
the same code paths on the CPU at toy sizes (seconds), so the script itself is tested anywhere.

Rows (float16 on CUDA; frames/s after one warm-up frame; peak memory = torch.cuda.max_memory_allocated):
1. `models.sr_net` (another module of this project): its shipped default model through
   `upscale_frames` at the factor 1080p -> UHD needs (2x), and the Real-ESRGAN compact size
   (realesr-general-x4v3: SRVGGNetCompact num_feat 64, num_conv 32, x4) when `models.sr_net` exposes a
   compact network class (`SRVGGNetCompact` or `CompactSR`) and `save_compact`: x4 on the source shrunk to
   960x540, and the same body at x2 on 1080p, both through `upscale_frames` with its tiles (512, batch 4);
   a row is skipped with the reason when the module or the class is missing.
2. the diffusion stage (`models.sr_diffusion.diffusion_upscale`, temporal on) with a UNet and VAE of
   the Stable Diffusion x4 upscaler's architecture. The configs below are written from memory of
   stabilityai/stable-diffusion-x4-upscaler's unet/config.json and vae/config.json (not downloaded
   here; check against the real files before quoting figures as "SD x4"). The model directory is
   written with save_pretrained and loaded through `load_model`, i.e. the stage's own loading path.
   An x4 model asked for 2x runs once on the source shrunk to 960x540 (see models/sr_diffusion.py).
   Latent tiles of `tile` input px (default 256; also 512) with the stage's overlap.
Writes OUT/gpu.json (OUT/gpu-smoke.json with --smoke) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

# stabilityai/stable-diffusion-x4-upscaler unet/config.json, reproduced from memory (see the docstring)
SD_X4_UNET: dict[str, Any] = dict(
    sample_size=128, in_channels=7, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    only_cross_attention=(True, True, True, False), block_out_channels=(256, 512, 512, 1024), layers_per_block=2,
    downsample_padding=1, mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5,
    cross_attention_dim=1024, attention_head_dim=8, use_linear_projection=True, num_class_embeds=1000,
)
# its vae/config.json (3 blocks: a 4x decoder), also from memory
SD_X4_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512),
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=2,
    act_fn="silu", norm_num_groups=32, sample_size=256, scaling_factor=0.08333,
)
SD_X4_SCHEDULER: dict[str, Any] = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                                       beta_schedule="scaled_linear", prediction_type="v_prediction",
                                       clip_sample=False, set_alpha_to_one=False)
# toy sizes of the same architecture for --smoke
SMOKE_UNET = {**SD_X4_UNET, "block_out_channels": (8, 16, 16, 32), "norm_num_groups": 8, "cross_attention_dim": 16,
              "attention_head_dim": 4, "layers_per_block": 1}
SMOKE_VAE = {**SD_X4_VAE, "block_out_channels": (8, 16, 16), "norm_num_groups": 8, "layers_per_block": 1}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None


def _frames(n: int, w: int, h: int) -> np.ndarray:
    """A smooth random texture panning 4 px/frame: (n, h, w, 3) float32."""
    import cv2

    rng = np.random.default_rng(0)
    small = rng.random(((h + 64) // 8, (w + 8 * n + 64) // 8, 3)).astype(np.float32)
    base = cv2.resize(small, ((w + 8 * n + 64), (h + 64)), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.stack([base[32:32 + h, 32 + 4 * i:32 + 4 * i + w] for i in range(n)]), 0, 1)


def _timed(fn, frames: np.ndarray, device: torch.device) -> tuple[float, float | None, Any]:
    """Seconds per frame over frames[1:] after a warm-up call on frames[:1], and the peak memory."""
    fn(frames[:1])
    _sync(device)
    _peak_reset(device)
    t0 = time.perf_counter()
    res = fn(frames[1:])
    _sync(device)
    return (time.perf_counter() - t0) / max(1, len(frames) - 1), _peak_gib(device), res


def _materialise(frames: Any) -> np.ndarray:
    """upscale_frames may return a lazy sequence (made frame by frame when read): stack it, inside the timing."""
    return np.stack([np.asarray(f) for f in frames])


def sr_net_rows(frames: np.ndarray, device: str, half: bool, smoke: bool) -> list[dict[str, Any]]:
    from models.upscale import UpscaleParams

    rows: list[dict[str, Any]] = []
    try:
        sr = importlib.import_module("models.sr_net")
    except ImportError as e:
        return [{"row": "sr_net", "skipped": f"models.sr_net is not importable here: {e}"}]
    dev = torch.device("cuda" if device == "cuda" else "cpu")
    if hasattr(sr, "upscale_frames"):
        p = UpscaleParams(method="model", scale=2.0, device=device, half=half, tile=256 if smoke else 512)
        try:
            s, peak, out = _timed(lambda f: _materialise(sr.upscale_frames(f, 2.0, p)[0]), frames, dev)
            rows.append({"row": "sr_net default model (upscale_frames, 2x)", "input": list(frames.shape[2:0:-1]),
                         "output": list(out.shape[2:0:-1]), "s_per_frame": round(s, 4), "fps": round(1 / s, 3),
                         "peak_gib": peak})
        except Exception as e:  # report and go on: the other rows still mean something
            rows.append({"row": "sr_net default model", "error": f"{type(e).__name__}: {e}"})
    cls = next((getattr(sr, n) for n in ("SRVGGNetCompact", "CompactSR") if hasattr(sr, n)), None)
    if cls is None or not hasattr(sr, "save_compact"):
        rows.append({"row": "compact (realesr-general-x4v3 size)",
                     "skipped": "models.sr_net has no SRVGGNetCompact/CompactSR + save_compact to build it at this size"})
        return rows
    import inspect

    key = "upscale" if "upscale" in inspect.signature(cls).parameters else "scale"
    feat, conv = (8, 2) if smoke else (64, 32)
    # x4 on the source shrunk to 960x540 lands on UHD (the realesr-general-x4v3 size as such); the same body
    # at x2 runs on 1080p directly
    for factor, src in ((4, frames[:, ::2, ::2]), (2, frames)):
        try:
            torch.manual_seed(0)
            net = cls(num_feat=feat, num_conv=conv, **{key: factor})
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = Path(tmp) / "compact.safetensors"
                sr.save_compact(net, ckpt)
                p = UpscaleParams(method="model", checkpoint=str(ckpt), scale=float(factor), device=device,
                                  half=half, tile=64 if smoke else 512, tile_overlap=8 if smoke else 16)
                s, peak, out = _timed(lambda f, p=p, k=factor: _materialise(sr.upscale_frames(f, float(k), p)[0]),
                                      src, dev)
            rows.append({"row": f"compact x{factor} num_feat {feat} num_conv {conv} (upscale_frames, tiled)",
                         "input": list(src.shape[2:0:-1]), "output": list(out.shape[-2:-4:-1]),
                         "params_m": round(sum(q.numel() for q in net.parameters()) / 1e6, 3),
                         "s_per_frame": round(s, 4), "fps": round(1 / s, 3), "peak_gib": peak})
        except Exception as e:
            rows.append({"row": f"compact x{factor}", "error": f"{type(e).__name__}: {e}"})
    return rows


def write_sd_x4_dir(d: Path, smoke: bool) -> Path:
    """A model directory with the SD x4 upscaler's architecture and random weights (fp16 files on GPU runs)."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**(SMOKE_UNET if smoke else SD_X4_UNET))
    vae = AutoencoderKL(**(SMOKE_VAE if smoke else SD_X4_VAE))
    if not smoke:
        unet, vae = unet.half(), vae.half()
    unet.save_pretrained(d / "unet")
    vae.save_pretrained(d / "vae")
    DDIMScheduler(**SD_X4_SCHEDULER).save_pretrained(d / "scheduler")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02).save_pretrained(
        d / "low_res_scheduler")
    (d / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionUpscalePipeline",
                                                    "max_noise_level": 350}))
    return d


def diffusion_rows(frames: np.ndarray, device: str, half: bool, smoke: bool, steps: int, strength: float,
                   tiles: tuple[int, ...]) -> list[dict[str, Any]]:
    from models.sr_diffusion import diffusion_upscale, load_model
    from models.upscale import UpscaleParams

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        d = write_sd_x4_dir(Path(tmp) / "sdx4", smoke)
        m = load_model(d, device, half)
        load_s = time.perf_counter() - t0
        params_m = round(sum(p.numel() for p in m.unet.parameters()) / 1e6, 1)
        vae_m = round(sum(p.numel() for p in m.vae.parameters()) / 1e6, 1)
        for tile in tiles:
            p = UpscaleParams(method="diffusion", diffusion_model=str(d), steps=steps, strength=strength,
                              temporal=True, tile=tile, tile_overlap=min(32, tile // 8), batch=4, device=device,
                              half=half)
            try:
                s, peak, (out, info) = _timed(lambda f, p=p: diffusion_upscale(f, 2.0, p, first_frame=0, model=m),
                                              frames, m.device)
                rows.append({"row": f"diffusion, SD x4 architecture{' (toy size)' if smoke else ''}, tile {tile}",
                             "unet_params_m": params_m, "vae_params_m": vae_m, "load_s": round(load_s, 1),
                             "input": list(frames.shape[2:0:-1]), "model_input": info["model_input_size"],
                             "output": info["model_output_size"], "steps_run": info["steps_run"],
                             "latent_tile": info["latent_tile"], "dtype": info["dtype"],
                             "s_per_frame": round(s, 3), "fps": round(1 / s, 4), "peak_gib": peak})
            except Exception as e:
                rows.append({"row": f"diffusion tile {tile}", "error": f"{type(e).__name__}: {e}",
                             "trace": traceback.format_exc()[-1500:]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--frames", type=int, default=3, help="frames per run (the first is a warm-up)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--tiles", default="256,512", help="diffusion tile sides (input px), comma-separated")
    ap.add_argument("--smoke", action="store_true", help="CPU, toy sizes: checks the code path, no figures")
    a = ap.parse_args(argv)
    if a.smoke:
        device, half, (w, h), steps = "cpu", False, (64, 36), 2
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("benchmarks.gpu needs a CUDA device (use --smoke to check the code path on a CPU)")
        device, half, (w, h), steps = "cuda", True, (1920, 1080), a.steps
        torch.backends.cudnn.benchmark = True
    frames = _frames(a.frames, w, h)
    tiles = tuple(int(t) for t in a.tiles.split(","))
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)", "torch": torch.__version__,
        "input": [w, h], "target": "2x (1080p -> 3840x2160)" if not a.smoke else "2x (toy)", "frames": a.frames,
        "steps": steps, "strength": a.strength, "weights": "random", "rows": []}
    result["rows"] += sr_net_rows(frames, device, half, a.smoke)
    result["rows"] += diffusion_rows(frames, device, half, a.smoke, steps, a.strength,
                                     tiles if not a.smoke else (32,))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("gpu-smoke.json" if a.smoke else "gpu.json")).write_text(json.dumps(result, indent=1))
    print(f"device: {result['device']}  input {w}x{h}  steps {steps} strength {a.strength}")
    print("| row | output | s/frame | frames/s | peak GiB | note |\n|---|---|---|---|---|---|")
    for r in result["rows"]:
        note = r.get("skipped") or r.get("error") or ""
        print(f"| {r['row']} | {r.get('output', '')} | {r.get('s_per_frame', '')} | {r.get('fps', '')} | "
              f"{r.get('peak_gib', '')} | {note[:120]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
