"""`reel serve`: the long-running process behind the Prefect UI.

It serves two deployments, so the UI's Run, "Custom run" and Retry work:
  restore-title/reel     one title (review gate on by default; rerun parameters in the form)
  catalogue-sweep/reel   on the cron in settings, starts restore-title runs for titles that need work
and a small read-only page for QC pictures that the QC artifacts link to (`infra.pictures`).
Flow runs execute in child processes of this one and inherit its environment (settings). They share
one Dask cluster: REEL_DASK_ADDRESS's, or a LocalCluster this process starts and exports as
REEL_DASK_ADDRESS to its children, so no run pays for a cluster start and concurrent runs share the
workers instead of each starting REEL_DASK_WORKERS more.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import serve
from prefect.deployments.runner import EntrypointType

from flows.catalogue import catalogue_sweep
from flows.restore_title import restore_title
from infra.cluster import RunsCluster
from infra.pictures import start_picture_server
from infra.runtime import process_runtime
from infra.settings import Settings

DEPLOYMENT = "reel"  # restore-title/reel and catalogue-sweep/reel


def deployments(settings: Settings, sweep_schedule: bool = True) -> list[Any]:
    """The deployments `reel serve` runs (module entry points: importable wherever reel is installed)."""
    restore = restore_title.to_deployment(
        name=DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH, parameters={"review_gate": True},
        description="Restore and publish one title. Pauses for review when QC asks (answer in the run's page). "
                    "Rerun: redo_shots, overrides (stage.param=value), from_step.",
        tags=["reel"])
    sweep = catalogue_sweep.to_deployment(
        name=DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH,
        cron=settings.sweep_cron if sweep_schedule else None,
        description=f"Start restore-title runs for catalogue titles that need work "
                    f"(at most {settings.sweep_max_concurrent} active).",
        tags=["reel"])
    return [restore, sweep]


def run_serve(host: str = "127.0.0.1", port: int = 8470, sweep_schedule: bool = True) -> None:
    """Start the picture page and serve the deployments until interrupted."""
    rt = process_runtime()  # settings read and the store opened once, for the picture page and the cluster
    settings = rt.settings
    pictures = start_picture_server(lambda: rt.store, host, port)
    bound_host, bound_port = pictures.server_address[:2]
    if isinstance(bound_host, bytes):
        bound_host = bound_host.decode()
    public = settings.public_url or f"http://{bound_host}:{bound_port}"
    os.environ["REEL_PUBLIC_URL"] = public  # flow runs (child processes) link QC pictures here
    print(f"QC pictures: {public}/pictures/...")
    try:
        with RunsCluster(settings) as cluster:
            os.environ["REEL_DASK_ADDRESS"] = cluster.address()  # read by the flow runs' settings
            print(f"Dask scheduler: {cluster.address()}")
            # restore runs (running or paused for review) plus the sweep itself
            serve(*deployments(settings, sweep_schedule), limit=settings.sweep_max_concurrent + 1)
    finally:
        pictures.shutdown()
