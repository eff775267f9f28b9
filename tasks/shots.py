"""Prefect tasks of this step; the work is pipeline/shots.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.records import IngestRecord
from infra.pipeline.shots import chunk_score_rows, load_shot_table, store_shot_table
from infra.runtime import process_runtime, retry_transient


@task(name="load-shots", cache_policy=NO_CACHE)
def load_shots(record: IngestRecord) -> pd.DataFrame | None:
    """The stored shot table of this source, if detection already ran."""
    return load_shot_table(process_runtime().store, record)


@task(name="shot-scores", retries=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE,
      task_run_name="shot-scores-{index}")
def chunk_scores(record: IngestRecord, index: int) -> np.ndarray:
    """Score rows for the frames of mezzanine chunk `index` (read with the shot detector's halo)."""
    return chunk_score_rows(process_runtime().store, record, index)


@task(name="shot-table", cache_policy=NO_CACHE)
def save_shots(record: IngestRecord, scores: list[np.ndarray]) -> pd.DataFrame:
    return store_shot_table(process_runtime().store, record, np.concatenate(scores))
