"""Shot-detection benchmark: Reel's detector vs PySceneDetect, side by side in one run.

    .venv/bin/python -m benchmarks.shots [--out bench-out] [--films DIR] [--quick]

Material (ground truth known):
- ../shared/data/oldfilm/four_films.mkv and four_films_flashes.mkv (real early film; cuts 60, 109, 157;
  the second has flash frames that are not cuts), when that folder is there;
- synthetic films from `reel synth --flashes --transitions` (models.synth + models.synth_events):
  flicker, blotches, weave, grain, scratches, flashes, fades through black/white and dissolves of
  8-40 frames, several seeds at 320x240 and one at 640x480.

Measures, per clip and per clip set:
- cuts: precision / recall / F1 with +-1 frame tolerance (models.metrics.cut_scores);
- transitions: a true transition is found when a detected one of the same kind overlaps it (each
  detection matches at most once): precision / recall;
- shot changes of any kind (`boundary_scores`): a reported cut or transition counts when it lands on
  a true cut or transition, whatever its kind, so a detector that reports a dissolve as a cut is not
  penalised for it;
- the same clips through PySceneDetect's ContentDetector and AdaptiveDetector, defaults and
  luma_only=True (they report cuts only: in cut F1 a cut they report inside a fade or dissolve is a
  false cut; in shot-change F1 it counts);
- speed: Reel's detection over a clip (`infra.pipeline.file.shots_of_file`: decode, features, decision,
  frame times) against plain PyAV decoding of the same clip to rgb24 ndarrays, each repeated 3x,
  interleaved, median taken; reported as decode throughput ratio (1.0 = as fast as decoding).

Writes OUT/shots.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oldfilm"

# (seed, size, shots, frames_per_shot): rendered exactly as `reel synth OUT --seed S --size WxH --shots N
# --frames-per-shot F --flashes --transitions` renders them.
SYNTH_FILMS = [
    (1, "320x240", 8, 48),
    (2, "320x240", 8, 48),
    (3, "320x240", 8, 48),
    (4, "320x240", 8, 48),
    (5, "320x240", 8, 48),
    (6, "320x240", 8, 48),
    (7, "640x480", 6, 48),
]

SCENEDETECT = [
    ("content", "ContentDetector", {}),
    ("content-luma", "ContentDetector", {"luma_only": True}),
    ("adaptive", "AdaptiveDetector", {}),
    ("adaptive-luma", "AdaptiveDetector", {"luma_only": True}),
]


def transition_scores(found: list[dict], truth: list[dict]) -> dict[str, float]:
    """A true transition is found by an overlapping detection of the same kind; each detection counts once."""
    used: set[int] = set()
    hits = 0
    for tr in truth:
        for i, d in enumerate(found):
            if i in used or d["kind"] != tr["kind"]:
                continue
            if d["start"] < tr["end"] and tr["start"] < d["end"]:
                used.add(i)
                hits += 1
                break
    precision = len(used) / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    return {"precision": precision, "recall": recall, "found": len(found), "true": len(truth), "matched": hits}


def boundary_scores(cuts: list[int], found_tr: list[dict], true_cuts: list[int], true_tr: list[dict],
                    tolerance: int = 1) -> dict[str, float]:
    """Shot changes of any kind: F1 where a detection counts when it lands on a true change of any kind.

    A true change is a hard cut (a frame) or a transition (a range); a detected cut or transition
    matches one true change it touches (cut within +-tolerance of a true cut or inside a true
    transition's range widened by the tolerance; a detected transition overlapping a true transition
    or containing a true cut), each true change matched at most once. This does not penalise a
    detector that reports a dissolve as a cut (as PySceneDetect's detectors do).
    """
    truth = [(c - tolerance, c + tolerance + 1) for c in true_cuts]
    truth += [(t["start"] - tolerance, t["end"] + tolerance) for t in true_tr]
    found = [(c, c + 1) for c in cuts] + [(t["start"], t["end"]) for t in found_tr]
    used: set[int] = set()
    hits = 0
    for a, b in sorted(found):
        for i, (ta, tb) in enumerate(truth):
            if i not in used and a < tb and ta < b:
                used.add(i)
                hits += 1
                break
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def render_synth(out_dir: Path, seed: int, size: str, shots: int, fps_frames: int) -> dict[str, Any]:
    path = out_dir / f"synth-s{seed}-{size}.mkv"
    truth_path = path.with_name(path.stem + ".truth.json")
    if not (path.exists() and truth_path.exists()):  # the `reel synth` command, run as a command
        argv = ["synth", str(path), "--seed", str(seed), "--size", size, "--shots", str(shots),
                "--frames-per-shot", str(fps_frames), "--flashes", "--transitions"]
        done = subprocess.run([sys.executable, "-m", "flows.cli", *argv], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"reel {' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    truth = json.loads(truth_path.read_text())
    return {"name": path.stem, "set": "synthetic", "path": path, "cuts": truth["cuts"],
            "transitions": [{k: t[k] for k in ("start", "end", "kind")} for t in truth.get("transitions", [])],
            "frames": truth["frames"], "flashes": truth.get("flash_frames", [])}


def shared_clips() -> list[dict[str, Any]]:
    if not (SHARED / "cuts.json").exists():
        return []
    meta = json.loads((SHARED / "cuts.json").read_text())
    return [{"name": Path(name).stem, "set": "real", "path": SHARED / name, "cuts": m["cuts"], "transitions": [],
             "frames": m["frames"], "flashes": m.get("flashes_not_cuts", [])}
            for name, m in meta.items() if (SHARED / name).exists()]


def plain_decode(path: Path) -> int:
    """The baseline: decode every frame with PyAV to an rgb24 ndarray."""
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def scenedetect_cuts(path: Path, cls_name: str, kwargs: dict) -> list[int]:
    import scenedetect
    from scenedetect import SceneManager, open_video

    video = open_video(str(path), backend="pyav")
    sm = SceneManager()
    sm.add_detector(getattr(scenedetect.detectors, cls_name)(**kwargs))
    sm.detect_scenes(video)
    return [s[0].frame_num for s in sm.get_scene_list()][1:]


def h264_copy(src: Path, dst: Path) -> Path | None:
    """The clip re-encoded as H.264 yuv420p (what most sources are), or None without libx264."""
    from fractions import Fraction

    try:
        with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
            vin = inp.streams.video[0]
            rate = vin.average_rate or Fraction(24)
            vout = out.add_stream("libx264", rate=rate)
            vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
            for n, frame in enumerate(inp.decode(vin)):
                f = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24").reformat(
                    format="yuv420p")
                f.pts, f.time_base = n, 1 / Fraction(rate)
                out.mux(vout.encode(f))
            out.mux(vout.encode(None))
    except (av.FFmpegError, ValueError):
        return None
    return dst


def speed(path: Path, repeats: int = 3) -> dict[str, float]:
    """Median times of plain decoding and of Reel's detection, interleaved; the probe child process alone too.

    `ratio` = decode time / detection time (>= 1: detection keeps up with decoding). Detection includes
    `infra.media.probe` (a child process that guards against inputs that crash FFmpeg: a fixed cost per
    file, ~0.1-0.2 s here); `ratio_without_probe` leaves it out, which is what a long film sees.
    """
    from infra.media import probe
    from infra.pipeline.file import shots_of_file
    from infra.settings import load_settings

    settings = load_settings()
    plain_decode(path)  # warm the page cache and the imports
    shots_of_file(path, settings)
    t_dec, t_det, t_probe = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = plain_decode(path)
        t1 = time.perf_counter()
        shots_of_file(path, settings)
        t2 = time.perf_counter()
        probe(path)
        t3 = time.perf_counter()
        t_dec.append(t1 - t0)
        t_det.append(t2 - t1)
        t_probe.append(t3 - t2)
    dec, det, prb = statistics.median(t_dec), statistics.median(t_det), statistics.median(t_probe)
    return {"frames": n, "decode_s": dec, "detect_s": det, "probe_s": prb, "decode_fps": n / dec,
            "detect_fps": n / det, "ratio": dec / det, "ratio_without_probe": dec / max(det - prb, 1e-9)}


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows]
    return sum(vals) / len(vals) if vals else float("nan")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--films", help="keep rendered synthetic films here (reused when present)")
    ap.add_argument("--quick", action="store_true", help="two synthetic films, no PySceneDetect, one speed clip")
    args = ap.parse_args(argv)

    from infra.pipeline.file import shots_of_file
    from infra.settings import load_settings
    from models.metrics import cut_scores

    settings = load_settings()

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="reel-bench-shots-")
    film_dir = Path(args.films) if args.films else Path(tmp.name)
    film_dir.mkdir(parents=True, exist_ok=True)

    films = SYNTH_FILMS[:2] if args.quick else SYNTH_FILMS
    clips = shared_clips() + [render_synth(film_dir, *spec) for spec in films]
    methods = [("reel", None, None)] + ([] if args.quick else [(n, c, k) for n, c, k in SCENEDETECT])

    per_clip: list[dict[str, Any]] = []
    for clip in clips:
        row: dict[str, Any] = {"clip": clip["name"], "set": clip["set"], "frames": clip["frames"],
                               "true_cuts": clip["cuts"], "true_transitions": clip["transitions"], "methods": {}}
        for name, cls_name, kwargs in methods:
            if cls_name is None:
                res = shots_of_file(clip["path"], settings).to_json()
                cuts, trans = res["cuts"], res["transitions"]
            else:
                cuts, trans = scenedetect_cuts(clip["path"], cls_name, kwargs), []
            flash_cuts = sorted({c for c in cuts for f in clip["flashes"] if abs(c - f) <= 1})
            row["methods"][name] = {"cuts": cuts, "transitions": trans, **cut_scores(cuts, clip["cuts"]),
                                    "flash_false_cuts": flash_cuts,
                                    "boundary": boundary_scores(cuts, trans, clip["cuts"], clip["transitions"]),
                                    "transition": transition_scores(trans, clip["transitions"])}
        per_clip.append(row)

    summary: dict[str, Any] = {}
    for name, _, _ in methods:
        summary[name] = {}
        for label, sel in (("real", "real"), ("synthetic", "synthetic"), ("all", None)):
            rows = [r["methods"][name] for r in per_clip if sel is None or r["set"] == sel]
            if not rows:
                continue
            found = sum(r["transition"]["found"] for r in rows)
            true = sum(r["transition"]["true"] for r in rows)
            matched = sum(r["transition"]["matched"] for r in rows)
            summary[name][label] = {
                "clips": len(rows), "cut_f1": _mean(rows, "f1"), "cut_precision": _mean(rows, "precision"),
                "cut_recall": _mean(rows, "recall"),
                "boundary_f1": sum(r["boundary"]["f1"] for r in rows) / len(rows),
                "flash_false_cuts": sum(len(r["flash_false_cuts"]) for r in rows),
                "transition_recall": matched / true if true else None,
                "transition_precision": matched / found if found else None,
                "transitions_true": true, "transitions_found": found,
            }

    speed_clips = [(c["name"], c["path"]) for c in clips if c["set"] == "real"][:2]
    speed_clips += [(c["name"], c["path"]) for c in clips if "640x480" in c["name"]]
    if args.quick:
        speed_clips = speed_clips[:1] or [(clips[0]["name"], clips[0]["path"])]
    h264 = h264_copy(speed_clips[0][1], film_dir / f"{speed_clips[0][0]}.h264.mp4") if speed_clips else None
    if h264 is not None:
        speed_clips.append((h264.stem.replace(".", " "), h264))
    speeds = {name: speed(path) for name, path in speed_clips}

    result = {"clips": per_clip, "summary": summary, "speed": speeds,
              "synthetic_films": [{"seed": s, "size": z, "shots": n, "frames_per_shot": f} for s, z, n, f in films]}
    (out_dir / "shots.json").write_text(json.dumps(result, indent=2, default=str))
    _print(per_clip, summary, speeds, [m[0] for m in methods])
    tmp.cleanup()
    return result


def _fmt(x: Any) -> str:
    return "  -  " if x is None else f"{x:5.3f}"


def _print(per_clip: list[dict], summary: dict, speeds: dict, methods: list[str]) -> None:
    print("\ncut F1 (+-1 frame) per clip; transitions found/true (Reel)")
    print(f"{'clip':26s}" + "".join(f"{m:>15s}" for m in methods) + "   transitions")
    for r in per_clip:
        tr = r["methods"]["reel"]["transition"]
        print(f"{r['clip']:26s}" + "".join(f"{r['methods'][m]['f1']:15.3f}" for m in methods)
              + f"   {tr['matched']}/{tr['true']} (found {tr['found']})")
    print("\nshot-change F1 per clip (a cut or transition reported anywhere on a true cut or transition counts)")
    print(f"{'clip':26s}" + "".join(f"{m:>15s}" for m in methods))
    for r in per_clip:
        print(f"{r['clip']:26s}" + "".join(f"{r['methods'][m]['boundary']['f1']:15.3f}" for m in methods))
    print("\nsummary: mean cut F1 / precision / recall, mean shot-change F1, false cuts at flashes, "
          "transition recall / precision")
    for m in methods:
        for label, s in summary[m].items():
            print(f"  {m:14s} {label:10s} F1 {s['cut_f1']:.3f}  P {s['cut_precision']:.3f}  R {s['cut_recall']:.3f}"
                  f"  change F1 {s['boundary_f1']:.3f}  flash cuts {s['flash_false_cuts']:2d}"
                  f"  transitions R {_fmt(s['transition_recall'])} P {_fmt(s['transition_precision'])}"
                  f" ({s['transitions_found']} found / {s['transitions_true']} true)")
    print("\nspeed: Reel detection vs plain PyAV decode to rgb24 (median of 3); ratio = decode time / detect time")
    for name, s in speeds.items():
        print(f"  {name:26s} {s['frames']:4d} frames  decode {s['decode_fps']:7.1f} fps  detect {s['detect_fps']:7.1f} fps"
              f"  ratio {s['ratio']:.2f}  (probe {s['probe_s']:.2f} s; without it {s['ratio_without_probe']:.2f})")


if __name__ == "__main__":
    main()
