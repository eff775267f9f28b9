"""Frame-interpolation benchmark: rebuild dropped frames; find and replace repeated frames.

    .venv/bin/python -m benchmarks.interpolate [--out bench-out] [--quick]

1. Interpolation. Every other frame of a clean clip is dropped and rebuilt by doubling the frame
   rate of what is left; each rebuilt in-between is compared with the true dropped frame (PSNR over
   RGB, SSIM on luma; only in-betweens with both neighbours kept count). Clip sets:
   - synth: clean renders of models.synth (seeds 11-14, 3 shots of 17 frames each at 320x240: camera
     pans of 0.5-3 px/frame and objects, some fast at 8-14 px/frame; so 1-28 px between the kept
     frames), per shot (never across a cut);
   - pan: a textured plane panning 2, 6 and 12 px/frame (4-24 px between kept frames);
   - occlusion: a textured disc moving 3, 5, 8 px/frame over a textured background;
   - real: ../shared/data/oldfilm/four_films.mkv (four early films, 480x368, grain and flicker
     included), per shot from cuts.json.
   Methods: Reel's `blend` (cross-fade), `flow` (the default: DIS `fine`, Super SloMo intermediate
   flow), `flow` with occlusion-aware blending on, `flow` with the `medium` preset, and FFmpeg's
   `minterpolate=mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1` run on the decimated clip written
   as raw rgb48 through a pipe. `learned` is not shipped (the stage refuses it). Speed: seconds per
   in-between, measured side by side in this run.
2. Repeated frames on the real clips. The README says "A Trip Down Market Street" has 6 duplicated
   frames and "Within Our Gates" 9, without saying which: the detector's native findings are listed
   against those counts. Positional truth is built: in each real shot, frames at known places are
   replaced by a re-scan of the frame before (the same picture with fresh Gaussian grain of the
   shot's measured noise level, a 0.4 px shift and a 3 % exposure change), placed away from the
   native findings; precision/recall count only those inserted frames (native findings are neither
   hits nor false alarms). The inserted repeats are then replaced (`replace_duplicates`) and the
   PSNR vs the true frame reported before and after.

Writes OUT/interpolate.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.clip import Clip
from models.duplicates import find_duplicates
from models.interpolate import Interpolate
from models.metrics import noise_sigma, psnr, ssim_luma
from models.synth import SynthConfig, render_film

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oldfilm"
CLEAN = dict(blotches=False, scratches=False, flicker=False, grain=False, fade=False, weave=False)
MINTERP = "minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
METHODS = {
    "blend": dict(method="blend"),
    "flow": dict(method="flow", occlusion=False),
    "flow+occlusion": dict(method="flow", occlusion=True),
    "flow-medium": dict(method="flow", preset="medium"),
}


# --- clips ------------------------------------------------------------------------------------------
def synth_shots(seeds: list[int]) -> list[tuple[str, np.ndarray]]:
    out = []
    for seed in seeds:
        f = render_film(SynthConfig(shots=3, frames_per_shot=17, seed=seed, **CLEAN))
        x = f.clean.astype(np.float32) / 255
        bounds = [0, *f.truth["cuts"], x.shape[0]]
        out += [(f"synth{seed}-shot{k}", x[a:b]) for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))]
    return out


def _texture(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), sigma)
    t = (t - t.min()) / (t.max() - t.min())
    col = np.array([0.9, 1.0, 0.8], np.float32)
    return t[..., None] * col


def pan_clip(speed: int, n: int = 11, h: int = 180, w: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = _texture(rng, h, w + speed * n, 2.5) * 0.7 + 0.15
    return np.stack([base[:, speed * i:speed * i + w] for i in range(n)]).astype(np.float32)


def occlusion_clip(speed: int, n: int = 11, h: int = 180, w: int = 240, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bg = _texture(rng, h, w, 3.0) * 0.6 + 0.2
    fg = _texture(rng, h, w + n * speed, 3.0) * 0.5 + 0.1
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        disc = (xx - 50 - speed * i) ** 2 + (yy - h / 2) ** 2 < 35 ** 2
        shifted = fg[:, speed * (n - 1 - i):speed * (n - 1 - i) + w]
        out.append(np.where(disc[..., None], shifted, bg))
    return np.stack(out).astype(np.float32)


def real_shots() -> tuple[list[tuple[str, np.ndarray]], Fraction]:
    import av

    path = SHARED / "four_films.mkv"
    truth = json.loads((SHARED / "cuts.json").read_text())["four_films.mkv"]
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = Fraction(s.average_rate)
        frames = [f.to_ndarray(format="rgb48le") for f in c.decode(s)]
    x = np.stack(frames).astype(np.float32) / 65535
    names = ["market_street", "earthquake", "train_robbery", "within_our_gates"]
    bounds = [0, *truth["cuts"], x.shape[0]]
    return [(names[k], x[a:b]) for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))], fps


# --- interpolation -------------------------------------------------------------------------------
def minterpolate(kept: np.ndarray, fps: int = 12) -> np.ndarray:
    """FFmpeg's motion-compensated interpolation at 2x: (T, H, W, 3) float frames -> (2T, H, W, 3), out[2i] = in[i]."""
    t, h, w, _ = kept.shape
    # minterpolate holds back its last in-betweens until it sees more input: pad with two holds
    padded = np.concatenate([kept, kept[-1:], kept[-1:]])
    raw = (np.clip(padded, 0, 1) * 65535 + 0.5).astype("<u2").tobytes()
    cmd = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-s", f"{w}x{h}", "-framerate",
           str(fps), "-i", "-", "-vf", MINTERP.format(fps=2 * fps), "-f", "rawvideo", "-pix_fmt", "rgb48le", "-"]
    out = subprocess.run(cmd, input=raw, capture_output=True, check=True).stdout
    return np.frombuffer(out, "<u2").reshape(-1, h, w, 3)[:2 * t].astype(np.float32) / 65535


def score_clip(x: np.ndarray, methods: dict[str, dict], with_ffmpeg: bool) -> dict[str, Any]:
    """Drop x[1], x[3], ..., rebuild them at 2x; PSNR/SSIM per in-between and their means."""
    kept = x[::2].copy()
    n_mid = (x.shape[0] - 1) // 2  # in-betweens with both neighbours kept: x[1], x[3], ...
    truth = x[1:2 * n_mid:2]
    res: dict[str, Any] = {"in_betweens": n_mid, "truth_frames": list(range(1, 2 * n_mid, 2)), "seconds": {}}
    outs: dict[str, np.ndarray] = {}
    for name, kw in methods.items():
        t0 = time.perf_counter()
        outs[name] = Interpolate(factor=2, **kw)(Clip(kept, Fraction(12))).frames
        res["seconds"][name] = time.perf_counter() - t0
    if with_ffmpeg:
        t0 = time.perf_counter()
        m = minterpolate(kept)
        res["seconds"]["minterpolate"] = time.perf_counter() - t0
        if m.shape[0] >= 2 * n_mid and psnr(m[0], kept[0]) > 40:  # aligned: out[2i] is kept[i]
            outs["minterpolate"] = m
        else:
            res["minterpolate_error"] = f"{m.shape[0]} frames, not aligned"
    for name, out in outs.items():
        mids = out[1:2 * n_mid:2]
        p = [psnr(a, b) for a, b in zip(mids, truth, strict=True)]
        q = [ssim_luma(a, b) for a, b in zip(mids, truth, strict=True)]
        res[name] = {"psnr": float(np.mean(p)), "ssim": float(np.mean(q)), "psnr_each": p, "ssim_each": q}
    return res


def without(row: dict[str, Any], skip: set[int]) -> dict[str, Any]:
    """`row` with the in-betweens whose true frame is in `skip` left out of the means."""
    use = [i for i, t in enumerate(row["truth_frames"]) if t not in skip]
    share = len(use) / max(1, row["in_betweens"])  # time charged pro rata
    out = {"in_betweens": len(use), "truth_frames": [row["truth_frames"][i] for i in use],
           "seconds": {k: v * share for k, v in row["seconds"].items()}}
    for k, v in row.items():
        if isinstance(v, dict) and "psnr_each" in v:
            p = [v["psnr_each"][i] for i in use]
            q = [v["ssim_each"][i] for i in use]
            out[k] = {"psnr": float(np.mean(p)) if p else 0.0, "ssim": float(np.mean(q)) if q else 0.0,
                      "psnr_each": p, "ssim_each": q}
    return out


def summarise(rows: dict[str, dict], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    total = sum(r["in_betweens"] for r in rows.values())
    for m in names:
        have = [r for r in rows.values() if m in r and r["in_betweens"]]
        if not have:
            continue
        w = [r["in_betweens"] for r in have]
        out[m] = {"psnr": round(float(np.average([r[m]["psnr"] for r in have], weights=w)), 2),
                  "ssim": round(float(np.average([r[m]["ssim"] for r in have], weights=w)), 4),
                  "s_per_frame": round(sum(r["seconds"][m] for r in have) / max(1, total), 4)}
    return out


def restored_real(shots: list[tuple[str, np.ndarray]], fps: Fraction) -> list[tuple[str, np.ndarray]]:
    """The real shots after the stages that come before interpolation and fix timing-free defects
    (stabilise: weave, deflicker: flicker), as the restore chain hands them to `interpolate`."""
    from models.registry import make_stage

    out = []
    for name, x in shots:
        c = Clip(x, fps)
        for stage in ("stabilise", "deflicker"):
            c = make_stage(stage)(c)
        out.append((name, c.frames))
    return out


# --- repeated frames -------------------------------------------------------------------------------
def rescan_of(prev: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    m = np.float32([[1, 0, 0.4], [0, 1, -0.3]])
    y = cv2.warpAffine(prev, m, (prev.shape[1], prev.shape[0]), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT) * 1.03
    grain = cv2.GaussianBlur(rng.standard_normal(prev.shape[:2]).astype(np.float32), (0, 0), 0.7)
    grain *= sigma / max(1e-6, float(grain.std()))
    y = y + grain[..., None]
    return np.clip(np.rint(np.clip(y, 0, 1) * 255) / 255, 0, 1).astype(np.float32)


def duplicates_on_real(shots: list[tuple[str, np.ndarray]], fps: Fraction,
                       ratios: tuple[float, ...] = (0.4, 0.15)) -> dict[str, Any]:
    """Native findings and inserted-repeat precision/recall at the detector's default ratio (0.4)
    and the interpolate stage's stricter one (0.15); replacement PSNR with the stage's default."""
    readme = {"market_street": 6, "within_our_gates": 9, "earthquake": None, "train_robbery": None}
    rows: dict[str, Any] = {}
    counts = {r: [0, 0, 0] for r in ratios}  # tp, fp, fn
    before_db: list[float] = []
    after_db: list[float] = []
    for k, (name, x) in enumerate(shots):
        native = {r: [d["frame"] for d in find_duplicates(x, ratio=r)] for r in ratios}
        native_all = [{"frame": d["frame"], "ratio": d["ratio"], "distance": d["distance"]}
                      for d in find_duplicates(x, ratio=max(ratios))]
        rng = np.random.default_rng(100 + k)
        sigma = float(np.median([noise_sigma(f) for f in x[::8]]))
        avoid: set[int] = set()
        for f in native[max(ratios)]:
            avoid |= {f - 1, f, f + 1}
        # about one insertion every 9 frames (moved by up to 3 frames to stay clear of the native
        # findings), away from the shot's ends
        inserted = []
        for c in range(6, x.shape[0] - 6, 9):
            t = next((t for t in (c, c + 1, c - 1, c + 2, c - 2, c + 3, c - 3)
                      if 6 <= t < x.shape[0] - 6 and not avoid & {t - 1, t, t + 1}), None)
            if t is not None:
                inserted.append(t)
                avoid |= {t - 1, t, t + 1}
        y = x.copy()
        for t in inserted:
            y[t] = rescan_of(x[t - 1], sigma, rng)
        row: dict[str, Any] = {"frames": int(x.shape[0]), "readme_count": readme[name], "native": native_all,
                               "grain_sigma": round(sigma, 4), "inserted": inserted}
        for r in ratios:
            found = {d["frame"] for d in find_duplicates(y, ratio=r)} - set(native[r])
            hit = found & set(inserted)
            counts[r][0] += len(hit)
            counts[r][1] += len(found - set(inserted))
            counts[r][2] += len(set(inserted) - found)
            row[f"ratio {r}"] = {"native_found": native[r], "found_inserted": sorted(hit),
                                 "false_alarms": sorted(found - set(inserted))}
        fixed, rep = Interpolate(factor=1, replace_duplicates=True).process(Clip(y, fps))
        for t in inserted:
            before_db.append(psnr(y[t], x[t]))
            after_db.append(psnr(fixed.frames[t], x[t]))
        row["replaced"] = rep["duplicates_replaced"]
        rows[name] = row
    return {"per_shot": rows,
            "inserted": {str(r): {"precision": round(tp / max(1, tp + fp), 3), "recall": round(tp / max(1, tp + fn), 3),
                                  "true": tp + fn, "found": tp + fp} for r, (tp, fp, fn) in counts.items()},
            "replacement_psnr": {"repeat_vs_truth": round(float(np.mean(before_db)), 2) if before_db else None,
                                 "rebuilt_vs_truth": round(float(np.mean(after_db)), 2) if after_db else None}}


# --- main ------------------------------------------------------------------------------------------
def table(title: str, summary: dict[str, dict]) -> str:
    lines = [f"### {title}", "", "| method | PSNR dB | SSIM (luma) | s / in-between |", "|---|---|---|---|"]
    for m, r in summary.items():
        lines.append(f"| {m} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['s_per_frame']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--quick", action="store_true", help="fewer clips, no minterpolate")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    methods = {k: v for k, v in METHODS.items() if not args.quick or k in ("blend", "flow")}
    names = [*methods, "minterpolate"]
    sets: dict[str, list[tuple[str, np.ndarray]]] = {
        "synth": synth_shots([11] if args.quick else [11, 12, 13, 14]),
        "pan": [(f"pan{s}", pan_clip(s)) for s in ((6,) if args.quick else (2, 6, 12))],
        "occlusion": [(f"disc{s}", occlusion_clip(s)) for s in ((5,) if args.quick else (3, 5, 8))],
    }
    real_fps = Fraction(16)
    have_real = (SHARED / "four_films.mkv").is_file()
    if have_real:
        real, real_fps = real_shots()
        sets["real"] = real[:1] if args.quick else real
    report: dict[str, Any] = {"methods": {**methods, "minterpolate": MINTERP.format(fps="2x input")},
                              "learned": "not shipped (method=learned is a ValueError)", "sets": {}}
    skips: dict[str, set[int]] = {}
    if have_real:
        # true frames that repeat a neighbour (detector's native findings) make a trivial truth
        for name, x in sets["real"]:
            rep = {d["frame"] for d in find_duplicates(x)}
            skips[name] = {t for t in range(x.shape[0]) if t in rep or t + 1 in rep}
        sets["real-stabilised"] = restored_real(sets["real"], real_fps)
    out_md = []
    for set_name, clips in sets.items():
        rows = {name: score_clip(x, methods, with_ffmpeg=not args.quick) for name, x in clips}
        summary = summarise(rows, names)
        report["sets"][set_name] = {"summary": summary, "clips": rows}
        out_md.append(table(f"{set_name} ({sum(r['in_betweens'] for r in rows.values())} in-betweens)", summary))
        print(out_md[-1] + "\n", flush=True)
        if set_name.startswith("real"):
            rows = {name: without(row, skips[name]) for name, row in rows.items()}
            summary = summarise(rows, names)
            report["sets"][set_name + ", no repeats"] = {"summary": summary, "clips": rows}
            out_md.append(table(f"{set_name}, true frames that are not repeats "
                                f"({sum(r['in_betweens'] for r in rows.values())} in-betweens)", summary))
            print(out_md[-1] + "\n", flush=True)
    if have_real:
        report["duplicates"] = duplicates_on_real(real if not args.quick else real[:1], real_fps)
        d = report["duplicates"]
        lines = ["### repeated frames, real clips", "",
                 "| shot | README count | native, ratio 0.4 (detector default) | native, ratio 0.15 (stage default) "
                 "| inserted | found of inserted (0.4 / 0.15) | false alarms (0.4 / 0.15) |", "|---|---|---|---|---|---|---|"]
        for name, r in d["per_shot"].items():
            a, b = r["ratio 0.4"], r["ratio 0.15"]
            lines.append(f"| {name} | {r['readme_count'] if r['readme_count'] is not None else '-'} | "
                         f"{a['native_found']} | {b['native_found']} | {len(r['inserted'])} | "
                         f"{len(a['found_inserted'])} / {len(b['found_inserted'])} | "
                         f"{a['false_alarms']} / {b['false_alarms']} |")
        lines.append("")
        for ratio, v in d["inserted"].items():
            lines.append(f"inserted re-scans, ratio {ratio}: precision {v['precision']}, recall {v['recall']} "
                         f"({v['true']} inserted)")
        lines.append(f"PSNR vs the true frame: repeat {d['replacement_psnr']['repeat_vs_truth']} dB, "
                     f"rebuilt {d['replacement_psnr']['rebuilt_vs_truth']} dB")
        out_md.append("\n".join(lines))
        print(out_md[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "interpolate.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"\n-> {out / 'interpolate.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
