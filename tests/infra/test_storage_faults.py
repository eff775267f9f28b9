"""Storage faults against a real S3 server (moto, loopback) and a real folder.

Every failure must be one clear line naming the endpoint/bucket/key and holding no
credential, and must be classified: transient (unreachable, timeouts, 5xx, SlowDown)
is retried by infra.runtime.retry_transient; permanent (refused credentials, missing
bucket, corrupt object, missing key, bad input) never is.

moto does check credentials in server mode once told to (POST /moto-api/reset-auth
with a count of 0): unknown access keys, wrong secrets and users without a policy are
refused for real here. The hand-built S3Error cases cover the codes moto cannot be
made to send (SlowDown, InternalError, ...).
"""

from __future__ import annotations

import errno
import http.server
import io
import json
import pickle
import socket
import threading
import time
import urllib.request

import boto3
import pytest
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

import infra.storage as storage
from infra.runtime import retry_transient
from infra.storage import (
    IntegrityError,
    LocalStore,
    ObjectNotFound,
    S3Store,
    StorageError,
    StorageUnavailable,
    StoreRefused,
    StoreUnreachable,
    is_transient,
)
from tests.s3server import moto_on_loopback

BUCKET = "reel-faults"
ACCESS = "reel-faults-access"
CANARY = "CANARY-FAULTS-5e3b9c"  # the secret key everywhere here; must never show up in a message
FAST_S = 5.0  # an unreachable endpoint must be reported within this


# --------------------------------------------------------------------------- helpers


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_clean(exc: BaseException, *must_name: str) -> None:
    text = str(exc)
    assert text.strip() and "\n" not in text and "\r" not in text, text
    for secret in (CANARY, ACCESS):
        assert secret not in text and secret not in repr(exc), text
    for name in must_name:
        assert name in text, (name, text)


class _FailedState:
    """What Prefect hands a retry condition: a state whose .result() raises the task's exception."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self, *args, **kwargs):
        raise self.exc


def _retried(exc: BaseException) -> bool:
    return retry_transient(None, None, _FailedState(exc))


def _assert_transient(exc: BaseException) -> None:
    assert isinstance(exc, StoreUnreachable) and isinstance(exc, StorageUnavailable)
    assert exc.transient and is_transient(exc) and _retried(exc)


def _assert_permanent(exc: BaseException) -> None:
    assert not is_transient(exc) and not _retried(exc)
    assert not getattr(exc, "transient", False)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto():
    """A moto server on loopback with BUCKET and an IAM user `reader` (key, no policy) and
    `writer` (key, s3:*). Credentials are checked only inside `auth_on`."""
    with moto_on_loopback() as endpoint:
        Minio(endpoint, access_key=ACCESS, secret_key=CANARY, secure=False).make_bucket(BUCKET)
        iam = boto3.client("iam", endpoint_url=f"http://{endpoint}", region_name="us-east-1",
                           aws_access_key_id=ACCESS, aws_secret_access_key=CANARY)
        keys = {}
        for user in ("reader", "writer"):
            iam.create_user(UserName=user)
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        iam.put_user_policy(UserName="writer", PolicyName="s3-all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        yield {"endpoint": endpoint, "keys": keys}


def _set_auth(endpoint: str, count: bytes) -> None:
    request = urllib.request.Request(f"http://{endpoint}/moto-api/reset-auth", data=count, method="POST",
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture
def auth_on(moto):
    _set_auth(moto["endpoint"], b"0")
    try:
        yield moto
    finally:
        _set_auth(moto["endpoint"], b"inf")


@pytest.fixture
def s3(moto) -> S3Store:
    return S3Store(moto["endpoint"], ACCESS, CANARY, BUCKET, prefix=f"t{time.monotonic_ns()}")


@pytest.fixture
def raw(moto) -> Minio:
    return Minio(moto["endpoint"], access_key=ACCESS, secret_key=CANARY, secure=False)


# --------------------------------------------------------------------------- wrong credentials (real)


def test_unknown_access_key_is_refused_permanently(auth_on):
    endpoint = auth_on["endpoint"]
    with pytest.raises(StoreRefused) as info:
        S3Store(endpoint, "AKIAUNKNOWNUNKNOWN00", CANARY, BUCKET)
    _assert_clean(info.value, endpoint, BUCKET, "InvalidAccessKeyId", "access key")
    assert "AKIAUNKNOWNUNKNOWN00" not in str(info.value)
    _assert_permanent(info.value)


def test_wrong_secret_key_is_refused_permanently(auth_on):
    endpoint, key = auth_on["endpoint"], auth_on["keys"]["writer"]
    with pytest.raises(StoreRefused) as info:
        S3Store(endpoint, key["AccessKeyId"], CANARY, BUCKET)
    _assert_clean(info.value, endpoint, BUCKET, "SignatureDoesNotMatch", "secret key")
    assert key["AccessKeyId"] not in str(info.value)
    _assert_permanent(info.value)


def test_access_denied_is_refused_permanently(auth_on):
    endpoint, key = auth_on["endpoint"], auth_on["keys"]["reader"]  # valid key, no policy
    with pytest.raises(StoreRefused) as info:
        S3Store(endpoint, key["AccessKeyId"], key["SecretAccessKey"], BUCKET)
    _assert_clean(info.value, endpoint, BUCKET, "AccessDenied")
    assert key["SecretAccessKey"] not in str(info.value) and key["AccessKeyId"] not in str(info.value)
    _assert_permanent(info.value)


def test_valid_credentials_still_work_with_auth_on(auth_on):
    key = auth_on["keys"]["writer"]
    store = S3Store(auth_on["endpoint"], key["AccessKeyId"], key["SecretAccessKey"], BUCKET, prefix="authed")
    store.put_bytes("k", b"v")
    assert store.get_bytes("k") == b"v"


# --------------------------------------------------------------------------- unreachable endpoint


def test_closed_port_fails_fast_and_is_transient():
    endpoint = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(StoreUnreachable) as info:
        S3Store(endpoint, ACCESS, CANARY, BUCKET)
    assert time.monotonic() - started < FAST_S
    _assert_clean(info.value, endpoint, BUCKET)
    assert "refused" in str(info.value).lower()
    _assert_transient(info.value)


def test_endpoint_that_goes_away_names_the_key_and_is_transient(tmp_path):
    with moto_on_loopback() as endpoint:  # the server stops at the end of this block
        Minio(endpoint, access_key=ACCESS, secret_key=CANARY, secure=False).make_bucket(BUCKET)
        store = S3Store(endpoint, ACCESS, CANARY, BUCKET)
        store.put_bytes("work/t/a.bin", b"data")
    for call in (lambda: store.get_bytes("work/t/a.bin"), lambda: store.put_bytes("work/t/b.bin", b"x"),
                 lambda: store.get_file("work/t/a.bin", tmp_path / "a.bin"), lambda: store.list("work/")):
        started = time.monotonic()
        with pytest.raises(StoreUnreachable) as info:
            call()
        assert time.monotonic() - started < FAST_S
        _assert_clean(info.value, endpoint, BUCKET)
        _assert_transient(info.value)
    with pytest.raises(StoreUnreachable) as info:
        store.get_bytes("work/t/a.bin")
    assert "'work/t/a.bin'" in str(info.value)
    assert not (tmp_path / "a.bin").exists()


def test_hung_server_times_out_and_is_transient(monkeypatch):
    """A server that accepts connections and never answers: a read timeout, reported quickly."""
    monkeypatch.setattr(storage, "_READ_TIMEOUT_S", 0.3)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the handshakes; nobody ever reads
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(StoreUnreachable) as info:
            S3Store(endpoint, ACCESS, CANARY, BUCKET)
        assert time.monotonic() - started < FAST_S
    _assert_clean(info.value, endpoint, BUCKET)
    assert "timed out" in str(info.value).lower()
    _assert_transient(info.value)


class _SlowDown(http.server.BaseHTTPRequestHandler):
    hits = 0
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message><RequestId>r</RequestId></Error>")

    def _answer(self) -> None:
        type(self).hits += 1
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.body)

    do_GET = do_HEAD = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


def test_slow_down_is_retried_then_transient():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        with pytest.raises(StoreUnreachable) as info:
            S3Store(endpoint, ACCESS, CANARY, BUCKET)
        assert time.monotonic() - started < FAST_S
    finally:
        server.shutdown()
        server.server_close()
    assert _SlowDown.hits > 1  # the http pool retried before giving up
    _assert_clean(info.value, endpoint, BUCKET, "SlowDown", "503")
    _assert_transient(info.value)


# --------------------------------------------------------------------------- missing bucket


def test_missing_bucket_is_permanent(moto):
    with pytest.raises(StoreRefused) as info:
        S3Store(moto["endpoint"], ACCESS, CANARY, "no-such-bucket-here")
    _assert_clean(info.value, moto["endpoint"], "'no-such-bucket-here'", "does not exist")
    _assert_permanent(info.value)


def test_bucket_deleted_behind_the_stores_back_is_permanent(moto, raw):
    raw.make_bucket("doomed-bucket")
    store = S3Store(moto["endpoint"], ACCESS, CANARY, "doomed-bucket")
    raw.remove_bucket("doomed-bucket")
    with pytest.raises(StoreRefused) as info:
        store.put_bytes("work/t/k.bin", b"x")
    _assert_clean(info.value, moto["endpoint"], "'doomed-bucket'", "'work/t/k.bin'")
    _assert_permanent(info.value)


# --------------------------------------------------------------------------- corrupt objects


def test_local_corruption_is_an_integrity_error_naming_the_key(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put_bytes("published/t/v/master.mkv", b"good" * 1000)
    path = store.root / "published/t/v/master.mkv"
    flipped = bytearray(path.read_bytes())
    flipped[100] ^= 0x01
    path.write_bytes(bytes(flipped))  # same size, one bit off
    for call in (lambda: store.get_bytes("published/t/v/master.mkv"),
                 lambda: store.get_file("published/t/v/master.mkv", tmp_path / "dl.mkv")):
        with pytest.raises(IntegrityError) as info:
            call()
        _assert_clean(info.value, "'published/t/v/master.mkv'", store.url, "corrupt")
        _assert_permanent(info.value)
    assert not (tmp_path / "dl.mkv").exists()
    path.write_bytes(b"good" * 10)  # truncated
    with pytest.raises(IntegrityError):
        store.get_bytes("published/t/v/master.mkv")


def test_s3_corruption_by_a_raw_put_is_an_integrity_error_naming_the_key(s3, raw, tmp_path):
    key = "published/t/v/qc.json"
    sha = s3.put_bytes(key, b'{"ok": true}')
    bad = b'{"ok": false}'
    raw.put_object(BUCKET, f"{s3.prefix}/{key}", io.BytesIO(bad), len(bad), metadata={"sha256": sha})
    for call in (lambda: s3.get_bytes(key), lambda: s3.get_file(key, tmp_path / "qc.json")):
        with pytest.raises(IntegrityError) as info:
            call()
        _assert_clean(info.value, f"'{key}'", s3.url, sha, "corrupt")
        _assert_permanent(info.value)
    assert not (tmp_path / "qc.json").exists()
    raw.put_object(BUCKET, f"{s3.prefix}/{key}", io.BytesIO(bad), len(bad))  # no checksum at all
    with pytest.raises(IntegrityError) as info:
        s3.get_bytes(key)
    _assert_clean(info.value, f"'{key}'", "no recorded sha256")
    _assert_permanent(info.value)


def test_missing_key_is_permanent(s3, tmp_path):
    with pytest.raises(ObjectNotFound) as info:
        s3.get_bytes("no/such/key")
    _assert_clean(info.value, "'no/such/key'", s3.url)
    _assert_permanent(info.value)
    local = LocalStore(tmp_path / "store")
    with pytest.raises(ObjectNotFound) as info:
        local.get_bytes("no/such/key")
    _assert_permanent(info.value)


# --------------------------------------------------------------------------- classification


def _s3_error(code: str, status: int) -> S3Error:
    response = urllib3.HTTPResponse(body=b"", status=status, headers={"x-amz-request-id": "r"})
    return S3Error(response, code, f"{code} message", f"/{BUCKET}/k", "r", "h", BUCKET, "k")


@pytest.mark.parametrize(("code", "status", "transient", "must_name"), [
    ("SlowDown", 503, True, "SlowDown"),
    ("ServiceUnavailable", 503, True, "503"),
    ("InternalError", 500, True, "InternalError"),
    ("RequestTimeout", 400, True, "RequestTimeout"),
    ("TooManyRequests", 429, True, "429"),
    ("InvalidAccessKeyId", 403, False, "access key"),
    ("SignatureDoesNotMatch", 403, False, "secret key"),
    ("AccessDenied", 403, False, "AccessDenied"),
    ("ExpiredToken", 400, False, "ExpiredToken"),
    ("NoSuchBucket", 404, False, "does not exist"),
    ("InvalidArgument", 400, False, "InvalidArgument"),
    ("EntityTooLarge", 400, False, "EntityTooLarge"),
])
def test_s3_error_codes_are_classified(s3, code, status, transient, must_name):
    err = s3._error(_s3_error(code, status), "get_bytes", "work/t/k")
    assert isinstance(err, StorageError) and err.transient is transient
    assert is_transient(err) is transient and _retried(err) is transient
    assert isinstance(err, StoreUnreachable if transient else (StoreRefused, StorageError))
    _assert_clean(err, must_name, BUCKET)
    if code != "NoSuchBucket":
        assert "'work/t/k'" in str(err)


def test_non_s3_failures_are_classified(s3):
    cases = [
        (ServerError("boom", 502), True),
        (ServerError("odd", 304), False),
        (InvalidResponseError(504, "text/html", "<html>gateway timeout</html>"), True),
        (InvalidResponseError(400, "text/html", "<html>bad</html>"), False),
        (urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.NewConnectionError(
            None, "Failed to establish a new connection: [Errno 111] Connection refused")), True),
        (urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.SSLError("certificate verify failed")),
         False),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
        (OSError(errno.ENOSPC, "No space left on device"), False),
    ]
    for exc, transient in cases:
        err = s3._error(exc, "put_file", "work/t/k")
        assert err.transient is transient, (exc, err)
        assert _retried(err) is transient
        _assert_clean(err, "'work/t/k'")


def test_retry_transient_retries_only_transient_failures():
    transient = [StoreUnreachable("x"), ConnectionRefusedError(), ConnectionResetError(), TimeoutError()]
    permanent = [StoreRefused("x"), IntegrityError("x"), ObjectNotFound("x"), StorageError("x"),
                 StorageUnavailable("x"), ValueError("bad title"), KeyError("bug"), AssertionError("bug"),
                 FileNotFoundError("x"), PermissionError("x"), OSError(errno.ENOSPC, "full")]
    for exc in transient:
        assert _retried(exc), exc
    for exc in permanent:
        assert not _retried(exc), exc


def test_retry_transient_with_real_prefect_states():
    from prefect.states import Completed, Failed

    assert retry_transient(None, None, Failed(data=StoreUnreachable("cannot reach S3 endpoint")))
    assert not retry_transient(None, None, Failed(data=StoreRefused("bucket 'x' does not exist")))
    assert not retry_transient(None, None, Failed(data=IntegrityError("'k' is corrupt")))
    assert not retry_transient(None, None, Completed(data=1))


@pytest.mark.parametrize("with_tblib", [False, True], ids=["pickle", "tblib"])
def test_classification_survives_pickling(with_tblib):
    """Tasks run in Dask workers: the exception crosses a process boundary before the retry rule sees it.
    Dask installs tblib's exception pickling, which rebuilds exceptions differently: both must work."""
    if with_tblib:
        from tblib import pickling_support

        pickling_support.install()
    for exc in (StoreUnreachable("a"), StoreRefused("b"), IntegrityError("c"), ObjectNotFound("d"),
                StorageError("e")):
        try:
            raise exc from ConnectionRefusedError("cause")
        except StorageError as raised:
            back = pickle.loads(pickle.dumps(raised))
        assert type(back) is type(exc) and back.transient == exc.transient and str(back) == str(exc)
        assert _retried(back) is exc.transient


def test_local_filesystem_hiccups_are_transient(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    store.put_bytes("k", b"v")

    def stale(*args, **kwargs):
        raise OSError(errno.ESTALE, "Stale file handle")

    monkeypatch.setattr(LocalStore, "_read_meta", stale)
    with pytest.raises(StoreUnreachable) as info:
        store.get_bytes("k")
    _assert_clean(info.value, "'k'", store.url)
    _assert_transient(info.value)


def test_unusable_local_root_is_permanent(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreRefused) as info:
        LocalStore(blocker / "store")
    _assert_clean(info.value, str(blocker))
    _assert_permanent(info.value)
