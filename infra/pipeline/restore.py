"""Restore one piece of a shot: read frames (with halo) from the mezzanine, run the recipe, store a
segment and the piece's parts of the masters (publishing joins them without re-encoding)."""

from __future__ import annotations

import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from catalog import layout
from catalog.bindings import ShotBindings
from catalog.layout import master_part_key
from catalog.recipe import Recipe
from catalog.records import IngestRecord, SegmentRecord
from catalog.shots import Piece
from infra.hashing import short_hash
from infra.media import FFV1Writer, encode_master, iter_frames, master_part_codec
from infra.mezzanine import MezzanineReader
from infra.runtime import release_memory
from models.chain import run_piece
from models.qc import measure_piece, pictures_bytes
from models.stage import Stage


def bound_stages(recipe: Recipe, bound: ShotBindings | None) -> list[Stage]:
    """The recipe's stages with the flow's per-shot data (shot statistics, grade LUT) bound."""
    stages = recipe.build()
    return bound.apply(stages) if bound is not None else stages


def segment_key(record: IngestRecord, piece: Piece, recipe: Recipe, bound: ShotBindings | None = None) -> str:
    """Content address of a piece's output: source, frame ranges, every stage's version and
    parameters, and a digest of the data bound to each stage."""
    h = short_hash({"source": record.source_sha256, "depth": record.bit_depth,
                    "piece": piece.to_dict(), "chain": [s.spec() for s in bound_stages(recipe, bound)]})
    return layout.segment_key(record.work_prefix, recipe.chain_hash(), piece.shot, piece.part, h)


def part_codecs(recipe: Recipe) -> set[str]:
    """The recipe's masters encoded piece by piece on the workers: all but FFV1 (the segment is its part)."""
    return {c for c in recipe.masters if c != "ffv1" and master_part_codec(c)}


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
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="reel-parts-") as tmp:
        path = Path(tmp) / "segment.mkv"
        store.get_file(seg.key, path)
        frames = np.stack(list(iter_frames(path, depth=16)))
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
        source = MezzanineReader(store, record, Path(tmp) / "mezz").read(lo, piece.read_end)
        color = record.color_info
        clock.lap("read")
        out = run_piece(bound_stages(recipe, bound), source[piece.read_start - lo:], record.fps_fraction, color,
                        piece.read_start, piece.start, piece.end)
        frames, reports = out.frames, out.reports
        clock.lap("chain")
        path = Path(tmp) / "segment.mkv"
        with FFV1Writer(path, out.width, out.height, out.fps, depth=16, color=color) as writer:
            writer.write(frames)
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
                        qc_key=qc_key, timing_s=clock.laps)
    store.put_bytes(record_key, seg.model_dump_json().encode())
    del source, out, frames
    release_memory()
    return seg
