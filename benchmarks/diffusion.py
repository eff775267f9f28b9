"""Diffusion upscaler benchmark: temporal propagation against frame-by-frame on the same model and seeds.

    .venv/bin/python -m benchmarks.diffusion [--out bench-out] [--frames 12] [--steps 8] [--quick]

Models are tiny and random-weight (`models.sr_diffusion.save_tiny_model`, fixed seeds): "latent"
(UNet2DConditionModel + 2-block AutoencoderKL, x2), "x4" (the SD x4 upscaler's layout at toy size:
noise-level class labels, v-prediction) and "pixel" (UNet2DModel on RGB). A random model is the worst
case for temporal stability (its output is mostly per-frame noise), so this measures what the
propagation and the anchoring do, not what a trained model restores.

Clips (the input is the ground truth shrunk 2x by area; the output is compared with the ground truth):
- synth: one shot of `models.synth` (clean render, camera move and moving objects), 192x144;
- pan: a coloured random texture panning 3 px/frame, 192x144;
- real: the first frames of ../shared/data/oldfilm/four_films.mkv (A Trip Down Market Street, 1906,
  centre 240x184 of the 480x368 frames, decoded with PyAV; its own degradations stay in), when present.

Per clip and model: warping error (`models.metrics.warping_error`, flow measured on the ground truth
so the motion is not learnt from the artefacts) and PSNR vs ground truth, for frame-by-frame
(temporal=False), temporal at several `temporal_weight`s, and frame-by-frame without anchoring
(anchor_sigma=0); Lanczos for reference. Writes OUT/diffusion.json and OUT/diffusion.md and prints the
table. Torch runs on one thread (tiny convolutions; the shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.metrics import psnr, warping_error
from models.sr_diffusion import diffusion_upscale, load_model, save_tiny_model
from models.upscale import UpscaleParams

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oldfilm" / "four_films.mkv"
WEIGHTS = (0.25, 0.5, 0.75)


def _shrink(frames: np.ndarray, factor: int = 2) -> np.ndarray:
    h, w = frames.shape[1:3]
    return np.stack([cv2.resize(f, (w // factor, h // factor), interpolation=cv2.INTER_AREA) for f in frames])


def synth_clip(n: int) -> np.ndarray:
    from models.synth import SynthConfig, render_film

    cfg = SynthConfig(width=192, height=144, shots=1, frames_per_shot=n, seed=5, blotches=False, scratches=False,
                      flicker=False, grain=False, fade=False, weave=False)
    return render_film(cfg).clean.astype(np.float32) / 255.0


def pan_clip(n: int, h: int = 144, w: int = 192, pan: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    base = cv2.GaussianBlur(rng.random((h + 40, w + 40 + int(pan * n) + 2, 3)).astype(np.float32), (0, 0), 2.5)
    base = (base - base.min()) / (base.max() - base.min()) * 0.8 + 0.1
    out = [cv2.warpAffine(base, np.float32([[1, 0, -pan * i - 20], [0, 1, -20]]), (w, h), flags=cv2.INTER_CUBIC)
           for i in range(n)]
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def real_clip(n: int, start: int = 0) -> np.ndarray | None:
    if not REAL.is_file():
        return None
    import av

    frames = []
    with av.open(str(REAL)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= start:
                frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    frames = np.stack(frames)[:, 92:276, 120:360]  # the centre 240x184 (keeps the run short)
    return frames.astype(np.float32) / 255.0


def _lanczos(frames: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.clip(np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LANCZOS4) for f in frames]), 0, 1)


def _score(out: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    if out.shape != truth.shape:
        out = _lanczos(out, truth.shape[2], truth.shape[1])
    return {"warping_error": round(warping_error(out, flow_frames=truth), 5),
            "psnr_db": round(float(np.mean([psnr(o, t) for o, t in zip(out, truth, strict=True)])), 3)}


def run(out_dir: Path, n: int, steps: int, quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    clips = {"synth": synth_clip(n), "pan": pan_clip(n)}
    real = None if quick else real_clip(n)
    if real is not None:
        clips["real"] = real
    weights = (0.5,) if quick else WEIGHTS
    layouts = ("latent",) if quick else ("latent", "x4", "pixel")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout in layouts:
            d = save_tiny_model(Path(tmp) / layout, layout, seed=0)
            load_model(d, "cpu")
            for clip_name, truth in clips.items():
                src = _shrink(truth)
                h, w = truth.shape[1:3]
                if layout == layouts[0]:
                    rows.append({"clip": clip_name, "model": "-", "mode": "lanczos", "temporal_weight": None,
                                 **_score(_lanczos(src, w, h), truth), "s_per_frame": None})
                modes = [("frame-by-frame", False, 0.0, 2.0), ("no anchoring", False, 0.0, 0.0)]
                modes += [("temporal", True, wt, 2.0) for wt in weights]
                for mode, temporal, wt, sigma in modes:
                    p = UpscaleParams(method="diffusion", diffusion_model=str(d), steps=steps, strength=0.5,
                                      seed=0, temporal=temporal, temporal_weight=wt, anchor_sigma=sigma, device="cpu")
                    t0 = time.perf_counter()
                    out, _info = diffusion_upscale(src, 2.0, p, first_frame=0)
                    dt = (time.perf_counter() - t0) / len(src)
                    row = {"clip": clip_name, "model": layout, "mode": mode,
                           "temporal_weight": wt if temporal else None, **_score(out, truth),
                           "s_per_frame": round(dt, 3)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    for r in rows:  # ratio to the same model's frame-by-frame run on the same clip
        base = next((b for b in rows if b["clip"] == r["clip"] and b["model"] == r["model"]
                     and b["mode"] == "frame-by-frame"), None)
        r["we_vs_frame_by_frame"] = round(r["warping_error"] / base["warping_error"], 3) if base else None
    result = {"frames": n, "steps": steps, "strength": 0.5, "input": "ground truth shrunk 2x by area",
              "flow_for_warping_error": "ground truth", "real_clip": str(REAL) if real is not None else None,
              "torch_threads": 1, "rows": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "diffusion.json").write_text(json.dumps(result, indent=1))
    table = markdown(rows)
    (out_dir / "diffusion.md").write_text(table + "\n")
    print(table)
    return result


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| clip | model | mode | weight | warping error | vs frame-by-frame | PSNR dB | s/frame |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['model']} | {r['mode']} | {r['temporal_weight'] or ''} | "
                     f"{r['warping_error']:.4f} | {r['we_vs_frame_by_frame'] or ''} | {r['psnr_db']:.2f} | "
                     f"{r['s_per_frame'] or ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="one model, one weight, synthetic clips only")
    a = ap.parse_args(argv)
    run(Path(a.out), a.frames, a.steps, a.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
