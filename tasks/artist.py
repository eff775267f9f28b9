"""Prefect tasks of an artist's work; the work is pipeline/artist.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.handoff import HandoffRecord, ManualRecord
from catalog.records import IngestRecord, SegmentRecord
from infra.pipeline.artist import manual_for, manual_segments, retire_manual, write_handoff
from infra.runtime import process_runtime, retry_transient


@task(name="manual-work", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_transient)
def manual_work(record: IngestRecord) -> dict[int, ManualRecord]:
    """{shot: the artist's work taken back for it} for this source (current records only)."""
    return manual_for(process_runtime().store, record)


@task(name="manual-pieces", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_transient,
      task_run_name="manual-shot{manual.shot}")
def manual_pieces(record: IngestRecord, manual: ManualRecord, masters: Sequence[str]) -> list[SegmentRecord]:
    """The taken-back shot's stored pieces, with the parts of every master (made now where missing)."""
    return manual_segments(process_runtime().store, record, manual, list(masters))


@task(name="hand-off", cache_policy=NO_CACHE)
def hand_off(record: IngestRecord, recipe: dict[str, Any], shots: list[dict[str, Any]], segments: list[SegmentRecord],
             which: list[int], out_dir: str, options: dict[str, Any], run: str | None,
             start_timecode: str) -> HandoffRecord:
    """Write the shots for an artist (sequences with handles, sidecars, OTIO and EDL) and record the handoff."""
    return write_handoff(process_runtime().store, record, recipe, shots, segments, which, Path(out_dir), kind=options["format"],
                         bits=options.get("bits"), handles=options["handles"], run=run, start_timecode=start_timecode)


@task(name="retire-manual", cache_policy=NO_CACHE)
def retire_manual_work(record: IngestRecord, shots: list[int], why: dict[str, Any]) -> None:
    """The machine restored these shots again: their manual work is no longer current (kept as history)."""
    store = process_runtime().store
    for shot in shots:
        retire_manual(store, record, shot, why)
