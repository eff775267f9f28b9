"""The Dask task runner: a LocalCluster on embedded defaults, or a scheduler address from settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
from prefect_dask import DaskTaskRunner

from infra.settings import Settings

# Dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536 (to hand freed memory back to
# the OS sooner). Setting it at all turns off glibc's adaptive mmap threshold, so every frame-sized
# temporary array is a fresh mmap whose pages fault in again: the defects chain ran 26 % slower in a
# worker than in a plain process (8.3 vs 6.6 s on 48 frames, benchmarks/ops.py). Reel's workers keep
# glibc's defaults; their peak memory is bounded by the piece size either way (checked by the memory
# benchmark). The deploy image does the same for `dask worker` with infra/deploy/dask.yaml.
WORKER_DASK_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
dask.config.set(WORKER_DASK_CONFIG)  # read by each Nanny when it starts, in this (the flow's) process


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


TASK_MODULES = ("tasks.restore", "tasks.qc", "tasks.shots", "tasks.colour")


def _import_task_modules() -> None:
    import importlib

    for name in TASK_MODULES:
        importlib.import_module(name)


@contextmanager
def cluster_starting(runner: Any) -> Iterator[None]:
    """Start the flow's Dask cluster (prefect-dask starts it on first use) in a thread while the
    body runs, e.g. the ingest in the flow's own process, and have each worker import the task
    modules (Prefect, the models: about 1.7 s a worker, otherwise paid when its first task arrives).
    Worker start-up is then off the critical path. Waits for it at exit, so nothing submits while
    the client is being made. A failure here is left for the first submit to raise."""
    if not isinstance(runner, DaskTaskRunner) or getattr(runner, "_client", None) is not None:
        yield
        return

    def start() -> None:
        try:
            client = runner.client  # the property creates the cluster and the client
            client.run(_import_task_modules)  # on every worker, outside the task queue
        except Exception:  # raised again, with Prefect's logging, where the flow first submits
            pass

    thread = threading.Thread(target=start, name="reel-cluster-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
