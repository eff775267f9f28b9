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

from infra.media import write_film
from models.synth import SynthConfig, render_film

PROBE = """
import json, resource, sys
from pathlib import Path
from infra.settings import load_settings
from tasks.ingest import _ingest
record = _ingest(Path(sys.argv[1]), "film.mkv", "mem", load_settings())
print(json.dumps({"chunks": len(record.chunks), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def peak_of_ingest(tmp_path, frames: int) -> dict:
    film = render_film(SynthConfig(width=320, height=240, shots=1, frames_per_shot=frames, seed=2))
    path = tmp_path / f"film{frames}.mkv"
    write_film(path, iter(film.degraded), Fraction(24))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
    env.update(REEL_STORE=str(tmp_path / f"store{frames}"), REEL_CHUNK_FRAMES="4")
    done = subprocess.run([sys.executable, "-c", PROBE, str(path)], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ingest_peak_memory_does_not_grow_with_the_number_of_chunks(tmp_path):
    short, long = peak_of_ingest(tmp_path, 24), peak_of_ingest(tmp_path, 120)
    assert (short["chunks"], long["chunks"]) == (6, 30)
    # 24 more finished writers: about 150 MiB more before the fix, a few MiB now
    assert long["peak_mib"] - short["peak_mib"] < 40, (short, long)
