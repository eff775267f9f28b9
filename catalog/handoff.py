"""Shots handed to an artist and taken back (issue 23): the sidecar, the takeback record and the rules
that check returned frames against the sidecar. Pure data and rules, no I/O.

A handoff gives an artist, per shot, the source frames and Reel's restored frames as image sequences
with handles, and a sidecar (`reel-handoff.json`) naming the title, the version, the shot, its frame
range, the source's checksum, the recipe and the format. The artist returns the shot's folder with their
frames in place of Reel's restored ones; `reel takeback` checks them against the sidecar (and the sidecar
against Reel's own record of the handoff) before anything is stored.

Frame numbers in file names are the film's frame indices (0-based, as in the shot table), so a file
names the same frame in every tool and in every shot's folder.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from catalog.ids import validate_title_id

SIDECAR = "reel-handoff.json"  # in each shot's folder
SIDECAR_SCHEMA: Literal["reel.handoff/1"] = "reel.handoff/1"
MANUAL_SCHEMA: Literal["reel.manual/1"] = "reel.manual/1"
SOURCE_DIR = "source"  # the shot's source frames (read-only for the artist)
RESTORED_DIR = "restored"  # Reel's restored frames; the artist puts theirs here in their place
HANDOFF_FORMATS = ("dpx", "tiff", "exr")
DEFAULT_BITS = {"dpx": 16, "tiff": 16, "exr": 16}  # 16-bit integer (lossless for Reel's frames); EXR half
# What the numbers in an EXR hand-off mean: Reel's working space is display-referred BT.709 R'G'B'; EXR
# holds linear light, so EXR frames carry R'G'B' ** 2.4 (the BT.1886 EOTF with a zero black level) and
# are brought back with the inverse on takeback.
EXR_GAMMA = 2.4
TRANSFERS = {"dpx": "display", "tiff": "display", "exr": "linear"}
DPX_TRANSFER = "ITU-R 709-4"  # written into DPX headers (display-referred video)
ID_PATTERN = r"^[0-9a-f]{12}$"


class HandoffError(ValueError):
    """Returned frames (or their sidecar) do not match what was handed off: one line, nothing stored."""


def folder_name(title: str, shot: int) -> str:
    """The shot's folder in a handoff: `<title>-shot0003`."""
    return f"{title}-shot{shot:04d}"


def sequence_stem(title: str, shot: int, which: Literal["source", "restored"]) -> str:
    """File stem of a shot's sequence: `<title>-shot0003` (restored) or `<title>-shot0003-src` (source)."""
    return folder_name(title, shot) + ("-src" if which == "source" else "")


class FrameFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    number: int = Field(ge=0, description="the film's frame index")
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SequenceSpec(BaseModel):
    """One image sequence of a handoff: where, how encoded, and every file's checksum."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    folder: str = Field(description="folder inside the shot's folder")
    pattern: str = Field(description="printf-style file name, e.g. film-shot0003.%07d.dpx")
    kind: Literal["dpx", "tiff", "exr"]
    bits: int
    sample: Literal["uint8", "uint16", "half", "float"]
    transfer: Literal["display", "linear"] = Field(description="display: BT.709 R'G'B' code values; "
                                                               "linear: R'G'B' ** 2.4 (EXR)")
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    channels: Literal[3] = 3
    files: list[FrameFile]

    def numbers(self) -> list[int]:
        return [f.number for f in self.files]

    def describe(self) -> str:
        kind = {"uint8": "", "uint16": "", "half": " half", "float": " float"}[self.sample]
        return f"{self.width}x{self.height} {self.bits}-bit{kind} RGB {self.kind.upper()}"


class Sidecar(BaseModel):
    """`reel-handoff.json`: what one shot's handoff holds and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    schema_: Literal["reel.handoff/1"] = Field(SIDECAR_SCHEMA, alias="schema")
    handoff: str = Field(pattern=ID_PATTERN, description="id of the handoff (Reel keeps a record of it)")
    title: str
    version: str | None = Field(description="the published version the restored frames come from (None: handed "
                                            "off from a run's review, before publishing)")
    run: str | None = Field(None, description="the Prefect flow run that handed it off, if any")
    shot: int = Field(ge=0)
    start_frame: int = Field(ge=0, description="the shot's first frame")
    end_frame: int = Field(description="one past the shot's last frame")
    first_frame: int = Field(ge=0, description="the first frame handed off (start_frame - handles)")
    last_frame: int = Field(description="one past the last frame handed off (end_frame + handles)")
    handles: int = Field(ge=0, description="handles asked for (fewer at the film's ends)")
    fps: str
    start_timecode: str = Field(description="timecode of the film's frame 0")
    source: dict[str, Any] = Field(description="name, sha256 (the source's checksum), key of the stored original")
    recipe: dict[str, Any] = Field(description="name, chain_hash, stages (name, version, params) and masters")
    source_frames: SequenceSpec
    restored_frames: SequenceSpec
    created_utc: str

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        return validate_title_id(v)

    @model_validator(mode="after")
    def _ranges(self) -> Sidecar:
        if not self.first_frame <= self.start_frame < self.end_frame <= self.last_frame:
            raise ValueError("frame range: need first_frame <= start_frame < end_frame <= last_frame")
        want = list(range(self.first_frame, self.last_frame))
        for seq in (self.source_frames, self.restored_frames):
            if seq.numbers() != want:
                raise ValueError(f"{seq.folder}: files must number frames {self.first_frame}..{self.last_frame - 1}")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"


class HandoffRecord(BaseModel):
    """Reel's own record of a handoff (stored under the source's work folder): its sidecars, so a returned
    sidecar can be checked against what was really handed off."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    handoff: str = Field(pattern=ID_PATTERN)
    title: str
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    version: str | None
    run: str | None = None
    shots: list[int]
    format: dict[str, Any]
    handles: int
    created_utc: str
    folder: str = Field(description="where the folders were written (as given; informational)")
    sidecars: dict[str, dict[str, Any]] = Field(description="shot number -> its sidecar (as JSON)")


def frames_digest(files: list[FrameFile]) -> str:
    """The identity of a set of returned frames (part of the version id): their numbers and checksums."""
    blob = json.dumps([[f.number, f.sha256] for f in files], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ManualRecord(BaseModel):
    """A shot taken back from an artist: their frames, stored as the shot's restored result.

    `status` is "current" while publishes use it; "replaced" once a run asked the machine for the shot
    again (`reel rerun --shots N`, or a review's redo): from then on runs restore it by machine."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    schema_: Literal["reel.manual/1"] = Field(MANUAL_SCHEMA, alias="schema")
    takeback: str = Field(pattern=ID_PATTERN)
    handoff: str = Field(pattern=ID_PATTERN)
    title: str
    shot: int
    start_frame: int
    end_frame: int
    source_sha256: str
    by: str = Field(min_length=1, max_length=120)
    at: str
    note: str = Field("", max_length=4000)
    over: dict[str, Any] = Field(description="what the artist worked over: version, recipe chain hash")
    format: str = Field(description="the returned frames, e.g. 64x48 16-bit RGB TIFF")
    frames: list[FrameFile] = Field(description="sha256 of every returned frame file of the shot, in order")
    digest: str = Field(description="frames_digest(frames): joins the version id")
    segments: list[dict[str, Any]] = Field(description="the shot's stored pieces (catalog.records.SegmentRecord)")
    status: Literal["current", "replaced"] = "current"
    replaced: dict[str, Any] | None = Field(None, description="when and by which run the machine took it back")

    @field_validator("by")
    @classmethod
    def _by(cls, v: str) -> str:
        return person_name(v)

    def manifest_doc(self) -> dict[str, Any]:
        """What the manifest's shot record keeps (`manual`, or `manual_replaced`)."""
        doc = {"by": self.by, "at": self.at, "note": self.note, "takeback": self.takeback, "handoff": self.handoff,
               "over": self.over, "format": self.format, "digest": self.digest,
               "frames": [{"number": f.number, "sha256": f.sha256} for f in self.frames]}
        if self.replaced:
            doc["replaced"] = self.replaced
        return doc


def person_name(v: str) -> str:
    """Who did the work, as the manifest keeps it: printable, spaces collapsed, at most 120 characters."""
    v = " ".join(str(v).split())
    if not v or len(v) > 120 or any(not c.isprintable() for c in v):
        raise HandoffError("--by must be a printable name of at most 120 characters")
    return v


def expected_numbers(sidecar: Sidecar, found: list[int]) -> list[int]:
    """The frames the returned sequence must hold: the handed range (handles included) or exactly the shot's
    frames; HandoffError otherwise, naming what is missing or extra."""
    handed = list(range(sidecar.first_frame, sidecar.last_frame))
    shot = list(range(sidecar.start_frame, sidecar.end_frame))
    if found in (handed, shot):
        return found
    got, want = set(found), set(handed)
    extra = sorted(got - want)
    missing = sorted(set(shot) - got) or sorted(want - got)
    if extra:
        return _fail(f"{len(found)} frames returned, {_span(extra)} outside the {len(handed)} handed off "
                     f"({sidecar.first_frame}-{sidecar.last_frame - 1})")
    return _fail(f"{len(found)} frames returned, expected {len(handed)} (frames {sidecar.first_frame}-"
                 f"{sidecar.last_frame - 1}) or the shot's {len(shot)} ({sidecar.start_frame}-{sidecar.end_frame - 1}); "
                 f"missing {_span(missing)}")


def check_frame(sidecar: Sidecar, name: str, info: dict[str, Any]) -> None:
    """One returned frame's header (infra.sequence.FrameInfo as a dict) against the sidecar: format, sample
    type, bit depth, size and channels. HandoffError naming the file and both descriptions."""
    want = sidecar.restored_frames
    plugin = {"dpx": "dpx", "tiff": "tiff", "exr": "openexr"}[want.kind]
    problems = []
    if info["format"] != plugin:
        problems.append(f"{info['format']} instead of {want.kind}")
    if (info["width"], info["height"]) != (want.width, want.height):
        problems.append(f"{info['width']}x{info['height']} instead of {want.width}x{want.height}")
    if info["sample"] != want.sample or info["bits"] != want.bits:
        problems.append(f"{info['bits']}-bit {info['sample']} instead of {want.bits}-bit {want.sample}")
    if info["channels"] != want.channels:
        problems.append(f"{info['channels']} channels instead of {want.channels} (RGB)")
    if problems:
        _fail(f"frame {name}: {'; '.join(problems)} (the handoff is {want.describe()})")


def open_shots(handoffs: list[HandoffRecord], manual: list[ManualRecord]) -> dict[int, HandoffRecord]:
    """Shots with an artist now: {shot: its newest handoff} for shots whose newest handoff has no takeback."""
    newest: dict[int, HandoffRecord] = {}
    for h in sorted(handoffs, key=lambda h: h.created_utc):
        for shot in h.shots:
            newest[shot] = h
    back = {(m.shot, m.handoff) for m in manual}
    return {shot: h for shot, h in sorted(newest.items()) if (shot, h.handoff) not in back}


def _span(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    runs, start = [], numbers[0]
    for a, b in zip(numbers, [*numbers[1:], None], strict=True):
        if b != a + 1:
            runs.append(str(start) if start == a else f"{start}-{a}")
            start = b  # type: ignore[assignment]
    return "frames " + ", ".join(runs[:6]) + (" ..." if len(runs) > 6 else "")


def _fail(message: str) -> Any:
    raise HandoffError(message)

