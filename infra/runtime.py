"""What the steps of a process share: its settings, read once, and the store they name, opened once; the
retry rule, the worker-store check and memory release.

Each entry point (a `reel` command, a flow run, a Dask worker running tasks) gets its `Runtime` from
`process_runtime()` once and passes the settings and the store down. The first call reads the settings
(environment and .env, Prefect Secret blocks); the store is opened when first used (on S3 one
`bucket_exists` round trip); later calls in the same process return the same object, so a task call
costs neither. Workers
read their own environment (a studio's workers hold their own credentials; nothing secret travels
through the task graph): `check_worker_store` refuses a run whose workers would use another store.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

from infra.settings import Settings, load_settings
from infra.storage import Store, is_transient, open_store


class Runtime:
    """A process's settings and the store they name, opened on first use (a command that needs no store,
    `reel stage`, opens none) and then kept."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self._store = store
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings.store_config())
            return self._store


_lock = threading.Lock()
_current: tuple[tuple[Any, ...], Runtime] | None = None


def _configuration() -> tuple[Any, ...]:
    """What the settings are read from: the REEL_ environment, the working directory (relative store
    paths, .env) and the .env file's stamp. Cheap: no parsing, no I/O beyond one stat."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("REEL_")))
    try:
        st = os.stat(".env")
        dotenv: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
    except OSError:
        dotenv = None
    return env, os.getcwd(), dotenv


def process_runtime() -> Runtime:
    """This process's runtime: read and opened on first use, then the same object, until what the
    settings are read from changes (a process that reconfigures itself, a test)."""
    global _current
    config = _configuration()
    with _lock:
        if _current is None or _current[0] != config:
            _current = (config, Runtime(load_settings()))
        return _current[1]


def current_store() -> Store:
    """The store of this process's runtime."""
    return process_runtime().store


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry transient storage outages only.

    True for StoreUnreachable (unreachable endpoint, timeouts, HTTP 5xx, SlowDown),
    ConnectionError and TimeoutError. False for everything else: refused credentials
    and missing buckets (StoreRefused), corrupt objects (IntegrityError), missing keys
    (ObjectNotFound), bad input (ValueError) and bugs.
    """
    try:
        state.result()
    except Exception as e:
        return is_transient(e)
    return False


def _store_url() -> str:
    return process_runtime().store.url


def check_worker_store(flow_store_url: str) -> None:
    """With an external Dask cluster, workers read their own settings: refuse to start when a worker
    would use another store than the flow (its pieces would land where the flow never looks)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    seen = task(_store_url, name="worker-store", cache_policy=NO_CACHE).submit().result()  # type: ignore[call-overload]
    if seen != flow_store_url:
        raise ValueError(f"the Dask workers use the store {seen} but this flow uses {flow_store_url}: give them "
                         "the same REEL_STORE (and S3 settings)")


def release_memory() -> None:
    """Give the heap memory freed by a finished piece back to the OS (glibc `malloc_trim`).

    Workers keep glibc's adaptive malloc (see infra/cluster.py), which keeps freed frame-sized
    blocks for reuse; trimming once per task keeps a worker's resident memory from creeping up over
    a long film at the cost of faulting pages in once per task. A no-op where there is no glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
