"""One Prefect API for a run and every worker process it starts.

With no PREFECT_API_URL configured, Prefect starts an ephemeral API server
in-process on first use. Dask worker processes do not inherit that, so each
would start its own throwaway server (seconds each, and their task runs would
land in databases nobody sees). We start the ephemeral server once, up front,
and export its URL to the environment that worker processes inherit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def shared_prefect_api(startup_timeout_s: int = 120) -> Iterator[str]:
    """Yield the API URL that this process and its child processes use for the duration."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here
    url = PREFECT_API_URL.value()
    server = None
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start(timeout=startup_timeout_s)
        url = server.api_url
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        if server is not None:
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)  # send queued run logs while the server is still up
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        if server is not None:
            server.stop()
