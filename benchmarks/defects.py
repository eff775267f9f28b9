"""Defect-removal benchmark: Reel's `defects` recipe against a classical ffmpeg chain, side by side.

    make bench-defects     # or: python -m benchmarks.defects [--out bench-out] [--seeds 0,1,2]

Everything is measured in one run, on the same inputs (writes OUT/defects.json and contact sheets):

- dust: on synthetic films with camera motion, blotches and grain (truth known exactly): pixel
  precision (1-px tolerance) and recall of the detection mask, share of the blotch error removed,
  and false detections on fast-moving small objects;
- chain: on synthetic films with every defect the recipe addresses (blotches, line scratches,
  flicker, grain, gate weave; no dye fading, which is the colour stage's job): PSNR/SSIM against
  the clean film for the input, Reel, and ffmpeg chains (`deflicker,removegrain,hqdn3d` with
  Debian's ffmpeg, installed here if absent, in a few settings; the best is the baseline), flicker
  index, residual weave in pixels, warping error, line-scratch error removed;
- real film: ../shared/data/oldfilm/four_films.mkv per shot: flicker and warping error before and
  after, the large white blotch of frame 185, and a before/after contact sheet to look at;
- real footage (every clip in ../shared/data/clean/, first 48 frames): damage added in code (dust,
  a line scratch, flicker, grain, synthetic gate weave on top of the real camera motion), then input,
  Reel and the ffmpeg chains scored against the clean original (PSNR/SSIM), the share of the dust
  error removed, residual synthetic weave; and "clean in, clean out": the recipe on the undamaged clip,
  PSNR against its input and sharpness kept (ratio of Laplacian energy);
- speed at 1080p: decode + `defects` chain + FFV1 encode in one process, against the ffmpeg chain
  on the same file (both on this machine's cores), as a ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oldfilm"
CLEAN = SHARED.parent / "clean"  # clean real footage: degraded here with known damage, and run untouched

# Classical chains, all ending in FFV1 RGB so nothing is lost after the filters. gbrp keeps the
# filters working on the same RGB values Reel sees. removegrain mode 0 is a no-op; 2 and 17 are
# the usual spatial modes in restoration scripts.
FFMPEG_CHAINS = {
    "deflicker,removegrain=2,hqdn3d": "format=gbrp,deflicker=size=5,removegrain=m0=2:m1=2:m2=2,hqdn3d",
    "deflicker,removegrain=17,hqdn3d": "format=gbrp,deflicker=size=5,removegrain=m0=17:m1=17:m2=17,hqdn3d",
    "deflicker,hqdn3d=6:4:9:7": "format=gbrp,deflicker=size=5,hqdn3d=6:4:9:7",
}


def ensure_ffmpeg() -> str:
    """Path of an ffmpeg with the GPL filters (Debian's); installs it with apt-get when absent."""
    found = shutil.which("ffmpeg")
    if not found and shutil.which("apt-get"):
        print("ffmpeg not found: installing Debian's ffmpeg with apt-get ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "ffmpeg"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        found = shutil.which("ffmpeg")
    if not found:
        raise SystemExit("ffmpeg is needed for the baseline chain: install it (Debian: apt-get install ffmpeg)")
    return found


def run_ffmpeg(ffmpeg: str, src: Path, dst: Path, vf: str) -> float:
    """Run one classical chain; returns wall seconds."""
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-an",
           "-vf", vf, "-c:v", "ffv1", "-pix_fmt", "bgr0", str(dst)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def to_float(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32) / np.float32(255.0 if frames.dtype == np.uint8 else 65535.0)


def read_all(path: Path) -> np.ndarray:
    from infra.media import iter_frames

    return to_float(np.stack(list(iter_frames(path, depth=8))))


def run_recipe(frames: np.ndarray, bounds: list[tuple[int, int]], recipe: str = "defects",
               first_frames: list[int] | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Run a built-in recipe shot by shot, in process; returns frames and seconds per stage."""
    from catalog.recipe import BUILTIN_RECIPES
    from models.clip import Clip

    stages = BUILTIN_RECIPES[recipe].build()
    out = np.empty_like(frames)
    seconds = {s.name: 0.0 for s in stages}
    for i, (a, b) in enumerate(bounds):
        clip = Clip(frames=frames[a:b], fps=Fraction(24), first_frame=(first_frames or [a] * len(bounds))[i])
        for s in stages:
            t0 = time.perf_counter()
            clip = s(clip)
            seconds[s.name] += time.perf_counter() - t0
        out[a:b] = clip.frames
    return out, seconds


def shot_bounds(cuts: list[int], n: int) -> list[tuple[int, int]]:
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def per_shot(fn, frames: np.ndarray, bounds: list[tuple[int, int]], *extra: np.ndarray) -> float:
    """Frame-weighted mean of a per-clip metric over shots (metrics never straddle a cut)."""
    vals = [(fn(frames[a:b], *(e[a:b] for e in extra)), b - a) for a, b in bounds if b - a >= 3]
    return float(sum(v * w for v, w in vals) / sum(w for _, w in vals))


# --------------------------------------------------------------------------------------------------
def bench_dust(seeds: list[int], w: int, h: int) -> dict[str, Any]:
    from models.clip import Clip
    from models.dust import Dust
    from models.synth import SynthConfig, blotch_masks, moving_object_masks, render_film

    rows = []
    ring = np.ones((3, 3), np.uint8)
    for seed in seeds:
        cfg = SynthConfig(width=w, height=h, shots=3, frames_per_shot=24, seed=seed, blotches=True, grain=True,
                          scratches=False, flicker=False, fade=False, weave=False)
        film = render_film(cfg)
        truth = blotch_masks(film.truth)
        fast = moving_object_masks(film.truth, fast_only=True)
        deg, clean = to_float(film.degraded), to_float(film.clean)
        pred = np.zeros_like(truth)
        out = np.empty_like(deg)
        stage = Dust()
        for a, b in shot_bounds(film.truth["cuts"], len(deg)):
            clip = Clip(frames=deg[a:b], fps=Fraction(24), first_frame=a)
            pred[a:b] = stage.detect(clip)[0]
            out[a:b] = stage(clip).frames
        near = np.stack([cv2.dilate(t.astype(np.uint8), ring) for t in truth]).astype(bool)
        grown = np.stack([cv2.dilate(p.astype(np.uint8), ring) for p in pred]).astype(bool)
        err_in = float(np.abs(deg - clean)[truth].sum())
        err_out = float(np.abs(out - clean)[truth].sum())
        false_fast = pred & fast & ~near
        rows.append({
            "seed": seed,
            "blotches": len(film.truth["blotches"]),
            "precision_1px": float((pred & near).sum() / max(1, pred.sum())),
            "recall_1px": float((grown & truth).sum() / max(1, truth.sum())),
            "recall_strict": float((pred & truth).sum() / max(1, truth.sum())),
            "error_removed": 1.0 - err_out / err_in,
            "fast_object_pixels_flagged": float(false_fast.sum() / max(1, fast.sum())),
            "fast_object_frames_flagged": int(false_fast.reshape(len(deg), -1).any(axis=1).sum()),
            "frames_with_fast_objects": int(fast.reshape(len(deg), -1).any(axis=1).sum()),
        })
    keys = ["precision_1px", "recall_1px", "recall_strict", "error_removed", "fast_object_pixels_flagged"]
    return {"films": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
            "min": {k: float(np.min([r[k] for r in rows])) for k in keys}}


def quality(frames: np.ndarray, clean: np.ndarray, bounds: list[tuple[int, int]]) -> dict[str, float]:
    from models.metrics import flicker_index, psnr, residual_weave, ssim_luma, warping_error

    return {
        "psnr": float(np.mean([psnr(f, c) for f, c in zip(frames, clean, strict=True)])),
        "ssim": float(np.mean([ssim_luma(f, c) for f, c in zip(frames, clean, strict=True)])),
        "flicker": per_shot(flicker_index, frames, bounds),
        "residual_weave_px": per_shot(residual_weave, frames, bounds, clean),
        "warping_error": per_shot(lambda f, c: warping_error(f, flow_frames=c), frames, bounds, clean),
    }


def bench_chain(seeds: list[int], w: int, h: int, ffmpeg: str, tmp: Path) -> dict[str, Any]:
    from infra.media import write_film
    from models.synth import SynthConfig, render_film, scratch_masks

    films = []
    for seed in seeds:
        cfg = SynthConfig(width=w, height=h, shots=3, frames_per_shot=24, seed=seed, blotches=True, grain=True,
                          scratches=True, flicker=True, weave=True, fade=False)
        film = render_film(cfg)
        deg, clean = to_float(film.degraded), to_float(film.clean)
        bounds = shot_bounds(film.truth["cuts"], len(deg))
        src = tmp / f"chain-{seed}.mkv"
        write_film(src, film.degraded, Fraction(24))
        results = {"input": quality(deg, clean, bounds), "clean": quality(clean, clean, bounds)}
        reel, _ = run_recipe(deg, bounds)
        results["reel"] = quality(reel, clean, bounds)
        scratch = scratch_masks(film.truth)
        if scratch.any():
            e_in = float(np.abs(deg - clean)[scratch].sum())
            results["reel"]["scratch_error_removed"] = 1.0 - float(np.abs(reel - clean)[scratch].sum()) / e_in
        for name, vf in FFMPEG_CHAINS.items():
            dst = tmp / f"chain-{seed}-ff.mkv"
            run_ffmpeg(ffmpeg, src, dst, vf)
            results[f"ffmpeg {name}"] = quality(read_all(dst), clean, bounds)
        films.append({"seed": seed, **results})
        print(f"  chain seed {seed}: input {results['input']['psnr']:.2f} dB, reel {results['reel']['psnr']:.2f} dB, "
              + ", ".join(f"{k} {v['psnr']:.2f}" for k, v in results.items() if k.startswith("ffmpeg")), flush=True)
    methods = [k for k in films[0] if k != "seed"]
    mean = {m: {k: float(np.mean([f[m][k] for f in films])) for k in films[0][m]} for m in methods}
    best_ff = max((m for m in methods if m.startswith("ffmpeg")), key=lambda m: mean[m]["psnr"])
    return {"films": films, "mean": mean, "best_ffmpeg": best_ff,
            "psnr_gain_over_input_db": mean["reel"]["psnr"] - mean["input"]["psnr"],
            "psnr_gain_over_ffmpeg_db": mean["reel"]["psnr"] - mean[best_ff]["psnr"],
            "flicker_reduction": 1.0 - mean["reel"]["flicker"] / mean["input"]["flicker"]}


def bench_real(ffmpeg: str, out_dir: Path, tmp: Path) -> dict[str, Any] | None:
    from models.clip import luma
    from models.metrics import flicker_index, warping_error

    src = SHARED / "four_films.mkv"
    if not src.exists():
        return None
    cuts = json.loads((SHARED / "cuts.json").read_text())["four_films.mkv"]["cuts"]
    frames = read_all(src)
    bounds = shot_bounds(cuts, len(frames))
    reel, _ = run_recipe(frames, bounds)
    dst = tmp / "real-ff.mkv"
    best = next(iter(FFMPEG_CHAINS))
    run_ffmpeg(ffmpeg, src, dst, FFMPEG_CHAINS[best])
    ff = read_all(dst)
    shots = []
    for a, b in bounds:
        shots.append({"start": a, "end": b,
                      "flicker_before": flicker_index(frames[a:b]), "flicker_after": flicker_index(reel[a:b]),
                      "flicker_ffmpeg": flicker_index(ff[a:b]),
                      "warping_error_before": warping_error(frames[a:b]),
                      "warping_error_after": warping_error(reel[a:b])})
    # the large white blotch of frame 185: pixels far brighter than both neighbours
    t = 185
    y, yr = luma(frames), luma(reel)
    region = (y[t] - np.maximum(y[t - 1], y[t + 1])) > 0.15
    region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    neighbours = 0.5 * (y[t - 1] + y[t + 1])
    before = float(np.abs(y[t] - neighbours)[region].mean())
    after = float(np.abs(yr[t] - neighbours)[region].mean())
    sheet = out_dir / "defects-contact-sheet.png"
    contact_sheet(sheet, [30, 100, 140, 184, 185, 186], {"input": frames, "reel defects": reel, f"ffmpeg {best}": ff})
    return {"clip": src.name, "shots": shots,
            "flicker_before": float(np.mean([s["flicker_before"] for s in shots])),
            "flicker_after": float(np.mean([s["flicker_after"] for s in shots])),
            "flicker_ffmpeg": float(np.mean([s["flicker_ffmpeg"] for s in shots])),
            "blotch_185": {"pixels": int(region.sum()), "distance_before": before, "distance_after": after,
                           "ratio": after / before},
            "contact_sheet": str(sheet)}


def laplacian_energy(frames: np.ndarray) -> float:
    from models.clip import luma

    return float(np.mean([cv2.Laplacian(luma(f), cv2.CV_32F).var() for f in frames]))


def bench_real_clips(ffmpeg: str, tmp: Path, frames: int = 48, seed: int = 1) -> list[dict[str, Any]]:
    from infra.media import write_film
    from models.metrics import psnr, residual_weave, ssim_luma
    from models.synth import blotch_masks, degrade_footage

    def score(x: np.ndarray, ref: np.ndarray) -> dict[str, float]:
        return {"psnr": float(10 * np.log10(1.0 / max(float(np.mean((x - ref) ** 2)), 1e-12))),
                "ssim": float(np.mean([ssim_luma(a, b) for a, b in zip(x, ref, strict=True)]))}

    rows = []
    for clip in sorted(CLEAN.glob("*.mkv")):
        clean = read_all(clip)[:frames]
        n = len(clean)
        clean8 = np.clip(clean * 255 + 0.5, 0, 255).astype(np.uint8)
        deg8, truth = degrade_footage(clean8, seed=seed)
        deg = to_float(deg8)
        reel, _ = run_recipe(deg, [(0, n)])
        src = tmp / f"real-{clip.stem}.mkv"
        write_film(src, deg8, Fraction(24))
        ff = {}
        for name, vf in FFMPEG_CHAINS.items():
            dst = tmp / f"real-{clip.stem}-ff.mkv"
            run_ffmpeg(ffmpeg, src, dst, vf)
            ff[name] = read_all(dst)
        best = max(ff, key=lambda k: score(ff[k], clean)["psnr"])
        dust = blotch_masks(truth)
        e_in = float(np.abs(deg - clean)[dust].sum())
        untouched, _ = run_recipe(clean, [(0, n)])
        row = {"clip": clip.name, "frames": n, "size": f"{clean.shape[2]}x{clean.shape[1]}",
               "input": score(deg, clean), "reel": score(reel, clean), "ffmpeg": {**score(ff[best], clean),
                                                                                  "chain": best},
               "dust_error_removed": 1.0 - float(np.abs(reel - clean)[dust].sum()) / e_in if e_in else None,
               "weave_input_px": residual_weave(deg, clean), "weave_reel_px": residual_weave(reel, clean),
               "clean_in_psnr": float(np.mean([min(psnr(a, b), 99.0) for a, b in zip(untouched, clean,
                                                                                        strict=True)])),
               "clean_in_psnr_global": score(untouched, clean)["psnr"],
               "clean_in_sharpness_kept": laplacian_energy(untouched) / laplacian_energy(clean)}
        row["gain_over_input_db"] = row["reel"]["psnr"] - row["input"]["psnr"]
        row["gain_over_ffmpeg_db"] = row["reel"]["psnr"] - row["ffmpeg"]["psnr"]
        print(f"  {clip.name}: input {row['input']['psnr']:.2f} dB, reel {row['reel']['psnr']:.2f}, ffmpeg "
              f"{row['ffmpeg']['psnr']:.2f}; dust removed {row['dust_error_removed']:.2f}; weave "
              f"{row['weave_input_px']:.3f} -> {row['weave_reel_px']:.3f} px; clean in: "
              f"{row['clean_in_psnr_global']:.2f} dB, sharpness {row['clean_in_sharpness_kept']:.3f}", flush=True)
        rows.append(row)
    return rows


def contact_sheet(path: Path, picks: list[int], rows: dict[str, np.ndarray], width: int = 320) -> None:
    """One row per version, one column per picked frame, labelled; 8-bit PNG."""
    lines = []
    for label, frames in rows.items():
        tiles = []
        for t in picks:
            f = frames[t]
            h = round(f.shape[0] * width / f.shape[1])
            tile = cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA)
            tile = cv2.cvtColor((np.clip(tile, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
            cv2.putText(tile, f"{label} #{t}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        lines.append(np.concatenate(tiles, axis=1))
    cv2.imwrite(str(path), np.concatenate(lines, axis=0))


def bench_speed(ffmpeg: str, size: tuple[int, int], frames: int, tmp: Path) -> dict[str, Any]:
    from infra.media import FFV1Writer, iter_frames, write_film
    from models.synth import SynthConfig, render_film

    w, h = size
    film = render_film(SynthConfig(width=w, height=h, shots=1, frames_per_shot=frames, seed=11, fade=False))
    src = tmp / "speed.mkv"
    write_film(src, film.degraded, Fraction(24))
    del film
    t_ff = {name: run_ffmpeg(ffmpeg, src, tmp / "speed-ff.mkv", vf) for name, vf in FFMPEG_CHAINS.items()}
    t0 = time.perf_counter()
    deg = to_float(np.stack(list(iter_frames(src, depth=8))))
    t_decode = time.perf_counter() - t0
    out, per_stage = run_recipe(deg, [(0, len(deg))])
    t1 = time.perf_counter()
    with FFV1Writer(tmp / "speed-reel.mkv", width=w, height=h, fps=Fraction(24), depth=16) as wr:
        for f in out:
            wr.write((np.clip(f, 0, 1) * 65535 + 0.5).astype(np.uint16))
    t_encode = time.perf_counter() - t1
    t_reel = t_decode + sum(per_stage.values()) + t_encode
    best = min(t_ff.values())
    return {"size": f"{w}x{h}", "frames": frames, "ffmpeg_seconds": t_ff, "reel_seconds": t_reel,
            "reel_breakdown_seconds": {"decode": t_decode, **per_stage, "encode_ffv1_16bit": t_encode},
            "speed_ratio_vs_fastest_ffmpeg_chain": best / t_reel}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--speed-size", default="1920x1080")
    ap.add_argument("--speed-frames", type=int, default=24)
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: dust,chain,real,footage,speed")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    w, h = (int(x) for x in args.size.split("x"))
    skip = set(filter(None, args.skip.split(",")))
    ffmpeg = ensure_ffmpeg()
    report: dict[str, Any] = {"ffmpeg": subprocess.run([ffmpeg, "-version"], capture_output=True, text=True)
                              .stdout.splitlines()[0], "ffmpeg_chains": FFMPEG_CHAINS}
    with tempfile.TemporaryDirectory(prefix="reel-bench-defects-") as tmp_s:
        tmp = Path(tmp_s)
        if "dust" not in skip:
            print("dust ...", flush=True)
            report["dust"] = bench_dust(seeds, w, h)
            print(json.dumps(report["dust"]["mean"], indent=1), flush=True)
        if "chain" not in skip:
            print("chain ...", flush=True)
            report["chain"] = bench_chain(seeds, w, h, ffmpeg, tmp)
        if "real" not in skip:
            print("real film ...", flush=True)
            report["real"] = bench_real(ffmpeg, out_dir, tmp)
        if "footage" not in skip:
            print("real footage, degraded in code and clean ...", flush=True)
            report["footage"] = bench_real_clips(ffmpeg, tmp)
        if "speed" not in skip:
            print("speed ...", flush=True)
            sw, sh = (int(x) for x in args.speed_size.split("x"))
            report["speed"] = bench_speed(ffmpeg, (sw, sh), args.speed_frames, tmp)
    (out_dir / "defects.json").write_text(json.dumps(report, indent=1))
    summary = {k: report[k] for k in ("dust",) if k in report}
    if "chain" in report:
        c = report["chain"]
        summary["chain"] = {"mean": c["mean"], "best_ffmpeg": c["best_ffmpeg"],
                            "psnr_gain_over_input_db": c["psnr_gain_over_input_db"],
                            "psnr_gain_over_ffmpeg_db": c["psnr_gain_over_ffmpeg_db"],
                            "flicker_reduction": c["flicker_reduction"]}
    if report.get("real"):
        summary["real"] = {k: v for k, v in report["real"].items() if k != "shots"}
    if "footage" in report:
        summary["footage"] = report["footage"]
    if "speed" in report:
        summary["speed"] = report["speed"]
    if "dust" in summary:
        summary["dust"] = {"mean": report["dust"]["mean"], "min": report["dust"]["min"]}
    print(json.dumps(summary, indent=1))
    print(f"wrote {out_dir / 'defects.json'}")


if __name__ == "__main__":
    main()
