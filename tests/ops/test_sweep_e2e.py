"""A catalogue of three synthetic titles goes from pending to published through the scheduled sweep:
a real Prefect server (with its scheduler), `reel serve` running the catalogue-sweep deployment on a
one-minute cron and restore-title runs under the concurrency limit."""

from __future__ import annotations

import re

import pytest

from flows.catalogue_cli import write_example_catalogue
from infra.settings import Settings
from tests.prefect_stack import prefect_stack, wait_for

LIMIT = 2


def _states(settings: Settings) -> dict[str, str]:
    from flows.catalogue import gather_facts, status_rows

    return {r["id"]: r["state"] for r in status_rows(gather_facts(settings))}


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_catalogue_goes_from_pending_to_published_through_the_scheduled_sweep(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    titles = write_example_catalogue(tmp_path / "catalogue")
    store = tmp_path / "store"
    env = {"REEL_STORE": str(store), "REEL_CATALOGUE": str(titles), "REEL_SWEEP_CRON": "* * * * *",
           "REEL_SWEEP_MAX_CONCURRENT": str(LIMIT), "REEL_DASK_WORKERS": "1"}
    settings = Settings(store=str(store), catalogue=str(titles))
    with prefect_stack(tmp_path, env, []):
        before = _states(settings)
        assert set(before.values()) == {"pending"} and len(before) == 3

        seen: list[dict[str, str]] = []

        def all_published() -> bool:
            states = _states(settings)
            seen.append(states)
            active = sum(s in ("running", "needs-review") for s in states.values())
            assert active <= LIMIT, states
            assert "failed" not in states.values() and "error" not in states.values(), states
            return set(states.values()) == {"published"}

        wait_for("every title to be published", all_published, 480, every=2)

        with get_client(sync_client=True) as client:
            sweeps = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["catalogue-sweep"])))
            restores = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["restore-title"])))
    assert any(r.auto_scheduled for r in sweeps)  # started by the schedule, not by hand
    assert sorted(r.name for r in restores) == sorted(f"restore-{t}" for t in before)  # one run per title
    assert all("catalogue-sweep" in r.tags and r.state.is_completed() for r in restores)
    assert any(sum(v == "running" for v in s.values()) >= 1 for s in seen)  # we watched it work
    # the served runs share the serve process's one cluster: none starts its own
    serve_log = (tmp_path / "logs" / "serve.log").read_text()
    schedulers = re.findall(r"Dask scheduler: (tcp://\S+)", serve_log)
    assert len(schedulers) == 1, serve_log[-3000:]
    assert "Creating a new Dask cluster" not in serve_log
    assert serve_log.count(f"Connecting to an existing Dask cluster at {schedulers[0]}") >= len(before)
