"""The catalogue: reading the titles file, title states against a real store and Prefect API, the sweep."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Failed, Paused, Pending, Running

from catalog.titles import Title
from flows import catalogue
from flows.catalogue import (
    RESTORE_DEPLOYMENT,
    STATUS_COLUMNS,
    catalogue_status,
    catalogue_sweep,
    count_active_restores,
    gather_facts,
    run_sweep,
    start_restore,
    status_rows,
)
from flows.catalogue_cli import EXAMPLE_TITLES, add_catalogue_parser
from flows.restore_title import run_restore
from infra.catalogue_io import CHECKSUMS_PREFIX, SourceChecksums, read_catalogue
from infra.settings import load_settings
from infra.storage import LocalStore

# One Dask worker and whole-shot pieces: the restore here only has to publish (about 10 s, not 20).
FAST_RESTORE = {"REEL_DASK_WORKERS": "1", "REEL_CHUNK_FRAMES": "48", "REEL_PIECE_FRAMES": "48"}
COLUMNS = ["id", "name", "year", "source", "recipe", "priority", "notes"]


def write_titles(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        w.writeheader()
        w.writerows(rows)
    return path


def status_by_id(settings) -> dict[str, dict]:
    return {r["id"]: r for r in status_rows(gather_facts(settings))}


@flow(name="restore-title")
def _restore_title_stand_in() -> None:
    """Only its name matters: runs of it are filed under the restore-title flow."""


@pytest.fixture
def fake_runs():
    """make(title, state) creates a restore-title run named restore-<title> in that state; all are
    deleted afterwards, so no other test sees a paused or running restore."""
    made = []
    with get_client(sync_client=True) as client:

        def make(title: str, state) -> str:
            run = client.create_flow_run(_restore_title_stand_in, name=f"restore-{title}", state=Pending())
            if state is not None:
                client.set_flow_run_state(run.id, state, force=True)
            made.append(run.id)
            return str(run.id)

        yield make
        for run_id in made:
            client.delete_flow_run(run_id)


# --------------------------------------------------------------------------- reading the file


def test_csv_and_parquet_give_the_same_titles_with_relative_paths_anchored(tmp_path):
    rows = [{"id": "rel", "source": "films/a.mkv", "recipe": "looks/archive.yaml", "year": "1926", "priority": "2"},
            {"id": "abs", "source": "/data/b.mkv", "recipe": "/looks/x.toml"},
            {"id": "remote", "source": "s3://films/c.mkv", "recipe": "defects", "name": "NA"}]
    (tmp_path / "cat").mkdir()
    titles = read_catalogue(write_titles(tmp_path / "cat" / "titles.csv", rows))
    base = (tmp_path / "cat").resolve()
    assert [t.source for t in titles] == [str(base / "films/a.mkv"), "/data/b.mkv", "s3://films/c.mkv"]
    assert [t.recipe for t in titles] == [str(base / "looks/archive.yaml"), "/looks/x.toml", "defects"]
    assert (titles[0].year, titles[0].priority, titles[2].name) == (1926, 2, "NA")  # 'NA' is a name, not a gap

    df = pd.DataFrame({"id": ["rel", "abs", "remote"], "source": ["films/a.mkv", "/data/b.mkv", "s3://films/c.mkv"],
                       "recipe": ["looks/archive.yaml", "/looks/x.toml", "defects"], "year": [1926, None, None],
                       "priority": [2, 0, 0], "name": [None, None, "NA"]})
    df.to_parquet(tmp_path / "cat" / "titles.parquet")
    assert read_catalogue(tmp_path / "cat" / "titles.parquet") == titles


def test_catalogue_file_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_catalogue(tmp_path / "missing.csv")
    (tmp_path / "titles.xlsx").write_text("id,source\n")
    with pytest.raises(ValueError, match=r"must be \.csv or \.parquet"):
        read_catalogue(tmp_path / "titles.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty file"):
        read_catalogue(tmp_path / "empty.csv")
    (tmp_path / "bad.parquet").write_text("id,source\na,b\n")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_catalogue(tmp_path / "bad.parquet")
    (tmp_path / "latin.csv").write_bytes("id,source,name\na,x.mkv,Caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not a readable CSV file"):
        read_catalogue(tmp_path / "latin.csv")
    bad = write_titles(tmp_path / "bad.csv", [{"id": "ok", "source": "a"}, {"id": "No", "source": "b"}])
    with pytest.raises(ValueError, match=r"bad\.csv: invalid catalogue \(1 problem\): row 3: id: invalid title id"):
        read_catalogue(bad)  # rows counted as in a spreadsheet: the header is row 1


def test_source_checksums_are_reused_until_the_file_changes(tmp_path):
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "film.mkv"
    src.write_bytes(b"frames" * 1000)
    sums = SourceChecksums(store)
    assert sums.sha256(src) == hashlib.sha256(src.read_bytes()).hexdigest()
    assert sums.sha256(src) == SourceChecksums(store).sha256(src)
    assert (sums.hashed, sums.reused) == (1, 1)

    src.write_bytes(b"other frames")
    assert sums.sha256(src) == hashlib.sha256(b"other frames").hexdigest()
    assert sums.hashed == 2
    [key] = store.list(CHECKSUMS_PREFIX + "/")
    store.put_bytes(key, b"not json")  # a damaged cache entry is a miss, not an error
    assert sums.sha256(src) == hashlib.sha256(b"other frames").hexdigest() and sums.hashed == 3
    with pytest.raises(FileNotFoundError):
        sums.sha256(tmp_path / "gone.mkv")


# --------------------------------------------------------------------------- status


def test_status_follows_publication_source_and_recipe(tiny_film, local_store_env, tmp_path, monkeypatch):
    film = tiny_film["path"]
    titles = tmp_path / "titles.csv"
    for name, value in FAST_RESTORE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REEL_CATALOGUE", str(titles))
    rows = [{"id": "cat-done", "source": str(film), "recipe": "identity", "priority": "3"},
            {"id": "cat-new", "source": str(film), "recipe": "identity"},
            {"id": "cat-missing", "source": "no-such-film.mkv"},
            {"id": "cat-bad-recipe", "source": str(film), "recipe": "looks/none.yaml"}]
    write_titles(titles, rows)
    before = status_by_id(load_settings())
    assert {k: v["state"] for k, v in before.items()} == {
        "cat-done": "pending", "cat-new": "pending", "cat-missing": "error", "cat-bad-recipe": "error"}
    assert before["cat-missing"]["reason"] == f"source {str(tmp_path.resolve() / 'no-such-film.mkv')!r}: no such file"
    assert before["cat-bad-recipe"]["reason"] == f"recipe file {str(tmp_path.resolve() / 'looks/none.yaml')!r} not found"

    version = run_restore(str(film), "cat-done", "identity")["manifest"]["version"]
    after = status_by_id(load_settings())
    assert (after["cat-done"]["state"], after["cat-done"]["version"]) == ("published", version)
    assert after["cat-new"]["state"] == "pending"  # same film, another title: nothing published for it
    assert after["cat-done"]["published_utc"]
    frame = catalogue_status(load_settings())
    assert list(frame.columns) == STATUS_COLUMNS and frame["state"].tolist()[:2] == ["published", "pending"]

    write_titles(titles, [{**rows[0], "recipe": "defects"}])
    stale = status_by_id(load_settings())["cat-done"]
    assert (stale["state"], stale["version"]) == ("stale", version)
    assert "another recipe" in stale["reason"]

    other = tmp_path / "rescan.mkv"
    shutil.copy(tiny_film["clean"], other)
    write_titles(titles, [{**rows[0], "source": str(other)}])
    assert "another source" in status_by_id(load_settings())["cat-done"]["reason"]

    write_titles(titles, [rows[0]])  # back as published: the checksums came from the cache
    assert status_by_id(load_settings())["cat-done"]["state"] == "published"


def test_status_reads_the_latest_restore_run(tmp_path, local_store_env, tiny_film, fake_runs, monkeypatch):
    titles = write_titles(tmp_path / "titles.csv", [{"id": f"run-{s}", "source": str(tiny_film["path"])}
                                                    for s in ("none", "paused", "failed", "running", "newer")])
    monkeypatch.setenv("REEL_CATALOGUE", str(titles))
    paused = fake_runs("run-paused", Paused())
    fake_runs("run-failed", Failed())
    fake_runs("run-running", Running())
    fake_runs("run-newer", Failed())
    fake_runs("run-newer", Running())  # the newest run counts, not the worst
    got = status_by_id(load_settings())
    assert {k: v["state"] for k, v in got.items()} == {
        "run-none": "pending", "run-paused": "needs-review", "run-failed": "failed", "run-running": "running",
        "run-newer": "running"}
    assert (got["run-paused"]["run_id"], got["run-paused"]["run_state"]) == (paused, "PAUSED")
    assert got["run-none"]["run_id"] is None


# --------------------------------------------------------------------------- sweep


def test_sweep_starts_the_due_titles_by_priority_within_the_free_slots(tmp_path, local_store_env, tiny_film,
                                                                         fake_runs, monkeypatch):
    rows = [{"id": "sw-low", "source": str(tiny_film["path"]), "priority": "1"},
            {"id": "sw-high", "source": str(tiny_film["path"]), "priority": "9", "recipe": "defects"},
            {"id": "sw-mid-b", "source": str(tiny_film["path"]), "priority": "5"},
            {"id": "sw-mid-a", "source": str(tiny_film["path"]), "priority": "5"},
            {"id": "sw-review", "source": str(tiny_film["path"]), "priority": "99"},
            {"id": "sw-broken", "source": str(tmp_path / "missing.mkv"), "priority": "99"}]
    monkeypatch.setenv("REEL_CATALOGUE", str(write_titles(tmp_path / "titles.csv", rows)))
    before = count_active_restores()
    fake_runs("sw-review", Paused())
    assert count_active_restores() == before + 1  # a run paused for review holds a slot

    started: list[Title] = []

    def starter(title: Title) -> str:
        started.append(title)
        return f"run-of-{title.id}"

    settings = load_settings()
    result = run_sweep(settings, starter, max_concurrent=before + 3)
    assert [t.id for t in started] == ["sw-high", "sw-mid-a"]
    assert started[0].source == str(tiny_film["path"]) and started[0].recipe == "defects"
    assert [(s["title"], s["run_id"], s["state"]) for s in result["started"]] == [
        ("sw-high", "run-of-sw-high", "pending"), ("sw-mid-a", "run-of-sw-mid-a", "pending")]
    assert [s["title"] for s in result["skipped"]] == ["sw-mid-b", "sw-low"]
    assert result["active"] == before + 1 and "no free slot" in result["skipped"][0]["waiting"]

    started.clear()
    assert run_sweep(settings, None, active=0, max_concurrent=10)["started"][-1]["title"] == "sw-low"
    assert started == []  # a dry run starts nothing


def test_sweep_backs_off_a_title_whose_runs_keep_failing(tmp_path, local_store_env, tiny_film, fake_runs,
                                                         monkeypatch):
    rows = [{"id": "fl-once", "source": str(tiny_film["path"])}, {"id": "fl-often", "source": str(tiny_film["path"])},
            {"id": "fl-healed", "source": str(tiny_film["path"])}]
    monkeypatch.setenv("REEL_CATALOGUE", str(write_titles(tmp_path / "titles.csv", rows)))
    fake_runs("fl-once", Failed())
    for _ in range(3):
        fake_runs("fl-often", Failed())
    fake_runs("fl-healed", Failed())
    fake_runs("fl-healed", Completed())  # a success in between resets the count
    fake_runs("fl-healed", Failed())
    runs = catalogue.latest_runs(["fl-once", "fl-often", "fl-healed"])
    assert {k: v.failures_in_a_row for k, v in runs.items()} == {"fl-once": 1, "fl-often": 3, "fl-healed": 1}
    assert runs["fl-once"].end_time is not None

    monkeypatch.setenv("REEL_SWEEP_RETRY_BASE_S", "3600")  # all failed just now: every one waits
    result = run_sweep(load_settings(), None, active=0, max_concurrent=10)
    assert result["started"] == [] and {h["title"] for h in result["held"]} == {"fl-once", "fl-often", "fl-healed"}
    monkeypatch.setenv("REEL_SWEEP_RETRY_BASE_S", "0")
    monkeypatch.setenv("REEL_SWEEP_GIVE_UP_AFTER", "3")
    result = run_sweep(load_settings(), None, active=0, max_concurrent=10)
    assert [s["title"] for s in result["started"]] == ["fl-healed", "fl-once"]
    assert [(h["title"], "stopped retrying" in h["waiting"]) for h in result["held"]] == [("fl-often", True)]


def test_sweep_flow_publishes_the_status_artifact(tmp_path, local_store_env, tiny_film, monkeypatch):
    rows = [{"id": "flow-a", "source": str(tiny_film["path"]), "priority": "2"},
            {"id": "flow-b", "source": str(tiny_film["path"])}]
    monkeypatch.setenv("REEL_CATALOGUE", str(write_titles(tmp_path / "titles.csv", rows)))
    calls = []
    monkeypatch.setattr(catalogue, "start_restore",
                        lambda title, deployment: calls.append((title.id, deployment)) or "fake-run")
    leftover = local_store_env / "flow-a" / ".tmp-interrupted"  # a write killed a week ago
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    result = catalogue_sweep(max_concurrent=count_active_restores() + 1)
    assert not leftover.exists()
    assert calls == [("flow-a", RESTORE_DEPLOYMENT)]
    assert [s["title"] for s in result["started"]] == ["flow-a"] and "status" not in result

    from prefect.artifacts import Artifact

    artifact = Artifact.get("catalogue-status")
    table = json.loads(artifact.data)
    assert [(r["id"], r["state"]) for r in table] == [("flow-a", "pending"), ("flow-b", "pending")]


def test_start_restore_asks_the_deployment_for_a_named_run_and_does_not_wait(monkeypatch):
    import prefect.deployments

    seen = {}

    class Run:
        id = "new-run"

    monkeypatch.setattr(prefect.deployments, "run_deployment", lambda **kw: seen.update(kw) or Run())
    title = Title(id="the-general-1926", source="/films/general.mkv", recipe="/looks/archive.yaml")
    assert start_restore(title) == "new-run"
    assert seen == {"name": "restore-title/reel", "timeout": 0, "as_subflow": False, "tags": ["catalogue-sweep"],
                    "flow_run_name": "restore-the-general-1926",
                    "parameters": {"source": "/films/general.mkv", "title": "the-general-1926",
                                   "recipe": "/looks/archive.yaml"}}


# --------------------------------------------------------------------------- CLI


def test_cli_init_writes_a_catalogue_that_status_reads(tmp_path, local_store_env, capsys):
    ap = argparse.ArgumentParser(prog="reel")
    add_catalogue_parser(ap.add_subparsers(dest="command", required=True))

    def reel(*argv: str) -> str:
        args = ap.parse_args(list(argv))
        assert args.func(args) == 0
        return capsys.readouterr().out

    reel("catalogue", "init", str(tmp_path / "ex"))
    titles = read_catalogue(tmp_path / "ex" / "titles.csv")
    assert [t.id for t in titles] == [t["id"] for t in EXAMPLE_TITLES]
    assert all(Path(t.source).is_file() for t in titles)
    assert "films/" in (tmp_path / "ex" / "titles.csv").read_text()  # relative paths in the file
    with pytest.raises(FileExistsError):
        reel("catalogue", "init", str(tmp_path / "ex"))

    records = json.loads(reel("catalogue", "status", "--json", "--catalogue", str(tmp_path / "ex" / "titles.csv")))
    assert [(r["id"], r["state"], r["priority"]) for r in records] == [
        (t["id"], "pending", t["priority"]) for t in EXAMPLE_TITLES]
    table = reel("catalogue", "status", "--catalogue", str(tmp_path / "ex" / "titles.csv")).splitlines()
    assert table[0].split() == ["id", "priority", "state", "reason", "version", "published_utc", "run_state",
                                "run_id"]
    assert table[1].startswith("harbour-lights-1923") and "pending" in table[1]
