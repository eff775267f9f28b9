"""Pipeline benchmark: everything measured side by side in one run (ratios, not absolute times).

    make bench            # or: python -m benchmarks.pipeline [--size 320x240] [--out bench-out]

Reports, on a synthetic film rendered here (ground truth known) and on the shared real clips:
- throughput of the `identity` recipe through the whole flow vs plain PyAV decode -> FFV1 encode;
- first run vs rerun-with-nothing-changed of the `defects` recipe (flow time, API already up);
- PSNR/SSIM of input and restored master against the clean film (all degradations on, and with
  only those the `defects` recipe addresses: blotches, flicker, grain);
- cut precision/recall/F1 of `reel shots` on synthetic films and ../shared/data/oldfilm.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from catalog import layout

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oldfilm"


def plain_pyav_transcode(src: Path, dst: Path) -> int:
    """The baseline: decode every frame with PyAV and encode it losslessly (FFV1) with PyAV."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("ffv1", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "bgr0"
        n = 0
        for frame in inp.decode(vin):
            rgb = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            rgb.pts = n
            rgb.time_base = Fraction(1, 1) / vin.average_rate
            out.mux(vout.encode(rgb))
            n += 1
        out.mux(vout.encode(None))
    return n


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    r = fn(*a, **k)
    return r, time.perf_counter() - t0


def frames_of(path: Path, depth: int) -> np.ndarray:
    from infra.media import iter_frames

    scale = 255.0 if depth == 8 else 65535.0
    return np.stack(list(iter_frames(path, depth=depth))).astype(np.float32) / np.float32(scale)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--frames-per-shot", type=int, default=24)
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args()

    from catalog.recipe import BUILTIN_RECIPES
    from flows.restore_title import restore_title
    from infra.media import write_film
    from infra.pipeline.file import shots_of_file
    from infra.prefect_api import shared_prefect_api
    from infra.runtime import process_runtime
    from models.metrics import cut_scores, psnr, resize_to, ssim_luma
    from models.synth import SynthConfig, render_film

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    w, h = (int(x) for x in args.size.split("x"))
    results: dict = {"size": args.size, "shots": args.shots, "frames_per_shot": args.frames_per_shot}
    with tempfile.TemporaryDirectory(prefix="reel-bench-") as tmp:
        tmp_path = Path(tmp)
        os.environ["REEL_STORE"] = str(tmp_path / "store")
        cfg = SynthConfig(width=w, height=h, shots=args.shots, frames_per_shot=args.frames_per_shot, seed=1)
        film = render_film(cfg)
        src = tmp_path / "film.mkv"
        write_film(src, film.degraded, cfg.fps, (film.audio, film.audio_sample_rate))
        n = film.truth["frames"]

        with shared_prefect_api():
            run = restore_title  # its runner starts a LocalCluster of its own for each run, from the settings
            # warm-up: imports, cluster start paths and the API's first requests are not the pipeline
            run(source=str(src), title="warmup", recipe=BUILTIN_RECIPES["identity"].model_copy(
                update={"masters": ["ffv1"]}))

            _, t_plain = timed(plain_pyav_transcode, src, tmp_path / "plain.mkv")
            identity = BUILTIN_RECIPES["identity"].model_copy(update={"masters": ["ffv1"]})
            _, t_identity = timed(run, source=str(src), title="bench-identity", recipe=identity)
            first, t_first = timed(run, source=str(src), title="bench-defects", recipe="defects")
            again, t_again = timed(run, source=str(src), title="bench-defects", recipe="defects")
            # the same content with only what the `defects` recipe addresses (no fade/cast, weave, scratches)
            cfg2 = SynthConfig(width=w, height=h, shots=args.shots, frames_per_shot=args.frames_per_shot, seed=1,
                               fade=False, weave=False, scratches=False)
            film2 = render_film(cfg2)
            src2 = tmp_path / "film-addressed.mkv"
            write_film(src2, film2.degraded, cfg2.fps, (film2.audio, film2.audio_sample_rate))
            second = run(source=str(src2), title="bench-addressed", recipe="defects")
            master2 = tmp_path / "master2.mkv"

            store = process_runtime().store
            manifest = first["manifest"]
            master = tmp_path / "master.mkv"
            store.get_file(layout.published_key("bench-defects", manifest["version"], "master.mkv"), master)
            store.get_file(layout.published_key("bench-addressed", second["manifest"]["version"], "master.mkv"),
                           master2)

        restored = frames_of(master, 16)
        clean = film.clean.astype(np.float32) / 255
        degraded = film.degraded.astype(np.float32) / 255
        restored = resize_to(restored, w, h)
        results["throughput"] = {
            "frames": n,
            "plain_pyav_fps": round(n / t_plain, 2),
            "identity_flow_fps": round(n / t_identity, 2),
            "identity_vs_plain_ratio": round(t_plain / t_identity, 3),
        }
        results["rerun"] = {
            "first_s": round(t_first, 2), "rerun_s": round(t_again, 2),
            "rerun_over_first": round(t_again / t_first, 3),
            "pieces_restored_first": first["pieces_restored"], "pieces_restored_rerun": again["pieces_restored"],
        }
        results["quality_vs_clean"] = {
            "input_psnr_db": round(psnr(degraded, clean), 2),
            "restored_psnr_db": round(psnr(restored, clean), 2),
            "input_ssim": round(ssim_luma(degraded, clean), 4),
            "restored_ssim": round(ssim_luma(restored, clean), 4),
        }
        results["quality_vs_clean"]["psnr_gain_db"] = round(
            results["quality_vs_clean"]["restored_psnr_db"] - results["quality_vs_clean"]["input_psnr_db"], 2)

        clean2 = film2.clean.astype(np.float32) / 255
        degraded2 = film2.degraded.astype(np.float32) / 255
        restored2 = frames_of(master2, 16)
        results["quality_vs_clean_addressed_defects_only"] = {
            "input_psnr_db": round(psnr(degraded2, clean2), 2),
            "restored_psnr_db": round(psnr(restored2, clean2), 2),
            "input_ssim": round(ssim_luma(degraded2, clean2), 4),
            "restored_ssim": round(ssim_luma(restored2, clean2), 4),
        }
        q = results["quality_vs_clean_addressed_defects_only"]
        q["psnr_gain_db"] = round(q["restored_psnr_db"] - q["input_psnr_db"], 2)

        cuts = {}
        for seed in range(5):
            f = render_film(SynthConfig(width=w, height=h, shots=5, frames_per_shot=16, seed=100 + seed))
            p = tmp_path / f"cuts{seed}.mkv"
            write_film(p, f.degraded, Fraction(f.truth["fps"]))
            cuts[f"synthetic-seed{100 + seed}"] = cut_scores(shots_of_file(p, process_runtime().settings).cuts, f.truth["cuts"])
        truth_file = SHARED / "cuts.json"
        if truth_file.exists():
            truth = json.loads(truth_file.read_text())
            for name, t in truth.items():
                cuts[name] = cut_scores(shots_of_file(SHARED / name, process_runtime().settings).cuts, t["cuts"])
        results["cuts"] = {k: {m: round(v, 3) for m, v in s.items()} for k, s in cuts.items()}
        results["cuts_mean_f1"] = round(float(np.mean([s["f1"] for s in cuts.values()])), 3)

    (out_dir / "infra.pipeline.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
