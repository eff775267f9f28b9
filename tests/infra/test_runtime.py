"""Settings as a leaf (infra/runtime.py): read once per process, the store opened once and only when used,
nothing read or configured when a module is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import infra.runtime
from infra.runtime import process_runtime

ROOT = Path(__file__).resolve().parents[2]


def test_settings_are_read_once_and_the_store_opened_once(tmp_path, monkeypatch):
    opened = []
    real_open = infra.runtime.open_store

    def counting_open(config):
        opened.append(config.url)
        return real_open(config)

    monkeypatch.setattr(infra.runtime, "open_store", counting_open)
    monkeypatch.setenv("REEL_STORE", str(tmp_path / "a"))
    monkeypatch.setenv("REEL_PIECE_FRAMES", "12")
    rt = process_runtime()
    assert rt.settings.piece_frames == 12 and not opened  # no store opened until one is used
    assert not (tmp_path / "a").exists()
    for _ in range(3):  # every task call of a worker process
        assert process_runtime() is rt and process_runtime().store is rt.store
    assert len(opened) == 1 and (tmp_path / "a").is_dir()
    monkeypatch.setenv("REEL_STORE", str(tmp_path / "b"))  # the process's configuration changed: read again
    again = process_runtime()
    assert again is not rt and again.store.url == (tmp_path / "b").as_uri() and len(opened) == 2


def test_importing_the_flows_reads_no_settings_and_configures_nothing():
    """The flow's decorator used to read the settings (an invalid value failed every import) and
    infra.cluster set Dask's nanny configuration for the whole process when imported."""
    code = ("import json, dask, flows.restore_title, flows.serve, flows.cli, infra.cluster, tasks.restore; "
            "print(json.dumps(dask.config.get('distributed.nanny.pre-spawn-environ')))")
    env = {**os.environ, "REEL_DASK_WORKERS": "0", "REEL_PIECE_FRAMES": "not-a-number", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MALLOC_TRIM_THRESHOLD_" in json.loads(out.stdout.strip().splitlines()[-1])  # Dask's default, untouched
