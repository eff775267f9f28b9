"""Colour benchmark (issue 5): the learned grade and the automatic `colour` stage against baselines.

    make bench-colour     # or: python -m benchmarks.colour [--out bench-out] [--seeds 3,11,20] [--quick]

Everything is measured in one run, on the same inputs (writes OUT/colour.json and OUT/colour-grade.cube):

- learned grade, the way a colourist would meet it: a clean synthetic colour film (480x360, 6 shots of
  12 frames) is faded (`MAGENTA_FADE`) and graded by an artist (`TEAL_ORANGE`); the faded frames are
  quantised to the scan depth (16-bit, the headline, as archive scans are 10/16-bit; 8-bit reported
  too). `learn_grade` gets 3 (faded, graded) pairs, the middle frames of shots 0, 2 and 4, with its
  default cross-validation; every 2nd other frame is scored against the true graded film with CIEDE2000
  (mean, p95, and the mean split into shots with a graded pair and shots never seen). Baselines on the
  same data: none (the faded frame), gray-world per frame, Reinhard Lab mean/std transfer and
  per-channel histogram matching, both fitted on the 3 pairs. A second look/fade (`BLEACH_WARM` /
  `YELLOW_FADE`) is reported separately so the figure does not rest on one look;
- .cube round trip: the learned LUT is written with `write_cube`, read back by colour-science
  (`colour.read_LUT`, trilinear) and applied to the held-out frames; ΔE00 against Reel's `apply_lut`;
- temporal colour jitter within shots (`colour_jitter`): per shot, the mean CIELAB colour of each frame,
  CIEDE2000 between consecutive frames, averaged; for the graded truth, the faded input, the learned
  grade and each baseline (16-bit);
- automatic correction (the `colour` stage, no reference pairs) on the synthetic film's own fade and cast
  (320x240, 6 shots of 10 frames, shot 2 greyscale), run the way the flow runs it (analyse per shot,
  solve over the title, bind per shot): ΔE00 against the clean film for none, gray-world per frame,
  scope="shot" and scope="title"; whether the greyscale shot came out exactly neutral and was flagged
  monochrome; colour jitter before and after;
- speed, as ratios measured side by side: `learn_grade` with cross-validation against one fixed fit and
  against applying the LUT, Reel's `apply_lut` against colour-science's `LUT3D.apply` on the same
  1920x1080 frame, and the `colour` stage per 1080p frame against `apply_lut` per 1080p frame.

The learned-grade films run in `--jobs` worker processes (default 2) with single-threaded BLAS
(OPENBLAS_NUM_THREADS=1 unless set; `fit_lut` itself also limits BLAS to one thread around its
conjugate-gradient solves, where OpenBLAS's threads made it ~10x slower on 2 cores).
The speed section runs alone, after the rest.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from skimage.color import deltaE_ciede2000

from models.grade import (
    HistogramTransfer,
    ReinhardTransfer,
    apply_lut,
    delta_e00,
    gray_world,
    learn_grade,
    read_cube,
    to_lab,
    write_cube,
)

FPS = Fraction(24)
LOOKS = {"teal_orange/magenta_fade": ("TEAL_ORANGE", "MAGENTA_FADE"),
         "bleach_warm/yellow_fade": ("BLEACH_WARM", "YELLOW_FADE")}
HEADLINE_LOOK = "teal_orange/magenta_fade"
DEPTHS = (16, 8)
GRADE_METHODS = ("none", "gray-world", "reinhard", "histogram", "learned")
AUTO_METHODS = ("none", "gray-world", "colour shot", "colour title")


# --------------------------------------------------------------------------------------------------
# Temporal colour jitter
# --------------------------------------------------------------------------------------------------


def frame_lab_means(frames: np.ndarray) -> np.ndarray:
    """(T, 3) mean CIELAB colour of each frame (T, H, W, 3) in the working space."""
    return np.stack([to_lab(f).reshape(-1, 3).mean(axis=0) for f in frames])


def jitter_from_means(means: np.ndarray, bounds: list[tuple[int, int]]) -> float:
    """Mean over shots of the mean CIEDE2000 between consecutive frames' mean Lab colours."""
    per_shot = [float(deltaE_ciede2000(means[a:b - 1], means[a + 1:b]).mean()) for a, b in bounds if b - a >= 2]
    return float(np.mean(per_shot))


def colour_jitter(frames: np.ndarray, bounds: list[tuple[int, int]]) -> float:
    """Temporal colour jitter within shots: for each shot [a, b) the sequence of per-frame mean CIELAB
    colours, the mean CIEDE2000 between consecutive ones, averaged over shots. A fixed per-shot
    correction keeps the input's jitter; a per-frame one (gray-world) adds its own."""
    return jitter_from_means(frame_lab_means(frames), bounds)


# --------------------------------------------------------------------------------------------------
# Learned grade vs baselines
# --------------------------------------------------------------------------------------------------


def quantise(x: np.ndarray, bits: int) -> np.ndarray:
    top = float(2 ** bits - 1)
    return (np.round(np.clip(x, 0, 1) * top) / top).astype(np.float32)


def _looks(name: str) -> tuple[Any, Any]:
    from models import synth_grade

    look, fade = LOOKS[name]
    return getattr(synth_grade, look), getattr(synth_grade, fade)


def _summary(de: dict[int, np.ndarray], seen: set[int]) -> dict[str, float]:
    alls = np.concatenate([d.ravel() for d in de.values()])
    s = [d.mean() for t, d in de.items() if t in seen]
    u = [d.mean() for t, d in de.items() if t not in seen]
    return {"mean": float(alls.mean()), "p95": float(np.percentile(alls, 95)),
            "mean_seen_shots": float(np.mean(s)), "mean_unseen_shots": float(np.mean(u))}


def grade_film(seed: int, look_name: str, size: tuple[int, int], cube_path: str | None) -> dict[str, Any]:
    """One film, one look: learn the grade at each scan depth, score it and the baselines."""
    warnings.filterwarnings("ignore")  # colour-science's matplotlib notice, in each worker
    import colour

    from models.synth import SynthConfig, render_film

    look, fade = _looks(look_name)
    w, h = size
    film = render_film(SynthConfig(width=w, height=h, shots=6, frames_per_shot=12, seed=seed, blotches=False,
                                   scratches=False, flicker=False, grain=False, weave=False, fade=False))
    clean = film.clean.astype(np.float32) / np.float32(255)
    graded = look(clean)
    faded_f = fade(clean)
    shots = film.truth["shots"]
    bounds = [(s["start"], s["end"]) for s in shots]
    train = [(shots[k]["start"] + shots[k]["end"]) // 2 for k in (0, 2, 4)]
    scored = [t for t in range(0, len(clean), 2) if t not in train]
    shot_of = {t: k for k, (a, b) in enumerate(bounds) for t in range(a, b)}
    seen = {t for t in scored if shot_of[t] in (0, 2, 4)}
    truth_lab = {t: to_lab(graded[t]).astype(np.float32) for t in scored}

    out: dict[str, Any] = {"seed": seed, "look": look_name, "train_frames": train, "scored_frames": len(scored)}
    for bits in DEPTHS:
        faded = quantise(faded_f, bits)
        pairs = [(faded[t], graded[t]) for t in train]
        t0 = time.perf_counter()
        lut, report = learn_grade(pairs)
        learn_s = time.perf_counter() - t0
        if bits == DEPTHS[0] and cube_path:  # the headline film: also time one fit at the chosen settings
            t0 = time.perf_counter()
            learn_grade(pairs, smooth=report["smooth"], ridge=report["ridge"])
            out["fixed_fit_seconds"] = time.perf_counter() - t0
        src, dst = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        rein, hist = ReinhardTransfer().fit(src, dst), HistogramTransfer().fit(src, dst)
        methods = {"none": lambda x: x, "gray-world": gray_world, "reinhard": rein.apply,
                   "histogram": hist.apply, "learned": lambda x, lut=lut: apply_lut(lut, x)}
        # every frame when jitter is measured (headline depth), else only the scored ones
        frames = range(len(clean)) if bits == DEPTHS[0] else scored
        res: dict[str, Any] = {"learn": {**report, "seconds": learn_s}, "methods": {}}
        jitter: dict[str, float] = {}
        for name, fn in methods.items():
            de: dict[int, np.ndarray] = {}
            means = np.empty((len(clean), 3))
            for t in frames:
                lab = to_lab(fn(faded[t]))
                means[t] = lab.reshape(-1, 3).mean(axis=0)
                if t in truth_lab:
                    de[t] = deltaE_ciede2000(lab, truth_lab[t]).astype(np.float32)
            res["methods"][name] = _summary(de, seen)
            if bits == DEPTHS[0]:
                jitter[name] = jitter_from_means(means, bounds)
        res["ratio_learned_to_reinhard"] = res["methods"]["learned"]["mean"] / res["methods"]["reinhard"]["mean"]
        if bits == DEPTHS[0]:
            jitter["graded truth"] = colour_jitter(graded, bounds)
            res["jitter"] = jitter
            res["cube"] = cube_round_trip(lut, [faded[t] for t in scored], cube_path, colour)
        out[f"{bits}bit"] = res
    return out


def cube_round_trip(lut: np.ndarray, frames: list[np.ndarray], path: str | None, colour: Any) -> dict[str, Any]:
    """Write the LUT as .cube, read it with colour-science and with Reel; ΔE00 between the applications."""
    text = write_cube(lut, title="Reel learned grade (benchmarks.colour)")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(path) if path else Path(tmp) / "grade.cube"
        p.write_text(text)
        cs = colour.read_LUT(str(p))
    reel_back = read_cube(text)
    de = np.concatenate([delta_e00(np.asarray(cs.apply(f), np.float32), apply_lut(lut, f)).ravel()
                         for f in frames])
    return {"path": path, "cs_table_max_abs_diff": float(np.abs(np.asarray(cs.table) - lut).max()),
            "reel_read_cube_max_abs_diff": float(np.abs(reel_back - lut).max()),
            "delta_e00_mean": float(de.mean()), "delta_e00_max": float(de.max())}


def _grade_job(args: tuple[int, str, tuple[int, int], str | None]) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = grade_film(*args)
    res["seconds"] = time.perf_counter() - t0
    return res


def summarise_grade(films: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds, per look and depth."""
    out: dict[str, Any] = {}
    for look in LOOKS:
        rows = [f for f in films if f["look"] == look]
        if not rows:
            continue
        out[look] = {}
        for bits in DEPTHS:
            key = f"{bits}bit"
            m = {name: {k: float(np.mean([r[key]["methods"][name][k] for r in rows]))
                        for k in rows[0][key]["methods"][name]} for name in GRADE_METHODS}
            d: dict[str, Any] = {"methods": m,
                                 "ratio_learned_to_reinhard": m["learned"]["mean"] / m["reinhard"]["mean"],
                                 "ratio_per_seed": [r[key]["ratio_learned_to_reinhard"] for r in rows],
                                 "cv_delta_e00": [r[key]["learn"].get("cv_delta_e00") for r in rows],
                                 "settings": [[r[key]["learn"]["smooth"], r[key]["learn"]["ridge"]] for r in rows]}
            if "jitter" in rows[0][key]:
                d["jitter"] = {k: float(np.mean([r[key]["jitter"][k] for r in rows])) for k in rows[0][key]["jitter"]}
                d["cube_delta_e00_mean"] = float(np.mean([r[key]["cube"]["delta_e00_mean"] for r in rows]))
                d["cube_delta_e00_max"] = float(np.max([r[key]["cube"]["delta_e00_max"] for r in rows]))
            out[look][key] = d
    return out


# --------------------------------------------------------------------------------------------------
# Automatic correction: the colour stage
# --------------------------------------------------------------------------------------------------


def run_colour_stage(deg: np.ndarray, bounds: list[tuple[int, int]], scope: str
                     ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The flow's way: analyse each shot, solve over the title, bind each shot's correction."""
    from models.clip import Clip
    from models.colour import Colour

    stage = Colour(scope=scope)
    stats = stage.solve([stage.analyse(Clip(deg[a:b], FPS)) for a, b in bounds])
    out = np.empty_like(deg)
    for k, (a, b) in enumerate(bounds):
        out[a:b] = stage.bind(stats=stats[k])(Clip(deg[a:b], FPS)).frames
    return out, stats


def auto_film(seed: int, size: tuple[int, int]) -> dict[str, Any]:
    from models.synth import SynthConfig, render_film

    w, h = size
    film = render_film(SynthConfig(width=w, height=h, shots=6, frames_per_shot=10, seed=seed, blotches=False,
                                   scratches=False, flicker=False, grain=False, weave=False, fade=True))
    deg = film.degraded.astype(np.float32) / np.float32(255)
    clean = film.clean.astype(np.float32) / np.float32(255)
    shots = film.truth["shots"]
    bounds = [(s["start"], s["end"]) for s in shots]
    grey = [k for k, s in enumerate(shots) if s["greyscale"]]
    outs = {"none": deg, "gray-world": np.stack([gray_world(f) for f in deg])}
    stats = {}
    for scope in ("shot", "title"):
        outs[f"colour {scope}"], stats[scope] = run_colour_stage(deg, bounds, scope)

    def neutral_err(x: np.ndarray) -> float:
        sl = np.concatenate([x[a:b] for k, (a, b) in enumerate(bounds) if k in grey])
        return float(max(np.abs(sl[..., 0] - sl[..., 1]).max(), np.abs(sl[..., 1] - sl[..., 2]).max()))

    res: dict[str, Any] = {"seed": seed, "cast": film.truth["fade"]["cast"], "greyscale_shots": grey,
                           "clean_jitter": colour_jitter(clean, bounds),
                           "clean_greyscale_max_channel_diff": neutral_err(clean) if grey else None, "methods": {}}
    for name, x in outs.items():
        de = np.stack([delta_e00(x[t], clean[t]).mean() for t in range(len(x))])
        r: dict[str, Any] = {"delta_e00": float(de.mean()), "jitter": colour_jitter(x, bounds),
                             "delta_e00_per_shot": [float(de[a:b].mean()) for a, b in bounds]}
        if grey:
            r["greyscale_max_channel_diff"] = neutral_err(x)
        res["methods"][name] = r
    for scope, st in stats.items():
        res["methods"][f"colour {scope}"]["flagged_monochrome"] = [k for k, s in enumerate(st) if s["monochrome"]]
    return res


def bench_auto(seeds: list[int], size: tuple[int, int]) -> dict[str, Any]:
    films = [auto_film(s, size) for s in seeds]
    mean = {m: {k: float(np.mean([f["methods"][m][k] for f in films])) for k in ("delta_e00", "jitter")}
            for m in AUTO_METHODS}
    grey_ok = {m: all(f["methods"][m].get("greyscale_max_channel_diff", 0.0) == 0.0 for f in films)
               for m in AUTO_METHODS}
    flagged_ok = {m: all(f["methods"][m]["flagged_monochrome"] == f["greyscale_shots"] for f in films)
                  for m in ("colour shot", "colour title")}
    return {"films": films, "mean": mean, "greyscale_exactly_neutral": grey_ok,
            "monochrome_flags_exact": flagged_ok,
            "clean_jitter": float(np.mean([f["clean_jitter"] for f in films]))}


# --------------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------------


def _best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_speed(lut: np.ndarray, learn: dict[str, Any], size: tuple[int, int], frames: int) -> dict[str, Any]:
    import colour

    from models.clip import Clip
    from models.colour import Colour
    from models.synth import SynthConfig, render_film

    w, h = size
    film = render_film(SynthConfig(width=w, height=h, shots=1, frames_per_shot=frames, seed=3, blotches=False,
                                   scratches=False, flicker=False, grain=False, weave=False, fade=True))
    deg = film.degraded.astype(np.float32) / np.float32(255)
    del film
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "speed.cube"
        p.write_text(write_cube(lut))
        cs = colour.read_LUT(str(p))
    frame = deg[0]
    t_reel = _best_of(lambda: apply_lut(lut, frame))
    t_cs = _best_of(lambda: cs.apply(frame))
    stage = Colour()
    clip = Clip(deg, FPS)
    t_analyse = _best_of(lambda: stage.solve([stage.analyse(clip)]), 2)
    bound = stage.bind(stats=stage.solve([stage.analyse(clip)])[0])
    t_apply = _best_of(lambda: bound(clip), 2) / len(deg)
    t_stage = (t_analyse + t_apply * len(deg)) / len(deg)
    return {
        "frame": f"{w}x{h}", "clip_frames": len(deg),
        "seconds": {"apply_lut_per_frame": t_reel, "colour_science_apply_per_frame": t_cs,
                    "colour_stage_apply_per_frame": t_apply, "colour_stage_analyse_per_shot": t_analyse,
                    "colour_stage_per_frame_incl_analyse": t_stage,
                    "learn_grade_cv": learn["cv_seconds"], "learn_grade_fixed_settings": learn["fixed_seconds"]},
        "learn_grade_note": "timed inside the headline film's worker (single-threaded BLAS), alongside the "
                            "other worker(s)",
        "ratio_colour_science_to_apply_lut": t_cs / t_reel,
        "ratio_colour_stage_to_apply_lut": t_apply / t_reel,
        "ratio_colour_stage_incl_analyse_to_apply_lut": t_stage / t_reel,
        "ratio_learn_cv_to_fixed_fit": learn["cv_seconds"] / learn["fixed_seconds"],
        "learn_cv_in_1080p_apply_lut_frames": learn["cv_seconds"] / t_reel,
    }


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def print_tables(report: dict[str, Any]) -> None:
    seeds = ",".join(str(s) for s in report["seeds"])
    if "grade" in report:
        print(f"\nLearned grade from 3 pairs vs baselines: ΔE00 vs the true grade on held-out frames "
              f"(mean of seeds {seeds}); jitter = temporal colour jitter (ΔE00), 16-bit")
        print(f"{'look/fade':26s} {'depth':>5s} {'method':11s} {'mean':>6s} {'p95':>6s} {'seen':>6s} "
              f"{'unseen':>6s} {'jitter':>6s}")
        for look, by_depth in report["grade"]["mean"].items():
            for key, d in by_depth.items():
                for name in GRADE_METHODS:
                    m = d["methods"][name]
                    jit = f"{d['jitter'][name]:6.3f}" if "jitter" in d else ""
                    print(f"{look:26s} {key:>5s} {name:11s} {m['mean']:6.2f} {m['p95']:6.2f} "
                          f"{m['mean_seen_shots']:6.2f} {m['mean_unseen_shots']:6.2f} {jit}")
                per_seed = ", ".join(f"{r:.3f}" for r in d["ratio_per_seed"])
                extra = f"; graded-truth jitter {d['jitter']['graded truth']:.3f}" if "jitter" in d else ""
                print(f"{'':26s} {key:>5s} learned/reinhard = {d['ratio_learned_to_reinhard']:.3f} "
                      f"(per seed {per_seed}){extra}")
        c = report["grade"]["mean"][next(iter(report["grade"]["mean"]))][f"{DEPTHS[0]}bit"]
        head = report["grade"]["cube"]
        print(f"\n.cube round trip (colour-science read_LUT + trilinear apply vs Reel apply_lut, held-out frames): "
              f"headline ΔE00 mean {head['delta_e00_mean']:.2e}, max {head['delta_e00_max']:.2e}; "
              f"all films mean {c['cube_delta_e00_mean']:.2e}, max {c['cube_delta_e00_max']:.2e}; "
              f"table max |diff| {head['cs_table_max_abs_diff']:.1e} -> {head['path']}")
    if "auto" in report:
        a = report["auto"]
        print(f"\nAutomatic correction (colour stage, no pairs): ΔE00 vs clean film, mean of seeds {seeds}; "
              f"clean jitter {a['clean_jitter']:.3f}")
        print(f"{'method':13s} {'ΔE00':>6s} {'jitter':>6s} {'grey shot max|R-G|,|G-B|':>26s} {'flagged mono':>14s}")
        for m in AUTO_METHODS:
            g = ", ".join(f"{f['methods'][m].get('greyscale_max_channel_diff', float('nan')):.4f}" for f in a["films"])
            fl = "; ".join(str(f["methods"][m].get("flagged_monochrome", "-")) for f in a["films"])
            print(f"{m:13s} {a['mean'][m]['delta_e00']:6.2f} {a['mean'][m]['jitter']:6.3f} {g:>26s} {fl:>14s}")
        print("  greyscale shot per seed:", [f["greyscale_shots"] for f in a["films"]],
              "casts:", [f["cast"] for f in a["films"]], "clean film's own grey-shot max|R-G|,|G-B|:",
              [round(f["clean_greyscale_max_channel_diff"], 4) for f in a["films"]])
    if "speed" in report:
        s = report["speed"]
        sec = s["seconds"]
        print(f"\nSpeed ({s['frame']}, this machine's cores; seconds are context only)")
        print(f"  colour-science LUT3D.apply / apply_lut per frame: {s['ratio_colour_science_to_apply_lut']:.2f}x "
              f"({sec['colour_science_apply_per_frame']:.3f}s vs {sec['apply_lut_per_frame']:.3f}s)")
        print(f"  colour stage (bound) / apply_lut per frame: {s['ratio_colour_stage_to_apply_lut']:.2f}x "
              f"({sec['colour_stage_apply_per_frame']:.3f}s); with analyse amortised over {s['clip_frames']} "
              f"frames: {s['ratio_colour_stage_incl_analyse_to_apply_lut']:.2f}x")
        print(f"  learn_grade with CV / one fixed-settings fit: {s['ratio_learn_cv_to_fixed_fit']:.1f}x "
              f"({sec['learn_grade_cv']:.1f}s vs {sec['learn_grade_fixed_settings']:.1f}s) = "
              f"{s['learn_cv_in_1080p_apply_lut_frames']:.0f} 1080p apply_lut frames")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--seeds", default="3,11,20")
    ap.add_argument("--quick", action="store_true", help="first seed only: a fast check")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes for the grade")
    ap.add_argument("--grade-size", default="480x360")
    ap.add_argument("--auto-size", default="320x240")
    ap.add_argument("--speed-size", default="1920x1080")
    ap.add_argument("--speed-frames", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: grade,auto,speed")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # colour-science's matplotlib notice
    t_start = time.perf_counter()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds = seeds[:1]
    skip = set(filter(None, args.skip.split(",")))
    gsize, asize, ssize = ((int(v) for v in s.split("x")) for s in (args.grade_size, args.auto_size, args.speed_size))
    gsize, asize, ssize = tuple(gsize), tuple(asize), tuple(ssize)
    report: dict[str, Any] = {"seeds": seeds, "jobs": args.jobs}
    headline = None
    if "grade" not in skip:
        print(f"learned grade: {len(seeds)} seed(s) x {len(LOOKS)} looks, {args.jobs} worker(s) ...", flush=True)
        cube = str(out_dir / "colour-grade.cube")
        jobs = [(s, look, gsize, cube if (s == seeds[0] and look == HEADLINE_LOOK) else None)
                for s in seeds for look in LOOKS]
        films = []
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")  # read by the spawned workers' BLAS on start
        report["worker_blas_threads"] = os.environ["OPENBLAS_NUM_THREADS"]
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=ctx) as pool:
            for res in pool.map(_grade_job, jobs):
                k = f"{DEPTHS[0]}bit"
                print(f"  seed {res['seed']} {res['look']}: learned {res[k]['methods']['learned']['mean']:.2f}, "
                      f"reinhard {res[k]['methods']['reinhard']['mean']:.2f} ΔE00 ({res['seconds']:.0f}s)", flush=True)
                films.append(res)
        headline = films[0]
        report["grade"] = {"films": films, "mean": summarise_grade(films),
                           "cube": headline[f"{DEPTHS[0]}bit"]["cube"]}
    if "auto" not in skip:
        print("colour stage ...", flush=True)
        report["auto"] = bench_auto(seeds, asize)
    if "speed" not in skip:
        print("speed ...", flush=True)
        if headline is None:
            raise SystemExit("the speed section times the headline grade's learning: do not skip 'grade'")
        lut = read_cube(Path(report["grade"]["cube"]["path"]).read_text())
        k = f"{DEPTHS[0]}bit"
        learn = {"cv_seconds": headline[k]["learn"]["seconds"], "fixed_seconds": headline["fixed_fit_seconds"]}
        report["speed"] = bench_speed(lut, learn, ssize, args.speed_frames)
    report["total_seconds"] = time.perf_counter() - t_start
    (out_dir / "colour.json").write_text(json.dumps(report, indent=1))
    print_tables(report)
    print(f"\nwrote {out_dir / 'colour.json'} in {report['total_seconds']:.0f}s")


if __name__ == "__main__":
    main()
