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
from typing import Any

import numpy as np
import pandas as pd

from catalog import layout
from catalog.records import IngestRecord
from catalog.shots import shot_table
from models.shots import DETECTOR_VERSION, decide


def shots_key(record: IngestRecord) -> str:
    return layout.shots_key(record.work_prefix, DETECTOR_VERSION)


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
