"""The sources policy (infra.sources): roots for local paths, s3:// on the configured endpoint only, no SSRF."""

from __future__ import annotations

import http.server
import os
import select
import socket
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from minio import Minio

from infra.settings import Settings
from infra.sources import (
    SourceError,
    SourceNotFound,
    SourceRefused,
    check_source,
    remote_identity,
    resolve_source,
)
from tests.s3server import moto_on_loopback


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("REEL_")]:
        monkeypatch.delenv(name)


def settings(**kw) -> Settings:
    return Settings(_env_file=None, **kw)


# --------------------------------------------------------------------------- settings


def test_list_settings_take_commas_or_json(monkeypatch):
    monkeypatch.setenv("REEL_SOURCE_ROOTS", " /srv/films , ./incoming,")
    monkeypatch.setenv("REEL_ALLOWED_HTTP_HOSTS", '["Files.Example.com", "10.0.0.5:8080", "[::1]:9000"]')
    s = Settings(_env_file=None)
    assert s.source_roots == ["/srv/films", "./incoming"]
    assert s.allowed_http_hosts == ["files.example.com", "10.0.0.5:8080", "[::1]:9000"]
    monkeypatch.setenv("REEL_SOURCE_ROOTS", '["/a,b", "/c"]')
    assert Settings(_env_file=None).source_roots == ["/a,b", "/c"]
    monkeypatch.setenv("REEL_SOURCE_ROOTS", "")
    assert Settings(_env_file=None).source_roots == []
    assert Settings(_env_file=None).allowed_http_hosts != []
    monkeypatch.delenv("REEL_ALLOWED_HTTP_HOSTS")
    assert Settings(_env_file=None).allowed_http_hosts == []  # default: no http(s) source at all


@pytest.mark.parametrize("entry", ["http://x.com", "x.com/path", "user@x.com", "x.com:port", "*", "x .com"])
def test_bad_allowed_host_entries_are_refused(entry, monkeypatch):
    monkeypatch.setenv("REEL_ALLOWED_HTTP_HOSTS", entry)
    with pytest.raises(ValueError, match="allowed_http_hosts"):
        Settings(_env_file=None)


# --------------------------------------------------------------------------- local paths


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    film = root / "sub" / "film.mkv"
    film.write_bytes(b"film")
    secret = outside / "secret.mkv"
    secret.write_bytes(b"secret")
    (root / "escape.mkv").symlink_to(secret)  # a link inside the root to a file outside it
    (root / "escape-dir").symlink_to(outside, target_is_directory=True)
    (outside / "inward.mkv").symlink_to(film)  # a link outside to a file inside: its target is what counts
    return {"root": root, "outside": outside, "film": film, "secret": secret, "tmp": tmp_path}


def test_unset_roots_allow_any_regular_file(tree):
    spec = check_source(str(tree["secret"]), settings())
    assert spec.kind == "local" and spec.path == tree["secret"].resolve() and spec.name == "secret.mkv"
    with resolve_source(str(tree["root"] / "escape.mkv"), settings()) as r:
        assert r.path == tree["secret"].resolve() and r.name == "escape.mkv"
    assert tree["secret"].exists()  # a local source is read in place, never removed


def test_roots_allow_files_under_them(tree, monkeypatch):
    s = settings(source_roots=[str(tree["root"])])
    assert check_source(str(tree["film"]), s).path == tree["film"].resolve()
    assert check_source(str(tree["outside"] / "inward.mkv"), s).path == tree["film"].resolve()
    assert check_source(str(tree["root"] / "sub" / ".." / "sub" / "film.mkv"), s).path == tree["film"].resolve()
    monkeypatch.chdir(tree["root"])
    assert check_source("sub/film.mkv", settings(source_roots=["."])).path == tree["film"].resolve()


@pytest.mark.parametrize("rel", [
    "../outside/secret.mkv", "sub/../../outside/secret.mkv", "escape.mkv", "escape-dir/secret.mkv",
    "../outside/no-such-file.mkv", "escape-dir/no-such-file.mkv", "/etc/passwd", "/etc/no-such-file",
    "/dev/null", "/proc/self/environ", "/", "..",
])
def test_roots_refuse_everything_that_resolves_outside(tree, rel):
    s = settings(source_roots=[str(tree["root"])])
    source = rel if rel.startswith("/") else str(tree["root"]) + "/" + rel
    with pytest.raises(SourceRefused, match="outside the allowed source roots") as err:
        check_source(source, s)
    assert "\n" not in str(err.value) and "secret" not in str(err.value).replace(rel, "")  # no target leaked


def test_a_root_is_not_a_name_prefix(tree):
    sibling = tree["tmp"] / "root-evil"
    sibling.mkdir()
    (sibling / "x.mkv").write_bytes(b"x")
    with pytest.raises(SourceRefused, match="outside"):
        check_source(str(sibling / "x.mkv"), settings(source_roots=[str(tree["root"])]))


def test_missing_and_non_regular_local_sources(tree):
    s = settings(source_roots=[str(tree["root"]), "/dev"])
    with pytest.raises(SourceNotFound, match="no such file") as err:
        check_source(str(tree["root"] / "missing.mkv"), s)
    assert isinstance(err.value, ValueError) and isinstance(err.value, FileNotFoundError)
    with pytest.raises(SourceRefused, match="directory"):
        check_source(str(tree["root"] / "sub"), s)
    with pytest.raises(SourceRefused, match="not a regular file"):
        check_source("/dev/null", s)
    fifo = tree["root"] / "pipe.mkv"
    os.mkfifo(fifo)
    with pytest.raises(SourceRefused, match="not a regular file"):
        check_source(str(fifo), s)  # stat only: opening a FIFO would block
    loop = tree["root"] / "loop.mkv"
    loop.symlink_to(loop)
    with pytest.raises(SourceRefused, match="cannot be resolved"):
        check_source(str(loop), s)


@pytest.mark.parametrize("bad", ["", "   ", "film\x00.mkv", "film\n.mkv", "a\x1b[31m.mkv", "x" * 5000])
def test_empty_and_control_character_sources(bad):
    with pytest.raises(SourceRefused) as err:
        check_source(bad, settings())
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_a_file_name_with_a_colon_needs_dot_slash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("take:2.mkv").write_bytes(b"x")
    with pytest.raises(SourceRefused, match=r"scheme 'take'.*\./NAME"):
        check_source("take:2.mkv", settings())
    assert check_source("./take:2.mkv", settings()).name == "take:2.mkv"


# --------------------------------------------------------------------------- no SSRF


@pytest.fixture
def listener():
    """A TCP listener on loopback: any connection attempt to it would show as a pending accept."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.setblocking(False)
    yield srv
    srv.close()


@pytest.fixture
def no_network(monkeypatch):
    """Record (and fail) any DNS lookup or outgoing connection made while it is active."""
    calls: list[tuple] = []

    def refuse(name):
        def f(*args, **kwargs):
            calls.append((name, args))
            raise OSError(f"test: no network allowed ({name})")
        return f

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "gethostbyname", refuse("gethostbyname"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    return calls


def _hostile_urls(port: int) -> list[tuple[str, str]]:
    """(url, what the refusal must say)."""
    return [
        ("http://169.254.169.254/latest/meta-data/", "not in REEL_ALLOWED_HTTP_HOSTS"),
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "not in REEL_ALLOWED_HTTP_HOSTS"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "not in REEL_ALLOWED_HTTP_HOSTS"),
        ("http://metadata.google.internal/computeMetadata/v1/", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://127.0.0.1:{port}/film.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"https://127.0.0.1:{port}/film.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"HTTP://LOCALHOST:{port}/film.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://[::ffff:127.0.0.1]:{port}/f.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://2130706433:{port}/f.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://0x7f.1:{port}/f.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://files.example.com.127.0.0.1.nip.io:{port}/f.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://files.example.com:{port}/f.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),  # allowed host, other port
        ("http://files.example.com.evil.org/f.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://evil.org#@files.example.com:{port}/f.mkv", "not in REEL_ALLOWED_HTTP_HOSTS"),
        (f"http://user:hunter2@127.0.0.1:{port}/film.mkv", "credentials"),
        ("https://user:hunter2@files.example.com/film.mkv", "credentials"),  # even on an allowed host
        ("https://files.example.com@127.0.0.1/film.mkv", "credentials"),
        ("http:///film.mkv", "no host"),
        ("http://files.example.com:99999/f.mkv", "malformed"),
        ("file:///etc/passwd", "scheme 'file'"),
        (f"file://127.0.0.1:{port}/etc/passwd", "scheme 'file'"),
        ("file://localhost/etc/passwd", "scheme 'file'"),
        (f"gopher://127.0.0.1:{port}/_GET%20/", "scheme 'gopher'"),
        (f"ftp://files.example.com:{port}/film.mkv", "scheme 'ftp'"),  # allowed host, scheme still not
        (f"ftp://127.0.0.1:{port}/film.mkv", "scheme 'ftp'"),
        (f"dict://127.0.0.1:{port}/info", "scheme 'dict'"),
        (f"ldap://127.0.0.1:{port}/", "scheme 'ldap'"),
        (f"sftp://127.0.0.1:{port}/f.mkv", "scheme 'sftp'"),
        (f"tcp://127.0.0.1:{port}", "scheme 'tcp'"),
        ("data:video/x-matroska;base64,GkXfow==", "scheme 'data'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("jar:http://files.example.com/x.jar!/f.mkv", "scheme 'jar'"),
        ("C:\\films\\film.mkv", "scheme 'c'"),
        ("\\\\?\\C:\\x", "no such file"),  # a plain (odd) relative name on POSIX: not a URL, not there
        (f"s3://127.0.0.1:{port}/film.mkv", "plain bucket name"),
        (f"s3://reel@127.0.0.1:{port}/film.mkv", "credentials"),
        ("s3://key:secret@reel/film.mkv", "credentials"),
        ("s3://reel/film.mkv", "REEL_S3_ENDPOINT"),  # no S3 endpoint configured
        ("s3://reel", "names no object"),
        ("s3://reel/", "names no object"),
        ("s3://reel/../other/film.mkv", "'..'"),
        ("s3://reel/a//film.mkv", "empty part"),
        ("s3://reel/film.mkv?versionId=1", "'?'"),
        ("s3://Reel_Bucket/film.mkv", "plain bucket name"),
        ("s3://a..b/film.mkv", "plain bucket name"),
    ]


def _assert_no_connection(listener) -> None:
    ready, _, _ = select.select([listener], [], [], 0.2)
    assert not ready, "a connection reached the listener"


def test_hostile_urls_are_refused_without_any_network(listener, no_network):
    port = listener.getsockname()[1]
    cases = _hostile_urls(port)
    for s in (settings(), settings(allowed_http_hosts=["files.example.com", "127.0.0.1:1"])):
        for url, says in cases:
            for fn in (check_source, resolve_source):
                with pytest.raises(SourceError) as err:
                    fn(url, s)
                msg = str(err.value)
                assert isinstance(err.value, ValueError)
                assert says in msg, (url, msg)
                assert "\n" not in msg and "hunter2" not in msg and "secret@" not in msg
    assert no_network == []
    _assert_no_connection(listener)
    assert len(cases) >= 40


def test_refused_sources_create_nothing_in_the_flow_and_the_task(tmp_path, monkeypatch, listener, no_network):
    from flows.restore_title import restore_title
    from tasks.ingest import ingest

    store = tmp_path / "store"
    monkeypatch.setenv("REEL_STORE", str(store))
    monkeypatch.setenv("REEL_SOURCE_ROOTS", str(tmp_path / "films"))
    port = listener.getsockname()[1]
    outside = tmp_path / "outside.mkv"
    outside.write_bytes(b"x")
    for source in ["http://169.254.169.254/latest/meta-data/", f"http://127.0.0.1:{port}/f.mkv",
                   "file:///etc/passwd", f"gopher://127.0.0.1:{port}/", "s3://reel/f.mkv", str(outside),
                   str(tmp_path / "films" / ".." / "outside.mkv")]:
        with pytest.raises(SourceRefused):
            restore_title.fn(source=source, title="tiny", recipe="identity")
        with pytest.raises(SourceRefused):
            ingest.fn(source, "tiny")
    assert not store.exists()
    assert no_network == []
    _assert_no_connection(listener)


# --------------------------------------------------------------------------- allowed http(s)


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b"\x1aE\xdf\xa3" + bytes(range(256)) * 64

    def do_HEAD(self):  # noqa: N802
        if self.path in ("/film.mkv", "/plain.mkv"):
            self._headers(200, len(self.body), etag=self.path == "/film.mkv")
        else:
            self._headers(404, 0)

    def _headers(self, code, length, etag=False):
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        if etag:
            self.send_header("ETag", '"film-v1"')
            self.send_header("Last-Modified", "Wed, 25 Nov 2026 10:00:00 GMT")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        if self.path == "/film.mkv":
            self._headers(200, len(self.body), etag=True)
            self.wfile.write(self.body)
        elif self.path == "/plain.mkv":
            self._send(200, self.body)
        elif self.path == "/moved.mkv":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/boom.mkv":
            self._send(503, b"down")
        else:
            self._send(404, b"no")

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_host():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_allowed_http_host_is_fetched_with_limits(http_host):
    s = settings(allowed_http_hosts=[http_host])
    with resolve_source(f"http://{http_host}/film.mkv", s) as r:
        assert r.name == "film.mkv" and r.path.suffix == ".mkv" and r.spec.kind == "http"
        assert r.path.read_bytes() == _Handler.body
        assert r.identity == {"etag": '"film-v1"', "size": len(_Handler.body),
                              "last_modified": "Wed, 25 Nov 2026 10:00:00 GMT"}
        assert remote_identity(r.spec, s) == r.identity  # HEAD gives the same validators
    with resolve_source(f"http://{http_host}/plain.mkv", s) as r:
        assert r.identity is None and remote_identity(r.spec, s) is None  # a server with no validators
        folder = r.path.parent
    assert not folder.exists()  # the downloaded copy is removed after use
    with pytest.raises(SourceRefused, match="redirects are not followed"):
        resolve_source(f"http://{http_host}/moved.mkv", s)
    with pytest.raises(SourceNotFound, match="404"):
        resolve_source(f"http://{http_host}/nothing.mkv", s)
    with pytest.raises(SourceError, match="HTTP 503"):
        resolve_source(f"http://{http_host}/boom.mkv", s)
    with pytest.raises(SourceRefused, match="REEL_SOURCE_MAX_BYTES"):
        resolve_source(f"http://{http_host}/film.mkv", settings(allowed_http_hosts=[http_host], source_max_bytes=100))


# --------------------------------------------------------------------------- s3://


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_on_loopback() as endpoint:
        client = Minio(endpoint, access_key="reel-test", secret_key="reel-test-secret", secure=False)
        client.make_bucket("sources")
        yield endpoint, client


def _s3_settings(endpoint: str, **kw) -> Settings:
    return settings(s3_endpoint=endpoint, s3_access_key="reel-test", s3_secret_key="reel-test-secret", **kw)


def _put(client: Minio, key: str, data: bytes) -> None:
    import io

    client.put_object("sources", key, io.BytesIO(data), len(data))


def test_s3_source_is_read_from_the_configured_endpoint(s3_endpoint):
    endpoint, client = s3_endpoint
    data = b"\x1aE\xdf\xa3" + os.urandom(3000)
    _put(client, "incoming/The General (1926).MKV", data)
    s = _s3_settings(endpoint)
    with resolve_source("s3://sources/incoming/The General (1926).MKV", s) as r:
        assert r.name == "The General (1926).MKV" and r.path.name == "source.mkv"
        assert r.path.read_bytes() == data
        folder = r.path.parent
    assert not folder.exists()
    with pytest.raises(SourceNotFound, match="no such object"):
        resolve_source("s3://sources/incoming/missing.mkv", s)
    with pytest.raises(SourceNotFound, match="no such object"):
        resolve_source("s3://no-such-bucket/film.mkv", s)
    with pytest.raises(SourceRefused, match="REEL_SOURCE_MAX_BYTES"):
        resolve_source("s3://sources/incoming/The General (1926).MKV", _s3_settings(endpoint, source_max_bytes=100))
    with pytest.raises(SourceRefused, match="REEL_S3_ACCESS_KEY"):
        check_source("s3://sources/x.mkv", settings(s3_endpoint=endpoint))


def test_ingest_takes_an_s3_source(s3_endpoint, tmp_path, monkeypatch):
    from infra.media import write_film
    from infra.runtime import current_store
    from tasks.ingest import ingest

    endpoint, client = s3_endpoint
    rng = np.random.default_rng(0)
    film = tmp_path / "film.mkv"
    write_film(film, [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(6)], Fraction(24))
    _put(client, "incoming/reel one.mkv", film.read_bytes())
    monkeypatch.setenv("REEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("REEL_S3_ENDPOINT", endpoint)
    monkeypatch.setenv("REEL_S3_ACCESS_KEY", "reel-test")
    monkeypatch.setenv("REEL_S3_SECRET_KEY", "reel-test-secret")
    monkeypatch.setenv("REEL_SOURCE_ROOTS", str(tmp_path / "nowhere"))  # roots limit local paths only
    from flows.catalogue import source_facts
    from infra.catalogue_io import SourceChecksums
    from infra.settings import load_settings

    source = "s3://sources/incoming/reel one.mkv"
    checksums = SourceChecksums(current_store())
    facts = source_facts(source, load_settings(), checksums)
    assert facts["source_unseen"] and "matches no ingest" in facts["source_note"]  # never fetched yet
    record = ingest.fn(source, "reel-one")
    assert record.source_name == "reel one.mkv" and record.frames == 6
    assert record.original_key.endswith(".mkv")
    assert current_store().get_bytes(record.original_key) == film.read_bytes()
    # the ingest noted the object's ETag/size/date with the sha256: status knows the source without fetching it
    assert source_facts(source, load_settings(), checksums) == {"source_sha256": record.source_sha256}
    _put(client, "incoming/reel one.mkv", film.read_bytes() + b"\0")  # replaced by a new scan
    facts = source_facts(source, load_settings(), checksums)
    assert facts.get("source_unseen") and "source_sha256" not in facts
    client.remove_object("sources", "incoming/reel one.mkv")
    assert "no such object" in source_facts(source, load_settings(), checksums)["source_error"]


def test_grade_reference_folders_follow_the_roots_policy(tmp_path):
    from types import SimpleNamespace

    from infra.sources import SourceNotFound, SourceRefused, check_reference_path

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "stills").mkdir(parents=True)
    outside.mkdir()
    (root / "sneaky").symlink_to(outside)
    settings = SimpleNamespace(source_roots=[str(root)])
    assert check_reference_path(str(root / "stills"), settings, "grade stills") == (root / "stills").resolve()
    for bad in (str(outside), str(root / "sneaky"), str(root / "stills" / ".." / ".." / "outside"),
                "http://10.0.0.1/stills", "stills\x00x"):
        with pytest.raises(SourceRefused):
            check_reference_path(bad, settings, "grade stills")
    with pytest.raises(SourceNotFound):
        check_reference_path(str(root / "missing"), settings, "grade stills")
