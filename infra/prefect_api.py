"""One Prefect API for a run and every worker process it starts.

With no PREFECT_API_URL configured, Prefect starts an ephemeral API server
in-process on first use. Dask worker processes do not inherit that, so each
would start its own throwaway server (seconds each, and their task runs would
land in databases nobody sees). We start the ephemeral server once, up front,
and export its URL to the environment that worker processes inherit.

The server is the process Prefect's own `SubprocessASGIServer` runs (uvicorn serving
`prefect.server.api.server:create_app` with the same environment), started here without importing
`prefect.server` into this process: that import alone cost about 3 s of CPU on every `reel restore`,
paid in the process that then waited for the server anyway. `on_launch` runs while the server starts
(the Dask cluster, say), so the two start side by side.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_PORTS = range(8000, 9000)  # where Prefect's ephemeral servers listen
_EXIT_PORT_IN_USE = 3  # uvicorn's exit status when the port was taken meanwhile


def _free_port() -> int:
    for _ in range(10):
        port = random.choice(_PORTS)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                time.sleep(random.uniform(0.1, 0.5))
    raise RuntimeError("no free port for the Prefect API server (tried 10 in 8000-8999)")


class EphemeralServer:
    """A temporary Prefect API server in a child process (what Prefect starts when no API is configured)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[Any] | None = self._launch()
        atexit.register(self.stop)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> subprocess.Popen[Any]:
        import prefect
        from prefect.logging import get_logger
        from prefect.settings import get_current_settings

        get_logger().info(f"Starting temporary server on http://127.0.0.1:{self.port}")
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1", **get_current_settings().to_environment_variables(exclude_unset=True)}
        return subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                                 "--factory", "prefect.server.api.server:create_app",
                                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
                                 "--lifespan", "on"], env=env)

    def wait(self, timeout_s: float) -> str:
        """Wait until the server answers its health check; its API URL."""
        import httpx

        deadline = time.monotonic() + timeout_s
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                code = self.process.poll()
                if code == _EXIT_PORT_IN_USE:  # taken between the check and the bind: another port
                    self.port = _free_port()
                    self.process = self._launch()
                elif code is not None:
                    raise RuntimeError(f"the temporary Prefect API server exited with status {code}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.api_url}/health", timeout=5).status_code == 200:
                        return self.api_url
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the temporary Prefect API server did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is None:
            return
        from prefect.logging import get_logger

        get_logger().info(f"Stopping temporary server on http://127.0.0.1:{self.port}")
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def shared_prefect_api(startup_timeout_s: int = 120, on_launch: Callable[[], Any] | None = None) -> Iterator[str]:
    """Yield the API URL that this process and its child processes use for the duration.
    `on_launch`: called once the server (if one is needed) has been launched, before waiting for it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here
    url = PREFECT_API_URL.value()
    server = EphemeralServer() if not url else None
    try:
        if on_launch is not None:
            on_launch()
        if server is not None:
            url = server.wait(startup_timeout_s)
    except BaseException:
        if server is not None:
            server.stop()
        raise
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
