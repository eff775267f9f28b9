"""Prefect tasks of this step; the work is pipeline/ingest.py."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.ids import validate_title_id
from catalog.recipe import SourceOptions
from catalog.records import IngestRecord
from infra.catalogue_io import SourceChecksums
from infra.pipeline.ingest import ingest_file
from infra.pipeline.scans import attach_sound, ingest_sequence
from infra.runtime import process_runtime, retry_transient
from infra.sources import resolve_source


@task(name="ingest", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def ingest(source: str, title: str, force: bool = False, accept_truncated: bool = False,
           stream: int | None = None, options: SourceOptions | None = None) -> IngestRecord:
    """The source stored untouched, probed and cut into mezzanine chunks (reused when done before,
    unless `force`: then it is probed and cut again).

    A source that stops short of what its container declares is refused unless `accept_truncated`
    (the record then says what is missing); `stream` names the video stream (container index; default
    the first video stream, with a warning when the file has others). An image sequence (a folder or a
    pattern) is ingested frame by frame; `options` (the recipe's source section) names its frame rate,
    encoding and gap policy and a separate sound file (`audio`)."""
    title = validate_title_id(title)  # before any I/O, whoever calls this task
    rt = process_runtime()
    # The sources policy comes before anything touches the source (or the store): allowed roots,
    # s3:// only on the configured endpoint, http(s) only from allow-listed hosts; remote ones copied here.
    with resolve_source(source, rt.settings) as resolved:
        if resolved.spec.kind == "sequence":
            record = ingest_sequence(source, title, rt.settings, options, force, store=rt.store)
        else:
            record = ingest_file(rt.store, resolved.path, resolved.name, title, rt.settings, force,
                                 accept_truncated, stream)
        if resolved.identity:  # `reel catalogue status` can then tell whether the remote object changed
            SourceChecksums(rt.store).remember_remote(resolved.spec.remote_id, resolved.identity,
                                                      record.source_sha256)
        if options is not None and options.audio:
            record = attach_sound(record, options.audio, rt.settings, options, store=rt.store)
        return record
