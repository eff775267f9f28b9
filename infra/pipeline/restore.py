"""Restore one piece of a shot: read frames (with halo) from the mezzanine, run the recipe, store a
segment and the piece's parts of the masters (publishing joins them without re-encoding)."""

from __future__ import annotations

import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from catalog import layout
from catalog.bindings import ShotBindings
from catalog.layout import master_part_key
from catalog.recipe import SEQUENCE_MASTER_CODECS, Recipe
from catalog.records import IngestRecord, SegmentRecord
from catalog.shots import Piece
from infra.hashing import short_hash
from infra.media import FFV1Writer, encode_master, iter_frames, master_part_codec
from infra.mezzanine import MezzanineReader
from infra.pipeline.scans import segment_encoding
from infra.runtime import release_memory
from models.chain import PieceOutput, run_chain, run_piece
from models.clip import Clip, to_uint
from models.qc import measure_piece, pictures_bytes
from models.stage import Stage


def bound_stages(recipe: Recipe, bound: ShotBindings | None) -> list[Stage]:
    """The recipe's stages with the flow's per-shot data (shot statistics, grade LUT) bound."""
    stages = recipe.build()
    return bound.apply(stages) if bound is not None else stages


def segment_key(record: IngestRecord, piece: Piece, recipe: Recipe, bound: ShotBindings | None = None) -> str:
    """Content address of a piece's output: source, frame ranges, every stage's version and
    parameters, and a digest of the data bound to each stage."""
    ident: dict[str, Any] = {"source": record.source_sha256, "depth": record.bit_depth,
                             "piece": piece.to_dict(), "chain": [s.spec() for s in bound_stages(recipe, bound)]}
    if record.sequence:  # how a scan's code values reach the stages, and what the segment keeps
        ident["scan"] = {"encoding": record.sequence.get("encoding"), "segment": segment_encoding(record, recipe)}
    h = short_hash(ident)
    return layout.segment_key(record.work_prefix, recipe.chain_hash(), piece.shot, piece.part, h)


def part_codecs(recipe: Recipe) -> set[str]:
    """The recipe's masters encoded piece by piece on the workers: all but FFV1 (the segment is its part)."""
    return {c for c in recipe.masters if c not in ("ffv1", *SEQUENCE_MASTER_CODECS) and master_part_codec(c)}


def encode_master_part(segment_key: str, codec: str, frames: Any, fps: Fraction, tmp: Path) -> str:
    """Encode the piece's frames for one master (no audio: publishing adds it) into tmp/part-<codec>;
    returns the key it goes to."""
    height, width = frames.shape[1:3]
    encode_master(iter(frames), tmp / f"part-{codec}", width=width, height=height, fps=fps, codec=codec)
    return master_part_key(segment_key, codec)


def put_master_part(store: Any, segment_key: str, codec: str, frames: Any, fps: Fraction, tmp: Path) -> str:
    """Encode the piece's frames for one master and store them; returns the key."""
    key = encode_master_part(segment_key, codec, frames, fps, tmp)
    store.put_file(key, tmp / f"part-{codec}")
    return key


class _Clock:
    """Wall seconds per phase, summed over laps."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._t, 4)
        self._t = now


def add_master_parts(store: Any, record: IngestRecord, seg: SegmentRecord, codecs: set[str],
                     record_key: str) -> SegmentRecord:
    """Encode missing master parts from a stored segment and record them."""
    with tempfile.TemporaryDirectory(prefix="reel-parts-") as tmp:
        path = Path(tmp) / "segment.mkv"
        store.get_file(seg.key, path)
        frames = np.stack(list(iter_frames(path, depth=16)))
        if seg.encoding == "source":  # a log scan's own codes: the delivery parts are working-space pictures
            from infra.scan_colour import ScanColour, ScanEncoding

            colour = ScanColour(ScanEncoding.from_dict((record.sequence or {}).get("encoding")))
            frames = np.stack([colour.working_uint(f) for f in frames])
        parts = {**seg.master_parts, **{c: put_master_part(store, seg.key, c, frames, Fraction(record.fps),
                                                           Path(tmp)) for c in sorted(codecs)}}
    seg = seg.model_copy(update={"master_parts": parts, "reused": False})
    store.put_bytes(record_key, seg.model_dump_json().encode())
    return seg


def store_record(store: Any, key: str) -> SegmentRecord:
    return SegmentRecord.model_validate_json(store.get_bytes(key))


def restore_piece_to(store: Any, record: IngestRecord, piece: Piece, recipe: Recipe,
                     bound: ShotBindings | None = None, force: bool = False,
                     shot_frames: tuple[int, int] | None = None) -> SegmentRecord:
    """The piece's restored segment: made now, or (unless `force`) an identical one made earlier.
    With `shot_frames` (its shot's start, end) the piece's QC is measured too, while the source and
    restored frames are in memory (QC then only joins the pieces' numbers)."""
    key = segment_key(record, piece, recipe, bound)
    record_key = layout.segment_record_key(key)
    if not force and store.exists(record_key):  # written after the segment: its presence means the segment is complete
        seg = store_record(store, record_key)
        if missing := part_codecs(recipe) - set(seg.master_parts):  # stored before the recipe asked for them
            seg = add_master_parts(store, record, seg, missing, record_key)
        return seg.model_copy(update={"reused": True})

    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="reel-restore-") as tmp:
        # QC's repeated-frame test compares the piece's first frame with the one before it
        lo = piece.start - 1 if shot_frames and shot_frames[0] < piece.start == piece.read_start else piece.read_start
        reader = MezzanineReader(store, record, Path(tmp) / "mezz")
        color = record.color_info
        encoding = segment_encoding(record, recipe) if record.sequence else "working"
        stages = bound_stages(recipe, bound)
        raw: list[np.ndarray] = []
        working: np.ndarray | None = None  # the chain's float output, where values beyond [0, 1] matter
        if record.sequence and reader.scan_colour().enc.converts:
            # a log or linear scan: the stages get working values in [0, 1]; what lies outside (codes below
            # black, above white) is put back after them where the picture kept its size, so the archival
            # master of an unchanged picture holds the scan's own codes
            colour = reader.scan_colour()
            raw = list(reader.sequence_pixels(lo, piece.read_end))  # the scan's pixels (2 bytes a sample)
            skip = piece.read_start - lo
            source = np.empty((len(raw), record.height, record.width, 3), np.uint16)
            values = np.empty((len(raw) - skip, record.height, record.width, 3), np.float32)
            for i, pixels in enumerate(raw):
                f = colour.working_float(pixels)
                source[i] = to_uint(f)
                if i >= skip:
                    np.clip(f, 0, 1, out=values[i - skip])
            clip = Clip(values, record.fps_fraction, first_frame=piece.read_start, color=color)
            del values
            clock.lap("read")
            restored, chain_reports = run_chain(stages, clip, piece.start - piece.read_start,
                                                piece.end - piece.read_start)
            del clip
            out = PieceOutput(restored.to_uint(np.uint16), restored.fps, chain_reports)
            working = restored.frames
        else:
            source = reader.read(lo, piece.read_end)
            clock.lap("read")
            out = run_piece(stages, source[piece.read_start - lo:], record.fps_fraction, color,
                            piece.read_start, piece.start, piece.end)
        frames, reports = out.frames, out.reports
        clock.lap("chain")
        segment_frames = frames
        if encoding == "source":
            colour = reader.scan_colour()
            segment_frames = np.empty_like(frames)
            for k in range(len(frames)):
                kept = working[k] if working is not None else frames[k].astype(np.float32) / np.float32(65535)
                if raw and kept.shape == (record.height, record.width, 3):
                    f = colour.working_float(raw[piece.start - lo + k])
                    kept = kept + (f - np.clip(f, 0, 1))
                segment_frames[k] = colour.scan_uint16(kept)
        del raw
        path = Path(tmp) / "segment.mkv"
        with FFV1Writer(path, out.width, out.height, out.fps, depth=16, color=color) as writer:
            writer.write(segment_frames)
        del segment_frames
        clock.lap("segment")
        store.put_file(key, path)
        clock.lap("store")
        parts = {}
        for codec in sorted(part_codecs(recipe)):
            parts[codec] = encode_master_part(key, codec, frames, out.fps, Path(tmp))
            clock.lap("parts")
            store.put_file(parts[codec], Path(tmp) / f"part-{codec}")
            clock.lap("store")
        qc, qc_key = None, None
        if shot_frames:
            qc, pictures = measure_piece(source[piece.start - lo:piece.end - lo], frames, shot_start=shot_frames[0],
                                         shot_end=shot_frames[1], start=piece.start, bit_depth=record.bit_depth,
                                         grade_lut=bound.lut if bound is not None else None,
                                         before=source[piece.start - 1 - lo] if piece.start > shot_frames[0] else None)
            qc_key = layout.piece_qc_key(key, qc["version"])
            blob = pictures_bytes(pictures)
            clock.lap("qc")
            store.put_bytes(qc_key, blob)
            clock.lap("store")
    seg = SegmentRecord(key=key, shot=piece.shot, part=piece.part, start=piece.start, end=piece.end,
                        width=out.width, height=out.height, reports=reports, master_parts=parts, qc=qc,
                        qc_key=qc_key, timing_s=clock.laps, encoding=encoding)
    store.put_bytes(record_key, seg.model_dump_json().encode())
    del source, out, frames
    release_memory()
    return seg
