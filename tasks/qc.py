"""QC: per-shot metrics of the restored frames against the source, pictures, and the title report."""

from __future__ import annotations

import html
import io
import itertools
import json
import posixpath
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from catalog import layout
from catalog.layout import REPORT_HTML, published_qc_paths  # noqa: F401 (re-exported)
from catalog.recipe import QCThresholds, Recipe
from catalog.records import IngestRecord, SegmentRecord
from infra.media import iter_frames
from infra.mezzanine import MezzanineReader
from infra.pictures import picture_url
from infra.settings import load_settings
from models.clip import luma
from models.duplicates import DuplicateDetector
from models.grade import apply_lut, delta_e00
from models.metrics import (
    colour_jitter,
    flicker_from_means,
    noise_sigma,
    psnr,
    sharpness,
    ssim_luma,
    warping_error,
)
from tasks.common import current_store, retry_transient, short_hash

QC_VERSION = "6"
SSIM_SAMPLES = 12  # frames per shot measured with SSIM, sharpness, noise, colour change (cost bound);
#                    PSNR and flicker use every frame
WARP_PAIRS = 8  # consecutive frame pairs per shot measured for the warping error (two DIS flows each) ...
WARP_MAX_WIDTH = 480  # ... at most this wide
SHEET_FRAMES = 4  # frames across the shot on the contact sheet (before row over after row) ...
SHEET_MAX_WIDTH = 1280  # ... at most this wide
SHEET_GAP = 4

# (threshold, metric, comparison): a shot whose metric is on the wrong side of a set threshold is "review"
THRESHOLD_CHECKS = (
    ("min_ssim", "ssim_luma", "<"),
    ("max_warping_error", "warping_error_restored", ">"),
    ("max_warping_error_ratio", "warping_error_ratio", ">"),
    # vs the learned grade where the shot has one (the grade is the intended look), else vs the source
    ("max_colour_shift_de00", ("colour_vs_grade_de00", "colour_change_de00"), ">"),
    ("max_flicker_restored", "flicker_restored", ">"),
)


def qc_prefix(record: IngestRecord, recipe: Recipe) -> str:
    return layout.qc_prefix(record.work_prefix, recipe.chain_hash(), QC_VERSION)


def _label(img: np.ndarray, text: str, x: int, y: int, scale: float) -> None:
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def before_after(src: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Side-by-side 8-bit BGR picture (source | restored at source size) with labels."""
    h, w = src.shape[:2]
    pair = np.concatenate([src, cv2.resize(res, (w, h), interpolation=cv2.INTER_AREA)], axis=1)
    img = cv2.cvtColor(np.clip(pair * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    scale = max(0.4, h / 600)
    for text, x in (("before", 8), ("after", w + 8)):
        _label(img, text, x, int(24 * scale) + 4, scale)
    return img


def sheet_tile_size(width: int, height: int, frames: int = SHEET_FRAMES) -> tuple[int, int]:
    """(w, h) of one contact-sheet tile: the source size, shrunk so `frames` tiles fit SHEET_MAX_WIDTH."""
    tw = max(16, min(width, (SHEET_MAX_WIDTH - SHEET_GAP * (frames - 1)) // max(1, frames)))
    return tw, max(8, round(height * tw / width))


def contact_sheet(frames: list[int], before: list[np.ndarray], after: list[np.ndarray]) -> np.ndarray:
    """8-bit BGR sheet: the source tiles in a row over the restored tiles, each labelled with its frame number.

    before/after: float RGB tiles in [0, 1], all of one size (see `sheet_tile_size`).
    """
    if not frames or not len(frames) == len(before) == len(after):
        raise ValueError("contact_sheet needs one before and one after tile per frame number")
    th, tw = before[0].shape[:2]
    k, g = len(frames), SHEET_GAP
    sheet = np.full((2 * th + g, k * tw + (k - 1) * g, 3), 40, np.uint8)
    scale = max(0.35, th / 400)
    for col, (f, b, a) in enumerate(zip(frames, before, after, strict=True)):
        x = col * (tw + g)
        for row, (tile, word) in enumerate(((b, "before"), (a, "after"))):
            y = row * (th + g)
            sheet[y:y + th, x:x + tw] = cv2.cvtColor(np.clip(tile * 255 + 0.5, 0, 255).astype(np.uint8),
                                                     cv2.COLOR_RGB2BGR)
            _label(sheet, f"{word} {f}", x + 4, y + int(20 * scale) + 4, scale)
    return sheet


def qc_verdict(metrics: dict[str, Any], thresholds: QCThresholds) -> tuple[str, list[str]]:
    """("pass" | "review", reasons): each reason names the failed threshold with both values."""
    reasons = []
    for name, candidates, op in THRESHOLD_CHECKS:
        metric = next((m for m in ((candidates,) if isinstance(candidates, str) else candidates)
                       if metrics.get(m) is not None), None)
        limit, value = getattr(thresholds, name), metrics.get(metric) if metric else None
        if limit is None or value is None:
            continue
        if (value < limit) if op == "<" else (value > limit):
            reasons.append(f"{name}: {metric} {value:.6g} {op} {limit:.6g}")
    harm = metrics.get("harm")
    if harm and not harm.get("resolved"):  # the harm guard could not clear it: a person decides
        reasons.extend(f"harm: {f['reason']}" for f in harm.get("remaining", harm.get("findings", [])))
    return ("review" if reasons else "pass"), reasons


def worst_first(shots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shots needing review first (most failed thresholds first), then by lowest SSIM."""
    return sorted(shots, key=lambda r: (r["verdict"] == "pass", -len(r.get("reasons", [])), r["ssim_luma"],
                                        r["shot"]))


def _shrink(x: np.ndarray, width: int, height: int) -> np.ndarray:
    if x.shape[1] == width and x.shape[0] == height:
        return x
    return cv2.resize(x, (width, height), interpolation=cv2.INTER_AREA)


def _evenly(lo: int, hi: int, k: int) -> set[int]:
    """Up to k distinct integers spread evenly over [lo, hi] (empty when hi < lo)."""
    if hi < lo or k <= 0:
        return set()
    return {int(v) for v in np.linspace(lo, hi, min(k, hi - lo + 1)).round()}


def _mean(values: list[float], digits: int) -> float | None:
    return round(float(np.mean(values)), digits) if values else None


@task(name="qc-shot", retries=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE,
      task_run_name="qc-shot{shot}")
def qc_shot(record: IngestRecord, recipe: Recipe, shot: int, start: int, end: int,
            segments: list[SegmentRecord], force: bool = False, grade_lut: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of one shot's restored frames against its source frames, streamed (never the whole shot
    in memory), with a before/after picture and a contact sheet; the verdict uses the recipe's thresholds.

    The metrics are stored once per (QC version, segments); the verdict is re-evaluated on every call,
    so changing only the thresholds re-judges without re-measuring.
    """
    store = current_store()
    prefix = qc_prefix(record, recipe)
    # the segments' keys carry every stage's version, parameters and bound data (grade LUTs)
    tag = short_hash(sorted(seg.key for seg in segments), 12)
    key = layout.qc_shot_key(prefix, shot, tag)
    if not force and store.exists(key):
        metrics = json.loads(store.get_bytes(key))
    else:
        metrics = _measure_shot(store, record, prefix, tag, shot, start, end, segments, grade_lut, force)
        store.put_bytes(key, json.dumps(metrics).encode(), content_type="application/json")
    metrics["verdict"], metrics["reasons"] = qc_verdict(metrics, recipe.qc)
    return metrics


def piece_qc_valid(seg: SegmentRecord, start: int, end: int) -> bool:
    """Whether the segment carries QC measured by this QC version for the shot [start, end)."""
    return bool(seg.qc and seg.qc_key and seg.qc.get("version") == QC_VERSION and seg.qc.get("shot") == [start, end])


def _measure_shot(store: Any, record: IngestRecord, prefix: str, tag: str, shot: int, start: int, end: int,
                  segments: list[SegmentRecord], grade_lut: np.ndarray | None = None,
                  force: bool = False) -> dict[str, Any]:
    """The shot's metrics from its pieces' QC: measured by restore-piece while it had the frames, or
    (pieces restored before, or `force`) measured now from the stored segment and source. Stores the
    pictures."""
    parts = []
    for seg in sorted(segments, key=lambda x: (x.start, x.part)):
        if not force and piece_qc_valid(seg, start, end):
            with np.load(io.BytesIO(store.get_bytes(seg.qc_key))) as z:
                parts.append((seg.qc, {k: z[k] for k in z.files}))
        else:
            parts.append(_measure_stored_piece(store, record, seg, start, end, grade_lut))
    metrics, pictures = finish_shot(parts, shot=shot, start=start, end=end,
                                    reports=[rep for seg in segments for rep in seg.reports])
    for name, png in pictures.items():
        image_key = layout.qc_picture_key(prefix, shot, tag, name)
        store.put_bytes(image_key, png, content_type="image/png")
        metrics["image_key" if name == "before-after" else "contact_sheet_key"] = image_key
    return metrics


def _measure_stored_piece(store: Any, record: IngestRecord, seg: SegmentRecord, start: int, end: int,
                          grade_lut: np.ndarray | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with tempfile.TemporaryDirectory(prefix="reel-qc-") as tmp:
        path = Path(tmp) / "segment.mkv"
        store.get_file(seg.key, path)
        lo = seg.start - 1 if seg.start > start else seg.start
        source = MezzanineReader(store, record, Path(tmp) / "mezz").read(lo, seg.end)
        return measure_piece(source[seg.start - lo:], iter_frames(path, depth=16), shot_start=start, shot_end=end,
                             start=seg.start, bit_depth=record.bit_depth, grade_lut=grade_lut,
                             before=source[0] if lo < seg.start else None)


def _sampling(n: int) -> tuple[int, int, set[int], set[int]]:
    """(SSIM step, middle frame, warping-pair ends, contact-sheet frames) of a shot of n frames."""
    return max(1, n // SSIM_SAMPLES), n // 2, _evenly(1, n - 1, WARP_PAIRS), _evenly(0, n - 1, SHEET_FRAMES)


def measure_piece(source: Iterable[np.ndarray], restored: Iterable[np.ndarray], *, shot_start: int, shot_end: int,
                  start: int, bit_depth: int, grade_lut: np.ndarray | None = None,
                  before: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """QC of one piece of a shot, from its source frames (uint8/uint16 as `bit_depth` says) and restored
    frames (uint16) streamed in step, frames start, start + 1, ... of the shot [shot_start, shot_end).
    `before`: the source frame start - 1 when start > shot_start (the repeated-frame test compares each
    frame with the one before). The frames sampled for SSIM etc., warping pairs and the contact sheet
    are chosen over the whole shot, so `finish_shot` over all its pieces measures the shot; a sampled
    warping pair that would straddle two pieces is moved one frame later.

    Returns (numbers, JSON-able; pictures: contact-sheet tiles of the sampled frames in the piece and,
    in the piece holding the shot's middle frame, the before/after picture)."""
    n = shot_end - shot_start
    scale = np.float32(255.0 if bit_depth == 8 else 65535.0)
    step, middle, warp_ends, sheet_at = _sampling(n)
    a = start - shot_start
    out: dict[str, Any] = {k: [] for k in ("means_src", "means_res", "rgb_src", "rgb_res", "psnr", "ssim",
                                           "sharp_src", "sharp_res", "noise_src", "noise_res", "colour_change",
                                           "vs_grade", "warp_src", "warp_res")}
    sheet_frames, sheet_src, sheet_res = [], [], []
    pictures: dict[str, np.ndarray] = {}
    repeats = DuplicateDetector()
    if before is not None:
        repeats.push(before)
    ends: set[int] = set()  # warping pairs (t - 1, t) inside this piece
    prev: tuple[np.ndarray, np.ndarray] | None = None
    t = a
    for t, (s_u, r_u) in enumerate(zip(source, restored, strict=True), start=a):
        s = s_u.astype(np.float32) / scale
        repeats.push(s)
        r_full = r_u.astype(np.float32) / np.float32(65535.0)
        r = cv2.resize(r_full, (s.shape[1], s.shape[0]), interpolation=cv2.INTER_AREA) \
            if r_full.shape != s.shape else r_full
        if t == a:  # sizes of the warping-error frames and the contact-sheet tiles
            h, w = s.shape[:2]
            ww, wh = min(w, WARP_MAX_WIDTH), max(8, round(h * min(w, WARP_MAX_WIDTH) / w))
            sw, sh = sheet_tile_size(w, h, len(sheet_at))
            ends = {e for e in warp_ends if e > a} | ({a + 1} if a in warp_ends and a > 0 else set())
        out["means_src"].append(float(luma(s).mean()))
        out["means_res"].append(float(luma(r).mean()))
        out["rgb_src"].append([float(v) for v in s.reshape(-1, 3).mean(axis=0)])
        out["rgb_res"].append([float(v) for v in r.reshape(-1, 3).mean(axis=0)])
        out["psnr"].append(float(psnr(r, s)))
        if t % step == 0:
            out["ssim"].append(float(ssim_luma(r, s)))
            out["sharp_src"].append(float(sharpness(s[None])))
            out["sharp_res"].append(float(sharpness(r[None])))
            out["noise_src"].append(float(noise_sigma(s)))
            out["noise_res"].append(float(noise_sigma(r)))
            k = max(1, max(s.shape[:2]) // 160)
            out["colour_change"].append(float(delta_e00(r[::k, ::k], s[::k, ::k]).mean()))
            if grade_lut is not None:  # how far the restored colour is from the source under the grade
                out["vs_grade"].append(float(delta_e00(r[::k, ::k], apply_lut(grade_lut, s[::k, ::k])).mean()))
        if t in ends or t + 1 in ends:
            cur = (_shrink(s, ww, wh), _shrink(r, ww, wh))
            if t in ends and prev is not None:  # each on its own flow: the restored motion is
                out["warp_src"].append(float(warping_error(np.stack([prev[0], cur[0]]))))  # steadier than the source's
                out["warp_res"].append(float(warping_error(np.stack([prev[1], cur[1]]))))
            prev = cur if t + 1 in ends else None
        if t in sheet_at:
            sheet_frames.append(shot_start + t)
            sheet_src.append(_shrink(s, sw, sh))
            sheet_res.append(_shrink(r, sw, sh))
        if t == middle:
            pictures["before_after"] = before_after(s, r_full)
    if not out["psnr"]:
        raise ValueError(f"no frames to measure at frame {start}")
    out.update(version=QC_VERSION, shot=[shot_start, shot_end], frames=[start, shot_start + t + 1],
               pairs_from=start if before is not None else start + 1,
               pairs=[[round(d, 6), round(dx, 4), round(dy, 4)]
                      for d, (dx, dy) in zip(repeats.distances, repeats.shifts, strict=True)])
    if sheet_frames:
        to16 = np.float32(65535.0)
        pictures.update(sheet_frames=np.array(sheet_frames, np.int64),
                        sheet_src=np.rint(np.clip(np.stack(sheet_src), 0, 1) * to16).astype(np.uint16),
                        sheet_res=np.rint(np.clip(np.stack(sheet_res), 0, 1) * to16).astype(np.uint16))
    return out, pictures


def pictures_bytes(pictures: dict[str, np.ndarray]) -> bytes:
    """A piece's QC pictures as one .npz (stored next to its segment). Not compressed: zlib took 0.1 s
    a piece (a ninth of its QC) to save 7 % of 4 MB at 320x240 (16-bit film grain hardly compresses)."""
    buf = io.BytesIO()
    np.savez(buf, **pictures)
    return buf.getvalue()


def finish_shot(parts: list[tuple[dict[str, Any], dict[str, np.ndarray]]], *, shot: int, start: int, end: int,
                reports: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The shot's QC metrics and pictures (PNG bytes: "before-after", "contact-sheet") from the
    `measure_piece` results of all its pieces. `reports`: the stage reports of its pieces (dust,
    scratch and weave figures come from them)."""
    parts = sorted(parts, key=lambda p: p[0]["frames"][0])
    spans = [p[0]["frames"] for p in parts]
    if spans[0][0] != start or spans[-1][1] != end or any(x[1] != y[0] for x, y in itertools.pairwise(spans)):
        raise RuntimeError(f"the QC of shot {shot}'s pieces covers {spans}, not frames {start}..{end}")

    def joined(name: str) -> list[Any]:
        return [v for q, _ in parts for v in q[name]]

    n = end - start
    pairs = joined("pairs")
    if parts[0][0]["pairs_from"] != start + 1 or len(pairs) != n - 1:
        raise RuntimeError(f"shot {shot}: {len(pairs)} repeated-frame distances for {n} frames")
    repeats = DuplicateDetector.from_distances([p[0] for p in pairs], [(p[1], p[2]) for p in pairs],
                                               first_frame=start)
    sheet_frames = [int(f) for _, pic in parts for f in pic.get("sheet_frames", [])]
    sheet_src = [t.astype(np.float32) / 65535 for _, pic in parts for t in pic.get("sheet_src", [])]
    sheet_res = [t.astype(np.float32) / 65535 for _, pic in parts for t in pic.get("sheet_res", [])]
    picture = next((pic["before_after"] for _, pic in parts if "before_after" in pic), None)
    if picture is None:
        raise RuntimeError(f"shot {shot}: no piece holds the middle frame's before/after picture")

    def stage_reports(name: str) -> list[dict[str, Any]]:
        return [rep for rep in reports if rep.get("stage") == name]

    dust = [c for rep in stage_reports("dust") for c in rep.get("dust_pixels", [])]
    scratch = [c for rep in stage_reports("scratch") for c in rep.get("pixels_per_frame", [])]
    shifts = [float(np.hypot(x, y)) for rep in stage_reports("stabilise")
              for x, y in zip(rep.get("dx", []), rep.get("dy", []), strict=True)]
    decided = next((rep for rep in stage_reports("stabilise") if rep.get("decision")), None)
    warp_s, warp_r = _mean(joined("warp_src"), 5), _mean(joined("warp_res"), 5)
    vs_grade = joined("vs_grade")
    metrics = {
        "shot": shot, "start_frame": start, "end_frame": end, "frames": n,
        "ssim_luma": round(float(np.mean(joined("ssim"))), 4),
        "psnr_vs_source_db": round(float(np.mean(np.minimum(joined("psnr"), 99.0))), 2),
        "flicker_source": round(flicker_from_means(np.array(joined("means_src"))), 5),
        "flicker_restored": round(flicker_from_means(np.array(joined("means_res"))), 5),
        # temporal consistency: mean |frame t - frame t-1 warped onto t| on up to WARP_PAIRS sampled pairs
        "warping_error_source": warp_s,
        "warping_error_restored": warp_r,
        "warping_error_ratio": round(warp_r / warp_s, 4) if warp_s and warp_r is not None else None,
        "sharpness_source": round(float(np.mean(joined("sharp_src"))), 6),
        "sharpness_restored": round(float(np.mean(joined("sharp_res"))), 6),
        "noise_sigma_source": round(float(np.mean(joined("noise_src"))), 5),
        "noise_sigma_restored": round(float(np.mean(joined("noise_res"))), 5),
        "colour_jitter_source": round(colour_jitter(np.array(joined("rgb_src"))), 4),
        "colour_jitter_restored": round(colour_jitter(np.array(joined("rgb_res"))), 4),
        "colour_change_de00": round(float(np.mean(joined("colour_change"))), 3),
        "colour_vs_grade_de00": round(float(np.mean(vs_grade)), 3) if vs_grade else None,
        "dust_pixels_filled": int(sum(dust)),
        "dust_frames": int(sum(c > 0 for c in dust)),
        "scratch_pixels_filled": int(sum(scratch)),
        "scratch_frames": int(sum(c > 0 for c in scratch)),
        "weave_corrected_px_mean": round(float(np.mean(shifts)), 3) if shifts else 0.0,
        # stabilise's per-shot decision (weave, follow, none) and why: the camera's moves are kept
        "weave_decision": decided["decision"] if decided else None,
        "weave_reason": decided.get("reason") if decided else None,
        # repeated frames of the source (old transfers), as frame indices of the film
        "duplicate_frames": [d["frame"] for d in repeats.results()],
        "sampled_frames": {"ssim": len(joined("ssim")), "warping_pairs": len(joined("warp_res")),
                           "contact_sheet": sheet_frames},
    }
    pngs = {}
    for name, img in (("before-after", picture), ("contact-sheet", contact_sheet(sheet_frames, sheet_src,
                                                                                  sheet_res))):
        ok, png = cv2.imencode(".png", img)
        if not ok:
            raise RuntimeError(f"could not encode the {name} picture of shot {shot}")
        pngs[name] = png.tobytes()
    return metrics, pngs


TABLE_COLUMNS = ["shot", "start_frame", "end_frame", "verdict", "ssim_luma", "psnr_vs_source_db", "flicker_source",
                 "flicker_restored", "warping_error_source", "warping_error_restored", "colour_change_de00",
                 "colour_vs_grade_de00",
                 "sharpness_source", "sharpness_restored", "noise_sigma_source", "noise_sigma_restored",
                 "dust_pixels_filled", "scratch_pixels_filled", "weave_corrected_px_mean", "weave_decision"]


@task(name="qc-report", cache_policy=NO_CACHE)
def qc_report(record: IngestRecord, recipe: Recipe, shots: list[dict[str, Any]]) -> dict[str, Any]:
    """Title report: qc.json in the store, plus a table and a markdown summary as Prefect artifacts.

    The HTML report (`REPORT_HTML`) is written at publish time, from the published qc.json, so that its
    picture links are the published ones (`render_report_html`).
    """
    store = current_store()
    shots = sorted(shots, key=lambda r: r["shot"])
    for r in shots:  # re-judged here too: the thresholds are the recipe's, whatever the shots came with
        r["verdict"], r["reasons"] = qc_verdict(r, recipe.qc)
    review = [r["shot"] for r in shots if r["verdict"] != "pass"]

    def mean_of(name: str, digits: int = 5) -> float | None:
        return _mean([r[name] for r in shots if r.get(name) is not None], digits)

    report = {
        "title": record.title, "source_sha256": record.source_sha256, "recipe": recipe.name,
        "chain_hash": recipe.chain_hash(), "qc_version": QC_VERSION, "thresholds": recipe.qc.model_dump(),
        "summary": {"shots": len(shots), "passed": len(shots) - len(review), "review": review,
                    "ssim_luma_min": min(r["ssim_luma"] for r in shots),
                    "flicker_source_mean": mean_of("flicker_source"),
                    "flicker_restored_mean": mean_of("flicker_restored"),
                    "warping_error_source_mean": mean_of("warping_error_source"),
                    "warping_error_restored_mean": mean_of("warping_error_restored"),
                    "noise_sigma_source_mean": mean_of("noise_sigma_source"),
                    "noise_sigma_restored_mean": mean_of("noise_sigma_restored"),
                    "colour_change_de00_max": max(r["colour_change_de00"] for r in shots),
                    "dust_pixels_filled": sum(r["dust_pixels_filled"] for r in shots),
                    "scratch_pixels_filled": sum(r.get("scratch_pixels_filled", 0) for r in shots),
                    "duplicate_frames": [f for r in shots for f in r.get("duplicate_frames", [])]},
        "shots": shots,
    }
    key = layout.qc_report_key(qc_prefix(record, recipe))
    store.put_bytes(key, json.dumps(report, indent=2).encode(), content_type="application/json")
    report["key"] = key
    create_table_artifact(key=f"qc-{record.title}",
                          table=[{**{c: r.get(c) for c in TABLE_COLUMNS}, "reasons": "; ".join(r["reasons"])}
                                 for r in shots],
                          description=f"QC per shot of {record.title} ({recipe.name})")
    public = load_settings().public_url  # `reel serve`'s picture page; else file:// or presigned S3 links

    def link(key: str) -> str:
        return picture_url(public, key) if public else store.link(key)

    worst = worst_first(shots)[:max(5, min(len(review), 20))]
    lines = [f"# QC: {record.title} ({recipe.name})", "",
             f"{len(shots)} shots; needing review: {review or 'none'}", "",
             "| shot | frames | SSIM (luma) | flicker before → after | warping error before → after | ΔE00 | "
             "dust px | verdict | pictures |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in worst:
        verdict = r["verdict"] + (f" ({'; '.join(r['reasons'])})" if r["reasons"] else "")
        pictures = f"[before/after]({link(r['image_key'])})"
        if r.get("contact_sheet_key"):
            pictures += f" [contact sheet]({link(r['contact_sheet_key'])})"
        lines.append(f"| {r['shot']} | {r['start_frame']}-{r['end_frame'] - 1} | {r['ssim_luma']:.3f} | "
                     f"{r['flicker_source']:.4f} → {r['flicker_restored']:.4f} | "
                     f"{_num(r.get('warping_error_source'), 4)} → {_num(r.get('warping_error_restored'), 4)} | "
                     f"{r['colour_change_de00']:.2f} | {r['dust_pixels_filled']} | {verdict} | {pictures} |")
    create_markdown_artifact(key=f"qc-summary-{record.title}", markdown="\n".join(lines),
                             description="worst shots first")
    return report


# --- the HTML report -------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """Text for HTML (element content or a quoted attribute): every string in the report goes through this."""
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _href(path: str) -> str:
    """A published path ("qc/...") as an escaped link relative to the report's own folder (qc/)."""
    rel = posixpath.relpath(path, posixpath.dirname(REPORT_HTML)) if path.startswith("qc/") else path
    return esc(quote(rel))  # quoted: a ':' cannot make a scheme, so links stay relative files


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#eee;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.review td{background:#fff3e0}tr.review td.verdict{color:#b71c1c;font-weight:bold}
td.verdict{color:#1b5e20}ul.reasons{margin:0;padding-left:1.1em}img{display:block;max-width:420px;height:auto}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dl.meta dt{font-weight:bold}
dl.meta dd{margin:0}"""

_SHOT_COLUMNS = ("shot", "frames", "verdict", "reasons", "SSIM (luma)", "PSNR dB", "flicker before → after",
                 "warping error before → after", "ΔE00 vs source", "sharpness before → after",
                 "noise σ before → after", "dust px (frames)", "scratch px (frames)", "weave px",
                 "repeated frames", "pictures")


def _pair(r: dict[str, Any], name: str, digits: int = 4) -> str:
    return f"{_num(r.get(name + '_source'), digits)} → {_num(r.get(name + '_restored'), digits)}"


def _shot_row(r: dict[str, Any]) -> str:
    reasons = "".join(f"<li>{esc(x)}</li>" for x in r.get("reasons", []))
    pictures = []
    if r.get("contact_sheet"):
        pictures.append(f'<a href="{_href(r["contact_sheet"])}"><img src="{_href(r["contact_sheet"])}" '
                        f'alt="shot {esc(r["shot"])} contact sheet" loading="lazy"></a>')
    if r.get("image"):
        pictures.append(f'<a href="{_href(r["image"])}">before/after (middle frame)</a>')
    cells = [
        ("num", _num(r["shot"])), ("", f"{_num(r['start_frame'])}–{_num(r['end_frame'] - 1)} ({_num(r['frames'])})"),
        ("verdict", r["verdict"]), ("", None), ("num", _num(r.get("ssim_luma"))),
        ("num", _num(r.get("psnr_vs_source_db"))), ("num", _pair(r, "flicker")), ("num", _pair(r, "warping_error")),
        ("num", _num(r.get("colour_change_de00"))), ("num", _pair(r, "sharpness")),
        ("num", _pair(r, "noise_sigma")),
        ("num", f"{_num(r.get('dust_pixels_filled'))} ({_num(r.get('dust_frames'))})"),
        ("num", f"{_num(r.get('scratch_pixels_filled'))} ({_num(r.get('scratch_frames'))})"),
        ("num", _num(r.get("weave_corrected_px_mean"))),
        ("", ", ".join(_num(f) for f in r.get("duplicate_frames", [])) or "–"), ("", None),
    ]
    tds = []
    for (cls, text), col in zip(cells, _SHOT_COLUMNS, strict=True):
        attr = f' class="{cls}"' if cls else ""
        if col == "reasons":
            tds.append(f'<td><ul class="reasons">{reasons}</ul></td>' if reasons else "<td>–</td>")
        elif col == "pictures":
            tds.append(f"<td>{''.join(pictures) or '–'}</td>")
        else:
            tds.append(f"<td{attr}>{esc(text)}</td>")
    return f'<tr class="{esc(r["verdict"])}" data-shot="{esc(r["shot"])}">{"".join(tds)}</tr>'


def render_report_html(doc: dict[str, Any]) -> str:
    """A self-contained HTML page for a published qc.json document (`doc`), to be stored at REPORT_HTML.

    No scripts, no external assets: pictures are linked by paths relative to the report's folder, so the
    page works opened straight from a published folder or a `reel restore --out` copy. Every string from
    the document is escaped.
    """
    shots = doc.get("shots", [])
    summary = doc.get("summary", {})
    review = [r for r in shots if r.get("verdict") != "pass"]
    title = f"QC report: {doc.get('title', '')}"
    meta = [("title", doc.get("title")), ("recipe", doc.get("recipe")), ("chain hash", doc.get("chain_hash")),
            ("source sha256", doc.get("source_sha256")), ("QC version", doc.get("qc_version")),
            ("shots", len(shots)), ("pass", len(shots) - len(review)),
            ("review", f"{len(review)}" + (f" (shots {', '.join(str(r['shot']) for r in review)})" if review else "")),
            ("lowest SSIM", _num(summary.get("ssim_luma_min"))),
            ("flicker before → after (mean)",
             f"{_num(summary.get('flicker_source_mean'))} → {_num(summary.get('flicker_restored_mean'))}"),
            ("warping error before → after (mean)",
             f"{_num(summary.get('warping_error_source_mean'))} → {_num(summary.get('warping_error_restored_mean'))}"),
            ("noise σ before → after (mean)",
             f"{_num(summary.get('noise_sigma_source_mean'))} → {_num(summary.get('noise_sigma_restored_mean'))}"),
            ("dust / scratch pixels filled",
             f"{_num(summary.get('dust_pixels_filled'))} / {_num(summary.get('scratch_pixels_filled'))}")]
    thresholds = doc.get("thresholds", {}) or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>", "<h2>Summary</h2>", '<dl class="meta">',
        *(f"<dt>{esc(k)}</dt><dd>{esc('–' if v is None else v)}</dd>" for k, v in meta), "</dl>",
        "<h2>Thresholds</h2>", '<dl class="meta thresholds">',
        *(f"<dt>{esc(k)}</dt><dd>{esc('not checked' if v is None else v)}</dd>" for k, v in thresholds.items()),
        "</dl>",
        "<h2>Shots, worst first</h2>",
        "<p>Metrics compare the restored shot with its source at source resolution (0–1 scales unless "
        "noted); σ is the luma noise estimate; warping error is the temporal instability along the "
        "optical flow on sampled frame pairs.</p>",
        '<table id="shots"><thead><tr>', *(f"<th>{esc(c)}</th>" for c in _SHOT_COLUMNS), "</tr></thead><tbody>",
        *(_shot_row(r) for r in worst_first(shots)), "</tbody></table>", "</body></html>", "",
    ]
    return "\n".join(parts)
