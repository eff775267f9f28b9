"""The review gate: pause the run with a typed form in the Prefect UI and read a person's decision.

The form (`ReviewForm`) is a Prefect `RunInput`: the UI renders it from its JSON schema on the paused
run's page ("Resume" asks for it); `prefect.flow_runs.resume_flow_run(id, run_input={...})` answers it
from code. The flow validates the answer again (`catalog.review.ReviewDecision.validated`) and asks
again, saying why, when it names a shot the film lacks or a parameter a stage does not take.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from catalog.recipe import Recipe, error_summary
from catalog.review import ReviewDecision
from infra.hashing import short_hash


class ReviewForm(RunInput):
    reviewer: str = Field(description="Your name: it goes into the manifest with the decision.")
    decision: Literal["approve", "redo"] = Field(
        description="approve: publish the shots as restored. redo: restore the shots named below again.")
    redo_shots: list[int] = Field(default_factory=list, description="Shot numbers to restore again (redo only).")
    overrides: list[str] = Field(default_factory=list,
                                 description="Stage parameters for those shots, one item each: stage.param=value "
                                             "(e.g. dust.threshold=5). Empty: same parameters.")
    note: str = Field("", description="Why: kept in the manifest.")


class ReviewTimeout(RuntimeError):
    """Nobody answered the review form in time: the run fails, nothing is published."""


def describe(title: str, recipe: Recipe, report: dict[str, Any], round_no: int, refused: str | None,
             history: list[dict[str, Any]] | None = None) -> str:
    """The markdown above the form: what needs a decision first (the UI shows only the top of a long
    description without scrolling), then earlier rounds, where the pictures are, and the parameters."""
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
        what = (f"redo shots {r['redo_shots']}" + (f" with {', '.join(r['overrides'])}" if r["overrides"] else "")
                if r["decision"] == "redo" else r["decision"])
        lines += [f"Round {r['round']}: {r['by']} asked to {what} ({r['at']}).", ""]
    lines += [f"Pictures and metrics: artifacts `qc-summary-{title}` (worst shots first, before/after and contact "
              f"sheets) and `qc-{title}` (one row per shot).", "",
              "| shot | frames | verdict | reasons |", "|---|---|---|---|"]
    for r in sorted(report["shots"], key=lambda r: (r["verdict"] == "pass", r["shot"])):
        lines.append(f"| {r['shot']} | {r['start_frame']}-{r['end_frame'] - 1} | {r['verdict']} | "
                     f"{'; '.join(r.get('reasons', [])) or '-'} |")
    lines += ["", "Stages and their parameters (for overrides):", ""]
    lines += [f"- `{s['name']}`: " + ", ".join(f"{k}={v}" for k, v in s["params"].items()) for s in recipe.chain()]
    return "\n".join(lines)


def ask_for_review(title: str, recipe: Recipe, report: dict[str, Any], round_no: int, shots: list[int],
                   timeout_s: int, poll_s: int = 5,
                   history: list[dict[str, Any]] | None = None) -> tuple[ReviewDecision, Any, str]:
    """Pause until a person answers; returns (decision, its plan, when). Refused answers are asked again."""
    refused = None
    state = short_hash([(r["shot"], r["verdict"], r.get("key", r.get("image_key"))) for r in report["shots"]], 10)
    for attempt in range(1, 100):
        form = ReviewForm.with_initial_data(description=describe(title, recipe, report, round_no, refused, history))
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=poll_s,
                                    key=f"review-{round_no}-{state}-{attempt}")
        except FlowPauseTimeout:
            raise ReviewTimeout(f"{title}: review round {round_no} not answered within {timeout_s} s; nothing "
                                "was published. Restored shots are kept: a retry pauses again at once.") from None
        at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            decision = ReviewDecision.model_validate(answer.model_dump(include=set(ReviewForm.model_fields)))
            return decision, decision.validated(recipe, shots), at
        except ValueError as e:
            refused = error_summary(e)
            print(f"{title}: review answer refused ({refused}); asking again")
    raise ReviewTimeout(f"{title}: too many refused review answers")
