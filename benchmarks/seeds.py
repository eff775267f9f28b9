"""Defaults that hold on every synthetic seed: `reel restore` with the `default` and `defects` recipes on
`reel synth` films, seeds 0-9, scored against the clean film.

    .venv/bin/python -m benchmarks.seeds [--seeds 0-9] [--recipes default,defects] [--out bench-out]

Each film is what `reel synth film.mkv --seed N --size 320x240 --shots 4 --frames-per-shot 24` writes
(fade, flicker, weave, grain, scratches, dust; audio). Each is restored by the real flow (one Prefect API
and one Dask cluster for all the runs, a fresh local store per run); the published archival master is read
back, brought to 320x240 by area averaging where the recipe upscales, and scored: PSNR / SSIM against
the clean film for the input and the master, the gain, which shots the harm guard touched, and the worst
seed per recipe. Writes OUT/seeds.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = (int(x) for x in text.split("-"))
        return list(range(a, b + 1))
    return [int(x) for x in text.split(",")]


def _score(frames: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    from models.metrics import ssim_luma

    mse = float(np.mean((frames - clean) ** 2))
    return {"psnr": 10 * float(np.log10(1.0 / max(mse, 1e-12))),
            "ssim": float(np.mean([ssim_luma(a, b) for a, b in zip(frames, clean, strict=True)]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--recipes", default="default,defects")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args()
    from flows.restore_title import restore_title
    from infra.cluster import RunsCluster
    from infra.media import iter_frames, write_film
    from infra.prefect_api import shared_prefect_api
    from infra.settings import load_settings
    from models.synth import SynthConfig, render_film

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="reel-bench-seeds-") as tmp_s:
        tmp = Path(tmp_s)
        os.environ["REEL_STORE"] = str(tmp / "store")
        cluster = RunsCluster(load_settings()).start()
        try:
            with shared_prefect_api(), cluster:
                runner = cluster.task_runner()
                for seed in _seeds(args.seeds):
                    cfg = SynthConfig(width=320, height=240, shots=4, frames_per_shot=24, seed=seed)
                    film = render_film(cfg)
                    src = tmp / f"seed{seed}.mkv"
                    write_film(src, film.degraded, Fraction(cfg.fps), (film.audio, film.audio_sample_rate))
                    clean = film.clean.astype(np.float32) / 255.0
                    deg = film.degraded.astype(np.float32) / 255.0
                    base = _score(deg, clean)
                    for recipe in args.recipes.split(","):
                        done = restore_title.with_options(task_runner=runner)(
                            source=str(src), title=f"seed{seed}-{recipe}", recipe=recipe)
                        m = done["manifest"]
                        master = tmp / "store" / "published" / m["title"] / m["version"] / m["outputs"][0]["path"]
                        frames = np.stack([cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA)
                                           if f.shape[:2] != (240, 320) else f
                                           for f in iter_frames(master, depth=16)]).astype(np.float32) / 65535.0
                        got = _score(frames, clean)
                        harm = [{"shot": s["shot"], **s["harm"]} for s in m["shots"] if s.get("harm")]
                        row = {"seed": seed, "recipe": recipe, "input": base, "restored": got,
                               "gain_db": got["psnr"] - base["psnr"], "ssim_gain": got["ssim"] - base["ssim"],
                               "harm": harm, "review": m["review"].get("shots_below_threshold", [])}
                        rows.append(row)
                        print(f"seed {seed} {recipe:8s}: input {base['psnr']:.2f} dB -> {got['psnr']:.2f} dB "
                              f"({row['gain_db']:+.2f}), SSIM {base['ssim']:.3f} -> {got['ssim']:.3f}"
                              + (f"; harm guard: {[(h['shot'], h['dropped']) for h in harm]}" if harm else ""),
                              flush=True)
        finally:
            cluster.close()
    summary = {}
    for recipe in args.recipes.split(","):
        mine = [r for r in rows if r["recipe"] == recipe]
        worst = min(mine, key=lambda r: r["gain_db"])
        summary[recipe] = {"worst_seed": worst["seed"], "worst_gain_db": worst["gain_db"],
                           "mean_gain_db": float(np.mean([r["gain_db"] for r in mine])),
                           "seeds_improved": sum(r["gain_db"] > 0 for r in mine), "seeds": len(mine)}
    (out_dir / "seeds.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
