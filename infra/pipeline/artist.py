"""Hand shots to an artist and take their work back (issue 23).

Handoff: per shot, the source frames (from the mezzanine) and Reel's restored frames (from the restored
pieces) with handles, written as DPX/TIFF/EXR sequences through `infra.sequence`; a sidecar per shot
(`catalog.handoff.Sidecar`), an OTIO timeline and a CMX 3600 pull list; Reel's record of the handoff in the
store (`layout.handoff_key`), so a returned sidecar can be checked against what was handed off.

Takeback: the returned shot folder is checked against its sidecar (and the sidecar against the stored
record) before anything is stored: frame count and range, size, bit depth, encoding, the source it came from.
The artist's frames then become the shot's pieces (lossless 16-bit FFV1 like any restored piece, with their
master parts and QC measured against the source), and `layout.manual_key` (written last) makes them the
shot's current manual work. Runs of the title use it instead of restoring the shot (`manual_for`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from catalog import editorial, layout
from catalog.handoff import (
    DEFAULT_BITS,
    DPX_TRANSFER,
    EXR_GAMMA,
    RESTORED_DIR,
    SIDECAR,
    SOURCE_DIR,
    TRANSFERS,
    FrameFile,
    HandoffError,
    HandoffRecord,
    ManualRecord,
    SequenceSpec,
    Sidecar,
    check_frame,
    expected_numbers,
    folder_name,
    frames_digest,
    open_shots,
    person_name,
    sequence_stem,
)
from catalog.records import IngestRecord, SegmentRecord
from infra.hashing import sha256_file, short_hash
from infra.media import FFV1Writer, master_part_codec, read_frames
from infra.mezzanine import MezzanineReader
from infra.pipeline.restore import add_master_parts, encode_master_part
from infra.sequence import (
    FrameFormat,
    SequenceError,
    SequenceWriter,
    list_sequence,
    read_frame,
    read_header,
    rgb,
)
from infra.storage import Store
from models.clip import ColorInfo
from models.qc import measure_piece, pictures_bytes

MAX_HANDLES = 240


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- what is stored ---------------------------------------------------------------------------------------


def load_ingest(store: Store, title: str, source_sha256: str, video_stream: int | None = None) -> IngestRecord:
    """The ingest record of a title's source (the default stream's folder, else the named stream's)."""
    prefixes = [layout.work_prefix(title, source_sha256)]
    if video_stream is not None:
        prefixes.append(layout.work_prefix(title, source_sha256, video_stream))
    for prefix in prefixes:
        key = layout.ingest_record_key(prefix)
        if store.exists(key):
            return IngestRecord.model_validate_json(store.get_bytes(key))
    raise ValueError(f"{title}: the source {source_sha256[:12]} is not ingested in this store")


def published_manifest(store: Store, title: str, version: str | None = None) -> dict[str, Any]:
    """A published version's manifest: `version`, else the newest."""
    if version is not None:
        key = layout.manifest_key(title, version)
        if not store.exists(key):
            raise ValueError(f"{title}: no published version {version}")
        return json.loads(store.get_bytes(key))
    keys = [k for k in store.list(layout.title_published_prefix(title)) if layout.is_manifest_key(k)]
    if not keys:
        raise ValueError(f"{title}: nothing published yet (restore it first: reel restore SOURCE --title {title})")
    return max((json.loads(store.get_bytes(k)) for k in keys), key=lambda m: m["created_utc"])


def published_segments(store: Store, manifest: dict[str, Any]) -> list[SegmentRecord]:
    """The restored pieces a published version was joined from (their records, stored beside them)."""
    return [SegmentRecord.model_validate_json(store.get_bytes(layout.segment_record_key(k)))
            for s in manifest["shots"] for k in s["segments"]]


def handoffs_of(store: Store, record: IngestRecord) -> list[HandoffRecord]:
    keys = [k for k in store.list(layout.handoffs_prefix(record.work_prefix)) if k.endswith(".json")]
    return [HandoffRecord.model_validate_json(store.get_bytes(k)) for k in sorted(keys)]


def manual_records(store: Store, prefix: str) -> list[ManualRecord]:
    """Every shot's current-or-replaced manual record under a source's work folder."""
    keys = [k for k in store.list(layout.manual_prefix(prefix)) if layout.is_manual_key(k)]
    return [ManualRecord.model_validate_json(store.get_bytes(k)) for k in sorted(keys)]


def manual_for(store: Store, record: IngestRecord) -> dict[int, ManualRecord]:
    """{shot: its current manual work} for this source (what runs publish instead of a machine restore)."""
    return {m.shot: m for m in manual_records(store, record.work_prefix) if m.status == "current"}


def with_artist(store: Store, record: IngestRecord) -> dict[int, HandoffRecord]:
    """{shot: its handoff} for shots handed off from this source and not taken back yet."""
    return open_shots(handoffs_of(store, record), manual_records(store, record.work_prefix))


def manual_segments(store: Store, record: IngestRecord, manual: ManualRecord, masters: list[str]) -> list[SegmentRecord]:
    """The taken-back shot's pieces, with a part for every master that joins from parts (made now if the
    takeback did not make it: another recipe's masters)."""
    segs = [SegmentRecord.model_validate(s) for s in manual.segments]
    codecs = {c for c in masters if c != "ffv1" and master_part_codec(c)}
    out = []
    for seg in segs:
        if missing := codecs - set(seg.master_parts):
            seg = add_master_parts(store, record, seg, missing, layout.segment_record_key(seg.key))
        out.append(seg.model_copy(update={"reused": True}))
    return out


def retire_manual(store: Store, record: IngestRecord, shot: int, why: dict[str, Any]) -> None:
    """The machine was asked for `shot` again: its manual work is kept (history) but no longer current."""
    key = layout.manual_key(record.work_prefix, shot)
    if not store.exists(key):
        return
    m = ManualRecord.model_validate_json(store.get_bytes(key))
    if m.status == "current":
        retired = m.model_copy(update={"status": "replaced", "replaced": why})
        store.put_bytes(key, retired.model_dump_json(by_alias=True, indent=2).encode(), content_type="application/json")


# --- handoff ----------------------------------------------------------------------------------------------


def frame_format(kind: str, bits: int | None, fps: Fraction) -> FrameFormat:
    if kind not in DEFAULT_BITS:
        raise ValueError(f"--format must be one of {', '.join(DEFAULT_BITS)}, got {kind!r}")
    return FrameFormat(kind=kind, bits=bits or DEFAULT_BITS[kind],  # type: ignore[arg-type]
                       transfer=DPX_TRANSFER if kind == "dpx" else None, fps=fps)


def to_file_pixels(frame16: np.ndarray, fmt: FrameFormat) -> np.ndarray:
    """A (H, W, 3) uint16 working-space frame as the file holds it (EXR: linear light, float32)."""
    if fmt.kind == "exr":
        return np.power(frame16.astype(np.float32) / np.float32(65535.0), np.float32(EXR_GAMMA))
    return frame16


def from_file_pixels(pixels: np.ndarray) -> np.ndarray:
    """A returned frame's pixels (read_frame's uint16 full scale, or float32 linear for EXR) as (H, W, 3)
    uint16 in the working space."""
    px = rgb(pixels)
    if px.dtype == np.uint16:
        return np.ascontiguousarray(px)
    x = np.clip(np.nan_to_num(px.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return np.rint(np.power(x, np.float32(1.0 / EXR_GAMMA)) * np.float32(65535.0)).astype(np.uint16)


def _source16(block: np.ndarray) -> np.ndarray:
    return block.astype(np.uint16) * np.uint16(257) if block.dtype == np.uint8 else block


def _restored_frames(store: Store, segments: list[SegmentRecord], lo: int, hi: int, tmp: Path) -> Iterator[np.ndarray]:
    """Restored frames [lo, hi) in order, from the pieces covering them (16-bit)."""
    segs = sorted((s for s in segments if s.start < hi and s.end > lo), key=lambda s: s.start)
    if not segs or segs[0].start > lo or segs[-1].end < hi:
        raise ValueError(f"no restored pieces cover frames {lo}-{hi - 1}")
    for seg in segs:
        path = tmp / "segment.mkv"
        store.get_file(seg.key, path)
        a, b = max(lo, seg.start), min(hi, seg.end)
        yield from read_frames(path, a - seg.start, b - a, depth=16, intra_only=True)
        path.unlink()


def _sequence_spec(writer: SequenceWriter, fmt: FrameFormat, first: int, width: int, height: int,
                   folder: str) -> SequenceSpec:
    files = [FrameFile(number=first + i, name=p.name, sha256=sha256_file(p)[0]) for i, p in enumerate(writer.paths)]
    return SequenceSpec(folder=folder, pattern=f"{writer.stem}.%07d.{fmt.ext}", kind=fmt.kind, bits=fmt.bits,
                        sample=fmt.sample, transfer=TRANSFERS[fmt.kind], width=width,  # type: ignore[arg-type]
                        height=height, files=files)


def write_handoff(store: Store, record: IngestRecord, recipe: dict[str, Any], shots: list[dict[str, Any]],
                  segments: list[SegmentRecord], which: list[int], out_dir: Path, *, kind: str = "dpx",
                  bits: int | None = None, handles: int = 8, version: str | None = None, run: str | None = None,
                  start_timecode: str = editorial.DEFAULT_START_TIMECODE) -> HandoffRecord:
    """Write the shots `which` for an artist into `out_dir` and record the handoff in the store.

    recipe: name, chain_hash, stages, masters of what restored the frames; shots: the shot table's rows
    (shot, start_frame, end_frame); segments: the restored pieces of the whole film (handles reach into the
    neighbouring shots). Per shot `out_dir/<title>-shotNNNN/`: `source/` and `restored/` sequences and the
    sidecar; `out_dir/<title>-handoff-<id>.otio|.edl`: the shot list. A shot folder that exists is refused.
    """
    if not which:
        raise ValueError("name the shots to hand off (--shots 3,7)")
    if not 0 <= handles <= MAX_HANDLES:
        raise ValueError(f"--handles must be 0..{MAX_HANDLES}, got {handles}")
    fps = Fraction(record.fps)
    fmt = frame_format(kind, bits, fps)
    rows = {int(r["shot"]): r for r in shots}
    missing = [s for s in which if s not in rows]
    if missing:
        raise ValueError(f"{record.title} has no shot {missing[0]} (shots {min(rows)}-{max(rows)})")
    out_dir = Path(out_dir)
    for shot in which:
        if (out_dir / folder_name(record.title, shot)).exists():
            raise ValueError(f"{out_dir / folder_name(record.title, shot)} exists: hand off into another folder (-o)")
    created = now_utc()
    handoff = short_hash({"title": record.title, "source": record.source_sha256, "shots": which, "at": created,
                          "version": version, "run": run, "format": [fmt.kind, fmt.bits], "handles": handles,
                          "nonce": os.urandom(8).hex()}, 12)
    sidecars: dict[int, Sidecar] = {}
    entries = []
    with tempfile.TemporaryDirectory(prefix="reel-handoff-") as tmp:
        reader = MezzanineReader(store, record, Path(tmp) / "mezz")
        for shot in which:
            start, end = int(rows[shot]["start_frame"]), int(rows[shot]["end_frame"])
            lo, hi = max(0, start - handles), min(record.frames, end + handles)
            folder = out_dir / folder_name(record.title, shot)
            tc = editorial.frames_timecode(editorial.timecode_frames(start_timecode, fps) + lo, fps)
            src = SequenceWriter(folder / SOURCE_DIR, sequence_stem(record.title, shot, "source"), fmt, start=lo,
                                 start_timecode=tc)
            for block in reader.iter_blocks(lo, hi):
                for frame in block:
                    src.write(to_file_pixels(_source16(frame), fmt))
            res = SequenceWriter(folder / RESTORED_DIR, sequence_stem(record.title, shot, "restored"), fmt, start=lo,
                                 start_timecode=tc)
            size = (0, 0)
            for frame in _restored_frames(store, segments, lo, hi, Path(tmp)):
                size = (frame.shape[1], frame.shape[0])
                res.write(to_file_pixels(frame, fmt))
            sidecars[shot] = Sidecar(
                handoff=handoff, title=record.title, version=version, run=run, shot=shot, start_frame=start,
                end_frame=end, first_frame=lo, last_frame=hi, handles=handles, fps=record.fps,
                start_timecode=start_timecode,
                source={"name": record.source_name, "sha256": record.source_sha256, "key": record.original_key,
                        "work_prefix": record.work_prefix},
                recipe=recipe, created_utc=created,
                source_frames=_sequence_spec(src, fmt, lo, record.width, record.height, SOURCE_DIR),
                restored_frames=_sequence_spec(res, fmt, lo, *size, RESTORED_DIR))
            entries.append({"shot": shot, "first_frame": lo, "last_frame": hi, "start_frame": start, "end_frame": end,
                            "folder": f"{folder.name}/{RESTORED_DIR}", "stem": res.stem, "ext": fmt.ext})
    rec = HandoffRecord(handoff=handoff, title=record.title, source_sha256=record.source_sha256, version=version,
                        run=run, shots=list(which), format={"kind": fmt.kind, "bits": fmt.bits}, handles=handles,
                        created_utc=created, folder=str(out_dir),
                        sidecars={str(s): json.loads(sc.to_json()) for s, sc in sidecars.items()})
    store.put_bytes(layout.handoff_key(record.work_prefix, handoff), rec.model_dump_json(indent=2).encode(),
                    content_type="application/json")
    for shot, sc in sidecars.items():  # last: a folder without its sidecar cannot be taken back
        _write_text(out_dir / folder_name(record.title, shot) / SIDECAR, sc.to_json())
    label = version or "review"
    base = out_dir / f"{record.title}-handoff-{handoff}"
    _write_text(base.with_suffix(".otio"), editorial.otio_text(
        editorial.handoff_timeline(entries, fps, record.title, label, start_timecode)))
    _write_text(base.with_suffix(".edl"), editorial.handoff_edl(entries, fps, record.source_name, record.title, label,
                                                                start_timecode))
    return rec


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- takeback ---------------------------------------------------------------------------------------------


MAX_SIDECAR_BYTES = 64 << 20  # a sidecar lists two checksums a frame: megabytes for the longest shot


def read_sidecar(folder: Path) -> Sidecar:
    path = folder / SIDECAR
    if not path.is_file():
        raise HandoffError(f"{folder}: no {SIDECAR}: give the shot's handoff folder as it was handed off")
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        raise HandoffError(f"{path}: {path.stat().st_size} bytes is not a Reel handoff sidecar")
    try:
        return Sidecar.model_validate_json(path.read_bytes())
    except ValueError as e:
        first = str(e).strip().splitlines()
        raise HandoffError(f"{path}: not a Reel handoff sidecar ({first[1] if len(first) > 1 else first[0]})"
                           ) from None


def check_sidecar(store: Store, sidecar: Sidecar, title: str, shot: int) -> IngestRecord:
    """The sidecar names this title and shot, matches Reel's record of the handoff, and its source is the
    title's source now. Returns the source's ingest record."""
    if sidecar.title != title or sidecar.shot != shot:
        raise HandoffError(f"the folder holds {sidecar.title} shot {sidecar.shot}, not {title} shot {shot}")
    sha = str(sidecar.source.get("sha256", ""))
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise HandoffError("the sidecar's source sha256 is not a checksum: the sidecar does not match")
    prefix = str(sidecar.source.get("work_prefix", ""))
    if prefix not in (layout.work_prefix(title, sha), *(f"{layout.work_prefix(title, sha)}-s{i}" for i in range(64))):
        raise HandoffError(f"the sidecar names the work folder {prefix[:80]!r}, not one of {title}'s")
    key = layout.handoff_key(prefix, sidecar.handoff)
    if not store.exists(key):
        raise HandoffError(f"{title}: Reel has no record of handoff {sidecar.handoff} of source {sha[:12]}: "
                           "the sidecar does not match")
    stored = HandoffRecord.model_validate_json(store.get_bytes(key))
    if stored.sidecars.get(str(shot)) != json.loads(sidecar.to_json()):
        raise HandoffError(f"the sidecar of {title} shot {shot} does not match Reel's record of handoff "
                           f"{sidecar.handoff} (edited, or from another handoff)")
    record = IngestRecord.model_validate_json(store.get_bytes(layout.ingest_record_key(prefix)))
    with contextlib.suppress(ValueError):  # nothing published (a handoff from a review): the ingest is the source
        newest = published_manifest(store, title)
        if newest["source"]["sha256"] != sha:
            raise HandoffError(f"shot {shot} was handed off from source {sha[:12]}, but {title}'s newest version "
                               f"({newest['version']}) is of source {newest['source']['sha256'][:12]}: the artist's "
                               "frames belong to the old source")
    return record


def check_returned(folder: Path, sidecar: Sidecar, max_pixels: int,
                   roots: list[str] | None = None) -> list[tuple[int, Path]]:
    """The returned frames of the shot (number, path), checked against the sidecar from their headers: range,
    count, size, bit depth, encoding; the source frames, where still there, unchanged. `roots`:
    REEL_SOURCE_ROOTS (the frames must lie under one, symlinks resolved)."""
    src_dir = folder / SOURCE_DIR
    for f in sidecar.source_frames.files:
        path = src_dir / f.name
        if path.is_file() and sha256_file(path)[0] != f.sha256:
            raise HandoffError(f"source frame {f.name} was changed: the source frames must come back as handed off "
                               "(the artist's work goes in restored/)")
    try:
        seq = list_sequence(folder / RESTORED_DIR, roots=roots or None)
    except SequenceError as e:
        raise HandoffError(str(e)) from None
    want_ext = {"dpx": ("dpx",), "tiff": ("tif", "tiff"), "exr": ("exr",)}[sidecar.restored_frames.kind]
    if seq.ext not in want_ext:
        raise HandoffError(f"{seq.shown}: .{seq.ext} files, but the handoff is {sidecar.restored_frames.describe()}")
    numbers = expected_numbers(sidecar, [f.number for f in seq.frames])
    frames = [(f.number, f.path) for f in seq.frames if sidecar.start_frame <= f.number < sidecar.end_frame]
    for frame in seq.frames:  # headers only: every frame is checked before a pixel is read
        try:
            info = read_header(frame.path, max_pixels=max_pixels)
        except SequenceError as e:
            raise HandoffError(str(e)) from None
        check_frame(sidecar, frame.name, info.to_dict())
    assert numbers
    return frames


def take_back(store: Store, title: str, shot: int, folder: Path, by: str, note: str = "", *,
              piece_frames: int = 48, max_pixels: int = 8192 * 4352, roots: list[str] | None = None) -> ManualRecord:
    """Check the returned shot folder and store the artist's frames as the shot's restored result.

    HandoffError (one line) when the folder, its frames or its sidecar do not match the handoff: then
    nothing is stored. The manual record (`layout.manual_key`) is written last."""
    folder = Path(folder)
    by = person_name(by)
    if len(note) > 4000:
        raise HandoffError(f"--note is {len(note)} characters; at most 4000")
    sidecar = read_sidecar(folder)
    record = check_sidecar(store, sidecar, title, shot)
    frames = check_returned(folder, sidecar, max_pixels, roots)
    files = [FrameFile(number=n, name=p.name, sha256=sha256_file(p)[0]) for n, p in frames]
    at = now_utc()
    takeback = short_hash({"handoff": sidecar.handoff, "shot": shot, "frames": [f.sha256 for f in files], "at": at,
                           "nonce": os.urandom(8).hex()}, 12)
    masters = [c for c in sidecar.recipe.get("masters", ["ffv1"]) if c != "ffv1" and master_part_codec(c)]
    written: list[str] = []
    try:
        segments = _store_pieces(store, record, sidecar, takeback, frames, piece_frames, max_pixels, masters, written)
        manual = ManualRecord(takeback=takeback, handoff=sidecar.handoff, title=title, shot=shot,
                              start_frame=sidecar.start_frame, end_frame=sidecar.end_frame,
                              source_sha256=record.source_sha256, by=by, at=at, note=note,
                              over={"version": sidecar.version, "run": sidecar.run,
                                    "chain_hash": sidecar.recipe.get("chain_hash"), "recipe": sidecar.recipe.get("name")},
                              format=sidecar.restored_frames.describe(), frames=files, digest=frames_digest(files),
                              segments=[s.model_dump(mode="json") for s in segments])
        doc = manual.model_dump_json(by_alias=True, indent=2).encode()
        written.append(layout.takeback_key(record.work_prefix, shot, takeback))
        store.put_bytes(written[-1], doc, content_type="application/json")
        store.put_bytes(layout.manual_key(record.work_prefix, shot), doc, content_type="application/json")  # last
    except BaseException:
        for key in written:
            with contextlib.suppress(Exception):
                store.delete(key)
        raise
    return manual


def _store_pieces(store: Store, record: IngestRecord, sidecar: Sidecar, takeback: str, frames: list[tuple[int, Path]],
                  piece_frames: int, max_pixels: int, masters: list[str], written: list[str]) -> list[SegmentRecord]:
    """The artist's frames as the shot's pieces: a 16-bit FFV1 segment each, the parts of `masters`, and QC
    against the source measured while the frames are in memory (as restore-piece does)."""
    start, end = sidecar.start_frame, sidecar.end_frame
    n_parts = -(-(end - start) // max(1, piece_frames))
    size = -(-(end - start) // n_parts)
    color = ColorInfo(**{**record.color, "bit_depth": record.color.get("bit_depth", record.bit_depth)})
    fps = Fraction(record.fps)
    out = []
    expect = None
    with tempfile.TemporaryDirectory(prefix="reel-takeback-") as tmp:
        reader = MezzanineReader(store, record, Path(tmp) / "mezz")
        for part in range(n_parts):
            a, b = start + part * size, min(end, start + (part + 1) * size)
            pixels = []
            for _, path in frames[a - start:b - start]:
                try:
                    px, info = read_frame(path, expect, max_pixels=max_pixels)
                except SequenceError as e:
                    raise HandoffError(str(e)) from None
                expect = expect or info
                pixels.append(from_file_pixels(px))
            restored = np.stack(pixels)
            h, w = restored.shape[1:3]
            key = layout.manual_segment_key(record.work_prefix, sidecar.shot, takeback, part)
            seg_path = Path(tmp) / "segment.mkv"
            with FFV1Writer(seg_path, w, h, fps, depth=16, color=color) as writer:
                writer.write(restored)
            written.append(key)
            store.put_file(key, seg_path)
            parts = {}
            for codec in sorted(masters):
                parts[codec] = encode_master_part(key, codec, restored, fps, Path(tmp))
                written.append(parts[codec])
                store.put_file(parts[codec], Path(tmp) / f"part-{codec}")
            lo = a - 1 if a > start else a
            source = reader.read(lo, b)
            qc, pictures = measure_piece(source[a - lo:], restored, shot_start=start, shot_end=end, start=a,
                                         bit_depth=record.bit_depth, before=source[0] if lo < a else None)
            qc_key = layout.piece_qc_key(key, qc["version"])
            written.append(qc_key)
            store.put_bytes(qc_key, pictures_bytes(pictures))
            seg = SegmentRecord(key=key, shot=sidecar.shot, part=part, start=a, end=b, width=w, height=h,
                                reports=[{"stage": "manual", "takeback": takeback, "handoff": sidecar.handoff}],
                                master_parts=parts, qc=qc, qc_key=qc_key)
            written.append(layout.segment_record_key(key))
            store.put_bytes(written[-1], seg.model_dump_json().encode())
            out.append(seg)
    return out


# --- learning from the artist -------------------------------------------------------------------------------


def manual_pairs(store: Store, record: IngestRecord, manual: ManualRecord, samples: int = 8,
                 max_side: int = 640) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, source frame, the artist's frame) for `samples` frames spread over a taken-back shot, float32
    [0, 1] RGB at the source's size (the artist's frame is shrunk to it when the handoff was upscaled), both
    at most `max_side` pixels on their long side: pairs for the grade learner."""
    import cv2

    n = manual.end_frame - manual.start_frame
    picks = sorted({manual.start_frame + int(round(i * (n - 1) / max(1, samples - 1))) for i in range(min(samples, n))})
    segs = [SegmentRecord.model_validate(s) for s in manual.segments]
    pairs = []
    with tempfile.TemporaryDirectory(prefix="reel-pairs-") as tmp:
        reader = MezzanineReader(store, record, Path(tmp) / "mezz")
        scale = 255.0 if record.bit_depth == 8 else 65535.0
        for seg in segs:
            mine = [f for f in picks if seg.start <= f < seg.end]
            if not mine:
                continue
            path = Path(tmp) / "segment.mkv"
            store.get_file(seg.key, path)
            done = read_frames(path, 0, seg.end - seg.start, depth=16, intra_only=True)
            for f in mine:
                src = reader.read(f, f + 1)[0].astype(np.float32) / np.float32(scale)
                art = done[f - seg.start].astype(np.float32) / np.float32(65535.0)
                if art.shape != src.shape:
                    art = cv2.resize(art, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_AREA)
                step = max(1, int(np.ceil(max(src.shape[:2]) / max_side)))
                pairs.append((f"shot{manual.shot:04d}-{f:06d}", np.ascontiguousarray(src[::step, ::step]),
                              np.ascontiguousarray(art[::step, ::step])))
    return pairs
