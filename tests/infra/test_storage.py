"""Contract tests for infra.storage against a real folder and a real S3 server (moto, loopback)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import threading
import time
import urllib.request
import uuid

import pytest
from minio import Minio

from infra.storage import (
    MAX_KEY_LENGTH,
    IntegrityError,
    LocalStore,
    ObjectNotFound,
    S3Store,
    StorageError,
    StorageUnavailable,
    Store,
    StoreConfig,
    open_store,
    validate_key,
)
from tests.s3server import moto_on_loopback

BUCKET = "reel-test"
ACCESS = "reel-access"
CANARY = "CANARY-SECRET-123"

HOSTILE_KEYS = [
    "",
    "../x",
    "..",
    ".",
    "a/../b",
    "a/./b",
    "/abs",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    "a b",
    "a\nb",
    "a\u2215b",  # division slash
    "a\uff0fb",  # fullwidth solidus
    "\uff41",  # fullwidth 'a'
    ".meta/x.json",
    ".hidden",
    "-dash",
    "x" * 600,
]


# --------------------------------------------------------------------------- fixtures


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on loopback with BUCKET created; host:port."""
    with moto_on_loopback() as endpoint:
        Minio(endpoint, access_key=ACCESS, secret_key=CANARY, secure=False).make_bucket(BUCKET)
        yield endpoint


@pytest.fixture
def raw(s3_endpoint) -> Minio:
    """Plain minio client, for inspecting and tampering behind the store's back."""
    return Minio(s3_endpoint, access_key=ACCESS, secret_key=CANARY, secure=False)


def _s3_store(endpoint: str) -> S3Store:
    return S3Store(endpoint, ACCESS, CANARY, BUCKET, prefix=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return _s3_store(request.getfixturevalue("s3_endpoint"))


def _corrupt(store: Store, key: str, data: bytes, raw_factory) -> None:
    """Replace the object's bytes, leaving the recorded sha256 stale."""
    if isinstance(store, LocalStore):
        (store.root / key).write_bytes(data)
    else:
        raw: Minio = raw_factory()
        stale = store.sha256(key)
        raw.put_object(
            BUCKET, f"{store.prefix}/{key}", io.BytesIO(data), len(data), metadata={"sha256": stale}
        )


def _assert_clean_message(exc: BaseException) -> None:
    text = str(exc)
    assert "\n" not in text and text.strip()
    assert CANARY not in text and CANARY not in repr(exc)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "key",
    ["a", "originals/Nosferatu_1922/0f3a.mkv", "work/t/s/qc/shot-0001.v2.json", "A/b.c/D_e-f", "x" * 512],
)
def test_validate_key_accepts_plain_keys(key):
    assert validate_key(key) == key


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k)[:20])
def test_validate_key_rejects_hostile_keys(key):
    with pytest.raises(ValueError) as info:
        validate_key(key)
    assert repr(key[:64]) in str(info.value)
    assert len(key) <= MAX_KEY_LENGTH or "600" in str(info.value)


# --------------------------------------------------------------------------- contract, both backends


def test_is_a_store(store):
    assert isinstance(store, Store)
    assert CANARY not in store.url and CANARY not in repr(store)


def test_bytes_roundtrip(store):
    data = b"\x00reel\xff" * 1000
    sha = store.put_bytes("a/b/c.bin", data, content_type="application/x-test")
    assert sha == _sha(data)
    assert store.exists("a/b/c.bin")
    assert store.sha256("a/b/c.bin") == sha
    assert store.size("a/b/c.bin") == len(data)
    assert store.get_bytes("a/b/c.bin") == data


def test_empty_object(store):
    assert store.put_bytes("empty", b"") == _sha(b"")
    assert store.get_bytes("empty") == b""
    assert store.size("empty") == 0


@pytest.mark.parametrize("size", [100_003, 6 * 1024 * 1024 + 1], ids=["small", "multipart"])
def test_file_roundtrip(store, tmp_path, size):
    src = tmp_path / "src.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    sha = store.put_file("originals/film/src.mkv", src, content_type="video/x-matroska")
    assert sha == _sha(data)
    assert store.sha256("originals/film/src.mkv") == sha
    assert store.size("originals/film/src.mkv") == size

    dest = tmp_path / "out" / "nested" / "copy.mkv"
    assert store.get_file("originals/film/src.mkv", dest) == sha
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["copy.mkv"]  # no temp file left behind


def test_get_file_overwrites_existing_destination(store, tmp_path):
    store.put_bytes("k", b"new")
    dest = tmp_path / "dest"
    dest.write_bytes(b"old contents")
    store.get_file("k", dest)
    assert dest.read_bytes() == b"new"


def test_overwrite_replaces_content_and_checksum(store):
    store.put_bytes("k", b"one")
    sha = store.put_bytes("k", b"two")
    assert store.sha256("k") == sha == _sha(b"two")
    assert store.get_bytes("k") == b"two"


def test_exists_list_size_delete(store):
    keys = ["work/t/s/a.mkv", "work/t/s/b.mkv", "work/t/sx/c.mkv", "work/u/d.json", "zz"]
    for i, key in enumerate(keys):
        store.put_bytes(key, b"x" * i)
    assert store.list() == sorted(keys)
    assert store.list("work/t/") == keys[:3]
    assert store.list("work/t/s/") == keys[:2]
    assert store.list("work/t/s") == keys[:3]  # a plain string prefix, as in S3
    assert store.list("nothing/here/") == []
    assert store.size("work/u/d.json") == 3

    store.delete("work/t/s/a.mkv")
    store.delete("work/t/s/a.mkv")  # missing key: fine
    store.delete("never/existed")
    assert not store.exists("work/t/s/a.mkv")
    assert store.list("work/t/") == keys[1:3]
    with pytest.raises(ObjectNotFound):
        store.size("work/t/s/a.mkv")


def test_put_if_absent_never_overwrites(store):
    assert store.put_if_absent("published/t/v1/manifest.json", b'{"v": 1}') is True
    assert store.put_if_absent("published/t/v1/manifest.json", b'{"v": 2}') is False
    assert store.get_bytes("published/t/v1/manifest.json") == b'{"v": 1}'
    assert store.sha256("published/t/v1/manifest.json") == _sha(b'{"v": 1}')
    store.put_bytes("taken", b"by put_bytes")
    assert store.put_if_absent("taken", b"other") is False
    assert store.get_bytes("taken") == b"by put_bytes"


def test_put_if_absent_concurrent_has_one_winner(store):
    barrier = threading.Barrier(8)
    results: dict[int, bool] = {}

    def attempt(i: int) -> None:
        barrier.wait()
        results[i] = store.put_if_absent("lock/claim", f"writer-{i}".encode())

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [i for i, created in results.items() if created]
    assert len(results) == 8 and len(winners) == 1
    assert store.get_bytes("lock/claim") == f"writer-{winners[0]}".encode()


def test_missing_key(store, tmp_path):
    dest = tmp_path / "dest.bin"
    assert not store.exists("no/such/key")
    for call in (
        lambda: store.get_bytes("no/such/key"),
        lambda: store.get_file("no/such/key", dest),
        lambda: store.sha256("no/such/key"),
        lambda: store.size("no/such/key"),
        lambda: store.link("no/such/key"),
    ):
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert isinstance(info.value, FileNotFoundError)
        assert "'no/such/key'" in str(info.value)
        _assert_clean_message(info.value)
    assert not dest.exists()


def test_corrupt_object_raises_integrity_error(store, tmp_path, raw_factory):
    good = b"good bytes" * 100
    sha = store.put_bytes("work/t/seg.mkv", good)
    bad = b"evil bytes" * 100
    _corrupt(store, "work/t/seg.mkv", bad, raw_factory)

    dest_dir = tmp_path / "dl"
    dest_dir.mkdir()
    with pytest.raises(IntegrityError) as info:
        store.get_file("work/t/seg.mkv", dest_dir / "seg.mkv")
    message = str(info.value)
    assert "'work/t/seg.mkv'" in message and sha in message and _sha(bad) in message
    _assert_clean_message(info.value)
    assert os.listdir(dest_dir) == []  # neither the file nor a partial download

    with pytest.raises(IntegrityError):
        store.get_bytes("work/t/seg.mkv")
    assert store.get_bytes("work/t/seg.mkv", verify=False) == bad
    assert store.get_file("work/t/seg.mkv", dest_dir / "seg.mkv", verify=False) == _sha(bad)


@pytest.fixture
def raw_factory(request):
    """Lazily builds the raw client so local-only runs do not start moto."""
    return lambda: request.getfixturevalue("raw")


class _Tripwire:
    def __getattr__(self, name):
        raise AssertionError(f"I/O attempted before key validation: {name}")


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k)[:20])
def test_hostile_keys_rejected_before_io(store, tmp_path, key):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    (tmp_path / "x").write_bytes(b"outside the store")
    if isinstance(store, S3Store):
        store._client = _Tripwire()  # any request would trip it
    before = sorted(p for p in tmp_path.rglob("*"))
    calls = [
        lambda: store.exists(key),
        lambda: store.put_file(key, src),
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_if_absent(key, b"x"),
        lambda: store.get_file(key, tmp_path / "dest"),
        lambda: store.get_bytes(key),
        lambda: store.sha256(key),
        lambda: store.size(key),
        lambda: store.delete(key),
        lambda: store.link(key),
    ]
    if key not in ("", "a/"):  # those two are valid list prefixes
        calls.append(lambda: store.list(key))
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "x").read_bytes() == b"outside the store"


def test_link_opens_the_object(store):
    data = b"look at me"
    store.put_bytes("qc/t/sheet.png", data, content_type="image/png")
    url = store.link("qc/t/sheet.png")
    if isinstance(store, LocalStore):
        assert url.startswith("file://")
    else:
        assert url.startswith("http://127.0.0.1:")
        assert "X-Amz-Expires=3600" in url and CANARY not in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == data


# --------------------------------------------------------------------------- local backend specifics


def test_local_sidecar_marks_completion(tmp_path):
    store = LocalStore(tmp_path / "new" / "root")  # root created
    store.put_bytes("a/done", b"ok")
    assert (store.root / ".meta" / "a" / "done.json").is_file()
    # An object written without its sidecar (a crashed writer) is absent.
    (store.root / "a" / "half").write_bytes(b"half-written")
    assert not store.exists("a/half")
    assert store.list() == ["a/done"]
    with pytest.raises(ObjectNotFound):
        store.get_bytes("a/half")
    # put_if_absent treats the claimed name as taken; delete clears it.
    assert store.put_if_absent("a/half", b"x") is False
    store.delete("a/half")
    assert store.put_if_absent("a/half", b"x") is True
    leftovers = [p.name for p in store.root.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_local_put_file_missing_source(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(FileNotFoundError):
        store.put_file("k", tmp_path / "missing")
    assert store.list() == []


# --------------------------------------------------------------------------- S3 specifics


def test_s3_records_sha256_metadata_under_prefix(s3_endpoint, raw, tmp_path):
    store = _s3_store(s3_endpoint)
    src = tmp_path / "f"
    src.write_bytes(b"abc" * 1000)
    sha = store.put_file("originals/t/f.mkv", src, content_type="video/x-matroska")
    stat = raw.stat_object(BUCKET, f"{store.prefix}/originals/t/f.mkv")
    assert stat.metadata["x-amz-meta-sha256"] == sha
    assert stat.content_type == "video/x-matroska"
    # Objects outside the prefix or with names that are not keys are not listed.
    raw.put_object(BUCKET, f"{store.prefix}/bad name", io.BytesIO(b"x"), 1)
    raw.put_object(BUCKET, "elsewhere/k", io.BytesIO(b"x"), 1)
    assert store.list() == ["originals/t/f.mkv"]


def test_s3_object_without_checksum(s3_endpoint, raw):
    store = _s3_store(s3_endpoint)
    raw.put_object(BUCKET, f"{store.prefix}/foreign", io.BytesIO(b"data"), 4)
    assert store.exists("foreign")
    with pytest.raises(IntegrityError, match="no recorded sha256"):
        store.get_bytes("foreign")
    assert store.get_bytes("foreign", verify=False) == b"data"


def test_moto_honours_if_none_match(raw):
    """put_if_absent relies on the server refusing a second `If-None-Match: *` PUT."""
    from minio.error import S3Error

    raw._put_object(BUCKET, "inm/probe", b"one", headers={"If-None-Match": "*"})
    with pytest.raises(S3Error) as info:
        raw._put_object(BUCKET, "inm/probe", b"two", headers={"If-None-Match": "*"})
    assert info.value.code == "PreconditionFailed"
    assert raw.get_object(BUCKET, "inm/probe").read() == b"one"


def test_s3_unreachable_endpoint_fails_fast():
    endpoint = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as info:
        S3Store(endpoint, ACCESS, CANARY, BUCKET)
    assert time.monotonic() - started < 10
    assert endpoint in str(info.value)
    _assert_clean_message(info.value)


def test_s3_missing_bucket(s3_endpoint):
    with pytest.raises(StorageUnavailable) as info:
        S3Store(s3_endpoint, ACCESS, CANARY, "no-such-bucket-here")
    assert "'no-such-bucket-here'" in str(info.value)
    _assert_clean_message(info.value)
    store = S3Store(s3_endpoint, ACCESS, CANARY, "made-on-demand", create_bucket=True)
    store.put_bytes("k", b"v")
    assert store.get_bytes("k") == b"v"


@pytest.fixture
def moto_auth(s3_endpoint):
    """Make moto check credentials (it accepts any by default); restored afterwards."""

    def set_count(value: bytes) -> None:
        request = urllib.request.Request(
            f"http://{s3_endpoint}/moto-api/reset-auth",
            data=value,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).read()

    set_count(b"0")
    try:
        yield
    finally:
        set_count(b"inf")


def test_s3_wrong_credentials(s3_endpoint, moto_auth):
    with pytest.raises(StorageUnavailable) as info:
        S3Store(s3_endpoint, "AKIAUNKNOWN", CANARY, BUCKET)
    assert "access key" in str(info.value)
    _assert_clean_message(info.value)


class _Always503(http.server.BaseHTTPRequestHandler):
    hits = 0

    def _answer(self) -> None:
        type(self).hits += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


def test_s3_server_errors_are_retried_then_reported():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always503)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as info:
            S3Store(endpoint, ACCESS, CANARY, BUCKET)
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()
    assert _Always503.hits > 1  # retried
    assert "503" in str(info.value)
    _assert_clean_message(info.value)


# --------------------------------------------------------------------------- configuration


def test_config_opens_local_stores(tmp_path):
    by_path = open_store(StoreConfig(url=str(tmp_path / "a")))
    by_uri = open_store(StoreConfig(url=(tmp_path / "b").as_uri()))
    assert isinstance(by_path, LocalStore) and by_path.root == tmp_path / "a"
    assert isinstance(by_uri, LocalStore) and by_uri.root == tmp_path / "b"


def test_config_opens_s3_store(s3_endpoint, raw):
    config = StoreConfig(
        url=f"s3://{BUCKET}/cfg/run1",
        s3_endpoint=s3_endpoint,
        s3_access_key=ACCESS,
        s3_secret_key=CANARY,
    )
    store = open_store(config)
    assert isinstance(store, S3Store)
    store.put_bytes("k", b"v")
    assert raw.get_object(BUCKET, "cfg/run1/k").read() == b"v"
    for text in (repr(config), str(config), config.model_dump_json()):
        assert CANARY not in text


def test_config_s3_needs_endpoint_and_credentials():
    with pytest.raises(ValueError, match="s3_endpoint.*s3_secret_key"):
        open_store(StoreConfig(url="s3://bucket/prefix", s3_access_key=ACCESS))
    with pytest.raises(ValueError, match="s3_access_key"):
        open_store(StoreConfig(url="s3://bucket", s3_endpoint="127.0.0.1:9", s3_secret_key=CANARY))


def test_config_rejects_unknown_scheme_and_remote_file_urls():
    with pytest.raises(ValueError, match="unknown scheme"):
        StoreConfig(url="gs://bucket/x")
    with pytest.raises(ValueError, match="only local"):
        open_store(StoreConfig(url="file://server/share"))


def test_config_fields_are_described():
    for name, field in StoreConfig.model_fields.items():
        assert field.description, name


def test_storage_error_is_one_line():
    assert str(StorageError("a\nb\r\nc")) == "a b c"
    assert issubclass(ObjectNotFound, FileNotFoundError) and issubclass(ObjectNotFound, StorageError)
    assert issubclass(StorageError, RuntimeError)


def test_local_store_removes_only_stale_temp_files_of_interrupted_writes(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put_bytes("t/a/seg.mkv", b"payload")
    stale = tmp_path / "store" / "t" / "a" / ".tmp-abc123"
    fresh = tmp_path / "store" / "t" / "a" / ".tmp-def456"
    lookalike = tmp_path / "store" / "t" / "a" / "tmp-not-temp"
    for p in (stale, fresh, lookalike):
        p.write_bytes(b"half a write")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    os.utime(lookalike, (old, old))
    assert store.remove_stale_temp(3600) == ["t/a/.tmp-abc123"]
    assert not stale.exists() and fresh.exists() and lookalike.exists()
    assert store.get_bytes("t/a/seg.mkv") == b"payload" and store.list("t/") == ["t/a/seg.mkv"]
    assert store.remove_stale_temp(3600) == []
