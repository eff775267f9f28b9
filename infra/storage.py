"""Object storage: one `Store` protocol, a local-folder backend and an S3 backend.

Keys are relative '/'-separated names (see `validate_key`). Every object has its
sha256 recorded next to it (a sidecar file locally, `x-amz-meta-sha256` on S3);
reads re-hash and compare. Writes are atomic: a reader sees the old object, the
new one, or none, never a half-written one. Large media travel as files on
disk, streamed in chunks, never as one bytes object.

Errors are `StorageError` subclasses with one-line messages that name the
endpoint, bucket and key and never contain a credential. `StorageUnavailable`
("cannot use the store") comes in two kinds: `StoreUnreachable` is transient
(unreachable endpoint, timeouts, HTTP 5xx, SlowDown: worth retrying) and
`StoreRefused` is permanent (refused credentials, missing bucket). `IntegrityError`
and `ObjectNotFound` are permanent too; `is_transient` tells them apart. Invalid
keys raise `ValueError` before any I/O.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from catalog import layout
from infra.hashing import sha256_bytes, sha256_file

__all__ = [
    "IntegrityError",
    "LocalStore",
    "MAX_KEY_LENGTH",
    "ObjectNotFound",
    "S3Store",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "StoreConfig",
    "StoreRefused",
    "StoreUnreachable",
    "is_transient",
    "open_store",
    "validate_key",
]

MAX_KEY_LENGTH = 512
DEFAULT_CONTENT_TYPE = "application/octet-stream"
LINK_EXPIRY = timedelta(hours=1)
_CHUNK_BYTES = 1 << 20
_KEY_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # ASCII only: look-alikes such as U+2215 fail
_META_DIR = layout.META_DIR  # starts with '.', so it can never collide with a key
# Temp files of writes under way live here, never beside the objects (a write killed mid-way must not leave
# a file inside a published version); the folders mirror the key's, so a title's temps can be found.
_STAGING_DIR = layout.STAGING_DIR
TEMP_PREFIX = ".tmp-"
_HOST_TAG = hashlib.sha256(os.uname().nodename.encode()).hexdigest()[:8] if hasattr(os, "uname") else "host"
_TEMP_NAME = re.compile(r"\.tmp-([0-9a-f]{8})-(\d+)-")  # .tmp-<host tag>-<pid>-<random>
LEGACY_TEMP_AGE_S = 600.0  # temps without a writer's pid (Reel <= 0.8) count as abandoned after this


def is_temp_name(name: str) -> bool:
    """A file name Reel gives to a write under way (the local store's, or a download's)."""
    return name.startswith((TEMP_PREFIX, ".part-"))


# --------------------------------------------------------------------------- errors


class StorageError(RuntimeError):
    """A storage operation failed. The message is one line and holds no secret.

    `transient` (a class attribute, so it survives pickling between processes) says
    whether the same call may succeed later: only StoreUnreachable is transient.
    """

    transient: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through __init__. Without this, tblib's exception pickling (installed by Dask)
        # rebuilds via cls.__new__, which fails for ObjectNotFound (RuntimeError + FileNotFoundError):
        # a task's ObjectNotFound would reach the flow as a TypeError.
        return type(self), (str(self),), self.__dict__ or None


class ObjectNotFound(StorageError, FileNotFoundError):
    """The key does not exist (or is not complete yet). Permanent."""


class IntegrityError(StorageError):
    """The bytes read do not match the recorded sha256 (or none is recorded). Permanent."""


class StorageUnavailable(StorageError):
    """The store cannot be used. Catch this for both kinds below; raise one of them."""


class StoreUnreachable(StorageUnavailable):
    """Transient: the endpoint cannot be reached or is overloaded right now (connection
    refused or reset, timeout, DNS failure, HTTP 5xx, 429, SlowDown). Retrying later may work."""

    transient = True


class StoreRefused(StorageUnavailable):
    """Permanent: the store answers but will not serve us (unknown access key, wrong secret,
    access denied, missing bucket, TLS failure, unusable local root). Retrying will not help."""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: StoreUnreachable, ConnectionError, TimeoutError.

    Never for IntegrityError, ObjectNotFound, refused credentials, a missing bucket,
    ValueError (bad input) or bugs.
    """
    if isinstance(exc, StorageError):
        return exc.transient
    return isinstance(exc, (ConnectionError, TimeoutError))


# --------------------------------------------------------------------------- keys


def validate_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise ValueError naming it.

    A key is relative, '/'-separated, each part matching ``[A-Za-z0-9][A-Za-z0-9._-]*``
    (so no '..', '.', empty parts, leading '/', backslash, NUL, whitespace or
    non-ASCII), and at most MAX_KEY_LENGTH characters long.
    """
    if not isinstance(key, str):
        raise ValueError(f"invalid storage key {key!r}: not a str")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"invalid storage key {key[:64]!r}... ({len(key)} characters): longer than {MAX_KEY_LENGTH}"
        )
    if not key:
        raise ValueError("invalid storage key '': empty")
    for part in key.split("/"):
        if not _KEY_PART.fullmatch(part):
            raise ValueError(
                f"invalid storage key {key!r}: part {part!r} does not match "
                "[A-Za-z0-9][A-Za-z0-9._-]* (keys are relative, '/'-separated)"
            )
    return key


def _validate_prefix(prefix: str) -> str:
    """A list prefix: '' or a key, optionally ending with one '/'."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str):
        raise ValueError(f"invalid storage prefix {prefix!r}: not a str")
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _is_key(name: str) -> bool:
    try:
        validate_key(name)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class Store(Protocol):
    """An object store addressed by keys. Both backends pass the same contract tests."""

    url: str  # where the store is, for messages; never holds a secret

    def exists(self, key: str) -> bool:
        """True if the object is complete (its checksum recorded)."""
        ...

    def put_file(self, key: str, local_path: str | os.PathLike[str], content_type: str | None = None) -> str:
        """Store the file's bytes atomically; return and record their sha256 (hex)."""
        ...

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """Store `data` atomically; return and record its sha256 (hex)."""
        ...

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Create the object only if the key is free; True if this call created it."""
        ...

    def get_file(self, key: str, local_path: str | os.PathLike[str], verify: bool = True) -> str:
        """Download to `local_path` (atomically, checked against the recorded sha256); return the sha256."""
        ...

    def get_bytes(self, key: str, verify: bool = True) -> bytes:
        """Return the object's bytes, checked against the recorded sha256."""
        ...

    def sha256(self, key: str) -> str:
        """Recorded sha256 (hex) of the object."""
        ...

    def size(self, key: str) -> int:
        """Size of the object in bytes."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with `prefix` (a plain string prefix, as in S3)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        ...

    def link(self, key: str) -> str:
        """A URL a person can open: file:// locally, a presigned GET (1 hour) on S3."""
        ...


# --------------------------------------------------------------------------- shared helpers


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    return iter(lambda: f.read(_CHUNK_BYTES), b"")


_hash_file = sha256_file  # sha256 hex and size of a local file (FileNotFoundError if missing)


_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EAGAIN", "EBUSY", "EINTR", "ETIMEDOUT", "ESTALE", "EHOSTDOWN", "EHOSTUNREACH", "ENETDOWN")
    if hasattr(errno, name)
)


def _transient_os_error(exc: OSError) -> bool:
    """A local (possibly network-mounted) filesystem hiccup rather than a lasting fault."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or exc.errno in _TRANSIENT_ERRNOS


def _check(key: str, where: str, recorded: str | None, actual: str) -> None:
    if recorded is None:
        raise IntegrityError(f"{key!r} in {where} has no recorded sha256; read it with verify=False")
    if recorded.lower() != actual:
        raise IntegrityError(f"{key!r} in {where} is corrupt: recorded sha256 {recorded}, read {actual}")


def _receive(
    local_path: str | os.PathLike[str],
    chunks: Iterable[bytes],
    recorded: str | None,
    verify: bool,
    key: str,
    where: str,
) -> str:
    """Write `chunks` to a temp file next to `local_path`, check, rename into place; return sha256.

    On any failure (checksum included) the temp file is removed and `local_path` is untouched.
    """
    dest = Path(local_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                h.update(chunk)
                out.write(chunk)
        actual = h.hexdigest()
        if verify:
            _check(key, where, recorded, actual)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return actual


# --------------------------------------------------------------------------- local backend


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class LocalStore:
    """Objects as files under `root`; sha256, size and content type in `root/.meta/<key>.json`.

    The sidecar is written after the object and marks it complete: an object
    without one (a crashed write) counts as absent. Safe between threads and
    processes on one POSIX filesystem.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreRefused(
                f"cannot create local store root {str(self.root)!r}: {exc.strerror}"
            ) from exc
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # paths ---------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / key

    def _meta_path(self, key: str) -> Path:
        return self.root / _META_DIR / f"{key}.json"

    @contextlib.contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except OSError as exc:
            cls = StoreUnreachable if _transient_os_error(exc) else StorageError
            raise cls(f"{op} {key!r} in {self.url} failed: {exc.strerror or exc}") from exc

    def _mkstemp(self, target: Path) -> tuple[int, str]:
        """A temp file for a write of `target`, in the staging folder that mirrors target's folder (same
        filesystem: os.replace and os.link stay atomic), named after this host and process."""
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = self.root / _STAGING_DIR / target.parent.relative_to(self.root)
        staging.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=staging, prefix=f"{TEMP_PREFIX}{_HOST_TAG}-{os.getpid()}-")

    def remove_abandoned_temp(self, prefix: str) -> list[str]:
        """Delete the temp files under `prefix` (staged, and Reel <= 0.8's beside the objects) whose
        writer is gone: its process no longer runs on this host, or (no pid in the name) it was last
        touched more than LEGACY_TEMP_AGE_S ago. Writes under way are left alone. Returns the paths
        removed, relative to the root."""
        prefix = _validate_prefix(prefix)
        removed = []
        cutoff = time.time() - LEGACY_TEMP_AGE_S
        with self._errors("clean", prefix):
            for base in (self.root / _STAGING_DIR / prefix, self.root / _STAGING_DIR / _META_DIR / prefix,
                         self.root / prefix):
                for dirpath, _, filenames in os.walk(base):
                    for name in filenames:
                        if not name.startswith(TEMP_PREFIX):
                            continue
                        path = Path(dirpath) / name
                        m = _TEMP_NAME.match(name)
                        with contextlib.suppress(FileNotFoundError):
                            if m and m[1] == _HOST_TAG:
                                if _pid_alive(int(m[2])):
                                    continue
                            elif m or path.lstat().st_mtime >= cutoff:
                                continue  # another host's write, or a recent unnamed one
                            path.unlink()
                            removed.append(path.relative_to(self.root).as_posix())
        return sorted(removed)

    def _write_atomic(self, target: Path, write: Callable[[BinaryIO], Any], before_replace=None) -> Any:
        fd, tmp = self._mkstemp(target)
        try:
            with os.fdopen(fd, "wb") as out:
                result = write(out)
                out.flush()
                os.fsync(out.fileno())
            if before_replace is not None:
                before_replace()
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return result

    def _write_meta(self, key: str, sha: str, size: int, content_type: str | None) -> None:
        record = {"sha256": sha, "size": size, "content_type": content_type or DEFAULT_CONTENT_TYPE}
        payload = json.dumps(record).encode()
        self._write_atomic(self._meta_path(key), lambda out: out.write(payload))

    def _read_meta(self, key: str) -> dict[str, Any]:
        try:
            record = json.loads(self._meta_path(key).read_bytes())
        except FileNotFoundError:
            raise ObjectNotFound(f"{key!r} not found in {self.url}") from None
        except ValueError as exc:
            raise StorageError(f"sidecar of {key!r} in {self.url} is unreadable: {exc}") from exc
        if not self._path(key).is_file():
            raise ObjectNotFound(f"{key!r} not found in {self.url}")
        return record

    def _put(self, key: str, write: Callable[[BinaryIO], tuple[str, int]], content_type: str | None) -> str:
        # The old sidecar goes first: during an overwrite readers see "absent", never a stale checksum.
        sha, size = self._write_atomic(
            self._path(key), write, before_replace=lambda: self._meta_path(key).unlink(missing_ok=True)
        )
        self._write_meta(key, sha, size, content_type)
        return sha

    # Store ---------------------------------------------------------------

    def exists(self, key: str) -> bool:
        key = validate_key(key)
        return self._meta_path(key).is_file() and self._path(key).is_file()

    def put_file(self, key: str, local_path: str | os.PathLike[str], content_type: str | None = None) -> str:
        key = validate_key(key)
        with open(local_path, "rb") as src, self._errors("put_file", key):

            def write(out: BinaryIO) -> tuple[str, int]:
                h, size = hashlib.sha256(), 0
                for chunk in _read_chunks(src):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                return h.hexdigest(), size

            return self._put(key, write, content_type)

    def put_file_by_content(self, prefix: str, name_for: Callable[[str], str], local_path: str | os.PathLike[str],
                            content_type: str | None = None, sync: bool = True) -> tuple[str, str]:
        """Store a file under `prefix/name_for(sha256)`, reading it once: copied and hashed in one pass into a
        staged temp file, then moved to its content-addressed key (left as it is when that key exists: the
        same bytes). Returns (key, sha256). `infra.pipeline.scans.put_by_content` does the same on any store
        (hash first, then put). `sync=False` leaves the flush to disk to a later `sync_objects` (many
        files: the kernel writes them back while the caller goes on)."""
        prefix = validate_key(prefix)
        with open(local_path, "rb") as src, self._errors("put_file", prefix):
            fd, tmp = self._mkstemp(self._path(f"{prefix}/x"))
            try:
                h, size = hashlib.sha256(), 0
                with os.fdopen(fd, "wb") as out:
                    for chunk in _read_chunks(src):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                    out.flush()
                    if sync:
                        os.fsync(out.fileno())
                sha = h.hexdigest()
                key = validate_key(f"{prefix}/{name_for(sha)}")
                if not self.exists(key):
                    self._meta_path(key).unlink(missing_ok=True)
                    os.replace(tmp, self._path(key))
                    self._write_meta(key, sha, size, content_type)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return key, sha

    def sync_objects(self, keys: Iterable[str]) -> None:
        """Flush objects written with `sync=False` to disk (each file's fsync), before anything that
        depends on them is written."""
        for key in keys:
            with self._errors("sync", key):
                fd = os.open(self._path(validate_key(key)), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        key = validate_key(key)
        sha = sha256_bytes(data)

        def write(out: BinaryIO) -> tuple[str, int]:
            out.write(data)
            return sha, len(data)

        with self._errors("put_bytes", key):
            return self._put(key, write, content_type)

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Create via os.link of a complete temp file: atomic and exclusive between processes.

        A key whose object exists without a sidecar (a crashed writer) counts as
        taken here, though `exists` says False; `delete` clears it.
        """
        key = validate_key(key)
        path = self._path(key)
        sha = sha256_bytes(data)
        with self._errors("put_if_absent", key):
            fd, tmp = self._mkstemp(path)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            self._write_meta(key, sha, len(data), content_type)
            return True

    def get_file(self, key: str, local_path: str | os.PathLike[str], verify: bool = True) -> str:
        key = validate_key(key)
        with self._errors("get_file", key):
            record = self._read_meta(key)
            try:
                src = open(self._path(key), "rb")
            except FileNotFoundError:
                raise ObjectNotFound(f"{key!r} not found in {self.url}") from None
            with src:
                return _receive(local_path, _read_chunks(src), record.get("sha256"), verify, key, self.url)

    def get_bytes(self, key: str, verify: bool = True) -> bytes:
        key = validate_key(key)
        with self._errors("get_bytes", key):
            record = self._read_meta(key)
            try:
                data = self._path(key).read_bytes()
            except FileNotFoundError:
                raise ObjectNotFound(f"{key!r} not found in {self.url}") from None
        if verify:
            _check(key, self.url, record.get("sha256"), sha256_bytes(data))
        return data

    def sha256(self, key: str) -> str:
        key = validate_key(key)
        with self._errors("sha256", key):
            return str(self._read_meta(key)["sha256"])

    def size(self, key: str) -> int:
        key = validate_key(key)
        with self._errors("size", key):
            return int(self._read_meta(key)["size"])

    def digest(self, key: str) -> tuple[str, int]:
        """sha256 (hex) and size of the bytes on disk now, re-read (not the recorded values); for audits.

        Reads the file even when its sidecar is missing; ObjectNotFound only if the file is.
        """
        key = validate_key(key)
        with self._errors("digest", key):
            try:
                return _hash_file(self._path(key))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ObjectNotFound(f"{key!r} not found in {self.url}") from None

    def list(self, prefix: str = "") -> list[str]:
        prefix = _validate_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0]
        keys = []
        with self._errors("list", prefix):
            for dirpath, dirnames, filenames in os.walk(start):
                # Prune .meta, temp files and anything else that is not a key.
                dirnames[:] = [d for d in dirnames if _KEY_PART.fullmatch(d)]
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix) and _is_key(key) and self._meta_path(key).is_file():
                        keys.append(key)
        return sorted(keys)

    def remove_stale_temp(self, older_than_s: float) -> list[str]:
        """Delete the temp files of interrupted writes (`.tmp-*`, never objects) last modified more than
        `older_than_s` ago; returns their paths relative to the root. A write still under way keeps
        touching its temp file, so a threshold longer than any single write is safe."""
        cutoff = time.time() - older_than_s
        removed = []
        with self._errors("clean", "*"):
            for dirpath, _, filenames in os.walk(self.root):
                for name in filenames:
                    if not name.startswith(".tmp-"):
                        continue
                    path = Path(dirpath) / name
                    with contextlib.suppress(FileNotFoundError):
                        if path.lstat().st_mtime < cutoff and path.is_file() and not path.is_symlink():
                            path.unlink()
                            removed.append(path.relative_to(self.root).as_posix())
        return sorted(removed)

    def delete(self, key: str) -> None:
        key = validate_key(key)
        with self._errors("delete", key):
            self._meta_path(key).unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                self._path(key).unlink()

    def link(self, key: str) -> str:
        key = validate_key(key)
        if not self.exists(key):
            raise ObjectNotFound(f"{key!r} not found in {self.url}")
        return self._path(key).as_uri()


# --------------------------------------------------------------------------- S3 backend

_CONNECT_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 60.0
_RETRIES = 3  # transient failures: refused/reset connections, timeouts, 500/502/503/504
_CONNECT_RETRIES = 1  # an unreachable endpoint fails in at most 2 x 5 s (refused: well under 1 s)
_READ_RETRIES = 1  # a hung server costs at most 2 x 60 s; the Prefect task retry does the rest
_DOWNLOAD_ATTEMPTS = 3  # a download cut mid-body is restarted from the beginning
_CREDENTIAL_HINTS = {
    "InvalidAccessKeyId": "the server does not know the access key; check the access key",
    "SignatureDoesNotMatch": "the secret key does not match the access key; check the secret key",
    "AccessDenied": "check the access key and secret key, and that they may use this bucket",
    "AllAccessDisabled": "all access to this bucket is disabled",
    "InvalidToken": "the session token is invalid; check the credentials",
    "ExpiredToken": "the session token has expired; renew the credentials",
    "AccountProblem": "the account behind the access key cannot be used",
}
_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})
# Answers that mean "busy or briefly broken; ask again later" whatever their HTTP status.
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
     "OperationAborted", "ThrottlingException", "Throttling", "TooManyRequests"}
)
_TRANSIENT_STATUS = frozenset({408, 429})  # plus every 5xx
_META_SHA = "x-amz-meta-sha256"


def _transient_status(status: int) -> bool:
    return status >= 500 or status in _TRANSIENT_STATUS


def _http_client(secure: bool) -> urllib3.PoolManager:
    """Pool with short timeouts and a few backed-off retries (about 1.2 s of waiting in all).

    minio's default pool waits 5 minutes to connect and retries 5 times; this one gives
    up on an unreachable endpoint within seconds, so the failure reaches the caller
    (and Prefect's retry rule) quickly.
    """
    retry = urllib3.Retry(
        total=_RETRIES,
        connect=_CONNECT_RETRIES,
        read=_READ_RETRIES,
        backoff_factor=0.2,
        backoff_max=2.0,
        status_forcelist=(500, 502, 503, 504),
        raise_on_status=False,  # the last 5xx reaches minio, which reports it as such
        respect_retry_after_header=False,
    )
    kwargs: dict[str, Any] = {}
    if secure:
        kwargs = {
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": os.environ.get("SSL_CERT_FILE") or certifi.where(),
        }
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=_CONNECT_TIMEOUT_S, read=_READ_TIMEOUT_S),
        retries=retry,
        maxsize=16,
        **kwargs,
    )


def _reason(exc: BaseException) -> str:
    """Short cause of a urllib3 failure, e.g. 'Connection refused'."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    text = re.sub(r"<[^>]*>: ?", "", text)  # drop "<HTTPConnection object at 0x...>: "
    errno_text = re.search(r"\[Errno [^\]]*\]\s*([^()\]]+)", text)
    if errno_text:
        text = errno_text.group(1).strip() or text
    text = re.sub(r"^\w*ConnectionPool\([^)]*\): ", "", text)  # drop "HTTPConnectionPool(host=..., port=...): "
    timed_out = isinstance(reason, urllib3.exceptions.ReadTimeoutError) or (
        isinstance(reason, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(reason, urllib3.exceptions.NewConnectionError)
    )
    if timed_out and "timed out" not in text.lower():
        text = f"timed out: {text}"
    return text or type(reason).__name__


class S3Store:
    """Objects in an S3-compatible bucket through the minio client.

    The sha256 travels as user metadata (`x-amz-meta-sha256`); `prefix` is put
    before every key. The endpoint and bucket are checked once on construction.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        prefix: str = "",
        secure: bool = False,
        region: str | None = None,
        create_bucket: bool = False,
    ) -> None:
        if "://" in endpoint or "/" in endpoint:
            raise ValueError(f"S3 endpoint {endpoint!r} must be host:port (no scheme, no path)")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self._names_prefix = f"{prefix}/" if prefix else ""
        self._secret = secret_key
        self._access = access_key
        self._endpoint_url = f"{'https' if secure else 'http'}://{endpoint}"
        self.url = f"{self._endpoint_url}/{bucket}" + (f"/{prefix}" if prefix else "")
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_http_client(secure),
        )
        with self._errors("check bucket"):
            found = self._client.bucket_exists(bucket)
            if not found and create_bucket:
                try:
                    self._client.make_bucket(bucket, location=region)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
                found = True
        if not found:
            raise StoreRefused(
                f"bucket {bucket!r} does not exist at {self._endpoint_url} (create it, or set create_bucket)"
            )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # errors --------------------------------------------------------------

    def _error(self, exc: BaseException, op: str, key: str | None) -> StorageError:
        """One clear, secret-free StorageError for a minio/urllib3/OS failure, classified:
        StoreUnreachable (transient), StoreRefused (credentials, bucket: permanent),
        ObjectNotFound, or a plain (permanent) StorageError."""
        what = f"{op} {key!r}" if key is not None else op
        err: StorageError
        if isinstance(exc, S3Error):
            status = exc.response.status if exc.response is not None else 0
            if exc.code == "NoSuchKey":
                err = ObjectNotFound(f"{key!r} not found in {self.url}")
            elif exc.code in _MISSING_BUCKET_CODES:
                err = StoreRefused(
                    f"bucket {self.bucket!r} does not exist at {self._endpoint_url} ({what})"
                )
            elif exc.code in _CREDENTIAL_HINTS or status in (401, 403):
                hint = _CREDENTIAL_HINTS.get(exc.code, _CREDENTIAL_HINTS["AccessDenied"])
                err = StoreRefused(f"{what} at {self.url} refused: {exc.code} ({hint})")
            elif exc.code in _TRANSIENT_CODES or _transient_status(status):
                err = StoreUnreachable(
                    f"{what} at {self.url} failed: server busy or failing, {exc.code} (HTTP {status})"
                )
            else:
                err = StorageError(f"{what} at {self.url} failed: {exc.code}: {exc.message}")
        elif isinstance(exc, ServerError):
            cls = StoreUnreachable if _transient_status(exc.status_code) else StorageError
            err = cls(f"{what} at {self.url} failed: server error HTTP {exc.status_code}")
        elif isinstance(exc, InvalidResponseError):
            code = getattr(exc, "_code", 0) or 0
            cls = StoreUnreachable if _transient_status(code) else StorageError
            err = cls(f"{what} at {self.url} failed: unexpected non-S3 response HTTP {code}")
        elif isinstance(exc, urllib3.exceptions.HTTPError):
            cause = getattr(exc, "reason", None) or exc
            if isinstance(cause, (urllib3.exceptions.SSLError, urllib3.exceptions.LocationValueError)):
                err = StoreRefused(
                    f"cannot use S3 endpoint {self._endpoint_url} for bucket {self.bucket!r} ({what}): {_reason(exc)}"
                )
            else:
                err = StoreUnreachable(
                    f"cannot reach S3 endpoint {self._endpoint_url} for bucket {self.bucket!r} ({what}): "
                    f"{_reason(exc)}"
                )
        elif isinstance(exc, OSError) and _transient_os_error(exc):
            err = StoreUnreachable(f"{what} at {self.url} failed: {exc.strerror or exc}")
        else:
            err = StorageError(f"{what} at {self.url} failed: {getattr(exc, 'strerror', None) or exc}")
        return self._scrub(err)

    def _scrub(self, err: StorageError) -> StorageError:
        """Defence in depth: no path above puts a credential in a message; make sure."""
        text = str(err)
        for secret, shortest in ((self._secret, 6), (self._access, 8)):  # shorter ones would mangle words
            if len(secret) >= shortest and secret in text:
                text = text.replace(secret, "***")
        return err if text == str(err) else type(err)(text)

    @contextlib.contextmanager
    def _errors(self, op: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(exc, op, key) from exc

    def _name(self, key: str) -> str:
        return self._names_prefix + validate_key(key)

    def _stat(self, key: str, op: str) -> Any:
        name = self._name(key)
        with self._errors(op, key):
            return self._client.stat_object(self.bucket, name)

    # Store ---------------------------------------------------------------

    def exists(self, key: str) -> bool:
        name = self._name(key)
        with self._errors("exists", key):
            try:
                self._client.stat_object(self.bucket, name)
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    return False
                raise
        return True

    def put_file(self, key: str, local_path: str | os.PathLike[str], content_type: str | None = None) -> str:
        """Upload with fput_object (multipart above 5 MiB; completes atomically)."""
        name = self._name(key)
        sha, _ = _hash_file(Path(local_path))
        with self._errors("put_file", key):
            self._client.fput_object(
                self.bucket,
                name,
                os.fspath(local_path),
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                metadata={"sha256": sha},
            )
        return sha

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        name = self._name(key)
        sha = sha256_bytes(data)
        with self._errors("put_bytes", key):
            self._client.put_object(
                self.bucket,
                name,
                io.BytesIO(data),
                len(data),
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                metadata={"sha256": sha},
            )
        return sha

    def put_if_absent(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Single PUT with `If-None-Match: *` (AWS S3, MinIO, Ceph RGW and moto honour it).

        Meant for small objects (one request, at most 5 GiB). The stat first saves
        an upload when the key is taken and limits the damage on a server that
        would ignore the header. minio's public put_object cannot send it, so this
        uses the client's `_put_object`. If a 5xx is retried after the server
        did store the object, the retry answers 412 and this returns False.
        """
        name = self._name(key)
        if self.exists(key):
            return False
        headers = {
            "If-None-Match": "*",
            "Content-Type": content_type or DEFAULT_CONTENT_TYPE,
            _META_SHA: sha256_bytes(data),
        }
        for attempt in range(_RETRIES + 1):
            with self._errors("put_if_absent", key):
                try:
                    self._client._put_object(self.bucket, name, data, headers=dict(headers))
                    return True
                except S3Error as exc:
                    if exc.code == "PreconditionFailed":
                        return False
                    # AWS answers 409 while a concurrent conditional write is in flight: ask again.
                    if exc.code != "ConditionalRequestConflict" or attempt == _RETRIES:
                        raise
            time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    def _download(self, key: str, op: str, consume: Callable[[Iterator[bytes], str | None], Any]) -> Any:
        """GET the object (its sha256 comes in the same response) and feed the body to `consume`."""
        name = self._name(key)
        for attempt in range(_DOWNLOAD_ATTEMPTS):
            with self._errors(op, key):
                try:
                    response = self._client.get_object(self.bucket, name)
                    try:
                        return consume(response.stream(_CHUNK_BYTES), response.headers.get(_META_SHA))
                    finally:
                        response.close()
                        response.release_conn()
                except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError):
                    if attempt == _DOWNLOAD_ATTEMPTS - 1:
                        raise
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def get_file(self, key: str, local_path: str | os.PathLike[str], verify: bool = True) -> str:
        return self._download(
            key,
            "get_file",
            lambda chunks, recorded: _receive(local_path, chunks, recorded, verify, key, self.url),
        )

    def get_bytes(self, key: str, verify: bool = True) -> bytes:
        def consume(chunks: Iterator[bytes], recorded: str | None) -> bytes:
            data = b"".join(chunks)
            if verify:
                _check(key, self.url, recorded, sha256_bytes(data))
            return data

        return self._download(key, "get_bytes", consume)

    def digest(self, key: str) -> tuple[str, int]:
        """sha256 (hex) and size of the object's bytes now, downloaded and hashed (not the recorded values)."""

        def consume(chunks: Iterator[bytes], recorded: str | None) -> tuple[str, int]:
            h, size = hashlib.sha256(), 0
            for chunk in chunks:
                h.update(chunk)
                size += len(chunk)
            return h.hexdigest(), size

        return self._download(key, "digest", consume)

    def sha256(self, key: str) -> str:
        recorded = self._stat(key, "sha256").metadata.get(_META_SHA)
        if not recorded:
            raise IntegrityError(f"{key!r} in {self.url} has no recorded sha256")
        return str(recorded)

    def size(self, key: str) -> int:
        return int(self._stat(key, "size").size)

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys under `prefix`; objects whose names are not valid keys are skipped."""
        prefix = _validate_prefix(prefix)
        n = len(self._names_prefix)
        with self._errors("list", prefix):
            names = [
                obj.object_name[n:]
                for obj in self._client.list_objects(
                    self.bucket, prefix=self._names_prefix + prefix, recursive=True
                )
                if not obj.is_dir
            ]
        return sorted(name for name in names if _is_key(name))

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._errors("delete", key):
            self._client.remove_object(self.bucket, name)

    def link(self, key: str) -> str:
        self._stat(key, "link")
        with self._errors("link", key):
            return self._client.presigned_get_object(self.bucket, self._name(key), expires=LINK_EXPIRY)


# --------------------------------------------------------------------------- configuration


class StoreConfig(BaseModel):
    """Where the store is and how to reach it. `repr` hides the keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        description="A local folder (path or file:///abs/path) or s3://bucket[/prefix] for an S3-compatible store."
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3 endpoint as host:port, no scheme; required for s3:// URLs."
    )
    s3_access_key: SecretStr | None = Field(
        default=None, description="S3 access key; required for s3:// URLs."
    )
    s3_secret_key: SecretStr | None = Field(
        default=None, description="S3 secret key; required for s3:// URLs."
    )
    s3_secure: bool = Field(default=False, description="Talk HTTPS to the S3 endpoint.")
    s3_region: str | None = Field(default=None, description="S3 region; None asks the server.")
    create_bucket: bool = Field(
        default=False, description="Create the S3 bucket if it is missing, instead of failing."
    )

    @field_validator("url")
    @classmethod
    def check_url(cls, url: str) -> str:
        if not url.strip():
            raise ValueError("store url is empty")
        scheme, sep, _ = url.partition("://")
        if sep and scheme not in ("file", "s3"):
            raise ValueError(f"store url {url!r}: unknown scheme {scheme!r} (use a path, file:// or s3://)")
        return url


def _given(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value)


def open_store(config: StoreConfig) -> Store:
    """Open the store that `config.url` names (LocalStore or S3Store)."""
    url = config.url
    if url.startswith("s3://"):
        parsed = urlparse(url)
        if "@" in parsed.netloc:
            raise ValueError(
                "store url: credentials do not belong in an s3:// URL; set s3_access_key/s3_secret_key"
            )
        if not parsed.netloc:
            raise ValueError(f"store url {url!r} names no bucket (expected s3://bucket[/prefix])")
        missing = [
            name
            for name in ("s3_endpoint", "s3_access_key", "s3_secret_key")
            if not _given(getattr(config, name))
        ]
        if missing:
            raise ValueError(f"store url {url!r} is on S3 and needs {', '.join(missing)} (not set)")
        assert config.s3_endpoint and config.s3_access_key and config.s3_secret_key
        return S3Store(
            endpoint=config.s3_endpoint,
            access_key=config.s3_access_key.get_secret_value(),
            secret_key=config.s3_secret_key.get_secret_value(),
            bucket=parsed.netloc,
            prefix=unquote(parsed.path).strip("/"),
            secure=config.s3_secure,
            region=config.s3_region,
            create_bucket=config.create_bucket,
        )
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"store url {url!r}: only local file:// URLs are supported")
        path = unquote(parsed.path)
        if not os.path.isabs(path):
            raise ValueError(f"store url {url!r}: file:// needs an absolute path")
        return LocalStore(Path(path))
    return LocalStore(Path(url))
