"""Issue 20: `catalogue status` on 10,000 titles answers in seconds (0.8.0 asked Prefect and the store
once per title). Uses the session's Prefect harness (tests/flows/conftest.py)."""

from __future__ import annotations

import time

from benchmarks.catalogue_status import write_catalogue
from flows.catalogue import catalogue_status
from infra.settings import Settings


def test_catalogue_status_on_10000_titles_is_fast(tmp_path):
    settings = Settings(store=str(tmp_path / "store"), catalogue=str(write_catalogue(tmp_path, 10_000)))
    started = time.perf_counter()
    table = catalogue_status(settings)
    assert time.perf_counter() - started < 20.0  # measured about 2 s here (benchmarks/catalogue_status.py)
    assert len(table) == 10_000 and set(table["state"]) == {"pending"}
