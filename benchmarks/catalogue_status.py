"""`reel catalogue status` at scale: N titles (default 10,000) whose sources share one small film, a local
store and a temporary Prefect API; prints the wall time of `catalogue_status`.

    .venv/bin/python -m benchmarks.catalogue_status [--titles 10000]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path


def write_catalogue(folder: Path, n: int) -> Path:
    (folder / "film.mkv").write_bytes(b"not decoded: status only hashes the source")
    path = folder / "titles.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "source", "recipe"])
        w.writerows([f"title-{i:06d}", "film.mkv", "identity"] for i in range(n))
    return path


def measure(n: int) -> float:
    from prefect.testing.utilities import prefect_test_harness

    from flows.catalogue import catalogue_status
    from infra.settings import Settings

    with tempfile.TemporaryDirectory(prefix="reel-bench-status-") as tmp, prefect_test_harness():
        folder = Path(tmp)
        settings = Settings(store=str(folder / "store"), catalogue=str(write_catalogue(folder, n)))
        started = time.perf_counter()
        table = catalogue_status(settings)
        seconds = time.perf_counter() - started
        assert len(table) == n
        return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--titles", type=int, default=10_000)
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    print(f"catalogue status, {args.titles} titles: {measure(args.titles):.2f} s")


if __name__ == "__main__":
    main()
