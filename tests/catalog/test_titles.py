"""The titles catalogue (parsing) and the title states derived from facts: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from catalog.status import (
    STATES,
    PublishedVersion,
    RetryPolicy,
    RunFacts,
    TitleFacts,
    current_version,
    derive_state,
    needs_work,
    pick_titles,
    retry_hold,
)
from catalog.titles import Title, parse_titles

SHA_A, SHA_B = "a" * 64, "b" * 64
CHAIN_X, CHAIN_Y = "1" * 16, "2" * 16


# --------------------------------------------------------------------------- parsing


def test_a_valid_table_gives_titles_with_defaults():
    df = pd.DataFrame({"id": ["the-general-1926", "nosferatu"], "source": ["films/general.mkv", "s3://b/n.mkv"],
                       "name": ["The General", ""], "year": ["1926", ""], "recipe": ["", "defects"],
                       "priority": ["5", ""], "notes": ["", "tinted print"]})
    a, b = parse_titles(df)
    assert a == Title(id="the-general-1926", name="The General", year=1926, source="films/general.mkv",
                      recipe="default", priority=5, notes=None)
    assert (b.name, b.year, b.recipe, b.priority, b.notes) == ("nosferatu", None, "defects", 0, "tinted print")


def test_parquet_style_columns_with_nulls_and_numpy_numbers():
    df = pd.DataFrame({"id": ["a", "b"], "source": ["/x.mkv", "/y.mkv"], "year": [1926, None],
                       "priority": np.array([3, -1], dtype="int64")})
    a, b = parse_titles(df)
    assert (a.year, a.priority, b.year, b.priority) == (1926, 3, None, -1)


def test_only_id_and_source_are_required_and_an_empty_table_is_valid():
    assert parse_titles(pd.DataFrame({"id": [], "source": []})) == []
    assert parse_titles(pd.DataFrame({"source": ["x"], "id": ["a"]}))[0].recipe == "default"


def test_recipe_files_are_accepted_by_suffix():
    df = pd.DataFrame({"id": ["a", "b"], "source": ["x", "y"], "recipe": ["looks/archive.yaml", "r.TOML"]})
    assert [t.recipe for t in parse_titles(df)] == ["looks/archive.yaml", "r.TOML"]


def _problems(df: pd.DataFrame, first_row: int = 1) -> str:
    with pytest.raises(ValueError) as e:
        parse_titles(df, first_row=first_row)
    msg = str(e.value)
    assert "\n" not in msg  # the CLI shows one line
    return msg


def test_columns_unknown_or_missing_are_refused_before_rows():
    msg = _problems(pd.DataFrame({"id": ["a"], "Source": ["x"], "grade": ["g.cube"]}))
    assert "unknown column(s) 'Source', 'grade'" in msg
    assert "missing column(s) 'source'" in msg
    assert "row" not in msg.split("allowed")[0]


def test_every_bad_row_is_listed_with_its_number_in_one_error():
    df = pd.DataFrame({
        "id":       ["ok-1", "Bad Id", "ok-2", "ok-1", "", "ok-3", "ok-4"],
        "source":   ["a.mkv", "b.mkv", "", "d.mkv", "e.mkv", "f.mkv", " g.mkv"],
        "year":     ["1926", "1926", "1926", "1926", "1926", "1850", "1926"],
        "recipe":   ["default", "default", "default", "default", "default", "sepia", "default"],
        "priority": ["0", "0", "0", "0", "0", "high", "0"],
    })
    msg = _problems(df, first_row=2)
    assert msg.startswith("invalid catalogue (8 problems): ")
    for expected in ("row 3: id: invalid title id 'Bad Id'",
                     "row 4: source: required, but empty",
                     "row 6: id: required, but empty",
                     "row 7: year: Input should be greater than or equal to 1880 (got '1850')",
                     "row 7: recipe: unknown recipe 'sepia'",
                     "row 7: priority: Input should be a valid integer",
                     "row 8: source: source has leading or trailing spaces",
                     "rows 2, 5: duplicate id 'ok-1'"):
        assert expected in msg, expected
    assert "row 2:" not in msg and "row 5:" not in msg  # those rows are fine except for the duplicate


def test_duplicates_are_found_even_when_a_copy_is_otherwise_invalid():
    df = pd.DataFrame({"id": ["a", "a"], "source": ["x", ""]})
    msg = _problems(df)
    assert "rows 1, 2: duplicate id 'a'" in msg and "row 2: source" in msg


def test_control_characters_in_text_are_refused():
    msg = _problems(pd.DataFrame({"id": ["a", "b"], "source": ["x\ny", "z"], "name": ["ok", "evil\u202e"]}))
    assert "row 1: source: source contains control characters" in msg
    assert "row 2: name: name contains control characters" in msg


def test_a_long_list_of_problems_is_cut_short():
    df = pd.DataFrame({"id": [f"BAD{i}" for i in range(30)], "source": ["x"] * 30})
    msg = _problems(df)
    assert msg.startswith("invalid catalogue (30 problems)") and msg.endswith("; ... and 10 more")


# --------------------------------------------------------------------------- states


def _facts(sha: str | None = SHA_A, chain: str | None = CHAIN_X, published=(), run: str | None = None,
           **extra) -> TitleFacts:
    versions = [PublishedVersion(version=f"v-{i}", source_sha256=s, chain_hash=c, created_utc=f"2024-01-0{i + 1}")
                for i, (s, c) in enumerate(published)]
    latest = None if run is None else RunFacts(state_type=run, run_id="0123456789abcdef",
                                               start_time=datetime(2024, 5, 1, tzinfo=UTC))
    fields = {"source_sha256": sha, "chain_hash": chain, **extra}
    if "source_error" in extra or "source_note" in extra:
        fields["source_sha256"] = None
    if "recipe_error" in extra:
        fields["chain_hash"] = None
    return TitleFacts(title="t", published=versions, latest_run=latest, **fields)


CURRENT = (SHA_A, CHAIN_X)
OTHER_RECIPE = (SHA_A, CHAIN_Y)
OTHER_SOURCE = (SHA_B, CHAIN_X)

STATE_CASES = [
    # (facts, expected state, words in the reason)
    (_facts(), "pending", "nothing published"),
    (_facts(run="COMPLETED"), "pending", "last run 01234567 COMPLETED"),
    (_facts(run="CANCELLED"), "pending", "CANCELLED"),
    (_facts(published=[CURRENT]), "published", "v-0 matches"),
    (_facts(published=[OTHER_RECIPE, CURRENT]), "published", "v-1 matches"),
    (_facts(published=[OTHER_RECIPE]), "stale", f"another recipe (chain {CHAIN_Y}, now {CHAIN_X})"),
    (_facts(published=[OTHER_SOURCE]), "stale", "another source (sha256 bbbbbbbbbbbb, now aaaaaaaaaaaa)"),
    (_facts(published=[(SHA_B, CHAIN_Y)]), "stale", "another source and another recipe"),
    (_facts(published=[OTHER_RECIPE, OTHER_SOURCE]), "stale", "v-1 was made from another source"),
    # runs: an active run wins over everything; a paused one asks for review
    (_facts(run="RUNNING"), "running", "RUNNING since 2024-05-01T00:00:00+00:00"),
    (_facts(run="SCHEDULED", published=[OTHER_RECIPE]), "running", "SCHEDULED"),
    (_facts(run="PENDING", published=[CURRENT]), "running", "PENDING"),
    (_facts(run="CANCELLING"), "running", "CANCELLING"),
    (_facts(run="RUNNING", source_error="gone"), "running", "RUNNING"),
    (_facts(run="PAUSED"), "needs-review", "waits for a review"),
    (_facts(run="PAUSED", published=[CURRENT]), "needs-review", "PAUSED"),
    # failures: published-current wins over an old failure; otherwise the failure shows
    (_facts(run="FAILED"), "failed", "FAILED"),
    (_facts(run="CRASHED", published=[OTHER_RECIPE]), "failed", "CRASHED"),
    (_facts(run="FAILED", published=[CURRENT]), "published", "v-0 matches"),
    # errors: before anything that is published or failed
    (_facts(source_error="no such file"), "error", "source: no such file"),
    (_facts(recipe_error="recipe file 'x.yaml' not found"), "error", "recipe file 'x.yaml' not found"),
    (_facts(recipe_error="invalid recipe: stages.0: unknown"), "error", "recipe: invalid recipe"),
    (_facts(source_error="source 'x.mkv': no such file"), "error", "source 'x.mkv': no such file"),
    (_facts(published_error="manifest unreadable", run="FAILED"), "error", "published: manifest unreadable"),
    (_facts(source_error="refused", published=[CURRENT]), "error", "source: refused"),
    # a remote source is not hashed: the recipe alone decides
    (_facts(source_note="remote", published=[OTHER_SOURCE]), "published", "remote source not re-hashed"),
    (_facts(source_note="remote", published=[OTHER_RECIPE]), "stale", "another recipe"),
    (_facts(source_note="remote"), "pending", "nothing published"),
    # a remote source whose ETag/size/date match no ingest has changed since it was published
    (_facts(source_note="remote", source_unseen=True, published=[OTHER_SOURCE]), "stale", "remote source that has changed"),
    (_facts(source_note="remote", source_unseen=True), "pending", "nothing published"),
    # shots with an artist (issue 23): a run waiting for them, or none (the sweep does not start the title)
    (_facts(run="RUNNING", with_artist=[3]), "with-artist", "shot 3 with an artist; restore run 01234567 RUNNING"),
    (_facts(run="PAUSED", with_artist=[3, 7]), "with-artist", "shots 3, 7 with an artist"),
    (_facts(published=[CURRENT], with_artist=[3]), "with-artist", "reel takeback"),
    (_facts(source_error="gone", with_artist=[3]), "error", "source: gone"),
    (_facts(published=[CURRENT], manual={"3": "d" * 16}), "stale", "without the artist's work on shot 3"),
]


@pytest.mark.parametrize(("facts", "state", "reason"), STATE_CASES)
def test_derive_state(facts, state, reason):
    got_state, got_reason = derive_state(facts)
    assert (got_state, reason in got_reason) == (state, True), got_reason


def test_every_state_is_reachable_and_only_work_states_need_work():
    assert {state for _, state, _ in STATE_CASES} == set(STATES)
    assert [s for s in STATES if needs_work(s)] == ["stale", "pending", "failed"]
    assert not needs_work("with-artist")


def test_current_version_is_the_newest_match():
    f = _facts(published=[CURRENT, OTHER_RECIPE, CURRENT])
    assert current_version(f).version == "v-2"
    assert current_version(_facts(published=[OTHER_SOURCE])) is None


def test_facts_must_say_what_is_known_of_source_and_recipe():
    with pytest.raises(ValueError, match="exactly one of source_sha256"):
        TitleFacts(title="t", chain_hash=CHAIN_X)
    with pytest.raises(ValueError, match="exactly one of source_sha256"):
        TitleFacts(title="t", source_sha256=SHA_A, source_error="x", chain_hash=CHAIN_X)
    with pytest.raises(ValueError, match="exactly one of chain_hash"):
        TitleFacts(title="t", source_sha256=SHA_A)
    with pytest.raises(ValueError, match="unknown Prefect state type"):
        RunFacts(state_type="Running", run_id="x")


# --------------------------------------------------------------------------- sweep selection


def _t(tid: str, priority: int = 0) -> Title:
    return Title(id=tid, source=f"/films/{tid}.mkv", priority=priority)


def test_pick_titles_takes_work_by_priority_then_id_up_to_the_free_slots():
    states = [(_t("c", 1), "pending"), (_t("a", 1), "stale"), (_t("z", 9), "published"), (_t("b", 5), "failed"),
              (_t("d", 1), "running"), (_t("e", 7), "needs-review"), (_t("f", 9), "error"), (_t("g", -2), "pending")]
    start, skip = pick_titles(states, active=1, max_concurrent=3)
    assert [t.id for t in start] == ["b", "a"]
    assert [t.id for t in skip] == ["c", "g"]
    start, skip = pick_titles(states, active=5, max_concurrent=3)  # over the limit already
    assert (start, [t.id for t in skip]) == ([], ["b", "a", "c", "g"])
    start, _ = pick_titles(states, active=0, max_concurrent=100)
    assert [t.id for t in start] == ["b", "a", "c", "g"]


def test_pick_titles_leaves_held_titles_alone():
    states = [(_t("a", 9), "failed"), (_t("b", 1), "pending")]
    start, skip = pick_titles(states, active=0, max_concurrent=5, held={"a": "backing off"})
    assert ([t.id for t in start], skip) == (["b"], [])


def test_failed_titles_back_off_doubling_and_the_sweep_gives_up():
    policy = RetryPolicy(base_s=600, max_wait_s=3600, give_up_after=4)
    ended = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def hold(n: int, after_s: float, state: str = "FAILED") -> str | None:
        run = RunFacts(state_type=state, run_id="r" * 8, end_time=ended, failures_in_a_row=n)
        return retry_hold(run, ended + timedelta(seconds=after_s), policy)

    assert "next retry after 2026-11-25T12:10:00" in hold(1, 599)
    assert hold(1, 600) is None
    assert hold(2, 1199) is not None and hold(2, 1200) is None  # 600 * 2
    assert hold(3, 2399) is not None and hold(3, 2400) is None  # 600 * 4
    assert "stopped retrying" in hold(4, 10 ** 6)  # gives up, however long ago
    assert hold(9, 10 ** 6, state="CRASHED") is not None
    capped = RetryPolicy(base_s=600, max_wait_s=3600, give_up_after=99)
    run = RunFacts(state_type="FAILED", run_id="x", end_time=ended, failures_in_a_row=8)  # 600 * 128 > cap
    assert retry_hold(run, ended + timedelta(seconds=3600), capped) is None
    for state in ("COMPLETED", "CANCELLED", "PAUSED", "RUNNING"):  # only failed runs hold
        assert hold(9, 0, state=state) is None
    assert retry_hold(None, ended, policy) is None
