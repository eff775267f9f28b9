"""Prefect tasks of this step; the work is pipeline/publish.py."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.grades import TitleGrade
from catalog.recipe import Recipe
from catalog.records import IngestRecord, SegmentRecord
from infra.pipeline.publish import manifest_key, publish_title, publish_version
from infra.runtime import process_runtime, retry_transient


@task(name="find-published", cache_policy=NO_CACHE)
def find_published(record: IngestRecord, recipe: Recipe, review: dict[str, Any],
                   grades: list[TitleGrade] | None = None, manual: dict[str, Any] | None = None
                   ) -> dict[str, Any] | None:
    """The manifest of this source + recipe + grades + review + artists' work, if that version is already published."""
    store = process_runtime().store
    key = manifest_key(record, publish_version(record, recipe, review, grades, manual))
    return json.loads(store.get_bytes(key)) if store.exists(key) else None


@task(name="publish", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def publish(record: IngestRecord, recipe: Recipe, shots: pd.DataFrame, segments: list[SegmentRecord],
            qc: dict[str, Any], review: dict[str, Any], grades: list[TitleGrade] | None = None,
            manual: dict[str, Any] | None = None) -> dict[str, Any]:
    """Masters joined from the pieces, QC files and grades, and the manifest written last (once per version)."""
    return publish_title(process_runtime().store, record, recipe, shots, segments, qc, review, grades, manual)
