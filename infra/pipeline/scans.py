"""Ingest of a film scan: an image sequence (DPX/TIFF/EXR/PNG) as a source, and separate sound.

A sequence's frames are already one picture per file, so they are their own mezzanine: each frame is
stored untouched once, by content (`originals/<title>/frames/<sha256>.<ext>`), and each mezzanine
chunk is a small JSON list of the frame keys it holds (`infra.mezzanine` reads them with
`infra.sequence.read_frame`). Nothing is re-encoded at ingest: one pass reads every file, hashes and
stores it in one thread while OpenImageIO decodes it in another for the checks (every frame's header
against the first's: size, channels, sample type and bit depth; a truncated file) and the shot
detector. The source's identity (`source_sha256`) is the sha256 of the sequence's listing (numbers,
names, sizes and sha256 of every frame, the missing numbers), stored as `originals/<title>/<sha>.json`.

Gaps (frame numbers with no file) keep their place in time: the frame before stands in for each
missing one (the sound stays in sync), the ingest record lists them (`sequence.missing`, frame
indexes and numbers), the run's log and the QC report name them and offer them to `interpolate`'s
`rebuild_frames`; `source.gaps: refuse` refuses such a sequence instead.

A re-ingest of the same sequence is found by a hint keyed by the files' names and sizes; the frames
are then hashed (not decoded) and the stored record reused when the listing matches.

Separate sound (`attach_sound`): a WAV/BWF file is probed, stored untouched
(`originals/<title>/<sha256>.wav`) and placed (`infra.sound.sound_offset`); a length that differs from
the picture's by more than one frame is reported in the log and recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np

from catalog import editorial, layout
from catalog.records import IngestRecord, work_prefix
from infra.hashing import canonical_json, sha256_bytes, sha256_file, short_hash
from infra.media import MIN_SIZE, MediaError
from infra.pipeline.shots import store_shot_table
from infra.runtime import current_store
from infra.scan_colour import ScanColour, ScanEncoding, make_encoding
from infra.sequence import FrameInfo, Sequence, SequenceError, list_sequence, read_frame, read_header, rgb
from infra.settings import Settings
from infra.sound import probe_sound, sound_offset
from infra.storage import LocalStore, Store
from models.clip import ColorInfo
from models.shots import StreamingScores, shrink

LOG = logging.getLogger("reel.ingest")
LISTING_SCHEMA = "reel.sequence/1"
PREFETCH_FRAMES = 4  # decoded frames held ahead of the scorer
DECODE_THREADS = 2  # frames decoded at once by the ingest
STORE_AHEAD = 16  # frames hashed/stored ahead of the decoder at most (memory: none, they are files)


def _warn(message: str, *args: Any) -> None:
    try:
        from prefect.logging import get_run_logger

        get_run_logger().warning(message, *args)
    except Exception:
        LOG.warning(message, *args)


def sequence_fps(options: Any, info: FrameInfo, shown: str) -> tuple[Fraction, str]:
    """The frame rate: the recipe's/command line's setting, else the header's; (rate, where from)."""
    given = getattr(options, "fps", None)
    if given:
        return Fraction(given).limit_denominator(1001), "setting"
    if info.fps is not None:
        return info.fps, "header"
    raise MediaError(f"sequence {shown}: its headers give no frame rate; set it with --fps (e.g. 16, 18, 24 or "
                     "24000/1001) or the recipe's source.fps")


def scan_encoding(options: Any, info: FrameInfo, settings: Settings) -> ScanEncoding:
    """What the scan's code values are (the recipe's source.encoding, else from the header) and the OCIO
    conversion for them (recipe source.ocio_config, else REEL_OCIO_CONFIG, else the built-in)."""
    asked = getattr(options, "encoding", "auto") or "auto"
    encoding = info.transfer if asked == "auto" else asked
    if encoding == "linear" and not info.is_float and asked == "auto":
        encoding = "display"
    config = getattr(options, "ocio_config", None) or settings.ocio_config
    return make_encoding(encoding, info.bits, info.is_float, config, settings.ocio_scan_space,
                         settings.ocio_working_space)


def _plan(seq: Sequence) -> list[int]:
    """For each frame position first..last, the index in seq.frames of the file shown there (a gap shows
    the frame before it)."""
    shown, j = [], 0
    for number in range(seq.first, seq.last + 1):
        if j + 1 < len(seq.frames) and seq.frames[j + 1].number == number:
            j += 1
        shown.append(j)
    return shown


def _listing(seq: Sequence, shas: list[str]) -> bytes:
    return canonical_json({"schema": LISTING_SCHEMA, "pattern": seq.pattern,
                           "frames": [[f.number, f.name, f.size, sha] for f, sha in zip(seq.frames, shas, strict=True)],
                           "missing": list(seq.missing)}).encode()


def sequence_sha256(source: str, settings: Settings, sha_of: Any = None) -> str:
    """The identity an ingest of this sequence would give it (the sha256 of its listing), from each frame's
    sha256 (`sha_of(path)`: the catalogue's cached checksums; default: hashed now). Opens no frame
    with an image library."""
    seq = list_sequence(source, roots=settings.source_roots)
    shas = [sha_of(f.path) for f in seq.frames] if sha_of else _hash_all(seq)
    return sha256_bytes(_listing(seq, shas))


def _hint_key(title: str, seq: Sequence) -> str:
    return layout.sequence_candidate_key(title, short_hash([seq.pattern, [[f.name, f.size] for f in seq.frames]], 32))


def _hash_all(seq: Sequence) -> list[str]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="reel-hash") as pool:
        return [sha for sha, _ in pool.map(sha256_file, [f.path for f in seq.frames])]


def ingest_sequence(source: str, title: str, settings: Settings, options: Any = None, force: bool = False,
                    store: Store | None = None) -> IngestRecord:
    """Ingest the image sequence `source` names (a folder or a pattern) as the title's source
    (into `store`, by default this process's)."""
    store = store if store is not None else current_store()
    seq = list_sequence(source, roots=settings.source_roots)
    shown = repr(seq.shown)
    first = read_header(seq.frames[0].path, max_pixels=settings.max_source_pixels)
    if first.width < MIN_SIZE[0] or first.height < MIN_SIZE[1]:
        raise MediaError(f"sequence {shown}: {first.width}x{first.height} pixels is smaller than the "
                         f"{MIN_SIZE[0]}x{MIN_SIZE[1]} the restoration stages need")
    fps, fps_from = sequence_fps(options, first, shown)
    if seq.missing and getattr(options, "gaps", "hold") == "refuse":
        raise MediaError(f"sequence {shown}: {len(seq.missing)} frame number(s) missing, e.g. "
                         f"{', '.join(map(str, seq.missing[:5]))} (the recipe's source.gaps is refuse)")
    enc = scan_encoding(options, first, settings)
    hint = _hint_key(title, seq)
    if not force and store.exists(hint):
        sha = json.loads(store.get_bytes(hint)).get("sha256")
        record_key = layout.ingest_record_key(work_prefix(title, sha))
        if store.exists(record_key):
            listing = _listing(seq, _hash_all(seq))
            if sha256_bytes(listing) == sha:
                record = IngestRecord.model_validate_json(store.get_bytes(record_key))
                if record.fps_fraction == fps and (record.sequence or {}).get("encoding") == enc.to_dict():
                    return record
    return _ingest(store, seq, first, fps, fps_from, enc, title, settings, hint)


def _ingest(store: Store, seq: Sequence, first: FrameInfo, fps: Fraction, fps_from: str, enc: ScanEncoding,
            title: str, settings: Settings, hint: str) -> IngestRecord:
    shown = repr(seq.shown)
    plan = _plan(seq)
    depth = 8 if first.bits <= 8 and not first.is_float else 16
    colour = ScanColour(enc)
    scores = StreamingScores()
    keys: list[str] = []
    shas: list[str] = []

    def store_frame(i: int) -> tuple[str, str]:
        key, sha = put_by_content(store, layout.original_frames_prefix(title), lambda h: f"{h}.{seq.ext}",
                                  seq.frames[i].path)
        return sha, key

    def decode(i: int) -> np.ndarray:
        pixels, _ = read_frame(seq.frames[i].path, first, max_pixels=settings.max_source_pixels)
        return shot_frame(colour, pixels, depth)  # a thumbnail: the full frame is freed here

    def decoded() -> Generator[np.ndarray, None, None]:
        # OpenImageIO releases the GIL while it reads, so frames decode on DECODE_THREADS threads, in order,
        # at most PREFETCH_FRAMES ahead of the scorer (one full frame per thread in memory at a time)
        window: deque[Future[np.ndarray]] = deque()
        with ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="reel-ingest-decode") as pool:
            try:
                for i in range(len(seq.frames)):
                    window.append(pool.submit(decode, i))
                    if len(window) >= PREFETCH_FRAMES:
                        yield window.popleft().result()
                    if i % 64 == 63:
                        _check_stored(pending)
                while window:
                    yield window.popleft().result()
            finally:
                for f in window:
                    f.cancel()

    pending: list[Future[tuple[str, str]]] = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="reel-ingest-store") as storer:
        pending.extend(storer.submit(store_frame, i) for i in range(len(seq.frames)))
        try:
            shown_j = 0
            held: np.ndarray | None = None
            with contextlib.closing(decoded()) as frames:  # closed: its decoding threads are done
                for j in plan:
                    if held is None or j != shown_j:
                        held = next(frames)
                        shown_j = j
                    scores.push(held)
            for f in pending:
                sha, key = f.result()
                shas.append(sha)
                keys.append(key)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    if isinstance(store, LocalStore):  # the frames are on disk before anything that names them
        store.sync_objects(sorted(set(keys)))
    listing = _listing(seq, shas)
    sha = sha256_bytes(listing)
    original_key = layout.original_key(title, sha, "json")
    if not store.exists(original_key):
        store.put_bytes(original_key, listing, "application/json")
    prefix = work_prefix(title, sha)
    n = settings.chunk_frames
    frame_keys = [keys[j] for j in plan]
    chunks: list[str] = []
    for c in range(0, len(plan), n):
        chunk_key = layout.sequence_chunk_key(prefix, len(chunks))
        store.put_bytes(chunk_key, json.dumps(frame_keys[c:c + n]).encode(), "application/json")
        chunks.append(chunk_key)
    missing = [{"frame": number - seq.first, "number": number} for number in seq.missing]
    timecode = first.timecode
    color = ColorInfo(bit_depth=next(d for d in (8, 10, 12, 16) if d >= min(first.bits, 16)), matrix="bt709",
                      primaries="bt709", transfer="bt709", range="pc")
    header = first.to_dict()
    sequence = {"pattern": seq.pattern, "first": seq.first, "last": seq.last, "files": len(seq.frames),
                "missing": missing, "header": header, "fps_from": fps_from, "timecode": timecode,
                "encoding": enc.to_dict(), "ext": seq.ext}
    video = {"width": first.width, "height": first.height, "fps": f"{fps.numerator}/{fps.denominator}",
             "frames": len(plan), "codec": first.format, "pix_fmt": None, "bit_depth": first.bits,
             "color": vars(color)}
    record = IngestRecord(
        title=title, source_name=seq.pattern, source_sha256=sha,
        source_size_bytes=sum(f.size for f in seq.frames), original_key=original_key, frames=len(plan),
        fps=f"{fps.numerator}/{fps.denominator}", width=first.width, height=first.height, bit_depth=depth,
        color=vars(color), chunk_frames=n, chunks=chunks, mezzanine="sequence", audio_streams=0,
        probe={"path": seq.pattern, "format_name": f"{first.format}-sequence", "duration_seconds":
               float(len(plan) / fps), "video": video, "audio": [], "subtitle_streams": 0, "streams": [],
               "video_index": None},
        sequence=sequence,
    )
    if missing:
        _warn("%s: %d frame number(s) missing (%s): the frame before stands in for each; rebuild them with "
              "interpolate rebuild_frames=%s", shown, len(missing),
              ", ".join(str(m["number"]) for m in missing[:8]) + (" ..." if len(missing) > 8 else ""),
              [m["frame"] for m in missing][:16])
    store_shot_table(store, record, scores.finish())
    store.put_bytes(layout.ingest_record_key(prefix), record.model_dump_json().encode())  # last: complete
    store.put_bytes(hint, json.dumps({"sha256": sha}).encode())
    return record


def put_by_content(store: Store, prefix: str, name_for: Any, path: Any) -> tuple[str, str]:
    """Store a file under `prefix/name_for(sha256)` unless that key exists; (key, sha256). A local store
    reads the file once (copy and hash in one pass); any other hashes it first, then puts it (and a file
    that changed in between is an error)."""
    if isinstance(store, LocalStore):
        return store.put_file_by_content(prefix, name_for, path, sync=False)  # synced before the listing
    sha, _ = sha256_file(path)
    key = f"{prefix}/{name_for(sha)}"
    if not store.exists(key) and store.put_file(key, path) != sha:
        store.delete(key)
        raise SequenceError(f"frame {str(path)!r} changed while it was being stored")
    return key, sha


def _check_stored(pending: list[Future[Any]]) -> None:
    """Raise the first storage error early (the decoder would otherwise run to the end first)."""
    for f in pending:
        if not f.done():
            return
        if f.exception() is not None:
            f.result()


def shot_frame(colour: ScanColour, pixels: np.ndarray, depth: int) -> np.ndarray:
    """What the shot detector sees of a scan's frame: its thumbnail (`models.shots.shrink`) in the working
    space. Shrinking first gives the detector's own features exactly for display scans and spares a log
    scan's conversion of the whole frame; the ingest and the shot-score tasks use this same function."""
    return colour.working_uint(shrink(rgb(pixels)), depth)


def segment_encoding(record: IngestRecord, recipe: Any) -> str:
    """What a restored piece's segment holds: the scan's own code values ("source": a log scan whose archival
    master keeps log), or working-space values ("working": everything else)."""
    seq = record.sequence or {}
    enc = ScanEncoding.from_dict(seq.get("encoding"))
    if enc.encoding == "log" and getattr(recipe.source, "master_encoding", "source") == "source":
        return "source"
    return "working"


def start_timecode(record: IngestRecord, options: Any) -> str:
    """The source's first-frame timecode for the shot lists: the recipe's (`options`: its source section)
    when set, else the sequence header's, else 00:00:00:00."""
    given = getattr(options, "start_timecode", editorial.DEFAULT_START_TIMECODE)
    if given != editorial.DEFAULT_START_TIMECODE:
        return str(given)
    header = (record.sequence or {}).get("timecode")
    if header:
        try:
            editorial.timecode_frames(header, record.fps_fraction)
            return str(header)
        except ValueError:
            return str(given)
    return str(given)


# --- separate sound -----------------------------------------------------------------------------------


def attach_sound(record: IngestRecord, path: str, settings: Settings, options: Any = None,
                 store: Store | None = None) -> IngestRecord:
    """The record with its separate sound: probed, stored untouched, placed against the picture; the
    length checked against the picture's (more than one frame apart: reported and recorded).
    options: the recipe's source section (audio_offset, start_timecode)."""
    from infra.sources import check_audio_path

    store = store if store is not None else current_store()
    real = check_audio_path(path, settings)
    sound = probe_sound(real)
    sha, size = sha256_file(real)
    ext = real.suffix.lower().lstrip(".")
    ext = ext if ext.isalnum() and len(ext) <= 8 else "wav"
    key = layout.original_key(record.title, sha, ext)
    if not store.exists(key):
        store.put_file(key, real)
    fps = record.fps_fraction
    tc = start_timecode(record, options) if options is not None else None
    picture_start = editorial.timecode_frames(tc, fps) if tc and (
        tc != editorial.DEFAULT_START_TIMECODE or (record.sequence or {}).get("timecode")) else None
    offset, offset_from = sound_offset(sound, setting=getattr(options, "audio_offset", None),
                                       picture_start_frames=picture_start, fps=fps)
    picture_s = Fraction(record.frames) / fps
    sound_end = offset + sound.seconds
    mismatch = sound_end - picture_s
    frame_s = 1 / fps
    audio = {"name": os.path.basename(path), "sha256": sha, "size_bytes": size, "key": key, **sound.to_dict(),
             "offset": f"{offset.numerator}/{offset.denominator}", "offset_seconds": float(offset),
             "offset_from": offset_from, "seconds": float(sound.seconds),
             "length_mismatch_seconds": float(mismatch) if abs(mismatch) > frame_s else None}
    if abs(mismatch) > frame_s:
        _warn("%s: the sound ends %.3f s %s the picture (%.2f frames; more than one frame): check the sound's "
              "offset or length", record.title, abs(float(mismatch)), "after" if mismatch > 0 else "before",
              float(mismatch / frame_s))
    return record.model_copy(update={"audio": audio, "audio_streams": 1})
