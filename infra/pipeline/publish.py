"""Publish: join the restored segments' master parts in order (packets copied, nothing re-encoded),
mux the original audio, copy the QC report, and write the manifest last (a conditional create: once
per version)."""

from __future__ import annotations

import itertools
import json
import queue
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from fractions import Fraction
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from catalog import editorial, layout
from catalog.grades import TitleGrade
from catalog.layout import MASTER_FILES, QC_JSON, REPORT_HTML, published_qc_paths
from catalog.manifest import Manifest, OutputRecord, ShotRecord, SourceRecord
from catalog.qc_report import render_report_html
from catalog.recipe import SEQUENCE_MASTER_CODECS, Recipe
from catalog.records import IngestRecord, SegmentRecord
from infra.hashing import sha256_bytes, sha256_file, short_hash
from infra.media import MediaError, encode_master, iter_frames, join_master
from infra.pipeline.scans import start_timecode
from infra.scan_colour import ScanColour, ScanEncoding
from infra.sequence import FrameFormat, SequenceWriter


def publish_version(record: IngestRecord, recipe: Recipe, review: dict[str, Any],
                    grades: list[TitleGrade] | None = None, manual: dict[str, Any] | None = None) -> str:
    """Deterministic version id: same source, stages, masters, grade LUTs, per-shot parameter overrides and
    artists' work -> same version. Who approved does not change the pictures, so it does not change the version.
    manual: {"used": {shot: manifest doc}, "replaced": {shot: doc}} (catalog.handoff.ManualRecord.manifest_doc):
    a shot taken back from an artist, or one whose manual work the machine replaced, makes another version."""
    ident: dict[str, Any] = {"source": record.source_sha256, "chain": recipe.chain(),
                             "masters": recipe.masters, "review": []}  # "review": [] keeps 0.3 version ids
    if review.get("overrides"):  # {shot: ["stage.param=value", ...]} from reruns and review decisions
        ident["overrides"] = review["overrides"]
    if grades:  # a re-graded reference frame makes a new version even with the same recipe text
        ident["grades"] = [g.identity() for g in grades]
    if record.stream_chosen:  # another video stream of the same file is another film
        ident["video_stream"] = record.video_stream
    if recipe.source.start_timecode != editorial.DEFAULT_START_TIMECODE:  # other shot lists (default: ids kept)
        ident["start_timecode"] = recipe.source.start_timecode
    if record.audio:  # another sound, or the same placed elsewhere, is another version
        ident["audio"] = [record.audio["sha256"], record.audio["offset"]]
    for what in ("used", "replaced"):  # the artist's frames (their checksums), or that the machine took over again
        if (manual or {}).get(what):
            ident[f"manual_{what}"] = {str(s): d["digest"] for s, d in sorted(manual[what].items(), key=lambda x: int(x[0]))}  # type: ignore[index]
    return "v-" + short_hash(ident, 12)


def manifest_key(record: IngestRecord, version: str) -> str:
    return layout.manifest_key(record.title, version)


def _published_by_other(store: Any, mkey: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The manifest a concurrent run created first. A local store links the object before it records
    its checksum, so the winner may still be finishing: wait for the complete object."""
    deadline = time.monotonic() + timeout_s
    while not store.exists(mkey) and time.monotonic() < deadline:
        time.sleep(0.05)
    return json.loads(store.get_bytes(mkey))


def shot_list_files(record: IngestRecord, recipe: Recipe, shots: pd.DataFrame, version: str
                    ) -> list[tuple[str, bytes, str, str]]:
    """The version's shot list for grading suites: (path, bytes, kind, content type) of shots.otio and
    shots.edl, clips named shot<NNNN> over the source's frames (catalog/editorial.py)."""
    tc = start_timecode(record, recipe.source)  # the recipe's, else a sequence header's
    name, sequence = record.source_name, None
    if record.sequence:  # reel1.%07d.dpx -> the frames reel1.0086400.dpx ... by number
        name, sequence = sequence_reference(record)
    timeline = editorial.shot_timeline(shots, record.fps, name, record.title, version,
                                       start_timecode=tc, total_frames=record.frames, sequence=sequence)
    edl = editorial.edl_text(shots, record.fps, name, record.title, version, start_timecode=tc)
    return [(layout.SHOTS_OTIO, editorial.otio_text(timeline).encode(), "shot-list-otio", "application/json"),
            (layout.SHOTS_EDL, edl.encode(), "shot-list-edl", "text/plain")]


def sequence_reference(record: IngestRecord) -> tuple[str, dict[str, Any]]:
    """(a name for the shot lists, the OTIO image-sequence reference's parts) of a sequence source."""
    seq = record.sequence or {}
    pattern = str(seq.get("pattern", record.source_name))
    m = re.search(r"%0?(\d*)d", pattern)
    prefix, suffix = (pattern[: m.start()], pattern[m.end():]) if m else (pattern, "")
    padding = int(m.group(1) or 0) if m else 0
    name = prefix.rstrip("._- ") or record.title
    return name, {"prefix": prefix, "suffix": suffix, "first": int(seq.get("first", 0)), "padding": padding}


def _write_outputs(store: Any, record: IngestRecord, recipe: Recipe, segments: list[SegmentRecord],
                   qc: dict[str, Any], grades: list[TitleGrade], prefix: str, width: int, height: int,
                   outputs: list[OutputRecord], written: list[str],
                   shot_lists: list[tuple[str, bytes, str, str]] | None = None
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Masters, QC files, grades and shot lists under `prefix`; appends to `outputs` and (before each put)
    `written`."""
    # Publishing runs after the last piece, when the workers are idle: its fetches, joins and puts run
    # side by side (file copies, hashing and muxing release the GIL).
    with tempfile.TemporaryDirectory(prefix="reel-publish-") as tmp, \
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="reel-publish") as pool:
        tmpdir = Path(tmp)
        original, fetching = None, None
        if record.audio:  # separate sound (a film scan's WAV): the masters carry it
            original = tmpdir / ("sound" + Path(record.audio["key"]).suffix)
            fetching = pool.submit(store.get_file, record.audio["key"], original)  # checksum verified
        elif record.audio_streams:  # the masters carry the original's sound
            original = tmpdir / ("original" + Path(record.original_key).suffix)
            fetching = pool.submit(store.get_file, record.original_key, original)  # checksum verified
        encoded = _masters(store, record, recipe, segments, tmpdir, original, width, height, pool=pool,
                           original_fetched=fetching)

        def put_master(codec: str) -> OutputRecord:
            out = encoded[codec]
            name, kind = MASTER_FILES[codec]
            sha = _put_output(store, f"{prefix}/{name}", written, path=out)
            size = out.stat().st_size
            out.unlink()
            return OutputRecord(path=name, sha256=sha, size_bytes=size, kind=kind, codec=codec)

        outputs.extend(pool.map(put_master, [c for c in recipe.masters if c in MASTER_FILES]))
        sequence_codecs = [str(c) for c in recipe.masters if c in SEQUENCE_MASTER_CODECS]
        if sequence_codecs:
            outputs.extend(sequence_masters(store, record, recipe, segments, tmpdir, sequence_codecs, prefix,
                                            written))
            if record.audio and original is not None:  # the sound beside the frames, untouched
                path = layout.sound_path(original.suffix.lstrip(".") or "wav")
                sha = _put_output(store, f"{prefix}/{path}", written, path=original)
                outputs.append(OutputRecord(path=path, sha256=sha, size_bytes=original.stat().st_size, kind="sound",
                                            codec=record.audio.get("codec")))

        qc_shots = []
        for r in qc["shots"]:
            pictures: dict[str, str] = {}
            paths = published_qc_paths(r["shot"])
            for field, key_field, kind in (("image", "image_key", "qc-image"),
                                           ("contact_sheet", "contact_sheet_key", "qc-contact-sheet")):
                if not r.get(key_field):
                    continue
                path = paths[field]
                data = store.get_bytes(r[key_field])
                sha = _put_output(store, f"{prefix}/{path}", written, data=data, content_type="image/png")
                outputs.append(OutputRecord(path=path, sha256=sha, size_bytes=len(data), kind=kind))
                pictures[field] = path
            qc_shots.append({**{k: v for k, v in r.items() if k not in ("image_key", "contact_sheet_key")},
                             **pictures})
        grade_docs = []
        for g in grades or []:
            path = layout.grade_path(g.label)
            data = g.cube.encode()
            sha = _put_output(store, f"{prefix}/{path}", written, data=data, content_type="text/plain")
            outputs.append(OutputRecord(path=path, sha256=sha, size_bytes=len(data), kind="grade-lut"))
            grade_docs.append(g.manifest_entry(path))
        qc_doc = {**{k: v for k, v in qc.items() if k not in ("key", "shots")}, "report_html": REPORT_HTML,
                  "shots": qc_shots}
        qc_bytes = json.dumps(qc_doc, indent=2).encode()
        sha = _put_output(store, f"{prefix}/{QC_JSON}", written, data=qc_bytes, content_type="application/json")
        outputs.append(OutputRecord(path=QC_JSON, sha256=sha, size_bytes=len(qc_bytes), kind="qc-report"))
        # the page a person opens: self-contained, pictures linked relative to qc/ (works in any copy)
        page = render_report_html(qc_doc).encode()
        sha = _put_output(store, f"{prefix}/{REPORT_HTML}", written, data=page,
                          content_type="text/html; charset=utf-8")
        outputs.append(OutputRecord(path=REPORT_HTML, sha256=sha, size_bytes=len(page), kind="qc-report-html"))
        for path, data, kind, content_type in shot_lists or []:
            sha = _put_output(store, f"{prefix}/{path}", written, data=data, content_type=content_type)
            outputs.append(OutputRecord(path=path, sha256=sha, size_bytes=len(data), kind=kind))
    return qc_doc, grade_docs


def _masters(store: Any, record: IngestRecord, recipe: Recipe, segments: list[SegmentRecord], tmpdir: Path,
             original: Path | None, width: int, height: int, join: bool = True,
             pool: ThreadPoolExecutor | None = None, original_fetched: Future[Any] | None = None) -> dict[str, Path]:
    """The recipe's masters as files in `tmpdir`: joined from the pieces' parts by copying packets (the
    workers encoded them, FFV1's part is the segment itself), or, for a codec whose parts do not join
    (or with `join` off), encoded here from the decoded segments (from one decode, one thread each).
    `pool`: threads for the fetches and joins (else one is made); `original_fetched`: the fetch of
    `original` still under way (waited for before the sound is used)."""
    if pool is None:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="reel-publish") as own:
            return _masters(store, record, recipe, segments, tmpdir, original, width, height, join, own,
                            original_fetched)
    audio = str(original) if original is not None and record.audio_streams else None
    offset = record.audio_offset
    fps = Fraction(record.fps)
    seg_paths = [tmpdir / f"seg{i:05d}.mkv" for i in range(len(segments))]
    fetches = list(zip([s.key for s in segments], seg_paths, strict=True))
    parts_of: dict[str, list[Path]] = {}
    stream_masters = [c for c in recipe.masters if c in MASTER_FILES]
    for codec in stream_masters if join else []:
        if codec == "ffv1":
            parts_of[codec] = seg_paths
        elif all(codec in s.master_parts for s in segments):  # else (not expected): encoded below
            parts_of[codec] = [tmpdir / f"part{i:05d}-{codec}" for i in range(len(segments))]
            fetches += zip([s.master_parts[codec] for s in segments], parts_of[codec], strict=True)
    if not stream_masters:
        return {}
    list(pool.map(lambda kp: store.get_file(*kp), fetches))  # checksums verified; the first error is raised
    if original_fetched is not None:
        original_fetched.result()

    def joined(codec: str) -> Path | None:
        out = tmpdir / MASTER_FILES[codec][0]
        try:
            count = join_master(parts_of[codec], out, fps=fps, codec=codec, audio_source=audio, audio_offset=offset)
        except MediaError as e:  # parts from another FFmpeg build or settings: encode this master below
            print(f"{record.title}: the {codec} master is encoded from the segments, its parts do not join ({e})")
            return None
        finally:
            if codec != "ffv1":
                for p in parts_of[codec]:
                    p.unlink(missing_ok=True)
        if count != record.frames:
            raise RuntimeError(f"{out.name}: joined {count} frames, expected {record.frames}")
        return out

    done = {c: out for c, out in zip(parts_of, pool.map(joined, parts_of), strict=True) if out is not None}
    rest = [c for c in stream_masters if c not in done]
    if rest:
        fan = FanOut(itertools.chain.from_iterable(iter_frames(p, depth=16) for p in seg_paths), len(rest))
        colour = _segment_colour(record, segments)

        def encode(i: int) -> Path:
            name = MASTER_FILES[rest[i]][0]
            out = tmpdir / name
            frames = fan.reader(i)
            if colour is not None and rest[i] != "ffv1":  # a log scan's own codes: delivery in working space
                frames = (colour.working_uint(f) for f in frames)
            try:
                count = encode_master(frames, out, width=width, height=height, fps=fps, codec=rest[i],
                                      audio_source=audio, audio_offset=offset)
            except BaseException:
                fan.stop()  # the decoder and the other encoders give up instead of waiting on this one
                raise
            if count != record.frames:
                raise RuntimeError(f"{name}: wrote {count} frames, expected {record.frames}")
            return out

        with ThreadPoolExecutor(max_workers=len(rest), thread_name_prefix="reel-master") as pool:
            done.update(zip(rest, pool.map(encode, range(len(rest))), strict=True))
    return done


def _segment_colour(record: IngestRecord, segments: list[SegmentRecord]) -> ScanColour | None:
    """The scan's conversion when the segments hold a log scan's own code values, else None."""
    if not any(s.encoding == "source" for s in segments):
        return None
    return ScanColour(ScanEncoding.from_dict((record.sequence or {}).get("encoding")))


def sequence_master_format(record: IngestRecord, codec: str, source_encoded: bool) -> FrameFormat:
    """How a sequence master's frames are written: the scan's bit depth (a video source's: 8, 10, 12 or
    16), DPX transfer "Printing density" when the frames keep a log scan's codes, the frame rate."""
    fps = record.fps_fraction
    header = (record.sequence or {}).get("header") or {}
    bits = int(header.get("bits") or record.color.get("bit_depth", record.bit_depth))
    if codec == "dpx":
        transfer = "Printing density" if source_encoded else "ITU-R 709-4"
        return FrameFormat("dpx", bits if bits in (8, 10, 12, 16) else 16, transfer=transfer, fps=fps)
    if codec == "tiff":
        return FrameFormat("tiff", 8 if bits <= 8 else 16, compression="zip")
    return FrameFormat("exr", 32 if header.get("sample") == "float" else 16, fps=fps, compression="zip")


def sequence_masters(store: Any, record: IngestRecord, recipe: Recipe, segments: list[SegmentRecord], tmpdir: Path,
                     codecs: list[str], prefix: str, written: list[str]) -> list[OutputRecord]:
    """The recipe's frame-sequence masters (`master-dpx/`, `master-tiff/`, `master-exr/`), written frame
    by frame from the decoded segments and stored as each is written (memory and disk: one frame each),
    every frame's sha256 an output of the version. Frames are numbered as the source's (a scan's first
    number, else 0) and carry its timecode. DPX and TIFF keep what the segments hold (a log scan's own
    codes, else working-space R'G'B') at the scan's bit depth; EXR is scene-linear BT.709 (the working
    values through the inverse BT.709 curve, a log scan's codes through its OCIO conversion first)."""
    source_encoded = any(s.encoding == "source" for s in segments)
    colour = _segment_colour(record, segments)
    linear = ScanColour(ScanEncoding(encoding="linear", bits=16, float_samples=True))
    first = int((record.sequence or {}).get("first", 0))
    tc = start_timecode(record, recipe.source)
    folder = tmpdir / "frames"
    writers = {c: SequenceWriter(folder / c, record.title, sequence_master_format(record, c, source_encoded), start=first,
                                 start_timecode=tc) for c in codecs}
    outputs: list[OutputRecord] = []
    index = 0
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="reel-publish-frames") as pool:
        puts: list[Future[OutputRecord]] = []
        for seg in segments:
            path = tmpdir / "sequence-segment.mkv"
            store.get_file(seg.key, path)
            for frame in iter_frames(path, depth=16):
                for codec, writer in writers.items():
                    if codec == "exr":
                        working = (colour.working_float(frame) if colour is not None
                                   else frame.astype(np.float32) * np.float32(1 / 65535))
                        pixels = linear.scan_float(working)
                    else:
                        pixels = frame
                    written_path = writer.write(pixels)
                    key_path = layout.sequence_master_path(codec, record.title, first + index)
                    puts.append(pool.submit(_put_frame, store, prefix, key_path, written_path, written, codec))
                index += 1
                while len(puts) > 8:
                    outputs.append(puts.pop(0).result())
            path.unlink()
        outputs.extend(f.result() for f in puts)
    if index != record.frames:
        raise RuntimeError(f"sequence masters: wrote {index} frames, expected {record.frames}")
    return outputs


def _put_frame(store: Any, prefix: str, path: str, local: Path, written: list[str], codec: str) -> OutputRecord:
    size = local.stat().st_size
    sha = _put_output(store, f"{prefix}/{path}", written, path=local)
    local.unlink()
    return OutputRecord(path=path, sha256=sha, size_bytes=size, kind="master-frame", codec=codec)


def _put_output(store: Any, key: str, written: list[str], *, path: Path | None = None, data: bytes | None = None,
                content_type: str | None = None) -> str:
    """Write one output of a version, unless a concurrent publish of the same version already wrote the
    same bytes (outputs are deterministic, masters bit-exact: then they are left alone, never rewritten
    under a reader). Different bytes are a leftover of a failed earlier attempt (no manifest lists it)
    and are replaced."""
    if store.exists(key):  # hashed first only then: a put records the sha256 of what it wrote
        sha = sha256_file(path)[0] if path is not None else sha256_bytes(data or b"")
        if store.sha256(key) == sha:
            return sha
    written.append(key)  # before the put: a failed put is cleaned up too
    return store.put_file(key, path, content_type) if path is not None else store.put_bytes(key, data or b"",
                                                                                          content_type)


_END = object()


class FanOut:
    """One iterator read once by a thread, its items handed to `n` readers through bounded queues
    (each reader sees every item, in order; memory: at most `depth` items per reader).
    An error while reading is raised in every reader; `stop()` makes everyone give up."""

    def __init__(self, source: Any, n: int, depth: int = 8) -> None:
        self._queues: list[queue.Queue] = [queue.Queue(depth) for _ in range(n)]
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(source,), name="reel-decode", daemon=True).start()

    def _run(self, source: Any) -> None:
        try:
            for item in source:
                for q in self._queues:
                    self._put(q, item)
        except BaseException as e:  # handed to the readers
            self._error = e
        finally:
            for q in self._queues:
                self._put(q, _END)

    def _put(self, q: queue.Queue, item: Any) -> None:
        while not self._stopped.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        self._stopped.set()

    def reader(self, i: int) -> Iterator[Any]:
        q = self._queues[i]
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                if self._stopped.is_set():
                    raise RuntimeError("publish stopped: another master failed") from None
                continue
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item


def publish_title(store: Any, record: IngestRecord, recipe: Recipe, shots: pd.DataFrame,
                  segments: list[SegmentRecord], qc: dict[str, Any], review: dict[str, Any],
                  grades: list[TitleGrade] | None = None, manual: dict[str, Any] | None = None) -> dict[str, Any]:
    """Publish the version of this source, recipe, grades, review and artists' work in `store` (once: an
    existing manifest is returned as it is); returns the manifest. manual: as `publish_version` takes it."""
    version = publish_version(record, recipe, review, grades, manual)
    used = {int(s): d for s, d in ((manual or {}).get("used") or {}).items()}
    replaced = {int(s): d for s, d in ((manual or {}).get("replaced") or {}).items()}
    prefix = layout.version_prefix(record.title, version)
    mkey = manifest_key(record, version)
    if store.exists(mkey):  # already published: the manifest is the source of truth
        return json.loads(store.get_bytes(mkey))
    if hasattr(store, "remove_abandoned_temp"):  # a local store: temps of this title's killed publishes
        store.remove_abandoned_temp(layout.title_published_prefix(record.title))

    segments = sorted(segments, key=lambda s: (s.start, s.part))
    starts = [s.start for s in segments]
    if starts[0] != 0 or segments[-1].end != record.frames or any(
            a.end != b.start for a, b in itertools.pairwise(segments)):
        raise RuntimeError(f"segments do not tile frames 0..{record.frames}: refusing to publish a gap")
    width, height = segments[0].width, segments[0].height
    shot_lists = shot_list_files(record, recipe, shots, version)  # before any put: a bad shot table writes nothing
    outputs: list[OutputRecord] = []
    written: list[str] = []  # removed again if anything fails: nothing is left half-published
    try:
        qc_doc, grade_docs = _write_outputs(store, record, recipe, segments, qc, grades or [], prefix,
                                            width, height, outputs, written, shot_lists)
    except BaseException:
        # remove only what this run wrote, and nothing once a manifest exists (a concurrent run published)
        for key in [] if store.exists(mkey) else written:
            try:
                store.delete(key)
            except Exception:  # best effort: without the manifest nothing counts as published anyway
                pass
        raise

    harm_of = {int(r["shot"]): r["harm"] for r in qc.get("shots", []) if r.get("harm")}
    by_shot: dict[int, list[SegmentRecord]] = {}
    for s in segments:
        by_shot.setdefault(s.shot, []).append(s)
    manifest = Manifest(
        title=record.title, version=version, created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        reel_version=dist_version("reel"),
        source=SourceRecord(name=record.source_name, sha256=record.source_sha256,
                            size_bytes=record.source_size_bytes, key=record.original_key, frames=record.frames,
                            fps=record.fps, width=record.width, height=record.height,
                            bit_depth=record.probe.get("video", {}).get("bit_depth", record.bit_depth),
                            audio_streams=record.audio_streams, streams=record.probe.get("streams", []),
                            video_stream=record.probe.get("video_index", record.video_stream),
                            truncated=record.truncated, sequence=record.sequence, audio=record.audio),
        recipe={**recipe.model_dump(mode="json"), "chain_hash": recipe.chain_hash(), "grades": grade_docs},
        stages=recipe.chain(), output_size=[width, height],
        shots=[ShotRecord(shot=int(row.shot), start_frame=int(row.start_frame), end_frame=int(row.end_frame),
                          start_timecode=str(row.start_timecode), kind=str(getattr(row, "kind", "shot")),
                          segments=[s.key for s in by_shot[int(row.shot)]],
                          overrides=review.get("overrides", {}).get(str(int(row.shot)), []),
                          stage_reports=[rep for s in by_shot[int(row.shot)] for rep in s.reports],
                          harm=harm_of.get(int(row.shot)), manual=used.get(int(row.shot)),
                          manual_replaced=replaced.get(int(row.shot)))
               for row in shots.itertuples(index=False)],
        qc=qc_doc["summary"], review=review, outputs=outputs,
    )
    if not store.put_if_absent(mkey, manifest.to_json().encode(), content_type="application/json"):
        return _published_by_other(store, mkey)  # a concurrent run published this version first
    return json.loads(manifest.to_json())
