"""Issue 23: `send to artist` from the review form (answered through the Prefect API): the run hands the shot
off, waits while the catalogue says `with-artist`, takes the artist's frames in when `reel takeback` stores
them, asks for a review of them, and publishes them on approval."""

from __future__ import annotations

import json
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run

from catalog.review import ReviewDecision, describe
from catalog.status import PublishedVersion, RunFacts, TitleFacts, derive_state
from flows.cli import main
from infra.media import read_frames, write_film
from infra.settings import load_settings
from models.synth import SynthConfig, render_film

TITLE = "sent"


def _paused(title: str, seen: set, deadline: float):
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"restore-{title}"])))
        for run in runs:
            if run.state and run.state.is_paused() and run.state.id not in seen:
                return run
        time.sleep(0.5)
    raise AssertionError(f"no paused run of {title}")


def _wait_for(what: str, check, deadline: float):
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sent_env(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("REEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "16")
    monkeypatch.setenv("REEL_REVIEW_POLL_S", "1")
    monkeypatch.setenv("REEL_HANDOFF_DIR", str(tmp_path / "handoffs"))
    cfg = SynthConfig(width=64, height=48, shots=3, frames_per_shot=8, seed=11)
    f = render_film(cfg)
    src = tmp_path / "sent.mkv"
    write_film(src, f.degraded, Fraction(cfg.fps), (f.audio, f.audio_sample_rate))
    recipe = tmp_path / "review-always.yaml"
    recipe.write_text("name: review-always\nstages: [deflicker]\nmasters: [ffv1]\nreview: always\n"
                      "artist: {format: tiff, handles: 1, while_away: wait}\n")
    catalogue = tmp_path / "titles.csv"
    catalogue.write_text(f"id,source,recipe\n{TITLE},{src},{recipe}\n")
    monkeypatch.setenv("REEL_CATALOGUE", str(catalogue))
    return {"src": src, "recipe": recipe, "frames": len(f.degraded), "dir": tmp_path}


def test_send_to_artist_waits_for_the_takeback_and_publishes_the_artists_frames(sent_env, capsys):
    from flows.catalogue import gather_facts
    from flows.restore_title import run_restore

    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(out=run_restore(
        str(sent_env["src"]), TITLE, str(sent_env["recipe"]), review_gate=True)))
    worker.start()
    deadline = time.monotonic() + 300
    seen: set = set()
    run = _paused(TITLE, seen, deadline)
    seen.add(run.state.id)
    resume_flow_run(run.id, run_input={"reviewer": "Rita Reviewer", "decision": "send to artist",
                                       "artist_shots": [1], "note": "the blotch needs a paint fix"})
    sidecars = sent_env["dir"] / "handoffs" / TITLE
    found = _wait_for("the handoff", lambda: list(sidecars.glob(f"*/{TITLE}-shot0001/reel-handoff.json")), deadline)
    folder = found[0].parent
    state, reason = _wait_for("the with-artist state", lambda: next(
        ((s, r) for s, r in [derive_state(f) for _, f in gather_facts(load_settings())] if s == "with-artist"),
        None), deadline)
    assert "shot 1 with an artist" in reason and "waits for them" in reason

    edited = {}
    for path in sorted((folder / "restored").glob("*.tif")):
        px = tifffile.imread(path)
        px[5:15, 5:15] = 40000
        tifffile.imwrite(path, px, photometric="rgb")
        edited[int(path.name.split(".")[-2])] = px
    assert main(["takeback", TITLE, "--shot", "1", str(folder), "--by", "Tess Artist", "--note", "painted"]) == 0

    run = _paused(TITLE, seen, deadline)  # back: the run asks for a review of the artist's work
    seen.add(run.state.id)
    with get_client(sync_client=True) as client:
        inputs = client.filter_flow_run_input(flow_run_id=run.id, key_prefix="paused-", limit=50, exclude_keys=set())
    assert any("shot 1 is Tess Artist's work" in str(i.value) for i in inputs), [str(i.value)[:300] for i in inputs]
    resume_flow_run(run.id, run_input={"reviewer": "Rita Reviewer", "decision": "approve", "note": "good"})
    worker.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not worker.is_alive() and "out" in result

    m = result["out"]["manifest"]
    rounds = m["review"]["rounds"]
    assert [r["decision"] for r in rounds] == ["send to artist", "approve"]
    assert rounds[0]["artist_shots"] == [1] and rounds[0]["handoff"]["while_away"] == "wait"
    shot1 = next(s for s in m["shots"] if s["shot"] == 1)
    assert shot1["manual"]["by"] == "Tess Artist" and shot1["manual"]["handoff"] == rounds[0]["handoff"]["id"]
    master = Path(load_settings().store) / "published" / TITLE / m["version"] / "master.mkv"
    got = read_frames(master, 0, sent_env["frames"], depth=16)
    for f in range(shot1["start_frame"], shot1["end_frame"]):
        assert np.array_equal(got[f], edited[f])
    states = [derive_state(f)[0] for _, f in gather_facts(load_settings())]
    assert states == ["published"]


def test_review_decision_send_to_artist_rules():
    from catalog.recipe import BUILTIN_RECIPES

    rec = BUILTIN_RECIPES["defects"]
    ok = ReviewDecision(reviewer="A", decision="send to artist", artist_shots=[2, 1])
    assert ok.artist_shots == [1, 2] and ok.validated(rec, [0, 1, 2]).is_plain
    for bad, why in ((dict(decision="send to artist"), "needs the shots"),
                     (dict(decision="send to artist", artist_shots=[7]), "no shot 7"),
                     (dict(decision="send to artist", artist_shots=[1], redo_shots=[1]), "leave 'redo shots'"),
                     (dict(decision="approve", artist_shots=[1]), "'artist shots' are for")):
        with pytest.raises(ValueError, match=why):
            ReviewDecision(reviewer="A", **bad).validated(rec, [0, 1, 2])


def test_review_form_shows_before_after_pictures_when_the_picture_page_is_there():
    from catalog.recipe import BUILTIN_RECIPES

    report = {"summary": {"shots": 2, "review": [1]}, "shots": [
        {"shot": 0, "start_frame": 0, "end_frame": 8, "verdict": "pass", "reasons": [], "image_key": "k0.png"},
        {"shot": 1, "start_frame": 8, "end_frame": 16, "verdict": "review", "reasons": ["SSIM low"],
         "image_key": "k1.png"}]}
    text = describe("film", BUILTIN_RECIPES["defects"], report, 1, None, None, ["shot 0 is Ann's work"],
                    lambda key: f"http://pictures/{key}")
    assert "![shot 1 before and after](http://pictures/k1.png)" in text
    assert text.index("k1.png") < text.index("k0.png")  # the shot needing a decision first
    assert "Artist: shot 0 is Ann's work." in text
    assert "![" not in describe("film", BUILTIN_RECIPES["defects"], report, 1, None)  # no page: no broken images


def _facts(**kw) -> TitleFacts:
    base = dict(title="t", source_sha256="a" * 64, chain_hash="c" * 16)
    return TitleFacts(**{**base, **kw})


def test_catalogue_states_with_an_artist():
    v = PublishedVersion(version="v-1", source_sha256="a" * 64, chain_hash="c" * 16, created_utc="2026-01-01")
    running = RunFacts(state_type="RUNNING", run_id="r" * 8)
    assert derive_state(_facts(with_artist=[3], latest_run=running))[0] == "with-artist"
    assert derive_state(_facts(with_artist=[3], published=[v]))[0] == "with-artist"  # no run: the sweep waits too
    assert derive_state(_facts(published=[v]))[0] == "published"
    state, reason = derive_state(_facts(published=[v], manual={"3": "d" * 16}))  # taken back, not yet published
    assert state == "stale" and "without the artist's work on shot 3" in reason
    with_manual = v.model_copy(update={"manual": {"3": "d" * 16}, "version": "v-2"})
    assert derive_state(_facts(published=[v, with_manual], manual={"3": "d" * 16}))[0] == "published"


def test_recipe_artist_and_manual_grade_rules():
    from catalog.recipe import parse_recipe

    r = parse_recipe("name: x\nstages: [grade]\ngrade: {references: [{manual_shot: 3, shots: [4, 5]}]}\n"
                     "artist: {format: exr, handles: 4, while_away: publish}", "yaml")
    assert r.grade.references[0].manual_shot == 3 and r.artist.while_away == "publish"
    with pytest.raises(ValueError, match="not both"):
        parse_recipe("name: x\nstages: [grade]\ngrade: {references: [{manual_shot: 3, originals: a, graded: b}]}",
                     "yaml")
    with pytest.raises(ValueError, match="or 'manual_shot'"):
        parse_recipe("name: x\nstages: [grade]\ngrade: {references: [{originals: a}]}", "yaml")
    assert json.loads(r.model_dump_json())["artist"]["format"] == "exr"


@pytest.mark.slow  # two more whole runs: `make test-all`
def test_send_to_artist_can_publish_the_other_shots_first(sent_env, tmp_path):
    """while_away: publish: the run publishes at once (shot 1 as the machine restored it), the title stays
    with-artist; after the takeback it is stale, and the next restore publishes the artist's shot."""
    from flows.catalogue import gather_facts
    from flows.restore_title import run_restore

    recipe = tmp_path / "publish-first.yaml"
    recipe.write_text("name: publish-first\nstages: [deflicker]\nmasters: [ffv1]\nreview: always\n"
                      "artist: {format: dpx, bits: 10, handles: 0, while_away: publish}\n")
    (tmp_path / "titles.csv").write_text(f"id,source,recipe\n{TITLE},{sent_env['src']},{recipe}\n")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(out=run_restore(
        str(sent_env["src"]), TITLE, str(recipe), review_gate=True)))
    worker.start()
    deadline = time.monotonic() + 300
    run = _paused(TITLE, set(), deadline)
    resume_flow_run(run.id, run_input={"reviewer": "R", "decision": "send to artist", "artist_shots": [2]})
    worker.join(timeout=max(1.0, deadline - time.monotonic()))
    first = result["out"]["manifest"]
    assert first["review"]["rounds"][0]["handoff"]["while_away"] == "publish"
    assert all(s.get("manual") is None for s in first["shots"])
    state, reason = derive_state(gather_facts(load_settings())[0][1])
    assert state == "with-artist" and "shot 2 with an artist" in reason

    (folder,) = (sent_env["dir"] / "handoffs" / TITLE).glob(f"*/{TITLE}-shot0002")
    assert len(list((folder / "restored").glob("*.dpx"))) == 8  # no handles asked for
    assert main(["takeback", TITLE, "--shot", "2", str(folder), "--by", "Unchanged"]) == 0  # returned as handed off
    state, reason = derive_state(gather_facts(load_settings())[0][1])
    assert state == "stale" and "without the artist's work on shot 2" in reason
    again = run_restore(str(sent_env["src"]), TITLE, str(recipe))
    assert next(s for s in again["manifest"]["shots"] if s["shot"] == 2)["manual"]["by"] == "Unchanged"
    assert derive_state(gather_facts(load_settings())[0][1])[0] == "published"
