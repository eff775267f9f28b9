"""Settings every test shares."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Learned upscalers exported to ONNX during the tests (models/sr_runtime.py) go to a temporary folder,
    not the user's cache; set in the environment, so Dask workers the tests start use it too."""
    before = os.environ.get("REEL_MODEL_CACHE")
    os.environ["REEL_MODEL_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield os.environ["REEL_MODEL_CACHE"]
    if before is None:
        os.environ.pop("REEL_MODEL_CACHE", None)
    else:
        os.environ["REEL_MODEL_CACHE"] = before
