"""The review gate as a person meets it: a real Prefect server and `reel serve` on loopback, a real
headless Chromium on the Prefect UI.

Run with `make test-ui` (installs Playwright and, where missing, Debian's chromium) or
`pytest -m ui`. Screenshots go to $REEL_UI_SCREENSHOTS (default ./ui-screenshots).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from tests.prefect_stack import prefect_stack, wait_for

pytestmark = pytest.mark.ui

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = 3
TITLE = "ui-film"
_wait = wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Prefect server (SQLite) + `reel serve`, both on 127.0.0.1, with their own homes and store."""
    base = tmp_path_factory.mktemp("ui")
    env = {"REEL_STORE": str(base / "store"), "REEL_CHUNK_FRAMES": "16", "REEL_PIECE_FRAMES": "8",
           "REEL_REVIEW_POLL_S": "1", "REEL_DASK_WORKERS": "1", "REEL_CATALOGUE": str(base / "titles.csv")}
    with prefect_stack(base, env, ["--no-schedule"]) as s:
        yield s


@pytest.fixture(scope="module")
def film(stack):
    from infra.media import write_film
    from models.synth import SynthConfig, render_film

    cfg = SynthConfig(width=160, height=120, shots=SHOTS, frames_per_shot=12, seed=11)
    f = render_film(cfg)
    path = stack["base"] / "ui-film.mkv"
    write_film(path, f.degraded, Fraction(cfg.fps), (f.audio, f.audio_sample_rate))
    recipe = stack["base"] / "review-always.yaml"
    recipe.write_text("name: review-always\nstages: [deflicker, dust, denoise]\nreview: always\nmasters: [ffv1]\n")
    return path, recipe


def _run(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _paused(run_id, seen: set):
    run = _run(run_id)
    if run.state.is_final() and not run.state.is_completed():
        raise AssertionError(f"run ended {run.state.type}: {run.state.message}")
    if run.state.is_paused() and run.state.id not in seen:
        return run
    return None


def _screens() -> Path:
    d = Path(os.environ.get("REEL_UI_SCREENSHOTS", "ui-screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_review_in_the_prefect_ui_redoes_exactly_the_named_shots(stack, film):
    from playwright.sync_api import sync_playwright
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment

    source, recipe = film
    run = run_deployment(name="restore-title/reel", timeout=0,
                         parameters={"source": str(source), "title": TITLE, "recipe": str(recipe)})
    seen: set = set()
    paused = _wait("the run to pause for review", lambda: _paused(run.id, seen), 420, 1)
    seen.add(paused.state.id)
    shots_dir = _screens()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        # the QC table artifact: one row per shot
        page.goto(f"{stack['ui']}/artifacts/artifact/{_artifact(f'qc-{TITLE}').id}")
        page.wait_for_selector("table tbody tr", timeout=60_000)
        page.wait_for_timeout(1000)
        assert page.locator("table tbody tr").count() == SHOTS, page.inner_text("body")[:2000]
        header = page.locator("table thead").inner_text()
        assert all(c in header for c in ("shot", "ssim_luma", "flicker_restored", "warping_error_restored",
                                         "colour_change_de00", "verdict"))
        page.screenshot(path=str(shots_dir / "1-qc-table-artifact.png"), full_page=True)

        # the paused run offers the review form, with what needs deciding above it
        form = _open_review_form(page, f"{stack['ui']}/runs/flow-run/{run.id}")
        text = form.inner_text()
        for field in ("Reviewer", "Decision", "Redo Shots", "Overrides", "Note"):
            assert field in text, text[:1500]
        assert f"Review {TITLE} (round 1)" in text and "dust: threshold=4.0" in text
        page.screenshot(path=str(shots_dir / "2-review-form.png"), full_page=True)

        # round 1, answered through the API (as a script would): redo shot 1 with a gentler denoise
        _resume(run.id, {"reviewer": "UI Test", "decision": "redo", "redo_shots": [1],
                         "overrides": ["denoise.strength=0.5"], "note": "shot 1 too smooth"})
        _wait("the second review (recipe: review always)", lambda: _paused(run.id, seen), 300, 1)

        # round 2, answered in the browser: name, "approve", a note, Submit
        form = _open_review_form(page, f"{stack['ui']}/runs/flow-run/{run.id}")
        text = form.inner_text()
        assert f"Review {TITLE} (round 2)" in text and "UI Test asked to redo shots [1] with denoise.strength=0.5" in text
        form.locator("textarea").first.fill("Browser Reviewer")
        _choose(page, form.locator(".p-select button").first, "approve")
        form.locator("textarea").last.fill("approved in the browser")
        page.screenshot(path=str(shots_dir / "3-review-form-filled.png"), full_page=True)
        form.get_by_role("button", name="Submit").click()
        final = _wait("the run to complete", lambda: (r := _run(run.id)).state.is_final() and r, 300, 1)
        assert final.state.is_completed(), final.state.message
        page.goto(f"{stack['ui']}/runs/flow-run/{run.id}")
        page.get_by_text("Completed").first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Retry").first.wait_for(timeout=30_000)  # the UI's Retry is offered
        page.wait_for_timeout(2000)
        page.screenshot(path=str(shots_dir / "4-completed-run.png"), full_page=True)
        browser.close()

    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    restored = Counter(t.name.split("-part")[0] for t in tasks if t.name.startswith("restore-shot"))
    measured = Counter(t.name for t in tasks if t.name.startswith("qc-shot"))
    assert set(restored) == {f"restore-shot{s}" for s in range(SHOTS)}
    per_shot = {s: restored[f"restore-shot{s}"] for s in range(SHOTS)}
    pieces = {s: per_shot[s] for s in (0, 2)}
    assert per_shot[1] == 2 * _pieces_of(stack, 1) and all(pieces[s] == _pieces_of(stack, s) for s in (0, 2))
    assert measured == {"qc-shot0": 1, "qc-shot1": 2, "qc-shot2": 1}

    manifest = _manifest(stack)
    review = manifest["review"]
    assert review["decision"] == "approved" and review["by"] == "Browser Reviewer"
    assert review["note"] == "approved in the browser" and review["rounds"][0]["by"] == "UI Test"
    assert [r["decision"] for r in review["rounds"]] == ["redo", "approve"]
    assert review["overrides"] == {"1": ["denoise.strength=0.5"]}
    assert [s["overrides"] for s in manifest["shots"]] == [[], ["denoise.strength=0.5"], []]

    # the QC summary's picture links open from the UI's machine: `reel serve`'s picture page
    md = _artifact(f"qc-summary-{TITLE}")
    link = next(part.split(")")[0] for part in md.data.split("](") if part.startswith(stack["pictures"]))
    with urllib.request.urlopen(link, timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png" and r.read(8) == b"\x89PNG\r\n\x1a\n"


def _resume(run_id, answer: dict) -> None:
    """Answer the form through the API with the sync client (inside Playwright's sync API an event loop
    runs, so `prefect.flow_runs.resume_flow_run` would hand back an un-awaited coroutine)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus

    with get_client(sync_client=True) as client:
        result = client.resume_flow_run(run_id, run_input=answer)
    assert result.status == SetStateStatus.ACCEPT, result.details


def _choose(page, button, option: str) -> None:
    """Pick `option` in the schema form's select (a popover list; it may need a second click or a key)."""
    button.scroll_into_view_if_needed()
    for attempt in ("click", "click", "Enter", "ArrowDown"):
        if attempt == "click":
            button.click(force=True)
        else:
            button.focus()
            page.keyboard.press(attempt)
        page.wait_for_timeout(800)
        if page.get_by_role("option", name=option).count():
            page.get_by_role("option", name=option).click()
            return
    raise AssertionError(f"the form's select never offered {option!r}")


def _artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return found[0]


def _open_review_form(page, url: str):
    """The paused run's page, Resume clicked: the dialog with the review form."""
    page.goto(url)
    resume = page.get_by_role("button", name="Resume").first
    resume.wait_for(timeout=60_000)
    resume.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Reviewer").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    return dialog


def _manifest(stack) -> dict:
    root = Path(stack["env"]["REEL_STORE"]) / "published" / TITLE
    (path,) = root.glob("*/manifest.json")
    return json.loads(path.read_text())


def _pieces_of(stack, shot: int) -> int:
    m = _manifest(stack)
    return len(next(s for s in m["shots"] if s["shot"] == shot)["segments"])
