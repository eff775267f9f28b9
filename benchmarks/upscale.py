"""Upscale benchmark: Reel's learned x2 model (`upscale` method=model) against Lanczos.

    python -m benchmarks.upscale [--quick] [--out bench-out] [--checkpoint FILE] [--film FILE]

The task is the one the stage is judged on: clean pictures downscaled by area (cv2.INTER_AREA) by 2 or 4,
then enlarged back through the `Upscale` stage (`method=lanczos` or `method=model`; 4x = the x2 model run
twice, then the stage's exact-size resample, which is a no-op here), and compared with the original:

- (a) held-out natural images bundled with scikit-image (`benchmarks.train_sr.HELDOUT_IMAGES`), each
  cropped to a multiple of 8 px;
- (b) clean synthetic clips from `models.synth` with seeds training never used (SYNTH_HELDOUT_SEEDS),
  480x360, 2 shots x 6 frames each;
- (c) real old film: the frames of `four_films.mkv` training never used (FILM_HELDOUT, The Great Train
  Robbery, 480x368), when the file is present.

Per set and factor: PSNR (RGB, mean over frames) and luma SSIM (`models.metrics`) for both methods and the
gain; for the clips, the warping error (`models.metrics.warping_error`, flow from the true frames) of the
truth, Lanczos and the model. Speed, measured side by side in one run: seconds per 640x480 output frame
(a 320x240 input through the stage) for the model and for Lanczos, and their ratio.
Writes OUT/upscale.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from benchmarks.train_sr import (
    DEFAULT_FILM,
    FILM_HELDOUT,
    HELDOUT_IMAGES,
    SYNTH_HELDOUT_SEEDS,
    film_frames,
    skimage_rgb,
    synth_clean_frames,
)
from models.clip import Clip
from models.metrics import psnr, ssim_luma, warping_error
from models.upscale import Upscale


def area_down(frames: np.ndarray, factor: int) -> np.ndarray:
    t, h, w = frames.shape[:3]
    return np.stack([cv2.resize(f, (w // factor, h // factor), interpolation=cv2.INTER_AREA) for f in frames])


def crop8(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return np.ascontiguousarray(frames[:, : h - h % 8, : w - w % 8])


def run_stage(lr: np.ndarray, factor: int, method: str, checkpoint: str | None) -> tuple[np.ndarray, dict]:
    params: dict[str, Any] = {"method": method, "scale": float(factor)}
    if method == "model":
        params.update(checkpoint=checkpoint, device="cpu")
    out, rep = Upscale(**params).process(Clip(lr, Fraction(24)))
    return out.frames, rep


def score(truth: np.ndarray, lr: np.ndarray, factor: int, checkpoint: str | None,
          temporal: bool) -> dict[str, Any]:
    res: dict[str, Any] = {"frames": int(truth.shape[0]), "size": [int(truth.shape[2]), int(truth.shape[1])]}
    outs = {}
    for method in ("lanczos", "model"):
        t0 = time.perf_counter()
        up, rep = run_stage(lr, factor, method, checkpoint)
        dt = time.perf_counter() - t0
        outs[method] = up
        res[method] = {"psnr": float(np.mean([psnr(u, g) for u, g in zip(up, truth, strict=True)])),
                       "ssim": ssim_luma(up, truth), "seconds": round(dt, 3)}
        if method == "model":
            res["model_info"] = {k: rep[k] for k in ("model", "native_scale", "passes", "device")}
    res["psnr_gain_db"] = res["model"]["psnr"] - res["lanczos"]["psnr"]
    res["ssim_gain"] = res["model"]["ssim"] - res["lanczos"]["ssim"]
    if temporal and truth.shape[0] > 1:
        res["warping_error"] = {"truth": warping_error(truth, truth),
                                "lanczos": warping_error(outs["lanczos"], truth),
                                "model": warping_error(outs["model"], truth)}
    return res


def image_set(quick: bool) -> list[tuple[str, np.ndarray]]:
    names = HELDOUT_IMAGES[:2] if quick else HELDOUT_IMAGES
    return [(f"skimage:{n}", crop8(skimage_rgb(n)[None])) for n in names]


def synth_set(quick: bool) -> list[tuple[str, np.ndarray]]:
    seeds = SYNTH_HELDOUT_SEEDS[:1] if quick else SYNTH_HELDOUT_SEEDS
    fps = 3 if quick else 6
    return [(f"synth:{s}", crop8(synth_clean_frames(s, 480, 360, shots=2, frames_per_shot=fps))) for s in seeds]


def film_set(path: Path, quick: bool) -> list[tuple[str, np.ndarray]]:
    if not path.is_file():
        return []
    a, b = FILM_HELDOUT
    if quick:
        b = a + 8
    frames = [f for _, f in film_frames(path, lambda i: a <= i < b)]
    return [(f"film:{path.name}[{a}:{b}]", crop8(np.stack(frames)))]


def speed(checkpoint: str | None, reps: int) -> dict[str, float]:
    """Seconds per 640x480 output frame, model vs Lanczos, interleaved in one run."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((240, 320, 3)).astype(np.float32), (0, 0), 1.5)[None]
    run_stage(img, 2, "model", checkpoint)  # load + warm up
    tm, tl = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        run_stage(img, 2, "model", checkpoint)
        tm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(10):
            run_stage(img, 2, "lanczos", checkpoint)
        tl.append((time.perf_counter() - t0) / 10)
    m, lz = float(np.median(tm)), float(np.median(tl))
    return {"model_s_per_frame": m, "lanczos_s_per_frame": lz, "ratio": m / lz,
            "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images/frames (about a minute)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--checkpoint", default=None, help="SR checkpoint (default: Reel's x2 model)")
    ap.add_argument("--film", type=Path, default=DEFAULT_FILM)
    args = ap.parse_args(argv)
    t_start = time.time()
    sets = {"natural (held out)": image_set(args.quick), "synthetic clips (held-out seeds)": synth_set(args.quick),
            "old film (held-out film)": film_set(args.film, args.quick)}
    results: dict[str, Any] = {"task": "clean frames downscaled by area, upscaled back, compared with the original",
                               "checkpoint": args.checkpoint or "default (models/weights/reel-sr-x2.safetensors)",
                               "quick": args.quick, "sets": {}}
    rows = []
    for set_name, items in sets.items():
        if not items:
            continue
        results["sets"][set_name] = {}
        for factor in (2, 4):
            per = {}
            for name, truth in items:
                lr = area_down(truth, factor)
                per[name] = score(truth, lr, factor, args.checkpoint, temporal=truth.shape[0] > 1)
            summary: dict[str, Any] = {
                "lanczos_psnr": float(np.mean([r["lanczos"]["psnr"] for r in per.values()])),
                "model_psnr": float(np.mean([r["model"]["psnr"] for r in per.values()])),
                "lanczos_ssim": float(np.mean([r["lanczos"]["ssim"] for r in per.values()])),
                "model_ssim": float(np.mean([r["model"]["ssim"] for r in per.values()])),
                "min_psnr_gain_db": float(min(r["psnr_gain_db"] for r in per.values())),
            }
            summary["psnr_gain_db"] = summary["model_psnr"] - summary["lanczos_psnr"]
            summary["ssim_gain"] = summary["model_ssim"] - summary["lanczos_ssim"]
            we = [r["warping_error"] for r in per.values() if "warping_error" in r]
            if we:
                summary["warping_error"] = {k: float(np.mean([w[k] for w in we])) for k in ("truth", "lanczos", "model")}
            results["sets"][set_name][f"x{factor}"] = {"summary": summary, "items": per}
            rows.append((set_name, factor, summary))
            print(f"{set_name} x{factor}: {summary['psnr_gain_db']:+.2f} dB", flush=True)
    results["speed_640x480"] = speed(args.checkpoint, 3 if args.quick else 5)
    results["wall_seconds"] = round(time.time() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "upscale.json").write_text(json.dumps(results, indent=2) + "\n")

    print("\n| set | factor | PSNR lanczos | PSNR model | gain dB (min item) | SSIM lanczos | SSIM model "
          "| warping err truth / lanczos / model |")
    print("|---|---|---|---|---|---|---|---|")
    for set_name, factor, s in rows:
        w = s.get("warping_error")
        ws = f"{w['truth']:.4f} / {w['lanczos']:.4f} / {w['model']:.4f}" if w else "-"
        print(f"| {set_name} | x{factor} | {s['lanczos_psnr']:.2f} | {s['model_psnr']:.2f} | "
              f"{s['psnr_gain_db']:+.2f} ({s['min_psnr_gain_db']:+.2f}) | {s['lanczos_ssim']:.4f} | "
              f"{s['model_ssim']:.4f} | {ws} |")
    sp = results["speed_640x480"]
    print(f"\nspeed per 640x480 output frame (CPU, {sp['torch_threads']} threads): model {sp['model_s_per_frame']:.3f} s, "
          f"lanczos {sp['lanczos_s_per_frame'] * 1000:.2f} ms, ratio {sp['ratio']:.0f}x")
    print(f"wrote {args.out / 'upscale.json'} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
