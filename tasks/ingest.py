"""Ingest: validate the source, keep the original untouched, cut frame-exact FFV1 mezzanine chunks,
and detect the shots from the same decode."""

from __future__ import annotations

import re
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.ids import validate_title_id
from catalog.records import IngestRecord
from infra.catalogue_io import SourceChecksums
from infra.media import FFV1Writer, iter_frames, prefetched, probe
from infra.settings import Settings, load_settings
from infra.sources import resolve_source
from models.shots import StreamingScores
from tasks.common import current_store, retry_transient, sha256_file
from tasks.shots import store_shot_table


@task(name="ingest", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE)
def ingest(source: str, title: str, force: bool = False) -> IngestRecord:
    """The source stored untouched, probed and cut into mezzanine chunks (reused when done before,
    unless `force`: then it is probed and cut again)."""
    title = validate_title_id(title)  # before any I/O, whoever calls this task
    settings = load_settings()
    # The sources policy comes before anything touches the source (or the store): allowed roots,
    # s3:// only on the configured endpoint, http(s) only from allow-listed hosts; remote ones copied here.
    with resolve_source(source, settings) as resolved:
        record = _ingest(resolved.path, resolved.name, title, settings, force)
        if resolved.identity:  # `reel catalogue status` can then tell whether the remote object changed
            SourceChecksums(current_store()).remember_remote(resolved.spec.remote_id, resolved.identity,
                                                             record.source_sha256)
        return record


PREFETCH_FRAMES = 8  # decoded frames held ahead of the encoder (memory: 8 frames)


def _ingest(src: Path, source_name: str, title: str, settings: Settings, force: bool = False) -> IngestRecord:
    store = current_store()
    info = probe(src, timeout_s=settings.probe_timeout_s, max_pixels=settings.max_source_pixels,
                 max_memory_mb=settings.probe_max_memory_mb)  # child process: bad media cannot crash us
    assert info.video is not None  # probe refuses files without video
    sha, size = sha256_file(src)
    ext = Path(source_name).suffix.lower().lstrip(".")
    ext = ext if re.fullmatch(r"[a-z0-9]{1,8}", ext) else "bin"
    original_key = f"originals/{title}/{sha}.{ext}"
    prefix = f"work/{title}/{sha}"
    record_key = f"{prefix}/ingest.json"
    if not force and store.exists(record_key):
        if not store.exists(original_key):
            store.put_file(original_key, src)
        return IngestRecord.model_validate_json(store.get_bytes(record_key))

    v = info.video
    depth = 8 if v.bit_depth <= 8 else 16
    n = settings.chunk_frames
    frames = 0
    # Ingest is one of the title's serial steps, so it keeps both cores busy: frames are decoded in a
    # thread ahead of the encoder, and the original and each finished chunk are stored (copied and
    # hashed) in another while the next chunk is encoded (PyAV and hashlib release the GIL).
    # The shot detector's score rows are made here too, from the frames as they are decoded (one
    # decode of the source for both; the chunk tasks of tasks.shots would decode the mezzanine again).
    scores = StreamingScores()
    scoring: deque[Future[Any]] = deque()
    with tempfile.TemporaryDirectory(prefix="reel-ingest-") as tmp, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="reel-ingest-store") as storer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="reel-ingest-shots") as scorer_thread:
        jobs: list[tuple[Future[Any], FFV1Writer | None]] = []
        if not store.exists(original_key):  # write-once copy of the untouched source
            jobs.append((storer.submit(store.put_file, original_key, src), None))
        chunks: list[str] = []
        writer: FFV1Writer | None = None

        def finish(w: FFV1Writer, key: str) -> None:
            w.close()
            store.put_file(key, w.path)
            Path(w.path).unlink()

        def hand_over(w: FFV1Writer) -> None:
            chunks.append(f"{prefix}/mezzanine/{len(chunks):05d}.mkv")
            jobs.append((storer.submit(finish, w, chunks[-1]), w))

        try:
            for frame in prefetched(iter_frames(src, depth=depth), PREFETCH_FRAMES):
                if writer is None or writer.frames_written == n:
                    if writer is not None:
                        hand_over(writer)
                    writer = FFV1Writer(Path(tmp) / f"{len(chunks):05d}.mkv", v.width, v.height, v.fps,
                                        depth=depth, color=v.color)
                writer.write(frame)
                scoring.append(scorer_thread.submit(scores.push, frame))
                if len(scoring) > PREFETCH_FRAMES:  # at most this many frames wait for the scorer
                    scoring.popleft().result()
                frames += 1
            if writer is not None:
                hand_over(writer)
                writer = None
            for job, _ in jobs:
                job.result()  # the first error (storage, encoder) is raised here
            while scoring:
                scoring.popleft().result()
        finally:
            for job in scoring:
                job.cancel()
            for job, w in jobs:
                if job.cancel() and w is not None:  # never started: its writer is still open
                    w.close()
            if writer is not None:
                writer.close()
    if frames == 0:
        raise ValueError(f"{source_name}: no video frame could be decoded")
    record = IngestRecord(
        title=title, source_name=source_name, source_sha256=sha, source_size_bytes=size,
        original_key=original_key, frames=frames, fps=f"{v.fps.numerator}/{v.fps.denominator}",
        width=v.width, height=v.height, bit_depth=depth, color=vars(v.color), chunk_frames=n,
        chunks=chunks, audio_streams=len(info.audio), probe=info.to_dict(),
    )
    store_shot_table(store, record, scores.finish())
    store.put_bytes(record_key, record.model_dump_json().encode())  # last: the ingest is complete
    return record
