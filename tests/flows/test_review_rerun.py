"""Reruns of named shots with changed parameters, and the review gate answered through the Prefect API."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run

from flows.restore_title import run_restore
from infra.settings import load_settings
from infra.storage import open_store


def _segments(manifest: dict) -> dict[int, list[str]]:
    return {s["shot"]: s["segments"] for s in manifest["shots"]}


def _master_sha(manifest: dict) -> str:
    return manifest["outputs"][0]["sha256"]


@pytest.mark.slow  # ~25 s: make test-all; the review gate test reruns named shots in the default run
def test_rerun_one_shot_with_override_restores_only_that_shot(tiny_film, local_store_env):
    src = str(tiny_film["path"])
    first = run_restore(src, "rerun", "defects")
    before = _segments(first["manifest"])
    assert len(before) == 3

    again = run_restore(src, "rerun", "defects", redo_shots=[1], overrides=["dust.threshold=6"])
    m = again["manifest"]
    after = _segments(m)
    assert again["pieces_restored"] == len(before[1]) and again["pieces_reused"] == len(before[0]) + len(before[2])
    assert after[0] == before[0] and after[2] == before[2]
    assert not set(after[1]) & set(before[1])  # new parameters: new pieces for shot 1 only
    assert m["version"] != first["manifest"]["version"]
    shot1 = next(s for s in m["shots"] if s["shot"] == 1)
    assert shot1["overrides"] == ["dust.threshold=6"]
    assert all(s["overrides"] == [] for s in m["shots"] if s["shot"] != 1)
    dust = next(r for r in shot1["stage_reports"] if r.get("stage") == "dust") if any(
        r.get("stage") == "dust" for r in shot1["stage_reports"]) else None
    assert m["review"]["rerun"] == {"redo_shots": [1], "overrides": ["dust.threshold=6"], "from_step": None}
    assert m["review"]["overrides"] == {"1": ["dust.threshold=6"]}
    if dust is not None:
        assert dust.get("params", {}).get("threshold", 6) == 6


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_forced_rerun_is_bit_identical_and_the_same_version(tiny_film, local_store_env):
    src = str(tiny_film["path"])
    first = run_restore(src, "forced", "defects")
    redo = run_restore(src, "forced", "defects", redo_shots=[2])
    assert redo["pieces_restored"] == len(_segments(first["manifest"])[2])
    assert redo["manifest"]["version"] == first["manifest"]["version"]
    assert _master_sha(redo["manifest"]) == _master_sha(first["manifest"])
    whole = run_restore(src, "forced", "defects", from_step="shots")
    assert whole["pieces_reused"] == 0 and _master_sha(whole["manifest"]) == _master_sha(first["manifest"])


def test_bad_rerun_requests_fail_before_any_work(tiny_film, local_store_env):
    src = str(tiny_film["path"])
    with pytest.raises(ValueError, match="does not run"):
        run_restore(src, "badrerun", "defects", overrides=["colour.cast=0.5"])
    with pytest.raises(ValueError, match="dust"):
        run_restore(src, "badrerun", "defects", overrides=["dust.threshold=-3"])
    with pytest.raises(ValueError, match="from_step"):
        run_restore(src, "badrerun", "defects", from_step="polish")
    assert not (local_store_env / "published").exists() and not (local_store_env / "work").exists()
    with pytest.raises(ValueError, match="no shot 9"):
        run_restore(src, "badrerun", "defects", redo_shots=[9])
    assert not (local_store_env / "published").exists()


def _paused_run(title: str, seen: set, deadline: float):
    """The flow run named restore-<title> once it is paused (and not one we already answered)."""
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"restore-{title}"])))
        for run in runs:
            if run.state and run.state.is_paused() and run.state.id not in seen:
                return run
        time.sleep(0.5)
    raise AssertionError(f"no paused run of {title}")


def test_review_gate_redoes_exactly_the_named_shots_and_records_the_decision(tiny_film, local_store_env,
                                                                             tmp_path, monkeypatch):
    monkeypatch.setenv("REEL_REVIEW_POLL_S", "1")
    recipe = tmp_path / "always.yaml"
    recipe.write_text("name: always-review\nstages: [stabilise, deflicker, dust, scratch, denoise]\n"
                      "review: always\nmasters: [ffv1]\n")
    src = str(tiny_film["path"])
    first = run_restore(src, "gated", str(recipe))  # gate off: published at once, auto-approved
    assert first["review"]["decision"] == "auto-approved"
    before = _segments(first["manifest"])

    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(out=run_restore(
        src, "gated", str(recipe), review_gate=True, redo_shots=[0])))  # a rerun, so it does not stop early
    worker.start()
    deadline = time.monotonic() + 240
    seen: set = set()
    run = _paused_run("gated", seen, deadline)
    seen.add(run.state.id)
    # an answer naming a shot the film lacks is refused, and the run asks again
    resume_flow_run(run.id, run_input={"reviewer": "Ana", "decision": "redo", "redo_shots": [7]})
    run = _paused_run("gated", seen, deadline)
    seen.add(run.state.id)
    resume_flow_run(run.id, run_input={"reviewer": "Ana Restorer", "decision": "redo", "redo_shots": [2],
                                       "overrides": ["denoise.strength=0.5"], "note": "shot 2 too smooth"})
    run = _paused_run("gated", seen, deadline)  # review: always -> asks again after the redo
    resume_flow_run(run.id, run_input={"reviewer": "Ana Restorer", "decision": "approve", "note": "ok now"})
    worker.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not worker.is_alive() and "out" in result

    m = result["out"]["manifest"]
    after = _segments(m)
    assert after[1] == before[1]  # neither redone nor changed
    assert after[0] == before[0]  # redone with the same parameters: the same pieces
    assert not set(after[2]) & set(before[2])
    rev = m["review"]
    assert rev["decision"] == "approved" and rev["by"] == "Ana Restorer" and rev["note"] == "ok now"
    assert [r["decision"] for r in rev["rounds"]] == ["redo", "approve"]
    assert rev["rounds"][0]["redo_shots"] == [2] and rev["rounds"][0]["overrides"] == ["denoise.strength=0.5"]
    assert rev["overrides"] == {"2": ["denoise.strength=0.5"]}
    assert all(r["at"].endswith("+00:00") for r in rev["rounds"])
    store = open_store(load_settings().store_config())
    stored = json.loads(store.get_bytes(f"published/gated/{m['version']}/manifest.json"))
    assert stored["review"] == rev


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_review_timeout_fails_cleanly_and_publishes_nothing(tiny_film, local_store_env, tmp_path, monkeypatch):
    monkeypatch.setenv("REEL_REVIEW_POLL_S", "1")
    monkeypatch.setenv("REEL_REVIEW_TIMEOUT_S", "10")
    recipe = tmp_path / "strict.yaml"
    recipe.write_text("name: strict\nstages: [deflicker]\nqc: {min_ssim: 1.0}\nmasters: [ffv1]\n")
    with pytest.raises(Exception, match="not answered within 10 s"):
        run_restore(str(tiny_film["path"]), "timeout", str(recipe), review_gate=True)
    assert not (Path(local_store_env) / "published").exists()
    assert any(Path(local_store_env, "work", "timeout").rglob("*.json"))  # restored pieces are kept


def test_master_hash_matches_file(tiny_film, local_store_env):
    # guards the helper above: the manifest's first output is the archival master and its hash is real
    m = run_restore(str(tiny_film["path"]), "hashcheck", "identity")["manifest"]
    data = Path(local_store_env, "published", "hashcheck", m["version"], m["outputs"][0]["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == _master_sha(m)


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_reel_rerun_from_the_command_line_uses_the_published_source_and_recipe(tiny_film, local_store_env,
                                                                             tmp_path, capsys, monkeypatch):
    from flows.cli import main

    monkeypatch.setenv("REEL_CATALOGUE", str(tmp_path / "no-catalogue.csv"))  # not in a catalogue
    assert main(["restore", str(tiny_film["path"]), "--title", "clirerun", "--recipe", "defects",
                 "--out", str(tmp_path / "first")]) == 0
    capsys.readouterr()
    assert main(["rerun", "clirerun", "--shots", "2", "--set", "dust.threshold=6",
                 "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert "source and recipe from published v-" in out
    assert "pieces restored 2, reused 4" in out  # shot 2's two pieces (8-frame pieces of 12-frame shots)
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [s["overrides"] for s in manifest["shots"]] == [[], [], ["dust.threshold=6"]]
    assert manifest["source"]["sha256"] == json.loads((tmp_path / "first" / "manifest.json").read_text())[
        "source"]["sha256"]
    # bad requests are one clear line and change nothing
    assert main(["rerun", "clirerun", "--shots", "x"]) == 1
    assert main(["rerun", "clirerun", "--set", "nostage"]) == 1
    assert main(["rerun", "never-published"]) == 1
    err = capsys.readouterr().err
    assert "--shots takes shot numbers" in err and "stage.param=value" in err and "never published" in err
