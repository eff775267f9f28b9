"""Upscale benchmark: Lanczos, Reel's learned x2 model (method=model) and pretrained Real-ESRGAN (method=realesrgan).

    python -m benchmarks.upscale [--quick] [--out bench-out] [--checkpoint FILE] [--film FILE]
                                 [--no-realesrgan] [--realesrgan-only] [--crop HxW] [--film-frames N]
                                 [--runtimes-only] [--no-runtimes]

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

Real-ESRGAN (issue #25), side by side with Lanczos and the own model, on small crops (the x4plus
network costs ~0.13 ms per input pixel on two CPU cores; `--crop`/`--film-frames` for more):

- clean held-out frames downscaled 2x by area: the skimage photos and 3 consecutive frames of
  `../shared/data/clean/tennis_handheld.mkv`, centre crops; PSNR / luma SSIM of lanczos, model,
  realesrgan x4plus and animevideov3 (with the stage's defaults) and x4plus without its anchor and
  back-projection (the raw network, for reference);
- real old film (`four_films.mkv`, `--film-frames` consecutive frames from the middle of each of its
  four shots, centre crops, 2x): sharpness (variance of the luma Laplacian), warping error (flow from
  the Lanczos output, so it is not learnt from the detail being measured), mean CIEDE2000 and PSNR of
  the output shrunk back by area against the source; realesrgan with and without temporal propagation;
- a contact sheet (OUT/upscale_contact_sheet.png): per shot, the source (nearest 2x), Lanczos, the own
  model and realesrgan x4plus with temporal propagation;
- CPU seconds per output frame of each method on the same crop, as ratios to Lanczos, in one run.
Writes OUT/upscale_realesrgan.json.

Runtimes (issue #24; `--runtimes-only` for just this, about 2 minutes): each network (the own x2 model on
a 320x240 frame, animevideov3 on 160x120, x4plus on 96x64) run by PyTorch eager, ONNX Runtime and
OpenVINO (models/sr_runtime.py) on the same frame, the same tiles and the same threads (1 and all
cores), interleaved; seconds per frame, speed-up over PyTorch, the largest output difference to
PyTorch, and what `runtime=auto` runs. Writes OUT/upscale_runtimes.json.
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
from models.metrics import psnr, sharpness, ssim_luma, warping_error
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


# --------------------------------------------------------------------------------------------------
# Real-ESRGAN side by side (issue #25)
# --------------------------------------------------------------------------------------------------

DEFAULT_CLEAN_VIDEO = DEFAULT_FILM.parents[1] / "clean" / "tennis_handheld.mkv"
FILM_SHOTS = ((0, 60), (60, 109), (109, 157), (157, 205))  # four_films.mkv (shared/data/oldfilm/cuts.json)
# label -> Upscale params (scale added per call)
RG_METHODS: dict[str, dict[str, Any]] = {
    "lanczos": {"method": "lanczos"},
    "model": {"method": "model", "device": "cpu"},
    "realesrgan": {"method": "realesrgan", "device": "cpu"},
    "realesrgan (no temporal)": {"method": "realesrgan", "device": "cpu", "temporal": False},
    "animevideov3": {"method": "realesrgan", "variant": "animevideov3", "device": "cpu"},
    "x4plus raw network": {"method": "realesrgan", "device": "cpu", "temporal": False, "anchor_sigma": 0,
                           "back_projection": 0},
}


def centre_crop(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    fh, fw = frames.shape[1:3]
    y, x = max(0, (fh - h) // 2), max(0, (fw - w) // 2)
    return np.ascontiguousarray(frames[:, y:y + h, x:x + w])


def run_label(label: str, lr: np.ndarray, factor: int) -> tuple[np.ndarray, dict[str, Any], float]:
    t0 = time.perf_counter()
    out, rep = Upscale(**RG_METHODS[label], scale=float(factor)).process(Clip(lr, Fraction(24)))
    return out.frames, rep, time.perf_counter() - t0


def fidelity_of(out: np.ndarray, src: np.ndarray) -> tuple[float, float]:
    from models.realesrgan import fidelity

    vals = [fidelity(o, s) for o, s in zip(out, src, strict=True)]
    return float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals]))


def clean_items(args: argparse.Namespace, h: int, w: int) -> list[tuple[str, np.ndarray]]:
    """(name, (T, 2h, 2w, 3) truth) clean held-out items: skimage photos and consecutive tennis frames."""
    names = HELDOUT_IMAGES[:2] if args.quick else HELDOUT_IMAGES
    items = [(f"skimage:{n}", centre_crop(skimage_rgb(n)[None], 2 * h, 2 * w)) for n in names]
    if args.clean_video.is_file():
        frames = [f for _, f in film_frames(args.clean_video, lambda i: 30 <= i < 33)]
        items.append((f"{args.clean_video.name}[30:33]", centre_crop(np.stack(frames), 2 * h, 2 * w)))
    return items


def film_shots(args: argparse.Namespace, h: int, w: int) -> list[tuple[str, np.ndarray]]:
    """(name, (T, h, w, 3)) consecutive frames from the middle of each shot of the old film."""
    if not args.film.is_file():
        return []
    n = max(2, args.film_frames)
    wanted = {}
    for a, b in FILM_SHOTS:
        start = (a + b) // 2 - n // 2
        for i in range(start, start + n):
            wanted[i] = (a, b)
    frames = film_frames(args.film, lambda i: i in wanted)
    out = []
    for a, b in FILM_SHOTS:
        fr = np.stack([f for i, f in frames if wanted.get(i) == (a, b)])
        idx = [i for i, _ in frames if wanted.get(i) == (a, b)]
        out.append((f"{args.film.name}[{idx[0]}:{idx[-1] + 1}] (shot {a}-{b - 1})", centre_crop(fr, h, w)))
    return out


def label_tile(img: np.ndarray, text: str) -> np.ndarray:
    tile = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)[..., ::-1].copy()  # RGB -> BGR for OpenCV
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def realesrgan_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """The issue-#25 comparison; prints markdown tables and writes OUT/upscale_realesrgan.json (+ contact sheet)."""
    t_start = time.time()
    h, w = (int(v) for v in args.crop.lower().split("x"))
    res: dict[str, Any] = {"crop_input_px": [h, w], "factor": 2, "torch_threads": torch.get_num_threads(),
                           "clean": {}, "old_film": {}}
    # 1. clean held-out frames downscaled 2x
    clean_labels = ["lanczos", "model", "realesrgan", "animevideov3", "x4plus raw network"]
    for name, truth in clean_items(args, h, w):
        lr = area_down(truth, 2)
        row = {}
        for label in clean_labels:
            out, _rep, _dt = run_label(label, lr, 2)
            row[label] = {"psnr": float(np.mean([psnr(o, g) for o, g in zip(out, truth, strict=True)])),
                          "ssim": ssim_luma(out, truth)}
        res["clean"][name] = row
        print(f"clean {name}: " + ", ".join(f"{k} {v['psnr']:.2f}" for k, v in row.items()), flush=True)
    if res["clean"]:
        res["clean_mean"] = {k: {m: float(np.mean([r[k][m] for r in res["clean"].values()])) for m in ("psnr", "ssim")}
                             for k in clean_labels}
    # 2. real old film, 2x: sharpness, warping error, fidelity
    film_labels = ["lanczos", "model", "realesrgan", "realesrgan (no temporal)", "animevideov3"]
    sheet_rows = []
    for name, src in film_shots(args, h, w):
        outs, row = {}, {}
        for label in film_labels:
            out, rep, dt = run_label(label, src, 2)
            outs[label] = out
            fp, fde = fidelity_of(out, src)
            row[label] = {"sharpness": sharpness(out), "fidelity_psnr_db": fp, "fidelity_delta_e00": fde,
                          "seconds_per_frame": dt / len(out)}
        ref = outs["lanczos"]
        for label in film_labels:
            row[label]["warping_error"] = warping_error(outs[label], ref)
        res["old_film"][name] = row
        mid = len(src) // 2
        near = cv2.resize(src[mid], (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
        sheet_rows.append(np.concatenate([label_tile(near, f"source, shot {len(sheet_rows) + 1}"),
                                          label_tile(outs["lanczos"][mid], "lanczos"),
                                          label_tile(outs["model"][mid], "reel model"),
                                          label_tile(outs["realesrgan"][mid], "realesrgan x4plus")], axis=1))
        print(f"film {name}: " + ", ".join(f"{k} sharp {v['sharpness']:.5f} warp {v['warping_error']:.4f} "
                                           f"dE {v['fidelity_delta_e00']:.2f}" for k, v in row.items()), flush=True)
    if res["old_film"]:
        res["old_film_mean"] = {k: {m: float(np.mean([r[k][m] for r in res["old_film"].values()]))
                                    for m in ("sharpness", "warping_error", "fidelity_delta_e00", "fidelity_psnr_db")}
                                for k in film_labels}
        sheet = np.concatenate(sheet_rows, axis=0)
        cv2.imwrite(str(args.out / "upscale_contact_sheet.png"), sheet)
        res["contact_sheet"] = str(args.out / "upscale_contact_sheet.png")
    # 3. speed per output frame, side by side on the same crop
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.5)[None]
    speed_labels = ["lanczos", "model", "realesrgan (no temporal)", "realesrgan", "animevideov3"]
    for label in speed_labels:
        run_label(label, img, 2)  # load + warm up
    times: dict[str, list[float]] = {k: [] for k in speed_labels}
    for _ in range(2):
        for label in speed_labels:
            clip2 = np.concatenate([img, img])  # two frames: the temporal path runs its flow once
            times[label].append(run_label(label, clip2, 2)[2] / 2)
    sp = {k: float(np.median(v)) for k, v in times.items()}
    res["speed_s_per_output_frame"] = {"output": [2 * w, 2 * h], **sp,
                                       "ratio_to_lanczos": {k: v / sp["lanczos"] for k, v in sp.items()}}
    res["wall_seconds"] = round(time.time() - t_start, 1)
    (args.out / "upscale_realesrgan.json").write_text(json.dumps(res, indent=2) + "\n")

    print(f"\n### Real-ESRGAN, clean held-out crops {2 * w}x{2 * h} downscaled 2x (mean over items)\n")
    print("| method | PSNR | SSIM |\n|---|---|---|")
    for k, v in res.get("clean_mean", {}).items():
        print(f"| {k} | {v['psnr']:.2f} | {v['ssim']:.4f} |")
    print(f"\n### Real old film, 2x, {w}x{h} crops, {args.film_frames} frames per shot (mean over 4 shots)\n")
    print("| method | sharpness | warping error | dE00 shrunk vs source | PSNR shrunk vs source |\n|---|---|---|---|---|")
    for k, v in res.get("old_film_mean", {}).items():
        print(f"| {k} | {v['sharpness']:.5f} | {v['warping_error']:.4f} | {v['fidelity_delta_e00']:.2f} "
              f"| {v['fidelity_psnr_db']:.2f} |")
    print(f"\n### CPU seconds per {2 * w}x{2 * h} output frame ({res['torch_threads']} torch threads)\n")
    print("| method | s/frame | x Lanczos |\n|---|---|---|")
    for k in speed_labels:
        print(f"| {k} | {sp[k]:.4f} | {sp[k] / sp['lanczos']:.0f} |")
    print(f"wrote {args.out / 'upscale_realesrgan.json'} ({res['wall_seconds']:.0f} s)", flush=True)
    return res


# --------------------------------------------------------------------------------------------------
# The networks on each runtime, side by side (issue #24 item 3)
# --------------------------------------------------------------------------------------------------

# label -> (loader, input H x W): the network runs once over the frame (native factor), in the stage's
# default tiles; x4plus on a smaller frame (about 2 s per 100x100 input px tile pass on one core)
RUNTIME_NETWORKS: dict[str, tuple[str, tuple[int, int]]] = {
    "own model (x2, Compact 32x6)": ("model", (240, 320)),
    "realesrgan animevideov3 (x4, Compact 64x16)": ("animevideov3", (120, 160)),
    "realesrgan x4plus (x4, RRDBNet)": ("x4plus", (64, 96)),
}


def runtime_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per frame of each network on PyTorch eager, ONNX Runtime and OpenVINO: the same frames, the
    same tiles (`tile`, `tile_overlap`, `batch` of the stage's defaults), the same threads (1 and all
    cores), interleaved repetitions, medians; and the largest output difference to PyTorch. The choice
    `runtime=auto` makes (models/sr_runtime.py AUTO_ORDER) is checked against the measured fastest."""
    from models import sr_runtime
    from models.realesrgan import load_realesrgan
    from models.sr_net import _upscale_one, load_sr_model
    from models.upscale import UpscaleParams

    p = UpscaleParams()
    runtimes = [rt for rt in ("torch", "onnxruntime", "openvino") if sr_runtime.installed(rt)]
    rng = np.random.default_rng(0)
    threads_before = torch.get_num_threads()
    cores = sorted({1, threads_before})
    res: dict[str, Any] = {"tile": p.tile, "tile_overlap": p.tile_overlap, "batch": p.batch,
                           "tolerance": sr_runtime.TOLERANCE, "auto_order": list(sr_runtime.AUTO_ORDER),
                           "runtimes": runtimes, "networks": {}}
    t_start = time.time()
    try:
        for label, (which, (h, w)) in RUNTIME_NETWORKS.items():
            frame = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.2)
            base = load_sr_model(args.checkpoint, "cpu", False) if which == "model" else load_realesrgan(which, "cpu")
            entry: dict[str, Any] = {"input": f"{w}x{h}", "output": f"{w * base.scale}x{h * base.scale}"}
            for n in cores:
                torch.set_num_threads(n)
                models = {rt: base.on_runtime(rt) for rt in runtimes}
                outs = {rt: _upscale_one(frame, m, p.tile, p.tile_overlap, p.batch)[0] for rt, m in models.items()}
                times: dict[str, list[float]] = {rt: [] for rt in runtimes}
                reps = 1 if which == "x4plus" or args.quick else 3
                for _ in range(reps):
                    for rt, m in models.items():
                        t0 = time.perf_counter()
                        _upscale_one(frame, m, p.tile, p.tile_overlap, p.batch)
                        times[rt].append(time.perf_counter() - t0)
                med = {rt: float(np.median(v)) for rt, v in times.items()}
                entry[f"threads_{n}"] = {
                    rt: {"s_per_frame": round(med[rt], 4), "speedup_vs_torch": round(med["torch"] / med[rt], 2),
                         "max_abs_diff_vs_torch": float(f"{np.abs(outs[rt] - outs['torch']).max():.3g}"),
                         "ran": models[rt].runtime["runtime"]} for rt in runtimes}
                fastest = min(runtimes, key=lambda rt: med[rt])
                auto = base.on_runtime("auto").runtime["runtime"]
                entry[f"threads_{n}"]["fastest"], entry[f"threads_{n}"]["auto_picks"] = fastest, auto
                print(f"  {label}, {n} thread(s): " + ", ".join(f"{rt} {med[rt]:.3f} s" for rt in runtimes)
                      + f"; fastest {fastest}, auto runs {auto}", flush=True)
            res["networks"][label] = entry
    finally:
        torch.set_num_threads(threads_before)
    res["wall_seconds"] = round(time.time() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "upscale_runtimes.json").write_text(json.dumps(res, indent=2) + "\n")
    print("\n| network | threads | " + " | ".join(f"{rt} s/frame (x torch)" for rt in runtimes)
          + " | max abs diff to torch | auto runs |")
    print("|---|---|" + "---|" * len(runtimes) + "---|---|")
    for label, e in res["networks"].items():
        for n in cores:
            r = e[f"threads_{n}"]
            cells = " | ".join(f"{r[rt]['s_per_frame']:.3f} ({r[rt]['speedup_vs_torch']:.2f}x)" for rt in runtimes)
            diffs = ", ".join(f"{rt} {r[rt]['max_abs_diff_vs_torch']:.1e}" for rt in runtimes if rt != "torch")
            print(f"| {label}, {e['input']} -> {e['output']} | {n} | {cells} | {diffs} | {r['auto_picks']} |")
    print(f"wrote {args.out / 'upscale_runtimes.json'} ({res['wall_seconds']:.0f} s)", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images/frames (about a minute)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--checkpoint", default=None, help="SR checkpoint (default: Reel's x2 model)")
    ap.add_argument("--film", type=Path, default=DEFAULT_FILM)
    ap.add_argument("--clean-video", type=Path, default=DEFAULT_CLEAN_VIDEO)
    ap.add_argument("--no-realesrgan", action="store_true", help="skip the Real-ESRGAN comparison")
    ap.add_argument("--realesrgan-only", action="store_true", help="only the Real-ESRGAN comparison")
    ap.add_argument("--crop", default="80x112", help="HxW of the centre crops (input px) for Real-ESRGAN")
    ap.add_argument("--film-frames", type=int, default=3, help="consecutive frames per old-film shot")
    ap.add_argument("--runtimes-only", action="store_true", help="only PyTorch vs ONNX Runtime vs OpenVINO")
    ap.add_argument("--no-runtimes", action="store_true", help="skip PyTorch vs ONNX Runtime vs OpenVINO")
    args = ap.parse_args(argv)
    if not args.no_runtimes:
        print("networks on each runtime (same tiles, same threads) ...", flush=True)
        runtime_comparison(args)
        if args.runtimes_only:
            return 0
    if not args.no_realesrgan:
        args.out.mkdir(parents=True, exist_ok=True)
        realesrgan_comparison(args)
        if args.realesrgan_only:
            return 0
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
