"""Prefect tasks of this step; the work is pipeline/qc.py."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from catalog import layout
from catalog.qc_report import markdown_summary, source_events, table_rows, title_report
from catalog.recipe import Recipe
from catalog.records import IngestRecord, SegmentRecord
from infra.hashing import short_hash
from infra.pictures import picture_url
from infra.pipeline.qc import _measure_shot, qc_prefix
from infra.runtime import process_runtime, retry_transient
from models.qc import qc_verdict


@task(name="qc-shot", retries=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE,
      task_run_name="qc-shot{shot}")
def qc_shot(record: IngestRecord, recipe: Recipe, shot: int, start: int, end: int,
            segments: list[SegmentRecord], force: bool = False, grade_lut: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of one shot's restored frames against its source frames, streamed (never the whole shot
    in memory), with a before/after picture and a contact sheet; the verdict uses the recipe's thresholds.

    The metrics are stored once per (QC version, segments); the verdict is re-evaluated on every call,
    so changing only the thresholds re-judges without re-measuring.
    """
    store = process_runtime().store
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


@task(name="qc-report", cache_policy=NO_CACHE)
def qc_report(record: IngestRecord, recipe: Recipe, shots: list[dict[str, Any]]) -> dict[str, Any]:
    """Title report: qc.json in the store, plus a table and a markdown summary as Prefect artifacts.

    The HTML report (`layout.REPORT_HTML`) is written at publish time, from the published qc.json, so
    that its picture links are the published ones (`catalog.qc_report.render_report_html`).
    """
    rt = process_runtime()
    store = rt.store
    report = title_report(record.title, record.source_sha256, recipe, shots,
                          source_events(record.sequence, record.audio, record.fps_fraction))
    key = layout.qc_report_key(qc_prefix(record, recipe))
    store.put_bytes(key, json.dumps(report, indent=2).encode(), content_type="application/json")
    report["key"] = key
    create_table_artifact(key=f"qc-{record.title}", table=table_rows(report),
                          description=f"QC per shot of {record.title} ({recipe.name})")
    public = rt.settings.public_url  # `reel serve`'s picture page; else file:// or presigned S3 links

    def link(key: str) -> str:
        return picture_url(public, key) if public else store.link(key)

    create_markdown_artifact(key=f"qc-summary-{record.title}", markdown=markdown_summary(report, recipe.name, link),
                             description="worst shots first")
    return report
