"""Recipes: the ordered stages (with parameters) and masters a title is restored with.

A recipe's identity is the hash of every stage's name, version and
parameters: it is part of every restored segment's storage key, so changing a
parameter or bumping a stage version makes new segments, and nothing else does.
Parsing only: reading files is the caller's job (this ring does no I/O).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from catalog.harm import HarmLimits, HarmPolicy
from models.registry import STAGES, make_stage
from models.stage import Stage

MasterCodec = Literal["ffv1", "prores", "dpx", "tiff", "exr"]
DEFAULT_MASTERS: tuple[MasterCodec, ...] = ("ffv1", "prores")
SEQUENCE_MASTER_CODECS = ("dpx", "tiff", "exr")  # published as a frame sequence per version
GRADE_STAGE = "grade"  # the stage a recipe's grade section (or a .cube) feeds


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="stage name, see `reel stages`")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters overriding the stage defaults")

    @model_validator(mode="after")
    def _known(self) -> StageSpec:
        stage = make_stage(self.name, self.params)  # raises ValueError on unknown stage or bad params
        factor = getattr(stage, "frame_factor", 1)
        if factor != 1:
            raise ValueError(
                f"{self.name} with {factor} output frames per input frame changes the frame rate, which a "
                f"title recipe does not do: masters keep the source's frames (QC compares them frame by "
                f"frame, the sound stays in sync). Rebuilding damaged or repeated frames keeps the rate "
                f"(factor=1); convert a published master with `reel stage {self.name} MASTER OUT "
                f"--set factor={factor}`")
        return self


class QCThresholds(BaseModel):
    """Per-shot QC limits; a shot outside any of them is marked "review" (None: not checked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_ssim: float = Field(0.6, ge=0, le=1, description="structure kept vs source (luma SSIM) below this -> review")
    max_warping_error: float | None = Field(
        None, ge=0, description="temporal instability of the restored shot (flow warping error, 0-1 scale) "
                                "above this -> review")
    max_warping_error_ratio: float | None = Field(
        None, gt=0, description="restored warping error / the source's above this -> review (1.0: no less "
                                "stable than the source)")
    max_colour_shift_de00: float | None = Field(
        None, ge=0, description="mean CIEDE2000 colour change vs the source above this -> review")
    max_flicker_restored: float | None = Field(
        None, ge=0, description="flicker index of the restored shot (0-1 luma scale) above this -> review")


class GradeReference(BaseModel):
    """Frames a colourist graded by hand: the same file names in two folders, or a shot an artist graded and
    that was taken back (`manual_shot`: its source and returned frames, sampled, are the pairs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    originals: str | None = Field(None, min_length=1,
                                  description="folder of original frames (PNG/TIFF, as the grade stage sees them)")
    graded: str | None = Field(None, min_length=1, description="folder of the same frames after grading, same file names")
    manual_shot: int | None = Field(None, ge=0, description="learn from this shot's manual work (reel takeback): "
                                                            "sampled (source, artist) frame pairs")
    shots: list[int] | None = Field(None, description="shot numbers this grade is for; omitted: every other shot")
    label: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                              description="name of the grade in the manifest (default grade1, grade2, ...)")

    @field_validator("shots")
    @classmethod
    def _shots(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(s < 0 for s in v) or len(set(v)) != len(v)):
            raise ValueError("shots must list distinct shot numbers >= 0")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> GradeReference:
        folders = self.originals is not None and self.graded is not None
        if self.manual_shot is not None and (self.originals is not None or self.graded is not None):
            raise ValueError("a grade reference is either folders (originals, graded) or a manual_shot, not both")
        if self.manual_shot is None and not folders:
            raise ValueError("a grade reference needs 'originals' and 'graded' folders, or 'manual_shot'")
        return self


class GradeSection(BaseModel):
    """Learned grades for a title: one reference set per shot group (at most one for 'every other shot')."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    references: list[GradeReference] = Field(min_length=1)
    size: int = Field(33, ge=9, le=65, description="LUT lattice size (33 is what grading tools use)")

    @model_validator(mode="after")
    def _groups(self) -> GradeSection:
        if sum(r.shots is None for r in self.references) > 1:
            raise ValueError("only one grade reference may omit 'shots' (it covers every other shot)")
        named = [s for r in self.references for s in (r.shots or [])]
        if len(named) != len(set(named)):
            raise ValueError("a shot is named by two grade references")
        labels = [r.label.lower() for r in self.references if r.label]  # file names: case-insensitive disks
        if len(labels) != len(set(labels)):
            raise ValueError("grade labels must be distinct (ignoring case)")
        return self

    def labelled(self) -> list[tuple[str, GradeReference]]:
        return [(r.label or f"grade{i + 1}", r) for i, r in enumerate(self.references)]

    def label_for_shot(self, shot: int) -> str | None:
        """Which grade applies to `shot` (None: the shot is not graded)."""
        default = None
        for label, ref in self.labelled():
            if ref.shots is None:
                default = label
            elif shot in ref.shots:
                return label
        return default


class ArtistOptions(BaseModel):
    """Shots handed to an artist from the review form (`send to artist`). Nothing here changes the chain hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["dpx", "tiff", "exr"] = Field("dpx", description="frame files of the handoff")
    bits: int | None = Field(None, description="bits per sample (default 16: lossless for Reel's frames; EXR half)")
    handles: int = Field(8, ge=0, le=240, description="frames handed off before and after each shot")
    while_away: Literal["wait", "publish"] = Field(
        "wait", description="wait: the run waits until the shots are taken back (reel takeback), then asks for a "
                            "review of them; publish: the run publishes the other shots' work now (the handed-off "
                            "shots as the machine restored them), and a later restore publishes the artist's")


class SourceOptions(BaseModel):
    """How the source is read. No option changes what the stages do (the chain hash)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    accept_truncated: bool = Field(False, description="restore a source that stops short of the duration its "
                                                      "container declares (refused by default); the manifest "
                                                      "records the frames and sound missing")
    stream: int | None = Field(None, ge=0, description="container index of the video stream to restore "
                                                       "(default: the first video stream)")
    start_timecode: str = Field("00:00:00:00", pattern=r"^\d{2}:[0-5]\d:[0-5]\d:\d{2}$",
                                description="the source's timecode at its first frame (HH:MM:SS:FF, non-drop-frame "
                                            "at the rounded rate), for the published shot lists (shots.otio, "
                                            "shots.edl); a version with another start timecode is another version. "
                                            "Left at 00:00:00:00, a DPX/EXR sequence's header timecode is used")
    audio: str | None = Field(None, min_length=1, max_length=4096,
                              description="separate sound (WAV/BWF) for the picture, e.g. a film scan's: a local "
                                          "path under the source roots; carried bit-identically into the masters")
    audio_offset: float | None = Field(None, ge=-86400, le=86400,
                                       description="seconds the sound starts after the first frame (negative: "
                                                   "before it); default: from the BWF time reference against the "
                                                   "picture's start timecode, else 0")
    fps: str | None = Field(None, pattern=r"^\d{1,5}(/\d{1,5})?$|^\d{1,5}\.\d{1,6}$",
                            description="frame rate of an image sequence (16, 18, 24, 24000/1001, 23.976): "
                                        "overrides its headers; needed when they give none")
    gaps: Literal["hold", "refuse"] = Field(
        "hold", description="frame numbers missing from an image sequence: hold (the frame before stands in, the "
                            "sound stays in sync, QC reports them and offers them to interpolate's "
                            "rebuild_frames) or refuse")
    encoding: Literal["auto", "log", "display", "linear"] = Field(
        "auto", description="what an image sequence's code values are: auto (DPX printing density/logarithmic "
                            "-> log, EXR -> linear, else display), log (Cineon printing density), display "
                            "(BT.709 R'G'B', used as they are), linear (scene-linear BT.709)")
    ocio_config: str | None = Field(None, min_length=1, max_length=4096,
                                    description="OpenColorIO config for log/linear scans (a file, or ocio:// "
                                                "built-in); default: REEL_OCIO_CONFIG, else Reel's built-in "
                                                "Cineon conversion (infra/scan_colour.py)")
    master_encoding: Literal["source", "working"] = Field(
        "source", description="the archival masters of a log or linear scan: source (the scan's encoding, log "
                              "stays log) or working (BT.709 R'G'B' as the stages saw it)")


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="recipe name")
    stages: list[StageSpec] = Field(default_factory=list, description="stages in the order they run")
    masters: list[MasterCodec] = Field(default_factory=lambda: list(DEFAULT_MASTERS),
                                       description="masters to publish; the first is the archival master")
    qc: QCThresholds = Field(default_factory=QCThresholds)
    grade: GradeSection | None = Field(None, description="reference pairs the 'grade' stage learns its LUTs from")
    review: Literal["on-fail", "always"] = Field(
        "on-fail", description="when a run with the review gate on pauses for a person: only when a shot fails "
                               "QC, or always")
    on_harm: HarmPolicy = Field(
        "fallback", description="a shot restored further from its source than restoration justifies (see "
        "`harm`): fallback = restore it again without the stage that did it (the manifest says which and "
        "why); review = mark it for a person; off = no check")
    harm: HarmLimits = Field(default_factory=HarmLimits)
    source: SourceOptions = Field(default_factory=SourceOptions, description="how the source is read")
    artist: ArtistOptions = Field(default_factory=ArtistOptions, description="handing shots to an artist from review")

    @model_validator(mode="after")
    def _grade_needs_stage(self) -> Recipe:
        names = [s.name for s in self.stages]
        if self.grade is not None and GRADE_STAGE not in names:
            raise ValueError("the recipe names grade references but has no 'grade' stage")
        if GRADE_STAGE in names:
            spec = self.stages[names.index(GRADE_STAGE)]
            if self.grade is None and not spec.params.get("cube"):
                raise ValueError("the 'grade' stage needs a 'grade' section with reference pairs, or cube=FILE")
            if self.grade is not None and "colour" in names:
                raise ValueError("a learned grade replaces the automatic 'colour' correction (its reference "
                                 "frames are uncorrected): drop 'colour' from this recipe")
        if names.count(GRADE_STAGE) > 1:
            raise ValueError("a recipe has at most one 'grade' stage")
        return self

    def grade_cube(self) -> str | None:
        """The .cube file the grade stage is given (`cube=FILE`), when the recipe has no grade section."""
        if self.grade is not None:
            return None
        spec = next((s for s in self.stages if s.name == GRADE_STAGE), None)
        return str(spec.params["cube"]) if spec is not None and spec.params.get("cube") else None

    def with_paths(self, fix: Callable[[str], str]) -> Recipe:
        """This recipe with every file reference (grade reference folders, the grade stage's .cube) passed
        through `fix` (e.g. made absolute), validated again."""
        data = self.model_dump(mode="json")
        for st in data["stages"]:
            if st["name"] == GRADE_STAGE and st["params"].get("cube"):
                st["params"]["cube"] = fix(st["params"]["cube"])
        if data.get("grade"):
            for ref in data["grade"]["references"]:
                if ref.get("originals") is not None:  # folders (else the pairs come from a shot's manual work)
                    ref["originals"], ref["graded"] = fix(ref["originals"]), fix(ref["graded"])
        return Recipe.model_validate(data)

    @field_validator("stages", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return [{"name": s} if isinstance(s, str) else s for s in (v or [])]

    @field_validator("masters")
    @classmethod
    def _masters(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("masters must list at least one codec, each once")
        return v

    def build(self) -> list[Stage]:
        """Fresh stage objects, in order."""
        return [make_stage(s.name, s.params) for s in self.stages]

    def chain(self) -> list[dict[str, Any]]:
        """Name, version and full parameters (defaults filled in) of every stage."""
        return [stage.spec() for stage in self.build()]

    def chain_hash(self) -> str:
        """16 hex digits identifying what the stages do (not the masters or QC thresholds)."""
        blob = json.dumps(self.chain(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> Recipe:
        """This recipe with some stages' parameters changed ({stage: {param: value}}), validated: a stage
        the recipe does not run, or a bad parameter, is a ValueError naming it."""
        if not overrides:
            return self
        names = [s.name for s in self.stages]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"override for stage {unknown[0]!r}, which recipe {self.name!r} does not run "
                             f"(its stages: {', '.join(names) or 'none'})")
        stages = []
        for spec in self.stages:
            params = {**spec.params, **overrides.get(spec.name, {})}
            try:
                stages.append(StageSpec(name=spec.name, params=params))
            except Exception as e:
                raise ValueError(f"override for {spec.name}: {error_summary(e)}") from None
        return self.model_copy(update={"stages": stages})

    def without(self, names: list[str]) -> Recipe:
        """This recipe without the named stages (the harm guard's fallback)."""
        return self.model_copy(update={"stages": [s for s in self.stages if s.name not in set(names)]})

    def context_frames(self) -> int:
        """Halo a chunk needs: stages run one after another, so their contexts add up."""
        return sum(s.context_frames for s in self.build())

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        for s in self.build():
            width, height = s.output_size(width, height)
        return width, height


# The order restorers use: steady the picture, even its brightness, then remove what is on one
# frame (dust) or a run of frames (line scratches), and manage grain last, on clean frames;
# colour is corrected on the clean frames, per shot.
DEFECTS = ("stabilise", "deflicker", "dust", "scratch", "denoise")

BUILTIN_RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(name="identity", stages=[]),
        Recipe(name="defects", stages=[*DEFECTS]),
        Recipe(name="colour", stages=[*DEFECTS, "colour"]),
        Recipe(name="default", stages=[*DEFECTS, "colour", {"name": "upscale", "params": {"scale": 2.0}}]),
        Recipe(name="uhd", stages=[*DEFECTS, "colour", {"name": "upscale", "params": {"target": "uhd"}}]),
    )
}


MAX_RECIPE_BYTES = 2**20  # a recipe is a page of text; infra.settings.recipe_max_bytes sets the file limit


def parse_recipe(text: str, fmt: str, max_bytes: int = MAX_RECIPE_BYTES) -> Recipe:
    """Parse recipe text in 'yaml' or 'toml'; errors are ValueErrors with one line. Text longer than
    `max_bytes` (UTF-8) is refused before parsing (a YAML parser takes minutes over tens of MB)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"recipe is {size} bytes, more than the limit of {max_bytes} (REEL_RECIPE_MAX_BYTES)")
    try:
        data = tomllib.loads(text) if fmt == "toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"recipe is not valid {fmt}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError("recipe must be a mapping with 'name' and 'stages'")
    try:
        return Recipe.model_validate(data)
    except Exception as e:
        raise ValueError(f"invalid recipe: {error_summary(e)}") from None


OVERRIDE_PATTERN = re.compile(r"([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)=(.*)", re.DOTALL)


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """['dust.threshold=0.2', 'denoise.grain=keep'] -> {'dust': {'threshold': 0.2}, 'denoise': {'grain': 'keep'}}.

    Values are YAML scalars (numbers, booleans, strings); a value that parses to a list or mapping is refused.
    Which stages and parameters exist is checked by `Recipe.with_overrides`.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        m = OVERRIDE_PATTERN.fullmatch(item.strip()) if isinstance(item, str) else None
        if not m:
            raise ValueError(f"override {str(item)[:80]!r}: use stage.param=value (e.g. dust.threshold=0.2)")
        stage, param, text = m.groups()
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ValueError(f"override {item[:80]!r}: the value is not a scalar") from None
        if isinstance(value, (list, dict)):
            raise ValueError(f"override {item[:80]!r}: the value must be a number, boolean or word")
        if param in out.get(stage, {}) and out[stage][param] != value:
            raise ValueError(f"override {stage}.{param} given twice with different values")
        out.setdefault(stage, {})[param] = value
    return out


def format_overrides(overrides: dict[str, dict[str, Any]]) -> list[str]:
    """The inverse of `parse_overrides`, sorted (for manifests and run parameters)."""
    return [f"{stage}.{param}={json.dumps(value) if isinstance(value, str) else value}"
            for stage in sorted(overrides) for param, value in sorted(overrides[stage].items())]


def error_summary(e: Exception) -> str:
    """One line for a validation error: pydantic's errors as 'loc: msg; ...', else the first line."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, x['loc'])) + ': ' if x['loc'] else ''}{x['msg']}" for x in errors())
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def known_stage_names() -> list[str]:
    return sorted(STAGES)
