"""The Dask task runner: a LocalCluster on embedded defaults, or a scheduler address from settings."""

from __future__ import annotations

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
