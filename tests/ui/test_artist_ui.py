"""Issue 23 in the browser: the review form shows the shots' before/after pictures, a reviewer sends a shot to an
artist from it, the run waits (catalogue: with-artist), the artist's frames (edited with tifffile) are taken
back with `reel takeback`, and the reviewer approves them in the browser; the master's shot is the artist's.

Real Prefect server and `reel serve` on loopback, headless Debian chromium (`make test-ui`)."""

from __future__ import annotations

import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.prefect_stack import BIN, prefect_stack, wait_for
from tests.ui.test_review_ui import CHROMIUM, _choose, _open_review_form, _paused, _run, _screens

pytestmark = pytest.mark.ui

TITLE = "ui-art"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("ui-artist")
    env = {"REEL_STORE": str(base / "store"), "REEL_CHUNK_FRAMES": "16", "REEL_PIECE_FRAMES": "8",
           "REEL_REVIEW_POLL_S": "1", "REEL_DASK_WORKERS": "1", "REEL_CATALOGUE": str(base / "titles.csv"),
           "REEL_HANDOFF_DIR": str(base / "handoffs")}
    with prefect_stack(base, env, ["--no-schedule"]) as s:
        yield s


@pytest.fixture(scope="module")
def film(stack):
    from infra.media import write_film
    from models.synth import SynthConfig, render_film

    cfg = SynthConfig(width=64, height=48, shots=3, frames_per_shot=8, seed=11)
    f = render_film(cfg)
    path = stack["base"] / f"{TITLE}.mkv"
    write_film(path, f.degraded, Fraction(cfg.fps), (f.audio, f.audio_sample_rate))
    recipe = stack["base"] / "artist-review.yaml"
    recipe.write_text("name: artist-review\nstages: [deflicker, dust]\nreview: always\nmasters: [ffv1]\n"
                      "artist: {format: tiff, handles: 1, while_away: wait}\n")
    (stack["base"] / "titles.csv").write_text(f"id,source,recipe\n{TITLE},{path},{recipe}\n")
    return path, recipe, len(f.degraded)


def _state(stack) -> tuple[str, str]:
    from catalog.status import derive_state
    from flows.catalogue import gather_facts
    from infra.settings import Settings

    settings = Settings(store=stack["env"]["REEL_STORE"], catalogue=stack["env"]["REEL_CATALOGUE"])
    ((_, facts),) = gather_facts(settings)
    return derive_state(facts)


def test_send_a_shot_to_an_artist_from_the_review_form_and_approve_their_work(stack, film):
    import tifffile
    from playwright.sync_api import sync_playwright
    from prefect.deployments import run_deployment

    source, recipe, frames = film
    run = run_deployment(name="restore-title/reel", timeout=0,
                         parameters={"source": str(source), "title": TITLE, "recipe": str(recipe)})
    seen: set = set()
    paused = wait_for("the run to pause for review", lambda: _paused(run.id, seen), 420, 1)
    seen.add(paused.state.id)
    shots_dir = _screens()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        form = _open_review_form(page, f"{stack['ui']}/runs/flow-run/{run.id}")
        # the shots' before/after pictures in the form itself, served by `reel serve`'s picture page
        images = form.locator("img")
        wait_for("the pictures to load", lambda: images.count() == 3 and all(
            images.nth(i).evaluate("e => e.complete && e.naturalWidth") == 128 for i in range(3)), 30, 0.5)
        assert all(images.nth(i).get_attribute("src").startswith(stack["pictures"]) for i in range(3))
        assert "send to artist" in form.inner_text() and "Artist Shots" in form.inner_text()
        images.first.scroll_into_view_if_needed()
        page.screenshot(path=str(shots_dir / "artist-1-review-form-pictures.png"), full_page=True)

        # round 1 in the browser: send shot 1 to an artist
        form.locator("textarea").first.fill("Browser Reviewer")
        _choose(page, form.locator(".p-select button").first, "send to artist")
        form.get_by_role("button", name="Add item").nth(2).click()  # redo shots, overrides, artist shots
        number = form.locator("input[type=number]").last
        number.wait_for(timeout=10_000)
        number.fill("1")
        form.locator("textarea").last.fill("shot 1: paint out the blotch")
        page.screenshot(path=str(shots_dir / "artist-2-send-to-artist.png"), full_page=True)
        form.get_by_role("button", name="Submit").click()

        handoffs = Path(stack["env"]["REEL_HANDOFF_DIR"]) / TITLE
        sidecar = wait_for("the handoff", lambda: next(handoffs.glob(f"*/{TITLE}-shot0001/reel-handoff.json"), None),
                           300, 1)
        state, reason = wait_for("with-artist", lambda: (s := _state(stack))[0] == "with-artist" and s, 60, 1)
        assert "shot 1 with an artist" in reason

        folder = sidecar.parent
        edited = {}
        for path in sorted((folder / "restored").glob("*.tif")):  # the artist, with another library
            px = tifffile.imread(path)
            px[4:14, 8:24] = [50000, 20000, 20000]
            tifffile.imwrite(path, px, photometric="rgb")
            edited[int(path.name.split(".")[-2])] = px
        done = subprocess.run([str(BIN / "reel"), "takeback", TITLE, "--shot", "1", str(folder), "--by", "Ann Artist",
                               "--note", "painted"], env={**os.environ, **stack["env"]}, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr

        # round 2: the run took the artist's frames in and asks; approved in the browser
        wait_for("the review of the artist's work", lambda: _paused(run.id, seen), 300, 1)
        form = _open_review_form(page, f"{stack['ui']}/runs/flow-run/{run.id}")
        text = form.inner_text()
        assert f"Review {TITLE} (round 2)" in text and "shot 1 is Ann Artist's work" in text, text[:1500]
        assert "Browser Reviewer asked to send shots [1] to an artist" in text
        form.locator("textarea").first.fill("Browser Reviewer")
        _choose(page, form.locator(".p-select button").first, "approve")
        page.screenshot(path=str(shots_dir / "artist-3-approve.png"), full_page=True)
        form.get_by_role("button", name="Submit").click()
        final = wait_for("the run to complete", lambda: (r := _run(run.id)).state.is_final() and r, 300, 1)
        assert final.state.is_completed(), final.state.message
        browser.close()

    root = Path(stack["env"]["REEL_STORE"]) / "published" / TITLE
    (mpath,) = root.glob("*/manifest.json")
    manifest = json.loads(mpath.read_text())
    review = manifest["review"]
    assert [r["decision"] for r in review["rounds"]] == ["send to artist", "approve"]
    assert review["rounds"][0]["artist_shots"] == [1] and review["by"] == "Browser Reviewer"
    shot1 = next(s for s in manifest["shots"] if s["shot"] == 1)
    assert shot1["manual"]["by"] == "Ann Artist"
    from infra.media import read_frames

    got = read_frames(mpath.parent / "master.mkv", 0, frames, depth=16)
    for f in range(shot1["start_frame"], shot1["end_frame"]):
        assert np.array_equal(got[f], edited[f])
    assert _state(stack)[0] == "published"
