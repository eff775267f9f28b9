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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from models.clip import Clip


class StageParams(BaseModel):
    """Base for stage parameters: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)

    @property
    def context_frames(self) -> int:
        """Frames of temporal context needed on each side (0 for spatial stages)."""
        return 0

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
        return {"name": self.name, "version": self.version, "params": self.params.model_dump(mode="json")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({args})"
