"""The QC picture page `reel serve` runs: serves QC outputs of the store, nothing else."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from infra.pictures import picture_url, servable, start_picture_server
from infra.storage import StoreConfig, open_store

SHA = "a" * 64
QC_KEY = f"work/film-1/{SHA}/0123456789abcdef/qc-v4/shot0001-0123456789ab-before-after.png"


@pytest.fixture
def page(tmp_path):
    store = open_store(StoreConfig(url=str(tmp_path / "store")))
    store.put_bytes(QC_KEY, b"\x89PNG fake", content_type="image/png")
    store.put_bytes("published/film-1/v-0123456789ab/qc/report.html", b"<html>ok</html>")
    store.put_bytes("published/film-1/v-0123456789ab/master.mkv", b"master bytes")
    store.put_bytes(f"originals/film-1/{SHA}.mkv", b"original bytes")
    server = start_picture_server(lambda: store)
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers["Content-Type"]


def test_serves_qc_pictures_and_reports(page):
    status, body, ctype = _get(picture_url(page, QC_KEY))
    assert (status, body, ctype) == (200, b"\x89PNG fake", "image/png")
    status, body, ctype = _get(picture_url(page, "published/film-1/v-0123456789ab/qc/report.html"))
    assert status == 200 and body == b"<html>ok</html>" and ctype.startswith("text/html")


@pytest.mark.parametrize("key", [
    "published/film-1/v-0123456789ab/master.mkv",  # masters are not QC outputs
    f"originals/film-1/{SHA}.mkv",
    f"work/film-1/{SHA}/0123456789abcdef/qc-v4/../../../../originals/film-1/{SHA}.mkv",
    f"work/film-1/{SHA}/0123456789abcdef/qc-v4/%2e%2e/x.png",
    "/etc/passwd",
    f"work/film-1/{SHA}/0123456789abcdef/qc-v4/missing.png",
])
def test_refuses_everything_else(page, key):
    status, body, _ = _get(f"{page}/pictures/{key}")
    assert status == 404 and b"bytes" not in body


def test_servable_rules():
    assert servable(QC_KEY)
    assert not servable(QC_KEY.replace("qc-v4", "qc-v4/..", 1))
    assert not servable("published/film-1/v-0123456789ab/qc/../master.mkv")
    assert not servable("published/Film/v-0123456789ab/qc.json")
