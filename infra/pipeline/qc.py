"""QC tasks: a shot's metrics against its source (models.qc) stored with its pictures, and the title report
(catalog.qc_report) stored as qc.json and shown as Prefect artifacts."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from catalog import layout
from catalog.recipe import Recipe
from catalog.records import IngestRecord, SegmentRecord
from infra.media import iter_frames
from infra.mezzanine import MezzanineReader
from models.qc import QC_VERSION, PieceQC, finish_shot, measure_piece


def qc_prefix(record: IngestRecord, recipe: Recipe) -> str:
    return layout.qc_prefix(record.work_prefix, recipe.chain_hash(), QC_VERSION)


def piece_qc_valid(seg: SegmentRecord, start: int, end: int) -> bool:
    """Whether the segment carries QC measured by this QC version for the shot [start, end)."""
    return bool(seg.qc and seg.qc_key and seg.qc.get("version") == QC_VERSION and seg.qc.get("shot") == [start, end])


def _measure_shot(store: Any, record: IngestRecord, prefix: str, tag: str, shot: int, start: int, end: int,
                  segments: list[SegmentRecord], grade_lut: np.ndarray | None = None,
                  force: bool = False) -> dict[str, Any]:
    """The shot's metrics from its pieces' QC: measured by restore-piece while it had the frames, or
    (pieces restored before, or `force`) measured now from the stored segment and source. Stores the
    pictures."""
    parts = []
    for seg in sorted(segments, key=lambda x: (x.start, x.part)):
        if not force and piece_qc_valid(seg, start, end):
            with np.load(io.BytesIO(store.get_bytes(seg.qc_key))) as z:
                parts.append((seg.qc, {k: z[k] for k in z.files}))
        else:
            parts.append(_measure_stored_piece(store, record, seg, start, end, grade_lut))
    metrics, pictures = finish_shot(parts, shot=shot, start=start, end=end,  # type: ignore[arg-type]  # valid pieces carry qc
                                    reports=[rep for seg in segments for rep in seg.reports])
    for name, png in pictures.items():
        image_key = layout.qc_picture_key(prefix, shot, tag, name)
        store.put_bytes(image_key, png, content_type="image/png")
        metrics["image_key" if name == "before-after" else "contact_sheet_key"] = image_key
    return metrics


def _measure_stored_piece(store: Any, record: IngestRecord, seg: SegmentRecord, start: int, end: int,
                          grade_lut: np.ndarray | None) -> PieceQC:
    with tempfile.TemporaryDirectory(prefix="reel-qc-") as tmp:
        path = Path(tmp) / "segment.mkv"
        store.get_file(seg.key, path)
        lo = seg.start - 1 if seg.start > start else seg.start
        reader = MezzanineReader(store, record, Path(tmp) / "mezz")
        source = reader.read(lo, seg.end)
        restored = iter_frames(path, depth=16)
        if seg.encoding == "source":  # a log scan's own code values: QC compares working-space pictures
            colour = reader.scan_colour()
            restored = (colour.working_uint(f) for f in restored)
        return measure_piece(source[seg.start - lo:], restored, shot_start=start, shot_end=end,
                             start=seg.start, bit_depth=record.bit_depth, grade_lut=grade_lut,
                             before=source[0] if lo < seg.start else None)
