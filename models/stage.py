"""The restoration stage contract.

A stage is a small object (after PySceneDetect's detectors): parameters are
validated on construction (a pydantic model, so `reel stages` can list them and
`--set key=value` can parse them), `__call__(clip) -> clip` is pure, and two
class attributes tell the orchestrator what it needs to know:

- `version`: bump whenever the stage's output changes; it is part of every
  storage key, so cached segments made by an older version are never reused.
- `context_frames`: how many frames of temporal context the stage reads on
  each side of a frame. The chunker supplies that many halo frames (inside the
  same shot only) and drops them from the output.
- `frame_factor`: output frames per input frame (1 unless the stage changes
  the frame rate, as `interpolate` does); see the property.

Some stages need data no chunk can see: a per-shot colour correction needs the
whole shot's statistics, a grade needs the LUT learned from reference frames.
That is one declared hook, the per-shot preparation: `shot_analysis` stages get
`analyse(clip)` on frames sampled from the whole shot (or on a run of
consecutive frames from its middle where `analysis_run` asks for one), and once
per film `prepare(shots)` turns what is known of every shot (`ShotFacts`: its
analysis, the grade the title gives it) into the data to bind to the stage for
each shot (by default a shot-analysis stage's `solve`d statistics, nothing for
the others). The data is handed over with `bind(**data)`, which returns a new
stage; `spec()` then carries a digest of the bound data, so it is part of every
storage key exactly like a parameter. The flow, `reel stage` and the benchmarks
prepare stages this way (`catalog.bindings.prepare_shots`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from models.clip import Clip

ANALYSIS_SAMPLES = 12  # frames sampled across a shot for `analyse` (unless the stage asks for a run)
ANALYSIS_MAX_SIDE = 640  # frames given to `analyse` are subsampled to at most this many pixels a side


def analysis_step(height: int, width: int) -> int:
    """The subsampling step (every step-th row and column) that brings a frame to at most
    ANALYSIS_MAX_SIDE pixels a side for `Stage.analyse` (the same for every frame of a film)."""
    return max(1, int(np.ceil(max(height, width) / ANALYSIS_MAX_SIDE)))


@dataclass(frozen=True)
class Look:
    """The grade a title gives a shot: a labelled 3D LUT ((N, N, N, 3) float32), or no LUT ("ungraded")."""

    label: str
    lut: np.ndarray | None


@dataclass(frozen=True)
class ShotFacts:
    """What is known of one shot when the stages are prepared for it (`Stage.prepare`).

    shot, start, end: the shot's number and frames [start, end);
    analysis: this stage's `analyse` of the shot's frames (shot-analysis stages; else None);
    look: the grade the title gives the shot (None: nothing is known of grades here, e.g. `reel stage`)."""

    shot: int
    start: int
    end: int
    analysis: dict[str, Any] | None = None
    look: Look | None = None


class StageParams(BaseModel):
    """Base for stage parameters: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    # True: the flow calls analyse() on frames sampled from the whole shot and binds the result.
    shot_analysis: ClassVar[bool] = False
    # > 0: analyse() wants up to this many consecutive frames from the middle of the shot (a motion
    # trajectory) instead of frames sampled across it
    analysis_run: ClassVar[int] = 0

    def analysis_frames(self, start: int, end: int, samples: int = ANALYSIS_SAMPLES) -> list[int]:
        """The frames of the shot [start, end) that `analyse` is given."""
        n = end - start
        if self.analysis_run > 0:
            a = start + max(0, (n - self.analysis_run) // 2)
            return list(range(a, min(end, a + self.analysis_run)))
        return [int(f) for f in np.unique(np.linspace(start, end - 1, min(samples, n)).round().astype(int))]

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)
        self.bound: dict[str, Any] = {}

    def analyse(self, clip: Clip) -> dict[str, Any]:
        """Statistics of a whole shot (JSON-able), from `clip` = frames sampled across it."""
        raise NotImplementedError(f"stage {self.name!r} has no shot analysis")

    def solve(self, shots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every shot's statistics (one `analyse` result each, in film order) -> what each shot's pieces
        are given (e.g. a correction pooled over the film). Default: each shot's own."""
        return list(shots)

    def prepare(self, shots: Sequence[ShotFacts]) -> list[dict[str, Any]]:
        """The per-shot preparation hook: the data to `bind` to this stage for each shot (one dict per shot,
        in order; {}: nothing), from what is known of every shot of the film. Called once per film, after
        the shot analysis. Default: a shot-analysis stage's solved statistics ({"stats": ...}), nothing for
        the other stages."""
        if not self.shot_analysis:
            return [{} for _ in shots]
        missing = [f.shot for f in shots if f.analysis is None]
        if missing:
            raise ValueError(f"stage {self.name!r} needs the shot analysis of shots {missing}")
        return [{"stats": stats} for stats in self.solve([f.analysis for f in shots if f.analysis is not None])]

    def bind(self, **data: Any) -> Stage:
        """A copy of this stage with `data` (JSON-able values or numpy arrays) bound to it."""
        other = copy.copy(self)
        other.bound = {**self.bound, **data}
        return other

    @property
    def context_frames(self) -> int:
        """Frames of temporal context needed on each side (0 for spatial stages)."""
        return 0

    @property
    def frame_factor(self) -> int:
        """Output frames per input frame (1 for all but frame-rate changers).

        With factor k, `process` turns a clip of N frames into exactly k*N frames at k times the
        frame rate: output frame k*i is derived from input frame i, frames k*i+1 .. k*i+k-1 lie
        between input frames i and i+1 (or hold frame i where it has no successor); the returned
        clip has fps k*fps and first_frame k*first_frame (output numbering). The orchestrator
        plans pieces on input frames and keeps output frames (start - read_start)*k .. (end - read_start)*k.
        A stage with k > 1 must read at least one frame of context (the successor of a piece's last frame).
        """
        return 1

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the output for an input of this size."""
        return width, height

    @abstractmethod
    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        """Restore `clip`; return the new clip and a small JSON-able report for QC."""

    def __call__(self, clip: Clip) -> Clip:
        return self.process(clip)[0]

    def spec(self) -> dict[str, Any]:
        """What identifies this stage's output: name, version and every parameter."""
        spec = {"name": self.name, "version": self.version, "params": self.params.model_dump(mode="json")}
        if self.bound:
            spec["bound"] = bound_digest(self.bound)
        return spec

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({args})"


def bound_digest(data: dict[str, Any]) -> str:
    """16 hex digits identifying bound data; arrays count by dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(data):
        value = data[key]
        h.update(key.encode() + b"\0")
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
