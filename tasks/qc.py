"""QC tasks: a shot's metrics against its source (models.qc) stored with its pictures, and the title report
(catalog.qc_report) stored as qc.json and shown as Prefect artifacts."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from catalog import layout
from catalog.qc_report import markdown_summary, table_rows, title_report
from catalog.recipe import Recipe
from catalog.records import IngestRecord, SegmentRecord
from infra.hashing import short_hash
from infra.media import iter_frames
from infra.mezzanine import MezzanineReader
from infra.pictures import picture_url
from infra.settings import load_settings
from models.qc import QC_VERSION, PieceQC, finish_shot, measure_piece, qc_verdict
from tasks.common import current_store, retry_transient


def qc_prefix(record: IngestRecord, recipe: Recipe) -> str:
    return layout.qc_prefix(record.work_prefix, recipe.chain_hash(), QC_VERSION)


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
                          grade_lut: np.ndarray | None) -> PieceQC:
    with tempfile.TemporaryDirectory(prefix="reel-qc-") as tmp:
        path = Path(tmp) / "segment.mkv"
        store.get_file(seg.key, path)
        lo = seg.start - 1 if seg.start > start else seg.start
        source = MezzanineReader(store, record, Path(tmp) / "mezz").read(lo, seg.end)
        return measure_piece(source[seg.start - lo:], iter_frames(path, depth=16), shot_start=start, shot_end=end,
                             start=seg.start, bit_depth=record.bit_depth, grade_lut=grade_lut,
                             before=source[0] if lo < seg.start else None)


@task(name="qc-report", cache_policy=NO_CACHE)
def qc_report(record: IngestRecord, recipe: Recipe, shots: list[dict[str, Any]]) -> dict[str, Any]:
    """Title report: qc.json in the store, plus a table and a markdown summary as Prefect artifacts.

    The HTML report (`layout.REPORT_HTML`) is written at publish time, from the published qc.json, so
    that its picture links are the published ones (`catalog.qc_report.render_report_html`).
    """
    store = current_store()
    report = title_report(record.title, record.source_sha256, recipe, shots)
    key = layout.qc_report_key(qc_prefix(record, recipe))
    store.put_bytes(key, json.dumps(report, indent=2).encode(), content_type="application/json")
    report["key"] = key
    create_table_artifact(key=f"qc-{record.title}", table=table_rows(report),
                          description=f"QC per shot of {record.title} ({recipe.name})")
    public = load_settings().public_url  # `reel serve`'s picture page; else file:// or presigned S3 links

    def link(key: str) -> str:
        return picture_url(public, key) if public else store.link(key)

    create_markdown_artifact(key=f"qc-summary-{record.title}", markdown=markdown_summary(report, recipe.name, link),
                             description="worst shots first")
    return report
