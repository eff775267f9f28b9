"""Shot detection over mezzanine chunks: scores per chunk in parallel, one decision over the film."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.records import IngestRecord
from catalog.shots import shot_table
from infra.mezzanine import MezzanineReader
from models.shots import DETECTOR_VERSION, HEAL, decide_cuts, pair_scores, signature
from tasks.common import current_store, retry_transient


def shots_key(record: IngestRecord) -> str:
    return f"{record.work_prefix}/shots-v{DETECTOR_VERSION}.parquet"


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
    scale = 255.0 if record.bit_depth == 8 else 65535.0
    with tempfile.TemporaryDirectory(prefix="reel-shots-") as tmp:
        frames = MezzanineReader(current_store(), record, tmp).read(lo, hi)
    sigs = np.stack([signature(f.astype(np.float32) / np.float32(scale)) for f in frames])
    return pair_scores(sigs, start - lo, end - start)


@task(name="shot-table", cache_policy=NO_CACHE)
def save_shots(record: IngestRecord, scores: list[np.ndarray]) -> pd.DataFrame:
    table = shot_table(decide_cuts(np.concatenate(scores)), record.frames, record.fps_fraction)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    current_store().put_bytes(shots_key(record), buf.getvalue())
    return table
