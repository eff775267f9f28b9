"""Ingest: validate the source, keep the original untouched, cut frame-exact mezzanine chunks (the
source's own packets when it is intra-only FFV1 or ProRes, else lossless FFV1), and detect the shots
from the same decode."""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from catalog import layout
from catalog.records import IngestRecord, work_prefix
from infra.hashing import sha256_file
from infra.media import (
    INTRA_CODECS,
    FFV1Writer,
    MediaError,
    NotIntraOnly,
    Shortfall,
    Truncated,
    VideoInfo,
    copy_intra_chunks,
    iter_frames,
    prefetched,
    probe,
)
from infra.pipeline.shots import store_shot_table
from infra.settings import Settings
from infra.storage import Store
from models.shots import SHOT_DETECTOR

PREFETCH_FRAMES = 8  # decoded frames held ahead of the encoder (memory: 8 frames)


def ingest_file(store: Store, src: Path, source_name: str, title: str, settings: Settings, force: bool = False,
                accept_truncated: bool = False, stream: int | None = None) -> IngestRecord:
    """The ingest record of `src` (stored as `source_name` of `title`): made now, or the one made before
    (unless `force`)."""
    info = probe(src, timeout_s=settings.probe_timeout_s, max_pixels=settings.max_source_pixels,
                 max_memory_mb=settings.probe_max_memory_mb, stream=stream)  # child: bad media cannot crash us
    assert info.video is not None  # probe refuses files without video
    others = info.other_video_streams
    if others and stream is None:
        _warn("%s: %d video streams; restoring stream %s, ignoring stream(s) %s (choose one with --stream N)",
                    source_name, len(others) + 1, info.video_index, ", ".join(map(str, others)))
    first_video = min([int(s["index"]) for s in info.streams if s.get("type") == "video"], default=None)
    chosen = stream is not None and stream != first_video
    sha, size = sha256_file(src)
    ext = Path(source_name).suffix.lower().lstrip(".")
    ext = ext if re.fullmatch(r"[a-z0-9]{1,8}", ext) else "bin"
    original_key = layout.original_key(title, sha, ext)
    prefix = work_prefix(title, sha, info.video_index if chosen else None)
    record_key = layout.ingest_record_key(prefix)
    if not force and store.exists(record_key):
        record = IngestRecord.model_validate_json(store.get_bytes(record_key))
        if record.truncated and not accept_truncated:  # accepted once does not mean accepted now
            raise MediaError(f"cannot read media {source_name!r}: {record.truncated['reason']}; it is truncated "
                             "or damaged (accept it with --accept-truncated or the recipe's "
                             "source.accept_truncated)")
        if not store.exists(original_key):
            store.put_file(original_key, src)
        return record

    v = info.video
    depth = 8 if v.bit_depth <= 8 else 16
    shortfalls: list[Shortfall] = []
    reader = _SourceReader(info.video_index, shortfalls.append if accept_truncated else None)
    jobs: list[Future[Any]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reel-ingest-store") as storer:
        if not store.exists(original_key):  # write-once copy of the untouched source
            jobs.append(storer.submit(store.put_file, original_key, src))
        cut = None
        try:
            if settings.mezzanine == "auto" and v.codec in INTRA_CODECS:  # its own packets: nothing re-encoded
                try:
                    cut = _cut_by_copy(src, v, depth, settings.chunk_frames, prefix, store, storer, reader)
                except NotIntraOnly:
                    cut = None
            if cut is None:
                cut = _cut_by_encode(src, v, depth, settings.chunk_frames, prefix, store, storer, reader)
        except Truncated as e:
            raise Truncated(f"{e} (restore it anyway with --accept-truncated or the recipe's "
                            "source.accept_truncated)", e.shortfall) from None
        for job in jobs:
            job.result()
    mezzanine, chunks, frames, scores = cut
    if frames == 0:
        raise ValueError(f"{source_name}: no video frame could be decoded")
    record = IngestRecord(
        title=title, source_name=source_name, source_sha256=sha, source_size_bytes=size,
        original_key=original_key, frames=frames, fps=f"{v.fps.numerator}/{v.fps.denominator}",
        width=v.width, height=v.height, bit_depth=depth, color=vars(v.color), chunk_frames=settings.chunk_frames,
        chunks=chunks, mezzanine=mezzanine, audio_streams=len(info.audio), probe=info.to_dict(),
        video_stream=info.video_index, stream_chosen=chosen,
        truncated=shortfalls[-1].to_dict() if shortfalls else None,
    )
    if shortfalls:
        _warn("%s: accepted although truncated: %s", source_name, shortfalls[-1].reason)
    store_shot_table(store, record, scores)
    store.put_bytes(record_key, record.model_dump_json().encode())  # last: the ingest is complete
    return record


Cut = tuple[str, list[str], int, Any]  # (mezzanine kind, chunk keys, frames, shot score rows)


class _SourceReader:
    """Which video stream of the source is read, and what happens when it stops short."""

    def __init__(self, stream: int | None, on_truncated: Any) -> None:
        self.stream, self.on_truncated = stream, on_truncated

    def frames(self, src: Path, depth: int) -> Any:
        return iter_frames(src, depth=depth, stream=self.stream, on_truncated=self.on_truncated)


LOG = logging.getLogger("reel.ingest")


def _warn(message: str, *args: Any) -> None:
    """A warning in the run's log (the Prefect UI and the console), or Reel's own log outside a run."""
    try:
        from prefect.logging import get_run_logger

        get_run_logger().warning(message, *args)
    except Exception:  # no run context (a plain call in tests)
        LOG.warning(message, *args)


def _cut_by_copy(src: Path, v: VideoInfo, depth: int, n: int, prefix: str, store: Store,
                 storer: ThreadPoolExecutor, reader: _SourceReader) -> Cut:
    """Mezzanine chunks by copying the packets of an intra-only source (FFV1, ProRes): one thread
    copies and stores them while this one scores the decoded frames for the shot detector.
    NotIntraOnly when a packet is not a key frame or the packets do not match the decoded frames."""
    chunks: list[str] = []
    scores = SHOT_DETECTOR.streaming()
    frames = 0
    stop = threading.Event()

    def copy_and_store(tmp: str) -> int:
        copied = 0
        parts = copy_intra_chunks(src, tmp, n, fps=v.fps, stream=reader.stream)
        try:
            for path, count in parts:
                if stop.is_set():
                    break
                chunks.append(layout.mezzanine_key(prefix, len(chunks)))
                store.put_file(chunks[-1], path)
                path.unlink()
                copied += count
        finally:
            parts.close()  # type: ignore[attr-defined]  # a generator
        return copied

    with tempfile.TemporaryDirectory(prefix="reel-ingest-") as tmp:
        copying = storer.submit(copy_and_store, tmp)
        try:
            for frame in prefetched(reader.frames(src, depth), PREFETCH_FRAMES):
                scores.push(frame)
                frames += 1
                if copying.done() and copying.exception() is not None:
                    break  # not copyable after all (raised below): no point decoding the rest
        except BaseException:
            stop.set()  # the decode's error is the one raised; the copier stops before tmp goes
            with contextlib.suppress(Exception):
                copying.result()
            raise
        copied = copying.result()  # NotIntraOnly, storage errors: raised here
    if frames and copied != frames:  # a packet the decoder skipped (edit list, damage): not frame-exact
        raise NotIntraOnly(f"{src.name}: {copied} packets copied but {frames} frames decoded")
    return "copy", chunks, frames, scores.finish()


def _cut_by_encode(src: Path, v: VideoInfo, depth: int, n: int, prefix: str, store: Store,
                   storer: ThreadPoolExecutor, reader: _SourceReader) -> Cut:
    """Mezzanine chunks encoded as lossless FFV1 from the decoded frames, which are scored for the shot
    detector on the way."""
    frames = 0
    # Ingest is one of the title's serial steps, so it keeps both cores busy: frames are decoded in a
    # thread ahead of the encoder, and each finished chunk is stored (copied and hashed) in another
    # while the next chunk is encoded (PyAV and hashlib release the GIL). The shot detector's score
    # rows are made here too, from the frames as they are decoded (one decode of the source for both;
    # the chunk tasks of tasks.shots would decode the mezzanine again).
    scores = SHOT_DETECTOR.streaming()
    scoring: deque[Future[Any]] = deque()
    with tempfile.TemporaryDirectory(prefix="reel-ingest-") as tmp, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="reel-ingest-shots") as scorer_thread:
        jobs: list[Future[Any]] = []
        chunks: list[str] = []
        writer: FFV1Writer | None = None

        def store_chunk(path: Path, key: str) -> None:
            store.put_file(key, path)
            path.unlink()

        def hand_over(w: FFV1Writer) -> None:
            # Closed here, not in the storer: a closed writer gives its encoder back (megabytes of FFV1
            # slice state), so chunks waiting for a slow store cost only their files.
            w.close()
            chunks.append(layout.mezzanine_key(prefix, len(chunks)))
            jobs.append(storer.submit(store_chunk, Path(w.path), chunks[-1]))

        try:
            for frame in prefetched(reader.frames(src, depth), PREFETCH_FRAMES):
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
            for job in jobs:
                job.result()  # the first storage error is raised here
            while scoring:
                scoring.popleft().result()
        finally:
            for job in (*scoring, *jobs):
                job.cancel()
            if writer is not None:
                writer.abort()
    return "ffv1", chunks, frames, scores.finish()
