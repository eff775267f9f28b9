"""Small records that travel between tasks (keys and metadata, never frames)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from catalog.ids import validate_title_id
from catalog.layout import work_prefix
from models.clip import ColorInfo

__all__ = ["IngestRecord", "SegmentRecord", "work_prefix"]


class IngestRecord(BaseModel):
    """What ingest made of a source: the stored original and its frame-exact mezzanine chunks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str
    source_name: str
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    source_size_bytes: int
    original_key: str
    frames: int = Field(ge=1)
    fps: str = Field(description="exact frames per second as num/den")
    width: int
    height: int
    bit_depth: int = Field(description="8 or 16: precision of the mezzanine")
    color: dict[str, Any]
    chunk_frames: int
    chunks: list[str] = Field(description="mezzanine keys; chunk i holds frames [i*chunk_frames, ...)")
    mezzanine: Literal["ffv1", "copy", "sequence"] = Field(
        "ffv1", description="ffv1: chunks encoded losslessly at ingest; copy: the intra-only source's own packets; "
                            "sequence: an image sequence's stored frames (each chunk a JSON list of frame keys)")
    audio_streams: int
    probe: dict[str, Any]
    video_stream: int | None = Field(None, description="container index of the video stream ingested; None: "
                                                       "the first (records before 0.9)")
    stream_chosen: bool = Field(False, description="the stream was named (--stream), not the default")
    truncated: dict[str, Any] | None = Field(None, description="what the source lacks, when a source cut short "
                                                               "was accepted (infra.media.Shortfall)")
    sequence: dict[str, Any] | None = Field(None, description="an image-sequence source: pattern, first and last "
                                            "frame numbers, missing numbers (gaps, held from the frame before), "
                                            "the first frame's header, timecode, encoding (infra.pipeline.scans)")
    audio: dict[str, Any] | None = Field(None, description="separate sound (--audio): name, sha256, key, codec, "
                                         "rate, channels, samples, offset (seconds, num/den) and where it came "
                                         "from, length mismatch")

    @property
    def audio_offset(self) -> Fraction:
        """Seconds the separate sound starts after the first frame (0 without one)."""
        return Fraction((self.audio or {}).get("offset", "0"))

    def model_post_init(self, _: Any) -> None:
        validate_title_id(self.title)

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def color_info(self) -> ColorInfo:
        """The source's colour description (an old record without its bit depth: the mezzanine's)."""
        return ColorInfo(**{**self.color, "bit_depth": self.color.get("bit_depth", self.bit_depth)})

    @property
    def work_prefix(self) -> str:
        return work_prefix(self.title, self.source_sha256, self.video_stream if self.stream_chosen else None)


class SegmentRecord(BaseModel):
    """One restored piece of a shot, stored as a lossless 16-bit segment (FFV1, encoded as the archival
    master is: publishing copies its packets), with the same frames encoded for the other masters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str
    shot: int
    part: int
    start: int
    end: int
    width: int
    height: int
    reports: list[dict[str, Any]] = Field(default_factory=list, description="one small report per stage")
    master_parts: dict[str, str] = Field(default_factory=dict,
                                         description="codec -> key of these frames encoded for that master "
                                                     "(every master but FFV1, whose part is the segment)")
    qc: dict[str, Any] | None = Field(None, description="QC numbers of the piece, measured while its frames "
                                                         "were in memory (models.qc.measure_piece)")
    qc_key: str | None = Field(None, description="key of the piece's QC pictures (.npz)")
    timing_s: dict[str, float] = Field(default_factory=dict,
                                       description="wall seconds of the restore: read, chain, segment, "
                                                   "parts, qc, store (what the piece cost, for operators)")
    reused: bool = Field(False, description="true when an identical earlier output was found and kept")
    encoding: Literal["working", "source"] = Field(
        "working", description="what the segment holds: working-space R'G'B', or the scan's own code values "
                               "(a log scan whose archival master keeps log; infra.pipeline.scans)")
