"""The one cluster API (infra/cluster.py): RunsCluster, the Dask cluster a process's flow runs share, and
ClusterTaskRunner, a flow run's task runner on it."""

from __future__ import annotations

import os
import sys
import threading

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
        assert runner.cluster is cluster and runner.duplicate().cluster is cluster  # every run of the process
        assert cluster.address() == address  # runs (and child processes) reach it by address
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
        assert cluster.task_runner().cluster.address() == "tcp://scheduler.example:8786"
        assert cluster._thread is None


def test_a_cluster_that_cannot_start_says_so_with_the_cause(tmp_path, monkeypatch):
    # the worker processes refuse an unknown argument: their nannies fail to start
    monkeypatch.setattr(infra.cluster, "local_cluster_kwargs", lambda settings: {"n_workers": 1, "no_such": 1})
    with RunsCluster(Settings(store=str(tmp_path))) as cluster:
        with pytest.raises(ClusterStartError, match="did not start") as err:
            cluster.address()
        assert err.value.__cause__ is not None and "failed to start" in str(err.value.__cause__)


def test_address_before_start_is_a_usage_error(tmp_path):
    with pytest.raises(RuntimeError, match="before start"):
        RunsCluster(Settings(store=str(tmp_path))).address()


def test_a_flow_runs_own_cluster_starts_when_the_flow_asks_and_closes_with_the_run(tmp_path, monkeypatch):
    """The flow's default runner (no cluster given) starts nothing when it is made or entered; the flow's
    start_workers starts a LocalCluster from the run's settings in the background (workers import the task
    modules and run without Dask's MALLOC_TRIM_THRESHOLD_), the client connects on first use, and leaving
    the run closes the cluster. Other runners are left alone."""
    import dask
    from prefect.task_runners import ThreadPoolTaskRunner

    from infra.cluster import ClusterTaskRunner, start_workers

    settings = Settings(store=str(tmp_path), dask_workers=1, dask_threads_per_worker=1)
    before = dask.config.get("distributed.nanny.pre-spawn-environ")
    # what a LocalCluster made earlier in this process by anything else leaves behind (its nanny copies
    # Dask's pre-spawn settings into the parent's environment)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", str(before["MALLOC_TRIM_THRESHOLD_"]))
    with ClusterTaskRunner().duplicate() as runner:
        assert not any(t.name == "reel-cluster" for t in threading.enumerate())  # entering starts nothing
        start_workers(runner, settings)
        client = runner.client  # waits for the cluster, then connects
        assert len(client.scheduler_info()["workers"]) == 1
        assert list(client.run(_modules_loaded).values()) == [True]
        assert list(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == [None]
        address = client.scheduler.address
    with pytest.raises(OSError):  # closed with the run
        Client(address, timeout=2)
    # nothing set in this process's Dask configuration (a cluster made elsewhere keeps Dask's defaults)
    assert dask.config.get("distributed.nanny.pre-spawn-environ") == before
    with ThreadPoolTaskRunner() as other:
        start_workers(other, settings)
        assert not any(t.name == "reel-cluster" for t in threading.enumerate())
