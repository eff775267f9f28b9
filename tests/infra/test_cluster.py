"""RunsCluster: the one Dask cluster a process's flow runs share (infra/cluster.py)."""

from __future__ import annotations

import sys

import pytest
from distributed import Client

import infra.cluster
from infra.cluster import ClusterStartError, RunsCluster
from infra.settings import Settings


def _modules_loaded() -> bool:
    return all(name in sys.modules for name in infra.cluster.TASK_MODULES)


def test_local_cluster_starts_in_the_background_with_the_task_modules_and_closes(tmp_path):
    cluster = RunsCluster(Settings(store=str(tmp_path), dask_workers=2, dask_threads_per_worker=1)).start()
    try:
        address = cluster.address()  # waits for the start
        assert address.startswith("tcp://127.0.0.1:")
        runner = cluster.task_runner()
        assert runner.address == address  # runs (and child processes) reach it by address
        with Client(address, timeout=10) as client:
            info = client.scheduler_info()["workers"]
            assert len(info) == 2 and all(w["nthreads"] == 1 for w in info.values())
            assert all(client.run(_modules_loaded).values())  # imported before any task
            pids = set(client.run(lambda: __import__("os").getpid()).values())
        assert len(pids) == 2  # worker processes, not threads of this one
    finally:
        cluster.close()
    cluster.close()  # closing twice is harmless
    with pytest.raises(OSError):  # the scheduler is gone
        Client(address, timeout=2)


def test_an_address_from_settings_is_used_as_it_is_and_nothing_starts(tmp_path):
    with RunsCluster(Settings(store=str(tmp_path), dask_address="tcp://scheduler.example:8786")) as cluster:
        assert cluster.address() == "tcp://scheduler.example:8786"
        assert cluster.task_runner().address == "tcp://scheduler.example:8786"
        assert cluster._thread is None


def test_a_cluster_that_cannot_start_says_so_with_the_cause(tmp_path, monkeypatch):
    # the worker processes refuse an unknown argument: their nannies fail to start
    monkeypatch.setattr(infra.cluster, "local_cluster_kwargs", lambda settings: {"n_workers": 1, "no_such": 1})
    with RunsCluster(Settings(store=str(tmp_path))) as cluster:
        with pytest.raises(ClusterStartError, match="did not start") as err:
            cluster.task_runner()
        assert err.value.__cause__ is not None and "failed to start" in str(err.value.__cause__)


def test_address_before_start_is_a_usage_error(tmp_path):
    with pytest.raises(RuntimeError, match="before start"):
        RunsCluster(Settings(store=str(tmp_path))).address()
