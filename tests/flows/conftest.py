"""Flow tests: one Prefect test harness per session, a tiny synthetic film, real stores."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest
from minio import Minio

from infra.media import write_film
from models.synth import SynthConfig, render_film
from tests.s3server import moto_on_loopback

FILM = dict(width=160, height=120, shots=3, frames_per_shot=12, seed=11)


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_film(tmp_path_factory) -> dict:
    """A degraded 3-shot film with audio, its clean twin and truth."""
    d = tmp_path_factory.mktemp("film")
    cfg = SynthConfig(**FILM)
    f = render_film(cfg)
    repeat = f.truth["cuts"][0] + 5  # a frame printed twice, as old transfers do
    f.degraded[repeat] = f.degraded[repeat - 1]
    f.clean[repeat] = f.clean[repeat - 1]
    f.truth["repeated_frames"] = [repeat]
    path, clean = d / "tiny.mkv", d / "tiny.clean.mkv"
    write_film(path, f.degraded, Fraction(cfg.fps), (f.audio, f.audio_sample_rate))
    write_film(clean, f.clean, Fraction(cfg.fps), (f.audio, f.audio_sample_rate))
    return {"path": path, "clean": clean, "truth": f.truth, "degraded": f.degraded, "clean_frames": f.clean}


@pytest.fixture
def local_store_env(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "store"
    monkeypatch.setenv("REEL_STORE", str(root))
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "16")  # several chunks and pieces even on a tiny film
    monkeypatch.setenv("REEL_PIECE_FRAMES", "8")
    return root


@pytest.fixture(scope="session")
def s3_server():
    with moto_on_loopback() as endpoint:
        Minio(endpoint, access_key="reel-test", secret_key="reel-test-secret", secure=False).make_bucket("reel")
        yield endpoint


@pytest.fixture
def s3_store_env(s3_server, monkeypatch) -> str:
    monkeypatch.setenv("REEL_STORE", "s3://reel/e2e")
    monkeypatch.setenv("REEL_S3_ENDPOINT", s3_server)
    monkeypatch.setenv("REEL_S3_ACCESS_KEY", "reel-test")
    monkeypatch.setenv("REEL_S3_SECRET_KEY", "reel-test-secret")
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "16")
    monkeypatch.setenv("REEL_PIECE_FRAMES", "12")
    return s3_server
