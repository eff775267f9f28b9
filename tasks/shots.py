"""Prefect tasks of this step; the work is pipeline/shots.py."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.records import IngestRecord
from infra.mezzanine import MezzanineReader
from infra.pipeline.shots import shots_key, store_shot_table
from infra.runtime import current_store, retry_transient
from models.shots import HEAL, frame_features, score_rows


@task(name="load-shots", cache_policy=NO_CACHE)
def load_shots(record: IngestRecord) -> pd.DataFrame | None:
    """The stored shot table of this source, if detection already ran."""
    store = current_store()
    key = shots_key(record)
    if not store.exists(key):
        return None
    return pd.read_parquet(io.BytesIO(store.get_bytes(key)))


@task(name="shot-scores", retries=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE,
      task_run_name="shot-scores-{index}")
def chunk_scores(record: IngestRecord, index: int) -> np.ndarray:
    """Score rows for the frames of mezzanine chunk `index` (halo: 1 frame before, HEAL after)."""
    start = index * record.chunk_frames
    end = min(record.frames, start + record.chunk_frames)
    lo, hi = max(0, start - 1), min(record.frames, end + HEAL)
    with tempfile.TemporaryDirectory(prefix="reel-shots-") as tmp:
        frames = MezzanineReader(current_store(), record, tmp).read_for_shots(lo, hi)  # type: ignore[arg-type]
    return score_rows([frame_features(f) for f in frames], start - lo, end - start)


@task(name="shot-table", cache_policy=NO_CACHE)
def save_shots(record: IngestRecord, scores: list[np.ndarray]) -> pd.DataFrame:
    return store_shot_table(current_store(), record, np.concatenate(scores))
