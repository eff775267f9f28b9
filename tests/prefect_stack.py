"""A real Prefect server and `reel serve` on loopback, for tests that go through deployments."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _deployed(names: list[str]) -> bool:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            return all(client.read_deployment_by_name(n) is not None for n in names)
        except Exception:
            return False


@contextmanager
def prefect_stack(base: Path, env: dict[str, str], serve_args: list[str]) -> Iterator[dict[str, Any]]:
    """Start `prefect server start` (SQLite under base) and `reel serve`; this process's Prefect client
    is pointed at the server (PREFECT_API_URL) for the duration. Logs in base/logs/."""
    port, pictures = free_port(), free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(base / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "true",
           "PREFECT_RUNNER_POLL_FREQUENCY": "2", **env}
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    previous = os.environ.get("PREFECT_API_URL")
    try:
        procs.append(subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                       "--port", str(port)], env=env, start_new_session=True,
                                      stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT))
        wait_for("the Prefect server", lambda: _http_ok(f"{api}/health"), 120)
        procs.append(subprocess.Popen([str(BIN / "reel"), "serve", "--port", str(pictures), *serve_args],
                                      env=env, start_new_session=True, cwd=base,
                                      stdout=open(logs / "serve.log", "w"), stderr=subprocess.STDOUT))
        from prefect.settings import PREFECT_API_URL, temporary_settings

        os.environ["PREFECT_API_URL"] = api  # Prefect reads the environment once, at import:
        with temporary_settings({PREFECT_API_URL: api}):  # this makes the change count in this process
            wait_for("reel serve's deployments",
                     lambda: _deployed(["restore-title/reel", "catalogue-sweep/reel"]), 120)
            yield {"ui": f"http://127.0.0.1:{port}", "api": api, "env": env, "base": base, "logs": logs,
                   "pictures": f"http://127.0.0.1:{pictures}"}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except Exception:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
