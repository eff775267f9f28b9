"""Reruns and review decisions: which shots are restored again, with which stage parameters.

Pure rules shared by `reel rerun`, the deployment's parameters and the review gate's form:
a plan names shots to redo, per-stage parameter overrides (applied to the named shots, or to
every shot when none is named) and the pipeline step to recompute from. A review decision
either approves what was restored or sends named shots back with overrides.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalog.recipe import Recipe, format_overrides, parse_overrides

STEPS = ("ingest", "shots", "restore", "qc")
Step = Literal["ingest", "shots", "restore", "qc"]


def _distinct_shots(v: list[int] | None) -> list[int]:
    v = list(v or [])
    if any(s < 0 for s in v):
        raise ValueError("shot numbers are >= 0")
    return sorted(set(v))


class RerunPlan(BaseModel):
    """What a run is asked to do beyond "restore what is not restored yet"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    redo_shots: list[int] = Field(default_factory=list, description="shots restored again (others reused)")
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                                 description="{stage: {param: value}} for the redone shots "
                                                             "(every shot when none is named)")
    from_step: Step | None = Field(None, description="recompute this pipeline step and every later one, "
                                                     "ignoring stored results")

    _shots = field_validator("redo_shots")(_distinct_shots)

    @classmethod
    def make(cls, redo_shots: list[int] | None = None, overrides: list[str] | None = None,
             from_step: str | None = None) -> RerunPlan:
        if from_step is not None and from_step not in STEPS:
            raise ValueError(f"from_step must be one of {', '.join(STEPS)}, got {str(from_step)[:40]!r}")
        return cls(redo_shots=redo_shots or [], overrides=parse_overrides(overrides or []), from_step=from_step)

    @property
    def is_plain(self) -> bool:
        """Nothing forced: an already published version can be returned as is."""
        return not (self.redo_shots or self.overrides or self.from_step)

    def forces(self, step: str) -> bool:
        """True when `step`'s stored results must be recomputed."""
        return self.from_step is not None and STEPS.index(step) >= STEPS.index(self.from_step)

    def check(self, recipe: Recipe, shots: list[int]) -> None:
        """Refuse shots the film does not have and overrides the recipe cannot take (ValueError)."""
        missing = [s for s in self.redo_shots if s not in shots]
        if missing:
            raise ValueError(f"no shot {missing[0]}: this film has shots {shots[0]}-{shots[-1]}")
        recipe.with_overrides(self.overrides)

    def shot_overrides(self, shots: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
        """{shot: overrides} for the shots the overrides apply to."""
        if not self.overrides:
            return {}
        return {s: self.overrides for s in (self.redo_shots or shots)}


class ReviewDecision(BaseModel):
    """A person's answer at the review gate (the form's fields, validated again by the flow)."""

    model_config = ConfigDict(extra="ignore")
    reviewer: str = Field(min_length=1, max_length=120)
    decision: Literal["approve", "redo"]
    redo_shots: list[int] = Field(default_factory=list)
    overrides: list[str] = Field(default_factory=list)
    note: str = Field("", max_length=4000)

    _shots = field_validator("redo_shots")(_distinct_shots)

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v or any(not c.isprintable() for c in v):
            raise ValueError("reviewer must be a printable name")
        return v

    def validated(self, recipe: Recipe, shots: list[int]) -> RerunPlan:
        """The plan this decision asks for; ValueError says what is wrong with it."""
        if self.decision == "approve":
            if self.redo_shots or self.overrides:
                raise ValueError("approve publishes as restored: leave 'redo shots' and 'overrides' empty, "
                                 "or choose 'redo'")
            return RerunPlan()
        if not self.redo_shots:
            raise ValueError("'redo' needs the shots to restore again")
        plan = RerunPlan.make(self.redo_shots, self.overrides)
        plan.check(recipe, shots)
        return plan


def merge_overrides(current: dict[int, dict[str, dict[str, Any]]],
                    new: dict[int, dict[str, dict[str, Any]]]) -> dict[int, dict[str, dict[str, Any]]]:
    """Later decisions win, parameter by parameter."""
    out = {s: {st: dict(p) for st, p in ov.items()} for s, ov in current.items()}
    for shot, ov in new.items():
        for stage, params in ov.items():
            out.setdefault(shot, {}).setdefault(stage, {}).update(params)
    return out


def overrides_doc(per_shot: dict[int, dict[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """JSON-friendly {shot: ["stage.param=value", ...]} for manifests and version ids."""
    return {str(s): format_overrides(ov) for s, ov in sorted(per_shot.items()) if ov}
