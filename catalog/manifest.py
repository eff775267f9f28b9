"""The publication manifest: the single source of truth that a title version is published.

Written last, once, by a conditional create. Everything a later audit needs
is in it: what went in (source checksum and probe), how (recipe, stage
versions and parameters, per-shot pieces), what QC said, who decided, and the
checksum of every output.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "reel.manifest/1"


class OutputRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="path relative to the version folder")
    sha256: str
    size_bytes: int
    kind: str = Field(description="master, delivery, qc-report, qc-report-html, qc-image, qc-contact-sheet, "
                                  "grade-lut, shot-list-otio (shots.otio), shot-list-edl (shots.edl, CMX 3600), "
                                  "master-frame (one frame of a dpx/tiff/exr sequence master), sound (the "
                                  "separate sound, untouched)")
    codec: str | None = None


class SourceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="file name the source was ingested from")
    sha256: str
    size_bytes: int
    key: str = Field(description="storage key of the untouched original")
    frames: int
    fps: str
    width: int
    height: int
    bit_depth: int
    audio_streams: int
    streams: list[dict[str, Any]] = Field(default_factory=list, description="every stream of the source: index, "
                                                                           "type, codec (and size or sound)")
    video_stream: int | None = Field(None, description="container index of the video stream restored")
    truncated: dict[str, Any] | None = Field(None, description="set when a source cut short was accepted "
                                                               "(accept_truncated): frames_missing, "
                                                               "video_seconds_missing, audio_seconds_missing")
    sequence: dict[str, Any] | None = Field(None, description="an image-sequence source: pattern, frame numbers, "
                                            "missing numbers, header (bits, transfer, byte order, timecode), "
                                            "encoding and its OCIO conversion")
    audio: dict[str, Any] | None = Field(None, description="separate sound: name, sha256, codec, rate, channels, "
                                         "samples, offset and where it came from, length mismatch")


class ShotRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shot: int
    start_frame: int
    end_frame: int
    start_timecode: str
    kind: str = Field("shot", description="shot, or a transition kept whole: fade_out, fade_in, dissolve")
    segments: list[str] = Field(description="storage keys of the restored pieces, in order")
    overrides: list[str] = Field(default_factory=list, description="stage parameters changed for this shot "
                                                                   "(stage.param=value) by a rerun or review")
    stage_reports: list[dict[str, Any]] = Field(default_factory=list)
    harm: dict[str, Any] | None = Field(None, description="the harm guard's findings for this shot: what moved "
                                        "away from the source, the stages dropped for it and why, and whether "
                                        "the fallback cleared it")
    manual: dict[str, Any] | None = Field(None, description="the shot is an artist's work taken back (reel takeback): "
                                          "by, at, note, takeback and handoff ids, what it was made over, the format "
                                          "returned and the sha256 of every returned frame file")
    manual_replaced: dict[str, Any] | None = Field(None, description="the shot had an artist's work, and this version "
                                                   "restored it by machine again (a rerun or review named it): the "
                                                   "manual work it replaced")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: str = Field(SCHEMA, alias="schema")
    title: str
    version: str
    created_utc: str
    reel_version: str
    source: SourceRecord
    recipe: dict[str, Any] = Field(description="the recipe as given, plus its chain hash")
    stages: list[dict[str, Any]] = Field(description="name, version and full parameters of each stage, in order")
    output_size: list[int]
    shots: list[ShotRecord]
    qc: dict[str, Any]
    review: dict[str, Any]
    outputs: list[OutputRecord] = Field(description="the first output is the restored archival master")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)
