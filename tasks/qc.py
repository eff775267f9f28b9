"""QC: per-shot metrics of the restored frames against the source, pictures, and the title report."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from catalog.recipe import Recipe
from catalog.records import IngestRecord, SegmentRecord
from infra.media import iter_frames
from infra.mezzanine import MezzanineReader
from models.clip import luma
from models.duplicates import DuplicateDetector
from models.grade import delta_e00
from models.metrics import colour_jitter, flicker_from_means, psnr, sharpness, ssim_luma
from tasks.common import current_store, retry_transient, short_hash

QC_VERSION = "3"
SSIM_SAMPLES = 12  # frames per shot measured with SSIM (cost bound); PSNR and flicker use every frame


def qc_prefix(record: IngestRecord, recipe: Recipe) -> str:
    return f"{record.work_prefix}/{recipe.chain_hash()}/qc-v{QC_VERSION}"


def before_after(src: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Side-by-side 8-bit BGR picture (source | restored at source size) with labels."""
    h, w = src.shape[:2]
    pair = np.concatenate([src, cv2.resize(res, (w, h), interpolation=cv2.INTER_AREA)], axis=1)
    img = cv2.cvtColor(np.clip(pair * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    scale = max(0.4, h / 600)
    for text, x in (("before", 8), ("after", w + 8)):
        cv2.putText(img, text, (x, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (x, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return img


@task(name="qc-shot", retries=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE,
      task_run_name="qc-shot{shot}")
def qc_shot(record: IngestRecord, recipe: Recipe, shot: int, start: int, end: int,
            segments: list[SegmentRecord]) -> dict[str, Any]:
    store = current_store()
    prefix = qc_prefix(record, recipe)
    # the segments' keys carry every stage's version, parameters and bound data (grade LUTs)
    tag = short_hash(sorted(seg.key for seg in segments), 12)
    key = f"{prefix}/shot{shot:04d}-{tag}.json"
    if store.exists(key):
        return json.loads(store.get_bytes(key))
    n = end - start
    scale = np.float32(255.0 if record.bit_depth == 8 else 65535.0)
    step = max(1, n // SSIM_SAMPLES)
    middle = n // 2
    means_src, means_res, psnrs, ssims, sharp_src, sharp_res = [], [], [], [], [], []
    rgb_src, rgb_res, colour_change = [], [], []
    picture = None
    repeats = DuplicateDetector()
    with tempfile.TemporaryDirectory(prefix="reel-qc-") as tmp:
        paths = []
        for i, seg in enumerate(segments):
            p = Path(tmp) / f"seg{i}.mkv"
            store.get_file(seg.key, p)
            paths.append(p)
        restored = itertools.chain.from_iterable(iter_frames(p, depth=16) for p in paths)
        reader = MezzanineReader(store, record, Path(tmp) / "mezz")
        source = itertools.chain.from_iterable(reader.iter_blocks(start, end))
        for i, (s_u, r_u) in enumerate(zip(source, restored, strict=True)):
            s = s_u.astype(np.float32) / scale
            repeats.push(s)
            r_full = r_u.astype(np.float32) / np.float32(65535.0)
            r = cv2.resize(r_full, (s.shape[1], s.shape[0]), interpolation=cv2.INTER_AREA) \
                if r_full.shape != s.shape else r_full
            means_src.append(float(luma(s).mean()))
            means_res.append(float(luma(r).mean()))
            rgb_src.append(s.reshape(-1, 3).mean(axis=0))
            rgb_res.append(r.reshape(-1, 3).mean(axis=0))
            psnrs.append(psnr(r, s))
            if i % step == 0:
                ssims.append(ssim_luma(r, s))
                sharp_src.append(sharpness(s[None]))
                sharp_res.append(sharpness(r[None]))
                k = max(1, max(s.shape[:2]) // 160)
                colour_change.append(float(delta_e00(r[::k, ::k], s[::k, ::k]).mean()))
            if i == middle:
                picture = before_after(s, r_full)
    def stage_reports(name: str) -> list[dict[str, Any]]:
        return [rep for seg in segments for rep in seg.reports if rep.get("stage") == name]

    dust = sum(sum(rep.get("dust_pixels", [])) for rep in stage_reports("dust"))
    scratch = sum(sum(rep.get("pixels_per_frame", [])) for rep in stage_reports("scratch"))
    shifts = [float(np.hypot(x, y)) for rep in stage_reports("stabilise")
              for x, y in zip(rep.get("dx", []), rep.get("dy", []), strict=True)]
    metrics = {
        "shot": shot, "start_frame": start, "end_frame": end, "frames": n,
        "ssim_luma": round(float(np.mean(ssims)), 4),
        "psnr_vs_source_db": round(float(np.mean(np.minimum(psnrs, 99.0))), 2),
        "flicker_source": round(flicker_from_means(np.array(means_src)), 5),
        "flicker_restored": round(flicker_from_means(np.array(means_res)), 5),
        "sharpness_source": round(float(np.mean(sharp_src)), 6),
        "sharpness_restored": round(float(np.mean(sharp_res)), 6),
        "colour_jitter_source": round(colour_jitter(np.array(rgb_src)), 4),
        "colour_jitter_restored": round(colour_jitter(np.array(rgb_res)), 4),
        "colour_change_de00": round(float(np.mean(colour_change)), 3),
        "dust_pixels_filled": int(dust),
        "scratch_pixels_filled": int(scratch),
        "weave_corrected_px_mean": round(float(np.mean(shifts)), 3) if shifts else 0.0,
        # repeated frames of the source (old transfers), as frame indices of the film
        "duplicate_frames": [start + d["frame"] for d in repeats.results()],
    }
    metrics["verdict"] = "pass" if metrics["ssim_luma"] >= recipe.qc.min_ssim else "review"
    image_key = f"{prefix}/shot{shot:04d}-{tag}-before-after.png"
    assert picture is not None
    ok, png = cv2.imencode(".png", picture)
    store.put_bytes(image_key, png.tobytes(), content_type="image/png")
    metrics["image_key"] = image_key
    store.put_bytes(key, json.dumps(metrics).encode(), content_type="application/json")
    return metrics


@task(name="qc-report", cache_policy=NO_CACHE)
def qc_report(record: IngestRecord, recipe: Recipe, shots: list[dict[str, Any]]) -> dict[str, Any]:
    """Title report: qc.json in the store, plus a table and a markdown summary as Prefect artifacts."""
    store = current_store()
    shots = sorted(shots, key=lambda r: r["shot"])
    review = [r["shot"] for r in shots if r["verdict"] != "pass"]
    report = {
        "title": record.title, "source_sha256": record.source_sha256, "recipe": recipe.name,
        "chain_hash": recipe.chain_hash(), "qc_version": QC_VERSION, "thresholds": recipe.qc.model_dump(),
        "summary": {"shots": len(shots), "review": review,
                    "ssim_luma_min": min(r["ssim_luma"] for r in shots),
                    "flicker_source_mean": round(float(np.mean([r["flicker_source"] for r in shots])), 5),
                    "flicker_restored_mean": round(float(np.mean([r["flicker_restored"] for r in shots])), 5),
                    "dust_pixels_filled": sum(r["dust_pixels_filled"] for r in shots),
                    "scratch_pixels_filled": sum(r.get("scratch_pixels_filled", 0) for r in shots),
                    "duplicate_frames": [f for r in shots for f in r.get("duplicate_frames", [])]},
        "shots": shots,
    }
    key = f"{qc_prefix(record, recipe)}/qc.json"
    store.put_bytes(key, json.dumps(report, indent=2).encode(), content_type="application/json")
    report["key"] = key
    columns = ["shot", "start_frame", "end_frame", "ssim_luma", "flicker_source", "flicker_restored",
               "dust_pixels_filled", "scratch_pixels_filled", "weave_corrected_px_mean", "verdict"]
    create_table_artifact(key=f"qc-{record.title}", table=[{c: r[c] for c in columns} for r in shots],
                          description=f"QC per shot of {record.title} ({recipe.name})")
    worst = sorted(shots, key=lambda r: r["ssim_luma"])[:5]
    lines = [f"# QC: {record.title} ({recipe.name})", "",
             f"{len(shots)} shots; needing review: {review or 'none'}", "",
             "| shot | frames | SSIM (luma) | flicker before → after | dust px | verdict | picture |",
             "|---|---|---|---|---|---|---|"]
    for r in worst:
        lines.append(f"| {r['shot']} | {r['start_frame']}-{r['end_frame'] - 1} | {r['ssim_luma']:.3f} | "
                     f"{r['flicker_source']:.4f} → {r['flicker_restored']:.4f} | {r['dust_pixels_filled']} | "
                     f"{r['verdict']} | [before/after]({store.link(r['image_key'])}) |")
    create_markdown_artifact(key=f"qc-summary-{record.title}", markdown="\n".join(lines),
                             description="worst shots first")
    return report
