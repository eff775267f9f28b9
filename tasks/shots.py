"""Shot detection over mezzanine chunks: scores per chunk in parallel, one decision over the film.

The ingest scores the frames while it decodes them (models.shots.StreamingScores, equal rows) and
stores the shot table itself; the chunk tasks here run when it is missing (a new detector version)
or re-detection is asked for (`from_step="shots"`).

Each chunk scores its own frames from its frames plus a halo of 1 frame before and HEAL after
(`models.shots.score_rows`: every row depends only on frames t-1 .. t+HEAL), so the concatenated
rows equal the serial rows exactly; cuts and transitions (fades, dissolves) are then decided once
over the whole film (`models.shots.decide`) and stored as the shot table, transitions as rows of
their own (`catalog.shots.shot_table`).
"""

from __future__ import annotations

import io
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import layout
from catalog.records import IngestRecord
from catalog.shots import shot_table
from infra.mezzanine import MezzanineReader
from models.shots import DETECTOR_VERSION, HEAL, decide, frame_features, score_rows
from tasks.common import current_store, retry_transient


def shots_key(record: IngestRecord) -> str:
    return layout.shots_key(record.work_prefix, DETECTOR_VERSION)


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
        frames = MezzanineReader(current_store(), record, tmp).read(lo, hi)  # uint8 or full-scale uint16
    return score_rows([frame_features(f) for f in frames], start - lo, end - start)


@task(name="shot-table", cache_policy=NO_CACHE)
def save_shots(record: IngestRecord, scores: list[np.ndarray]) -> pd.DataFrame:
    return store_shot_table(current_store(), record, np.concatenate(scores))


def store_shot_table(store: Any, record: IngestRecord, rows: np.ndarray) -> pd.DataFrame:
    """Decide cuts and transitions over the film's score rows and store the shot table."""
    if len(rows) != record.frames:
        raise RuntimeError(f"{len(rows)} shot-score rows for {record.frames} frames")
    found = decide(rows)
    table = shot_table(found.cuts, record.frames, record.fps_fraction, found.transitions)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    store.put_bytes(shots_key(record), buf.getvalue())
    return table
