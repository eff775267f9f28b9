"""Ingest memory does not grow with the film: finished mezzanine writers give their encoders back.

A closed PyAV container keeps its FFV1 encoder (megabytes of per-slice state) while the Python object
lives, and the ingest keeps every finished chunk's writer until the chunk is stored: before the fix
the ingest's peak grew by ~6 MB per chunk (a feature film has thousands of chunks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction

import pytest

from infra.media import write_film
from models.synth import SynthConfig, render_film

PROBE = """
import json, sys
from pathlib import Path
from infra.runtime import process_runtime
from infra.pipeline.ingest import ingest_file
rt = process_runtime()
record = ingest_file(rt.store, Path(sys.argv[1]), "film.mkv", "mem", rt.settings)
# VmHWM, not ru_maxrss: Linux carries the parent's peak over into a child's ru_maxrss across exec
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"chunks": len(record.chunks), "mezzanine": record.mezzanine, "peak_mib": int(hwm.split()[1]) / 1024}))
"""


def peak_of_ingest(tmp_path, frames: int, mezzanine: str = "ffv1") -> dict:
    film = render_film(SynthConfig(width=320, height=240, shots=1, frames_per_shot=frames, seed=2))
    path = tmp_path / f"film{frames}-{mezzanine}.mkv"
    write_film(path, iter(film.degraded), Fraction(24))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
    env.update(REEL_STORE=str(tmp_path / f"store{frames}-{mezzanine}"), REEL_CHUNK_FRAMES="4", REEL_MEZZANINE=mezzanine)
    done = subprocess.run([sys.executable, "-c", PROBE, str(path)], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_ingest_peak_memory_does_not_grow_with_the_number_of_chunks(tmp_path):
    short, long = peak_of_ingest(tmp_path, 24), peak_of_ingest(tmp_path, 120)
    assert (short["chunks"], long["chunks"]) == (6, 30)
    assert short["mezzanine"] == long["mezzanine"] == "ffv1"
    # 24 more finished writers: about 150 MiB more before the fix, a few MiB now
    assert long["peak_mib"] - short["peak_mib"] < 40, (short, long)


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_copied_mezzanine_peak_memory_does_not_grow_either(tmp_path):
    short, long = peak_of_ingest(tmp_path, 24, "auto"), peak_of_ingest(tmp_path, 120, "auto")
    assert (short["chunks"], long["chunks"]) == (6, 30)
    assert short["mezzanine"] == long["mezzanine"] == "copy"  # an FFV1 source's packets, copied
    assert long["peak_mib"] - short["peak_mib"] < 40, (short, long)
