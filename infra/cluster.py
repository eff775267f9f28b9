"""The Dask task runner: a LocalCluster on embedded defaults, or a scheduler address from settings.

A process that makes flow runs (`reel restore`, `reel serve`) holds one cluster for all of them
(`RunsCluster`): started in the background while the Prefect API starts, and not paid again per title.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
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


def local_cluster_kwargs(settings: Settings) -> dict[str, Any]:
    """distributed.LocalCluster's arguments for the settings' worker processes and threads."""
    threads = settings.dask_threads_per_worker
    return {
        "n_workers": settings.dask_workers,
        "threads_per_worker": threads,
        "processes": True,
        "dashboard_address": None,
        # one OpenCV/BLAS thread per Dask thread: workers already use every core
        "env": {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                "OPENCV_FOR_THREADS_NUM": str(threads)},
    }


def make_task_runner(settings: Settings) -> DaskTaskRunner:
    """A runner for one flow run: the cluster at the settings' address, or a LocalCluster of its own."""
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(settings))


class ClusterStartError(RuntimeError):
    """The local Dask cluster did not start."""


class RunsCluster:
    """The Dask cluster that every flow run of this process uses.

    With REEL_DASK_ADDRESS set, the cluster there. Otherwise a LocalCluster (REEL_DASK_WORKERS
    processes) that this process starts in a background thread (`start()` or entering), so that it
    starts while the caller does other things (the Prefect API server, say), and closes on exit (or
    `close()`). Each worker imports the task modules as it starts. Runs reach the cluster by address
    (`task_runner()`), so child processes can too: `reel serve` exports it as REEL_DASK_ADDRESS to
    the flow runs it starts.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cluster: Any = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> RunsCluster:
        """Start the local cluster in the background (once; nothing to start for an address)."""
        if not self.settings.dask_address and self._thread is None:
            self._thread = threading.Thread(target=self._start, name="reel-cluster", daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> RunsCluster:
        return self.start()

    def _start(self) -> None:
        from distributed import Client, LocalCluster

        try:
            self._cluster = LocalCluster(**local_cluster_kwargs(self.settings))
            with Client(self._cluster, set_as_default=False) as client:
                client.run(_import_task_modules)  # on every worker, before any task
        except BaseException as exc:  # raised, with the cause, to whoever asks for the address
            self._error = exc

    def address(self) -> str:
        """The scheduler's address (waits for the local cluster to be up)."""
        if self.settings.dask_address:
            return self.settings.dask_address
        if self._thread is None:
            raise RuntimeError("RunsCluster.address() before start()")
        self._thread.join()
        if self._error is not None or self._cluster is None:
            raise ClusterStartError(f"the local Dask cluster ({self.settings.dask_workers} workers) did not start: "
                                    f"{self._error!r}") from self._error
        return str(self._cluster.scheduler_address)

    def task_runner(self) -> DaskTaskRunner:
        return DaskTaskRunner(address=self.address())

    def close(self) -> None:
        """Close the local cluster (once it is up). Close it while the Prefect API its workers reported
        to is still up: a worker with run logs or events for a stopped API outlives the nanny's wait."""
        if self._thread is not None:
            self._thread.join()
            if self._cluster is not None:
                with quiet_dask_logs():  # workers' heartbeats to a closing scheduler log tracebacks here
                    self._cluster.close()
                self._cluster = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@contextmanager
def quiet_dask_logs() -> Iterator[None]:
    """Dask's and tornado's loggers off in this process for the body (a cluster's shutdown: closed comms
    log CommClosedError tracebacks that say nothing to the user), their levels restored after."""
    import logging

    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


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
