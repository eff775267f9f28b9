"""benchmarks/scans.py stays runnable: a tiny run of its speed part (the real one is `make bench-scans`)."""

from __future__ import annotations

import json


def test_bench_scans_smoke(tmp_path, monkeypatch):
    from benchmarks.scans import main

    monkeypatch.setenv("REEL_STORE", str(tmp_path / "unused"))  # main() sets both: restored after the test
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "48")
    assert main(["--frames", "4", "--size", "128x96", "--rounds", "1", "--skip-memory", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "scans.json").read_text())
    assert result["frames"] == 4 and result["ratio"] > 0 and result["ingest_cpu_ms_per_frame"] > 0
