"""The flow on an existing Dask cluster named by REEL_DASK_ADDRESS, as on a studio's cluster.

The other flow tests use the embedded default (the task runner starts its own LocalCluster). Here the
cluster is started first, by the test, as `dask scheduler` + `dask worker` are started by
infra/deploy: separate worker processes that know the settings only from their environment.
"""

from __future__ import annotations

import json

import pytest
from distributed import Client, LocalCluster, get_task_stream

from flows.restore_title import run_restore


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_restore_runs_on_the_cluster_at_reel_dask_address(tiny_film, local_store_env, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    # Workers are started before the run, so they get the API and the store from their environment only
    # (compose / k8s give them the same REEL_* settings and PREFECT_API_URL as `reel serve`).
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        # not the default client: prefect-dask would take a default client's cluster whatever the settings say
        Client(cluster, set_as_default=False) as client,
    ):
        monkeypatch.setenv("REEL_DASK_ADDRESS", cluster.scheduler_address)
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2
        with get_task_stream(client) as stream:  # records every task the scheduler ran, from any client
            summary = run_restore(str(tiny_film["path"]), "cluster-test", "identity")
        ran_on = {record["worker"] for record in stream.data}
        assert len(client.scheduler_info()["workers"]) == 2  # the run used this cluster, it did not replace it

    version = summary["manifest"]["version"]
    manifest = local_store_env / "published" / "cluster-test" / version / "manifest.json"
    assert json.loads(manifest.read_text())["version"] == version
    assert summary["pieces_restored"] > 0
    assert ran_on == workers, f"tasks ran on {sorted(ran_on)}, workers were {sorted(workers)}"


def test_workers_with_another_store_are_refused_before_any_work(tiny_film, local_store_env, tmp_path,
                                                                 monkeypatch):
    import pytest
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    elsewhere = tmp_path / "workers-store"
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                     env={"REEL_STORE": str(elsewhere)}) as cluster,
        Client(cluster, set_as_default=False),
    ):
        monkeypatch.setenv("REEL_DASK_ADDRESS", cluster.scheduler_address)
        with pytest.raises(ValueError, match="Dask workers use the store"):
            run_restore(str(tiny_film["path"]), "wrong-store", "identity")
    assert not (local_store_env / "work").exists() and not (elsewhere / "work").exists()
