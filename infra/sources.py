"""Where a title's source may come from: the policy every ingest goes through before touching a source.

A source is one of
  - an image sequence (a film scan): a local folder, or a file-name pattern (`SCANS/reel1.%07d.dpx`,
    `####`): its folder resolved and, when `source_roots` is set, under one of them; its frames listed
    by `infra.sequence.list_sequence` (no '..', no frame outside the folder or the roots);
  - a local path: resolved (symlinks and '..') and, when `source_roots` is set, required to lie under
    one of those roots; it must be a regular file (no directory, device, FIFO or socket);
  - s3://bucket/key: read from the configured S3 endpoint (REEL_S3_ENDPOINT and its keys) only, and
    copied to a temp file; the URL cannot name another host, port or credentials;
  - http(s)://host[:port]/path: only when host[:port] is in `allowed_http_hosts` (empty by default);
    fetched with a size limit, no redirects and no proxies.
Anything else with a scheme (file://, ftp://, gopher://, C:..., ...) is refused without any
network connection, and so is any URL carrying credentials.

`check_source` applies the policy without downloading anything (the flow calls it before any store
I/O); `resolve_source` checks and then gives a local file to read. Errors are `SourceError`
(a ValueError) subclasses with one-line messages that never echo credentials.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "ResolvedSource",
    "SourceError",
    "SourceNotFound",
    "SourceRefused",
    "SourceSpec",
    "SourceUnavailable",
    "HOST_ENTRY_PATTERN",
    "check_source",
    "resolve_source",
]

MAX_SOURCE_CHARS = 4096
MAX_S3_KEY_CHARS = 1024
_NET_TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
HOST_ENTRY_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9.\-]*[a-z0-9])?(?::[0-9]{1,5})?|\[[0-9a-f:.]+\](?::[0-9]{1,5})?")
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


# --------------------------------------------------------------------------- errors


class SourceError(ValueError):
    """A source cannot be used. The message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split("\n")))


class SourceRefused(SourceError):
    """The sources policy does not allow this source (scheme, host, root, credentials, file type)."""


class SourceNotFound(SourceError, FileNotFoundError):
    """The source is allowed but does not exist."""


class SourceUnavailable(SourceError, ConnectionError):
    """An allowed remote source could not be fetched (endpoint down, refused, cut short): may be retried."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SourceSpec:
    """A source that passed the policy, not fetched yet."""

    kind: Literal["local", "s3", "http", "sequence"]
    shown: str  # the source as messages show it (shortened, never with credentials)
    name: str  # file name for records and messages (the last path part)
    path: Path | None = None  # local: the real path (symlinks and '..' resolved); sequence: the path as given
    bucket: str | None = None  # s3
    key: str | None = None  # s3
    url: str | None = None  # http

    @property
    def remote_id(self) -> str:
        """The remote object this names (s3://bucket/key or the URL), for checksum records."""
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.key}"
        if self.kind == "http" and self.url:
            return self.url
        raise ValueError(f"{self.shown} is not a remote source")


@dataclass
class ResolvedSource:
    """A local file to read for the source. Use as a context manager: a downloaded copy is removed on exit."""

    path: Path
    name: str
    spec: SourceSpec
    _tmpdir: str | None = field(default=None, repr=False)
    # for a remote source: the validators the server gave with the bytes (ETag, size, Last-Modified),
    # which later tell whether the remote object is still the one that was hashed (see remote_identity)
    identity: dict[str, Any] | None = None

    def cleanup(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> ResolvedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# --------------------------------------------------------------------------- policy


def _shown(source: str) -> str:
    """repr of the source for messages: at most 200 characters, credentials in a URL replaced by ***."""
    text = re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@", r"\1***@", source)
    return repr(text if len(text) <= 200 else text[:200] + "...")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def check_source(source: str, settings: Any) -> SourceSpec:
    """Apply the sources policy to `source` without downloading anything; return what it names.

    Local paths are resolved and stat'ed (nothing is opened); URLs are parsed only: no DNS lookup,
    no connection. Raises SourceRefused, SourceNotFound (a missing allowed local file) or SourceError.
    """
    if not isinstance(source, str) or not source.strip():
        raise SourceRefused("source is empty: give a file path or s3://bucket/key")
    shown = _shown(source)
    if len(source) > MAX_SOURCE_CHARS:
        raise SourceRefused(f"source {shown} is longer than {MAX_SOURCE_CHARS} characters")
    if _has_control(source):
        raise SourceRefused(f"source {shown} contains control characters (NUL, newline, ...)")
    m = _SCHEME.match(source)
    if m is None:
        from infra.sequence import is_sequence_source

        if is_sequence_source(source):
            return _check_sequence(source, shown, settings)
        return _check_local(source, shown, settings)
    scheme = m.group(1).lower()
    authority = re.match(r"[^:]*://([^/?#]*)", source)
    if authority is not None and "@" in authority.group(1):
        raise SourceRefused(f"source {shown}: credentials do not belong in a source URL")
    if scheme == "s3":
        return _check_s3(source, shown, settings)
    if scheme in ("http", "https"):
        return _check_http(source, shown, scheme, settings)
    raise SourceRefused(
        f"source {shown}: scheme {scheme!r} is not allowed (give a local path, s3://bucket/key on the "
        "configured S3 endpoint, or an http(s) URL on a host in REEL_ALLOWED_HTTP_HOSTS; "
        "a local file name with ':' can be given as ./NAME)"
    )


def _roots(settings: Any) -> list[Path]:
    return [Path(r).expanduser().resolve() for r in (getattr(settings, "source_roots", None) or [])]


def _check_local(source: str, shown: str, settings: Any) -> SourceSpec:
    given = Path(source)
    roots = _roots(settings)
    if roots:
        # Lexical and symlink resolution first, existence second: a path outside the roots is refused
        # the same way whether it exists or not (no probing of the file system outside them).
        try:
            loose = given.resolve(strict=False)
        except (OSError, RuntimeError) as exc:  # symlink loop
            raise SourceRefused(f"source {shown} cannot be resolved: {getattr(exc, 'strerror', None) or exc}") from None
        if not any(loose.is_relative_to(r) for r in roots):
            raise SourceRefused(
                f"source {shown} is outside the allowed source roots (REEL_SOURCE_ROOTS; symlinks and '..' "
                "are resolved before the check)"
            )
    try:
        real = given.resolve(strict=True)
    except FileNotFoundError:
        raise SourceNotFound(f"source {shown}: no such file") from None
    except (OSError, RuntimeError) as exc:
        raise SourceRefused(f"source {shown} cannot be resolved: {getattr(exc, 'strerror', None) or exc}") from None
    if roots and not any(real.is_relative_to(r) for r in roots):  # changed since the first look
        raise SourceRefused(f"source {shown} is outside the allowed source roots (REEL_SOURCE_ROOTS)")
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        raise SourceError(f"source {shown}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file (device, FIFO or socket)"
        raise SourceRefused(f"source {shown} is {what}")
    return SourceSpec(kind="local", shown=shown, name=given.name or real.name, path=real)


def _check_sequence(source: str, shown: str, settings: Any) -> SourceSpec:
    """A folder or pattern of frame files: listed (nothing opened) under the same roots policy."""
    from infra.sequence import SequenceError, list_sequence

    try:
        seq = list_sequence(source, roots=_roots(settings))
    except SequenceError as exc:
        text = str(exc)
        if any(w in text for w in ("outside the allowed source roots", "'..'", "outside the sequence's folder",
                                   "holds no numbered", "not a regular file")):
            raise SourceRefused(text) from None
        if "no such folder" in text or "no frame files" in text:
            raise SourceNotFound(text) from None
        raise SourceError(text) from None
    return SourceSpec(kind="sequence", shown=shown, name=seq.pattern, path=Path(source))


def _check_s3(source: str, shown: str, settings: Any) -> SourceSpec:
    rest = source.split("://", 1)[1] if "://" in source else ""
    bucket, sep, key = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise SourceRefused(
            f"source {shown}: expected s3://bucket/key with a plain bucket name; s3:// sources are read "
            "from the configured S3 endpoint, never from a host or port named in the URL"
        )
    if not sep or not key or key.endswith("/"):
        raise SourceRefused(f"source {shown} names no object (expected s3://bucket/key)")
    if len(key) > MAX_S3_KEY_CHARS:
        raise SourceRefused(f"source {shown}: object key longer than {MAX_S3_KEY_CHARS} characters")
    if any(c in key for c in "?#\\") or any(part in ("", ".", "..") for part in key.split("/")):
        raise SourceRefused(f"source {shown}: object key has '?', '#', '\\', an empty part, '.' or '..'")
    missing = [f"REEL_{n.upper()}" for n in ("s3_endpoint", "s3_access_key", "s3_secret_key")
               if not _given(getattr(settings, n, None))]
    if missing:
        raise SourceRefused(
            f"source {shown}: s3:// sources are read from the configured S3 endpoint, and "
            f"{', '.join(missing)} is not set"
        )
    endpoint = str(settings.s3_endpoint)
    if "://" in endpoint or "/" in endpoint or "@" in endpoint:
        raise SourceRefused(f"REEL_S3_ENDPOINT {endpoint!r} must be host:port (no scheme, no path)")
    return SourceSpec(kind="s3", shown=shown, name=key.rsplit("/", 1)[-1], bucket=bucket, key=key)


def _given(value: Any) -> bool:
    if value is not None and hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return bool(value)


def _check_http(source: str, shown: str, scheme: str, settings: Any) -> SourceSpec:
    try:
        parts = urlsplit(source)
        port = parts.port
    except ValueError as exc:
        raise SourceRefused(f"source {shown}: malformed URL ({exc})") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise SourceRefused(f"source {shown}: URL names no host")
    if parts.username is not None or parts.password is not None:
        raise SourceRefused(f"source {shown}: credentials do not belong in a source URL")
    if not host.isascii():
        raise SourceRefused(f"source {shown}: host names must be ASCII (punycode)")
    allowed = {h.lower() for h in (getattr(settings, "allowed_http_hosts", None) or [])}
    port = port or _DEFAULT_PORTS[scheme]
    where = f"[{host}]" if ":" in host else host
    if f"{where}:{port}" not in allowed and not (port == _DEFAULT_PORTS[scheme] and where in allowed):
        raise SourceRefused(
            f"source {shown}: {scheme} host {where}:{port} is not in REEL_ALLOWED_HTTP_HOSTS "
            "(no source is fetched from other hosts)"
        )
    name = parts.path.rsplit("/", 1)[-1]
    if not name:
        raise SourceRefused(f"source {shown}: URL names no file")
    return SourceSpec(kind="http", shown=shown, name=name, url=source)


# --------------------------------------------------------------------------- fetching


def resolve_source(source: str, settings: Any) -> ResolvedSource:
    """Check `source` against the policy, then return a local file to read.

    A local source is its real path (nothing copied). A remote one is downloaded to a private
    temp folder (at most `settings.source_max_bytes`), removed by `cleanup()` / on leaving `with`.
    """
    spec = check_source(source, settings)
    if spec.kind in ("local", "sequence"):
        assert spec.path is not None
        return ResolvedSource(path=spec.path, name=spec.name, spec=spec)
    tmpdir = tempfile.mkdtemp(prefix="reel-source-")
    suffix = Path(spec.name).suffix
    dest = Path(tmpdir) / ("source" + (suffix.lower() if _SAFE_SUFFIX.fullmatch(suffix) else ""))
    resolved = ResolvedSource(path=dest, name=spec.name, spec=spec, _tmpdir=tmpdir)
    try:
        limit = int(getattr(settings, "source_max_bytes", 0) or 0) or None
        if spec.kind == "s3":
            resolved.identity = _fetch_s3(spec, settings, dest, limit)
        else:
            resolved.identity = _fetch_http(spec, dest, limit)
    except BaseException:
        resolved.cleanup()
        raise
    return resolved


def _copy(chunks: Any, dest: Path, limit: int | None, shown: str) -> int:
    n = 0
    with open(dest, "xb") as out:
        for chunk in chunks:
            n += len(chunk)
            if limit is not None and n > limit:
                raise SourceRefused(f"source {shown} is larger than REEL_SOURCE_MAX_BYTES ({limit} bytes)")
            out.write(chunk)
    return n


def _identity(etag: Any, size: Any, last_modified: Any) -> dict[str, Any] | None:
    """Validators of a remote object, or None when the server gives neither an ETag nor a date."""
    etag = str(etag).strip() if etag else None
    if hasattr(last_modified, "isoformat"):
        when = last_modified.isoformat()
    else:
        when = str(last_modified) if last_modified else None
    if not etag and not when:
        return None
    return {"etag": etag, "size": int(size) if size is not None and str(size).isdigit() else None,
            "last_modified": when}


def remote_identity(spec: SourceSpec, settings: Any) -> dict[str, Any] | None:
    """The validators of a remote source now (S3 HEAD/stat, or HTTP HEAD), without fetching it; None
    when the server gives none. SourceError subclasses as for fetching (missing, refused, unreachable)."""
    if spec.kind == "s3":
        return _s3_read(spec, settings, None, None)
    if spec.kind == "http":
        return _http_read(spec, None, None, method="HEAD")
    raise ValueError(f"{spec.shown} is not a remote source")


def _fetch_s3(spec: SourceSpec, settings: Any, dest: Path, limit: int | None) -> dict[str, Any] | None:
    return _s3_read(spec, settings, dest, limit)


def _s3_read(spec: SourceSpec, settings: Any, dest: Path | None, limit: int | None) -> dict[str, Any] | None:
    """Stat the object (and copy it to `dest` unless that is None); its validators."""
    import urllib3
    from minio import Minio
    from minio.error import MinioException, S3Error

    from infra.storage import _http_client  # same timeouts, retries and CA bundle as the store

    secure = bool(getattr(settings, "s3_secure", False))
    client = Minio(
        str(settings.s3_endpoint),
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=secure,
        region=getattr(settings, "s3_region", None),
        http_client=_http_client(secure),
    )
    where = f"on the configured S3 endpoint {settings.s3_endpoint}"
    try:
        info = client.stat_object(spec.bucket, spec.key)
        identity = _identity(info.etag, info.size, info.last_modified)
        if dest is None:
            return identity
        if limit is not None and info.size is not None and info.size > limit:
            raise SourceRefused(f"source {spec.shown} is larger than REEL_SOURCE_MAX_BYTES ({limit} bytes)")
        # the bytes must be the version just stat'ed: a replacement in between fails the read (412)
        response = client.get_object(spec.bucket, spec.key,
                                     request_headers={"If-Match": info.etag} if info.etag else None)
        try:
            _copy(response.stream(_CHUNK), dest, limit, spec.shown)
        finally:
            response.close()
            response.release_conn()
        return identity
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject") or (
            exc.response is not None and exc.response.status == 404
        ):
            raise SourceNotFound(f"source {spec.shown}: no such object {where}") from None
        if exc.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise SourceRefused(f"source {spec.shown}: access denied {where} ({exc.code})") from None
        raise SourceUnavailable(f"source {spec.shown}: {exc.code} {where}") from None
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        if isinstance(exc, SourceError):
            raise
        reason = type(exc).__name__
        raise SourceUnavailable(f"source {spec.shown}: cannot read it {where} ({reason})") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise SourceRefused(f"source {_shown(req.full_url)}: the server redirects (HTTP {code}); redirects are not followed")


def _fetch_http(spec: SourceSpec, dest: Path, limit: int | None) -> dict[str, Any] | None:
    return _http_read(spec, dest, limit)


def _http_read(spec: SourceSpec, dest: Path | None, limit: int | None, method: str = "GET") -> dict[str, Any] | None:
    """GET the source into `dest` (or only HEAD it); the response's validators."""
    assert spec.url is not None
    # Only our handlers: no proxies (the connection goes to the allowed host itself), no redirects.
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(), _NoRedirect(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    request = urllib.request.Request(spec.url, method=method,
                                     headers={"User-Agent": "reel-ingest", "Accept-Encoding": "identity"})
    try:
        with contextlib.closing(opener.open(request, timeout=_NET_TIMEOUT_S)) as response:
            length = response.headers.get("Content-Length")
            identity = _identity(response.headers.get("ETag"), length, response.headers.get("Last-Modified"))
            if dest is None:
                return identity
            if limit is not None and length and length.isdigit() and int(length) > limit:
                raise SourceRefused(f"source {spec.shown} is larger than REEL_SOURCE_MAX_BYTES ({limit} bytes)")
            _copy(iter(lambda: response.read(_CHUNK), b""), dest, limit, spec.shown)
            return identity
    except SourceError:
        raise
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise SourceNotFound(f"source {spec.shown}: not found (HTTP 404)") from None
        cls = SourceUnavailable if exc.code >= 500 else SourceRefused
        raise cls(f"source {spec.shown}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise SourceUnavailable(f"source {spec.shown}: cannot fetch it ({reason})") from None


def check_audio_path(path: str, settings: Any) -> Path:
    """A separate sound file (--audio): a local regular file under the same roots policy as sources."""
    if not isinstance(path, str) or _SCHEME.match(path):
        raise SourceRefused(f"sound {_shown(str(path))}: give a local WAV/BWF file")
    spec = _check_local(path, _shown(path), settings)
    assert spec.path is not None
    return spec.path


def check_reference_path(path: str, settings: Any, what: str) -> Path:
    """A local folder or file the recipe names (grade stills, a .cube), under the same roots policy
    as sources: symlinks and '..' resolved first, refused outside REEL_SOURCE_ROOTS when set."""
    shown = _shown(path)
    if "://" in path or _has_control(path):
        raise SourceRefused(f"{what} {shown}: only local paths are allowed here")
    roots = _roots(settings)
    try:
        real = Path(path).resolve(strict=False)
    except (OSError, RuntimeError) as exc:
        raise SourceRefused(f"{what} {shown} cannot be resolved: {getattr(exc, 'strerror', None) or exc}") from None
    if roots and not any(real.is_relative_to(r) for r in roots):
        raise SourceRefused(f"{what} {shown} is outside the allowed source roots (REEL_SOURCE_ROOTS)")
    if not real.exists():
        raise SourceNotFound(f"{what} {shown}: not found")
    return real
