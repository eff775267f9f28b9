"""Reruns and review decisions: which shots are restored again, with which stage parameters.

Pure rules shared by `reel rerun`, the deployment's parameters and the review gate's form:
a plan names shots to redo, per-stage parameter overrides (applied to the named shots, or to
every shot when none is named) and the pipeline step to recompute from. A review decision
either approves what was restored or sends named shots back with overrides.
"""

from __future__ import annotations

from collections.abc import Callable
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


DECISIONS = ("approve", "redo", "send to artist")


class ReviewDecision(BaseModel):
    """A person's answer at the review gate (the form's fields, validated again by the flow)."""

    model_config = ConfigDict(extra="ignore")
    reviewer: str = Field(min_length=1, max_length=120)
    decision: Literal["approve", "redo", "send to artist"]
    redo_shots: list[int] = Field(default_factory=list)
    overrides: list[str] = Field(default_factory=list)
    artist_shots: list[int] = Field(default_factory=list)
    note: str = Field("", max_length=4000)

    _shots = field_validator("redo_shots", "artist_shots")(_distinct_shots)

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v or any(not c.isprintable() for c in v):
            raise ValueError("reviewer must be a printable name")
        return v

    def validated(self, recipe: Recipe, shots: list[int]) -> RerunPlan:
        """The plan this decision asks for; ValueError says what is wrong with it."""
        if self.decision != "send to artist" and self.artist_shots:
            raise ValueError("'artist shots' are for 'send to artist': leave it empty, or choose that decision")
        if self.decision == "approve":
            if self.redo_shots or self.overrides:
                raise ValueError("approve publishes as restored: leave 'redo shots' and 'overrides' empty, "
                                 "or choose 'redo'")
            return RerunPlan()
        if self.decision == "send to artist":
            if not self.artist_shots:
                raise ValueError("'send to artist' needs the shots to hand off ('artist shots')")
            if self.redo_shots or self.overrides:
                raise ValueError("'send to artist' hands shots off as restored: leave 'redo shots' and 'overrides' "
                                 "empty")
            missing = [s for s in self.artist_shots if s not in shots]
            if missing:
                raise ValueError(f"no shot {missing[0]}: this film has shots {shots[0]}-{shots[-1]}")
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


MAX_PICTURES = 8  # before/after pictures shown above the form (the shots needing a decision first)


def describe(title: str, recipe: Recipe, report: dict[str, Any], round_no: int, refused: str | None,
             history: list[dict[str, Any]] | None = None, artist: list[str] | None = None,
             link: Callable[[str], str] | None = None) -> str:
    """The markdown above the form: what needs a decision first (the UI shows only the top of a long
    description without scrolling), then earlier rounds, the shots' before/after pictures (with `link`, a
    stored key as a URL the UI's browser can open: `reel serve`'s picture page), and the parameters."""
    summary = report["summary"]
    failing = [r for r in sorted(report["shots"], key=lambda r: r["shot"]) if r["verdict"] != "pass"]
    if failing:
        needs = "; ".join(f"shot {r['shot']} (frames {r['start_frame']}-{r['end_frame'] - 1}): "
                          f"{', '.join(r.get('reasons', [])) or 'review'}" for r in failing)
    else:
        needs = f"all {summary['shots']} shots pass QC; the recipe asks for a review every time"
    lines = []
    if refused:
        lines += [f"**Your last answer was not used:** {refused}", ""]
    lines += [f"**Review {title} (round {round_no})**: {needs}.", ""]
    for r in history or []:
        if r["decision"] == "redo":
            what = f"redo shots {r['redo_shots']}" + (f" with {', '.join(r['overrides'])}" if r["overrides"] else "")
        elif r["decision"] == "send to artist":
            what = f"send shots {r.get('artist_shots', [])} to an artist"
        else:
            what = r["decision"]
        lines += [f"Round {r['round']}: {r['by']} asked to {what} ({r['at']}).", ""]
    for line in artist or []:
        lines += [f"Artist: {line}.", ""]
    if link is not None:
        shown = [r for r in sorted(report["shots"], key=lambda r: (r["verdict"] == "pass", r["shot"]))
                 if r.get("image_key")][:MAX_PICTURES]
        for r in shown:
            lines += [f"Shot {r['shot']}, before | after (frame {(r['start_frame'] + r['end_frame'] - 1) // 2}): "
                      f"![shot {r['shot']} before and after]({link(r['image_key'])})", ""]
    lines += [f"Pictures and metrics: artifacts `review-{title}` (before/after of the shots to decide on), "
              f"`qc-summary-{title}` (worst shots first, contact sheets) and `qc-{title}` (one row per shot).", "",
              "| shot | frames | verdict | reasons |", "|---|---|---|---|"]
    for r in sorted(report["shots"], key=lambda r: (r["verdict"] == "pass", r["shot"])):
        lines.append(f"| {r['shot']} | {r['start_frame']}-{r['end_frame'] - 1} | {r['verdict']} | "
                     f"{'; '.join(r.get('reasons', [])) or '-'} |")
    lines += ["", "Stages and their parameters (for overrides):", ""]
    lines += [f"- `{s['name']}`: " + ", ".join(f"{k}={v}" for k, v in s["params"].items()) for s in recipe.chain()]
    return "\n".join(lines)


def pictures_markdown(title: str, report: dict[str, Any], round_no: int, link: Callable[[str], str] | None) -> str:
    """Markdown with the before/after picture and contact sheet of every shot that needs a decision (every shot
    when none fails: the recipe asks each time); `link`: a stored key as a URL the UI's browser opens."""
    shots = [r for r in report["shots"] if r["verdict"] != "pass"] or list(report["shots"])
    lines = [f"# Review {title}, round {round_no}", ""]
    for r in sorted(shots, key=lambda r: r["shot"]):
        lines += [f"## Shot {r['shot']} (frames {r['start_frame']}-{r['end_frame'] - 1}): {r['verdict']}"
                  + (f" ({'; '.join(r.get('reasons', []))})" if r.get("reasons") else ""), ""]
        if link is None:
            lines += ["(pictures: run `reel serve` and set REEL_PUBLIC_URL, or open the published qc/report.html)", ""]
            continue
        if r.get("image_key"):
            lines += [f"![shot {r['shot']} before and after]({link(r['image_key'])})", ""]
        if r.get("contact_sheet_key"):
            lines += [f"![shot {r['shot']} contact sheet]({link(r['contact_sheet_key'])})", ""]
    return "\n".join(lines)
