"""The Dask task runner: a LocalCluster on embedded defaults, or a scheduler address from settings."""

from __future__ import annotations

from prefect_dask import DaskTaskRunner

from infra.settings import Settings


def make_task_runner(settings: Settings) -> DaskTaskRunner:
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    threads = settings.dask_threads_per_worker
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": threads,
            "processes": True,
            "dashboard_address": None,
            # one OpenCV/BLAS thread per Dask thread: workers already use every core
            "env": {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                    "OPENCV_FOR_THREADS_NUM": str(threads)},
        },
    )
