"""The one cluster API: `RunsCluster` (the Dask cluster a process's flow runs use) and the flow runs'
task runner on it (`ClusterTaskRunner`).

A RunsCluster is the scheduler at the settings' address, or a LocalCluster it starts in the
background (workers import the task modules as they start). A process that makes flow runs
(`reel restore`, `reel serve`) holds one for all of them: started while the Prefect API starts, and
not paid again per title. A flow run started by something else (a served deployment's child process)
gets a `ClusterTaskRunner` with no cluster: it makes one from the process's settings when the run
starts (in the background, while the flow ingests) and closes it when the run ends.
"""

from __future__ import annotations

import os
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
# Set while a LocalCluster is made: each Nanny reads it once, when it is created (its restarts keep it).
WORKER_DASK_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _forget_foreign_trim_threshold() -> None:
    """A nanny copies its pre-spawn settings into its own process's environment (distributed's
    WorkerProcess.start), so a LocalCluster made earlier in this process by anything else (a notebook, a
    test) leaves Dask's MALLOC_TRIM_THRESHOLD_ there, and every later worker process inherits it. Drop
    that value (only Dask's own: a value someone chose is kept); this process's own malloc read its
    settings when it started, so nothing changes for it."""
    dask_value = (dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}).get(
        "MALLOC_TRIM_THRESHOLD_")
    if dask_value is not None and os.environ.get("MALLOC_TRIM_THRESHOLD_") == str(dask_value):
        del os.environ["MALLOC_TRIM_THRESHOLD_"]


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
            _forget_foreign_trim_threshold()
            with dask.config.set(WORKER_DASK_CONFIG):
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

    def task_runner(self) -> ClusterTaskRunner:
        """A task runner for flow runs on this cluster (connects when the run first submits)."""
        return ClusterTaskRunner(self)

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


class ClusterTaskRunner(DaskTaskRunner):
    """A flow run's task runner on a `RunsCluster`: the one given (a process's, shared by its runs), or,
    given none (the flow's default: a run started by something else), one made from the run's settings
    and closed when the run ends. The flow starts it (`start_workers`) once its request has been checked,
    in the background, so the workers start while the flow works in its own process (the ingest); the
    client connects when the run first submits a task (waiting for the cluster if it is still starting).

    Nothing is read or started when the runner is made: the flow's decorator makes one at import.
    """

    def __init__(self, cluster: RunsCluster | None = None) -> None:
        super().__init__()
        self.cluster = cluster
        self._own: RunsCluster | None = None

    def duplicate(self) -> ClusterTaskRunner:
        return type(self)(self.cluster)

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect sends the flow, with its runner, along with every task to the workers: a copy that
        # travels is a runner with no cluster (this process's cluster, its threads and client stay here).
        return (type(self), ())

    def start_cluster(self, settings: Settings | None = None) -> None:
        """Start the run's own cluster in the background (once; nothing to do when one was given).
        settings: the run's (default: this process's, `infra.runtime.process_runtime`)."""
        if self.cluster is not None or self._own is not None:
            return
        if settings is None:
            from infra.runtime import process_runtime

            settings = process_runtime().settings
        self._own = RunsCluster(settings).start()
        self._exit_stack.callback(self._own.close)  # after the client (entered later) has closed

    @property
    def client(self) -> Any:
        if self._client is None and self.address is None:
            self.start_cluster()
            cluster = self.cluster or self._own
            assert cluster is not None
            self.address = cluster.address()
        return super().client


def start_workers(runner: Any, settings: Settings) -> None:
    """Start the flow run's workers now, in the background, if its runner is a ClusterTaskRunner (other
    runners, e.g. a test's ThreadPoolTaskRunner, are left alone)."""
    if isinstance(runner, ClusterTaskRunner):
        runner.start_cluster(settings)
