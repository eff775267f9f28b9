"""Shot detection over mezzanine chunks: scores per chunk in parallel, one decision over the film.

The ingest scores the frames while it decodes them (the shot detector's `streaming` scorer, equal
rows) and stores the shot table itself; the chunk tasks here run when it is missing (a new detector
version) or re-detection is asked for (`from_step="shots"`).

Each chunk scores its own frames from its frames plus the detector's halo (1 frame before, HEAL after:
every row depends only on frames t-1 .. t+HEAL), so the concatenated rows equal the serial rows
exactly; cuts and transitions (fades, dissolves) are then decided once over the whole film
(`ShotDetector.decide`) and stored as the shot table, transitions as rows of their own
(`catalog.shots.shot_table`). One detector object (`models.shots.SHOT_DETECTOR`) does all of it, here,
in the ingest and in `reel shots` / `reel stage`.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from catalog import layout
from catalog.records import IngestRecord
from catalog.shots import shot_table
from infra.mezzanine import MezzanineReader
from infra.storage import Store
from models.shots import SHOT_DETECTOR, ShotDetector


def shots_key(record: IngestRecord, detector: ShotDetector = SHOT_DETECTOR) -> str:
    return layout.shots_key(record.work_prefix, detector.version)


def load_shot_table(store: Store, record: IngestRecord, detector: ShotDetector = SHOT_DETECTOR
                    ) -> pd.DataFrame | None:
    """The stored shot table of this source, if this detector's version already ran on it."""
    key = shots_key(record, detector)
    if not store.exists(key):
        return None
    return pd.read_parquet(io.BytesIO(store.get_bytes(key)))


def chunk_score_rows(store: Store, record: IngestRecord, index: int,
                     detector: ShotDetector = SHOT_DETECTOR) -> np.ndarray:
    """Score rows of the frames of mezzanine chunk `index`, read with the detector's halo."""
    start = index * record.chunk_frames
    end = min(record.frames, start + record.chunk_frames)
    lo, hi = detector.chunk_window(start, end, record.frames)
    with tempfile.TemporaryDirectory(prefix="reel-shots-") as tmp:
        frames = MezzanineReader(store, record, Path(tmp)).read_for_shots(lo, hi)
    return detector.score_chunk(list(frames), start, end, lo)


def store_shot_table(store: Store, record: IngestRecord, rows: np.ndarray,
                     detector: ShotDetector = SHOT_DETECTOR) -> pd.DataFrame:
    """Decide cuts and transitions over the film's score rows and store the shot table."""
    if len(rows) != record.frames:
        raise RuntimeError(f"{len(rows)} shot-score rows for {record.frames} frames")
    found = detector.decide(rows)
    table = shot_table(found.cuts, record.frames, record.fps_fraction, found.transitions)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    store.put_bytes(shots_key(record, detector), buf.getvalue())
    return table
