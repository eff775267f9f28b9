"""Per-shot stage data, typed: what each stage of a chain is bound with for one shot.

The per-shot preparation hook (`models.stage.Stage.prepare`) turns what is known of every shot of a film
(its analysis, the grade the title gives it) into data for each stage and shot; `prepare_shots` runs it
once over a film and returns one `ShotBindings` per shot, which the pieces of that shot apply to their
stages (`ShotBindings.apply`). The flow, `reel stage` and the benchmarks' plain loop all prepare stages
this way. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.stage import Look, ShotFacts, Stage


@dataclass(frozen=True)
class StageBinding:
    """The data bound to one stage of a chain (`Stage.bind(**data)`); {}: nothing."""

    stage: str  # the stage's name: checked against the chain the bindings are applied to
    data: Mapping[str, Any]


@dataclass(frozen=True)
class ShotBindings:
    """What each stage of a chain is bound with for one shot, in the chain's order."""

    shot: int
    stages: tuple[StageBinding, ...]

    @property
    def names(self) -> list[str]:
        return [b.stage for b in self.stages]

    def apply(self, stages: Sequence[Stage]) -> list[Stage]:
        """The stages with this shot's data bound (a stage with nothing to bind is returned as it is)."""
        if [s.name for s in stages] != self.names:
            raise ValueError(f"shot {self.shot}: bindings for stages {self.names} applied to "
                             f"{[s.name for s in stages]}")
        return [s.bind(**b.data) if b.data else s for s, b in zip(stages, self.stages, strict=True)]

    def without(self, names: Iterable[str]) -> ShotBindings:
        """These bindings without the named stages (a chain that leaves them out: the harm guard's fallback)."""
        drop = set(names)
        return ShotBindings(self.shot, tuple(b for b in self.stages if b.stage not in drop))

    @property
    def lut(self) -> np.ndarray | None:
        """The LUT bound to the chain for this shot (the grade the shot is meant to have), if any: QC
        measures the restored colour against the source under it."""
        for b in self.stages:
            if b.data.get("lut") is not None:
                return np.asarray(b.data["lut"])
        return None


def prepare_shots(stages: Sequence[Stage], shots: Iterable[tuple[int, int, int]],
                  analyses: Mapping[int, Mapping[int, dict[str, Any]]] | None = None,
                  looks: Mapping[int, Look] | None = None) -> dict[int, ShotBindings]:
    """Run every stage's per-shot preparation hook once over a film.

    shots: (shot, start, end) of every shot, in film order; analyses: {shot: {stage index: its `analyse`
    result}} for the shot-analysis stages; looks: {shot: the grade the title gives it} (None: no grades
    known). Returns {shot: ShotBindings}."""
    rows = [(int(s), int(a), int(b)) for s, a, b in shots]
    per_stage = []
    for i, stage in enumerate(stages):
        facts = [ShotFacts(shot, start, end, analysis=(analyses or {}).get(shot, {}).get(i),
                           look=(looks or {}).get(shot)) for shot, start, end in rows]
        data = stage.prepare(facts)
        if len(data) != len(rows):
            raise ValueError(f"stage {stage.name!r} prepared {len(data)} shots of {len(rows)}")
        per_stage.append(data)
    return {shot: ShotBindings(shot, tuple(StageBinding(stage.name, per_stage[i][j])
                                           for i, stage in enumerate(stages)))
            for j, (shot, _, _) in enumerate(rows)}
