"""Prefect tasks of this step; the work is pipeline/restore.py."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.bindings import ShotBindings
from catalog.recipe import Recipe
from catalog.records import IngestRecord, SegmentRecord
from catalog.shots import Piece
from infra.pipeline.restore import restore_piece_to
from infra.runtime import process_runtime, retry_transient


@task(name="restore-piece", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE, task_run_name="restore-shot{piece.shot}-part{piece.part}")
def restore_piece(record: IngestRecord, piece: Piece, recipe: Recipe,
                  bound: ShotBindings | None = None, force: bool = False,
                  shot_frames: tuple[int, int] | None = None) -> SegmentRecord:
    """The piece's restored segment: made now, or (unless `force`) an identical one made earlier.
    With `shot_frames` (its shot's start, end) the piece's QC is measured too, while the source and
    restored frames are in memory (QC then only joins the pieces' numbers)."""
    return restore_piece_to(process_runtime().store, record, piece, recipe, bound, force, shot_frames)
