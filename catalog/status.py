"""Where each catalogue title stands, derived from facts gathered elsewhere (pure: no I/O).

`flows.catalogue` gathers a `TitleFacts` per title (the source's checksum now, the recipe's chain
hash now, the published manifests, the latest `restore-<title>` Prefect run); `derive_state` turns
them into one state and a reason a person can read; `pick_titles` chooses what a sweep starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.titles import Title

State = Literal["published", "stale", "pending", "running", "needs-review", "with-artist", "failed", "error"]
STATES: tuple[State, ...] = ("published", "stale", "pending", "running", "needs-review", "with-artist", "failed",
                             "error")
WORK_STATES: frozenset[str] = frozenset({"pending", "stale", "failed"})

# Prefect state types (StateType names). CANCELLING counts as active: the run has not stopped yet.
IN_FLIGHT_RUN_STATES = frozenset({"SCHEDULED", "PENDING", "RUNNING", "CANCELLING"})
PAUSED_RUN_STATES = frozenset({"PAUSED"})
ACTIVE_RUN_STATES = IN_FLIGHT_RUN_STATES | PAUSED_RUN_STATES  # what holds one of the sweep's slots
FAILED_RUN_STATES = frozenset({"FAILED", "CRASHED"})
RUN_STATE_TYPES = ACTIVE_RUN_STATES | FAILED_RUN_STATES | {"COMPLETED", "CANCELLED"}


class PublishedVersion(BaseModel):
    """What one published manifest says it was made from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    source_sha256: str
    chain_hash: str
    created_utc: str = Field(description="ISO 8601, as the manifest records it")
    manual: dict[str, str] = Field(default_factory=dict, description="shot -> digest of the artist's frames it "
                                                                     "publishes (catalog.handoff.frames_digest)")


class RunFacts(BaseModel):
    """The latest Prefect run of the title's restore (flow run named `restore-<title>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    state_type: str = Field(description="Prefect StateType name: RUNNING, PAUSED, FAILED, ...")
    run_id: str
    start_time: datetime | None = Field(None, description="started (or expected to start), UTC")
    state_name: str | None = Field(None, description="Prefect state name, e.g. 'Late', 'Suspended'")
    end_time: datetime | None = Field(None, description="when it ended (failed, completed, ...), UTC")
    failures_in_a_row: int = Field(0, ge=0, description="how many of the newest runs, this one included, "
                                                        "FAILED or CRASHED one after another")

    @model_validator(mode="after")
    def _known_type(self) -> RunFacts:
        if self.state_type not in RUN_STATE_TYPES:
            raise ValueError(f"unknown Prefect state type {self.state_type!r}")
        return self


class TitleFacts(BaseModel):
    """Everything `derive_state` looks at for one title.

    Exactly one of source_sha256 / source_error / source_note says what is known of the source now
    (a note when it was not hashed, e.g. a remote source that is checked at ingest); exactly one of
    chain_hash / recipe_error says the same of the recipe.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str
    source_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    source_error: str | None = Field(None, description="missing, unreadable or refused by the sources policy")
    source_note: str | None = Field(None, description="why the source was not hashed (not an error)")
    source_unseen: bool = Field(False, description="a remote source whose ETag/size/date match no ingest: it "
                                                   "changed since it was fetched, or was never fetched")
    chain_hash: str | None = None
    recipe_error: str | None = None
    published: list[PublishedVersion] = Field(default_factory=list)
    published_error: str | None = Field(None, description="the published manifests could not be read")
    latest_run: RunFacts | None = None
    with_artist: list[int] = Field(default_factory=list, description="shots handed to an artist from the current "
                                                                     "source and not taken back yet")
    manual: dict[str, str] = Field(default_factory=dict, description="shot -> digest of the artist's work taken "
                                                                     "back for the current source (current records)")

    @model_validator(mode="after")
    def _one_of_each(self) -> TitleFacts:
        if sum(x is not None for x in (self.source_sha256, self.source_error, self.source_note)) != 1:
            raise ValueError("give exactly one of source_sha256, source_error, source_note")
        if (self.chain_hash is None) == (self.recipe_error is None):
            raise ValueError("give exactly one of chain_hash, recipe_error")
        return self


def current_version(facts: TitleFacts) -> PublishedVersion | None:
    """The newest published version made from the current source and recipe, if any.

    With the source not hashed (a remote source whose server gives no ETag or date), the recipe alone
    decides; a remote source that changed since its ingest matches nothing.
    """
    if facts.chain_hash is None or facts.source_unseen:
        return None
    matches = [p for p in facts.published if p.chain_hash == facts.chain_hash
               and (facts.source_sha256 is None or p.source_sha256 == facts.source_sha256)
               and (facts.source_sha256 is None or p.manual == facts.manual)]
    return max(matches, key=lambda p: p.created_utc, default=None)


def latest_published(facts: TitleFacts) -> PublishedVersion | None:
    return max(facts.published, key=lambda p: p.created_utc, default=None)


def derive_state(facts: TitleFacts) -> tuple[State, str]:
    """(state, reason) of one title. The first rule that applies wins:

    1. with-artist   shots of the current source are handed to an artist and not taken back, and the latest
                     run is under way or paused (it waits for them);
    2. running       the latest run is SCHEDULED, PENDING, RUNNING or CANCELLING: something is under way,
                     whatever else is true (its own outcome will settle the rest);
    3. needs-review  the latest run is PAUSED: it waits for a person;
    4. error         the source is missing, unreadable or refused, the recipe is invalid, or the
                     published manifests cannot be read: a person must fix the catalogue or the store;
    5. with-artist   shots are with an artist (no run waits; the sweep does not start one either);
    6. published     a manifest exists for the current source checksum and recipe chain hash, with the
                     artist's work taken back for that source (an older failed or cancelled run does not
                     matter then);
    7. failed        the latest run FAILED or CRASHED (and rule 6 did not apply);
    8. stale         something is published, but only for another source or another recipe, or without
                     an artist's work taken back since;
    9. pending       nothing is published (a COMPLETED or CANCELLED latest run is mentioned in the reason).

    Limitation: the version id also covers the masters list and the digests of learned grades, which
    are not known before a run; a re-graded still or a changed masters list is not seen as stale.
    """
    run = facts.latest_run
    away = f"shot{'s' if len(facts.with_artist) > 1 else ''} {', '.join(map(str, facts.with_artist))} with an artist"
    if facts.with_artist and run is not None and run.state_type in ACTIVE_RUN_STATES:
        return "with-artist", f"{away}; restore run {_run_shown(run)} waits for them"
    if run is not None and run.state_type in IN_FLIGHT_RUN_STATES:
        return "running", f"restore run {_run_shown(run)}"
    if run is not None and run.state_type in PAUSED_RUN_STATES:
        return "needs-review", f"restore run {_run_shown(run)} waits for a review"
    problem = _problem(facts)
    if problem is not None:
        return "error", problem
    if facts.with_artist:
        return "with-artist", f"{away} (reel takeback, then a restore publishes their work)"
    current = current_version(facts)
    if current is not None:
        unchecked = "; remote source not re-hashed" if facts.source_sha256 is None else ""
        return "published", f"{current.version} matches the current source and recipe{unchecked}"
    if run is not None and run.state_type in FAILED_RUN_STATES:
        return "failed", f"restore run {_run_shown(run)}"
    latest = latest_published(facts)
    if latest is not None:
        return "stale", f"{latest.version} was made from {_what_changed(facts, latest)}"
    after = f"; last run {_run_shown(run)}" if run is not None else ""
    return "pending", f"nothing published{after}"


def needs_work(state: str) -> bool:
    """True when a sweep should start a restore: pending, stale, and failed (a failed one only once its
    back-off has passed, see `retry_hold`)."""
    return state in WORK_STATES


class RetryPolicy(BaseModel):
    """How the sweep retries a title whose restore runs keep failing.

    After the n-th failure in a row it waits `base_s * 2**(n-1)` (at most `max_wait_s`) from the end of
    the failed run; after `give_up_after` failures in a row it stops starting the title, which stays
    `failed` until a person starts a run (`reel rerun`, the UI's Retry or Run) or the catalogue entry
    changes so that a run succeeds. A transient fault (storage away for a minute) heals on an early
    retry; a lasting one (a corrupt source) does not burn a restore slot every sweep.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    base_s: float = Field(900.0, ge=0)
    max_wait_s: float = Field(24 * 3600.0, ge=0)
    give_up_after: int = Field(5, ge=1)

    def wait_after(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.max_wait_s, self.base_s * 2 ** max(0, failures - 1)))


def retry_hold(run: RunFacts | None, now: datetime, policy: RetryPolicy) -> str | None:
    """Why a failed title is not started now (None: start it). Only FAILED/CRASHED latest runs hold."""
    if run is None or run.state_type not in FAILED_RUN_STATES:
        return None
    n = max(1, run.failures_in_a_row)
    if n >= policy.give_up_after:
        return (f"{n} failed runs in a row: the sweep stopped retrying; fix the cause and start a run "
                f"(reel rerun, or Run/Retry in the UI)")
    ended = run.end_time or run.start_time
    if ended is None:
        return None
    due = ended + policy.wait_after(n)
    if now < due:
        return f"failed {n} time(s) in a row; next retry after {due.isoformat(timespec='seconds')}"
    return None


def pick_titles(states: list[tuple[Title, str]], active: int, max_concurrent: int,
                held: dict[str, str] | None = None) -> tuple[list[Title], list[Title]]:
    """(to start, to skip) among the titles that need work and are not `held` (title id -> why, see
    `retry_hold`): priority high first, then id; at most `max_concurrent - active` are started (none
    when that is <= 0)."""
    held = held or {}
    todo = sorted((t for t, state in states if needs_work(state) and t.id not in held),
                  key=lambda t: (-t.priority, t.id))
    slots = max(0, max_concurrent - active)
    return todo[:slots], todo[slots:]


def _problem(facts: TitleFacts) -> str | None:
    for what, error in (("source", facts.source_error), ("recipe", facts.recipe_error),
                        ("published", facts.published_error)):
        if error is not None:  # "source: ..." unless the message already begins with the word
            return error if error.lower().startswith(what) else f"{what}: {error}"
    return None


def _what_changed(facts: TitleFacts, version: PublishedVersion) -> str:
    if facts.source_unseen:
        return "a remote source that has changed since (its ETag, size or date differ from every ingest)"
    source = facts.source_sha256 is not None and version.source_sha256 != facts.source_sha256
    recipe = version.chain_hash != facts.chain_hash
    if not source and not recipe and version.manual != facts.manual:
        new = sorted((int(s) for s, d in facts.manual.items() if version.manual.get(s) != d))
        gone = sorted(int(s) for s in version.manual if s not in facts.manual)
        parts = ([f"without the artist's work on shot{'s' if len(new) > 1 else ''} {', '.join(map(str, new))} "
                  "taken back since"] if new else []) + (
            [f"with manual work on shot{'s' if len(gone) > 1 else ''} {', '.join(map(str, gone))} that a rerun "
             "replaced"] if gone else [])
        return "the current source and recipe, but " + " and ".join(parts)
    if source and recipe:
        return "another source and another recipe"
    if source:
        return f"another source (sha256 {version.source_sha256[:12]}, now {facts.source_sha256[:12]})"
    return f"another recipe (chain {version.chain_hash}, now {facts.chain_hash})"


def _run_shown(run: RunFacts) -> str:
    name = run.state_name if run.state_name and run.state_name.upper() != run.state_type else None
    state = f"{run.state_type} ({name})" if name else run.state_type
    since = f" since {run.start_time.isoformat(timespec='seconds')}" if run.start_time else ""
    return f"{run.run_id[:8]} {state}{since}"
