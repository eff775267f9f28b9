"""The review gate: pause the run with a typed form in the Prefect UI and read a person's decision.

The form (`ReviewForm`) is a Prefect `RunInput`: the UI renders it from its JSON schema on the paused
run's page ("Resume" asks for it); `prefect.flow_runs.resume_flow_run(id, run_input={...})` answers it
from code. The flow validates the answer again (`catalog.review.ReviewDecision.validated`) and asks
again, saying why, when it names a shot the film lacks or a parameter a stage does not take.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from catalog.recipe import Recipe, error_summary
from catalog.review import ReviewDecision, describe, pictures_markdown
from infra.hashing import short_hash
from infra.pictures import picture_url
from infra.runtime import process_runtime


class ReviewForm(RunInput):
    reviewer: str = Field(description="Your name: it goes into the manifest with the decision.")
    decision: Literal["approve", "redo", "send to artist"] = Field(
        description="approve: publish the shots as restored. redo: restore the shots named below again. "
                    "send to artist: hand the 'artist shots' to an artist (frame sequences with handles); the run "
                    "waits for them to be taken back, or publishes the other shots, as the recipe says.")
    redo_shots: list[int] = Field(default_factory=list, description="Shot numbers to restore again (redo only).")
    overrides: list[str] = Field(default_factory=list,
                                 description="Stage parameters for those shots, one item each: stage.param=value "
                                             "(e.g. dust.threshold=5). Empty: same parameters.")
    artist_shots: list[int] = Field(default_factory=list,
                                    description="Shot numbers to hand to an artist (send to artist only).")
    note: str = Field("", description="Why: kept in the manifest.")


class ReviewTimeout(RuntimeError):
    """Nobody answered the review form in time: the run fails, nothing is published."""


def picture_link() -> Callable[[str], str] | None:
    """A stored QC picture's URL for the UI's browser: `reel serve`'s picture page (REEL_PUBLIC_URL), else a
    presigned S3 link; None for a local store without the page (a browser on an http page opens no file://)."""
    rt = process_runtime()
    public = rt.settings.public_url
    if public:
        return lambda key: picture_url(public, key)
    store = rt.store
    if store.url.startswith("s3://"):
        return store.link
    return None


def review_pictures(title: str, report: dict[str, Any], round_no: int, link: Callable[[str], str] | None) -> None:
    """A markdown artifact `review-<title>` with the before/after picture and contact sheet of every shot that
    needs a decision, shown in the run's Artifacts."""
    create_markdown_artifact(key=f"review-{title}", markdown=pictures_markdown(title, report, round_no, link),
                             description=f"before/after of the shots to decide on (round {round_no})")


def ask_for_review(title: str, recipe: Recipe, report: dict[str, Any], round_no: int, shots: list[int],
                   timeout_s: int, poll_s: int = 5, history: list[dict[str, Any]] | None = None,
                   artist: list[str] | None = None) -> tuple[ReviewDecision, Any, str]:
    """Pause until a person answers; returns (decision, its plan, when). Refused answers are asked again.
    artist: lines saying which shots are an artist's work."""
    refused = None
    state = short_hash([(r["shot"], r["verdict"], r.get("key", r.get("image_key"))) for r in report["shots"]], 10)
    link = picture_link()
    review_pictures(title, report, round_no, link)
    for attempt in range(1, 100):
        form = ReviewForm.with_initial_data(description=describe(title, recipe, report, round_no, refused, history,
                                                                 artist, link))
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
