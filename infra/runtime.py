"""What every task needs: the store from settings, the retry rule, the worker-store check and memory release."""

from __future__ import annotations

import ctypes
from typing import Any

from infra.settings import load_settings
from infra.storage import Store, is_transient, open_store


def current_store() -> Store:
    """The store named by the settings of this process (workers read the same environment)."""
    return open_store(load_settings().store_config())


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
    return current_store().url


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
