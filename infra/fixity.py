"""Fixity audit: re-hash every published output and compare it with its manifest.

Two targets, one report:

* `verify_store(store, title)`: every published version of `title` in a store
  (`published/<title>/<version>/`), or one version. The manifest itself is not
  listed in the manifest, so it is checked against the sha256 the store recorded
  when it was written.
* `verify_dir(path)`: a folder holding one copied version with its manifest.json,
  as `reel restore --out DIR` writes it.

Problems, one per line in `FixityReport.lines()`:

    MODIFIED path    bytes differ from the manifest's sha256 (same size)
    SIZE path        size differs from the manifest's size_bytes
    MISSING path     listed in the manifest, absent (or manifest.json itself absent)
    UNLISTED path    present in the version folder, not in the manifest
    UNREADABLE path  manifest.json does not parse, or lists an unsafe path

Notes, listed but not failures:

    ABANDONED path   the temp file of a write that was killed (Reel <= 0.8 wrote them inside the
                     version folder; the next publish of the title removes them)

Pure: reads only, writes nothing, prints nothing.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog import layout
from catalog.ids import validate_title_id
from infra.hashing import sha256_bytes, sha256_file
from infra.storage import (
    IntegrityError,
    LocalStore,
    ObjectNotFound,
    Store,
    is_temp_name,
    validate_key,
)

__all__ = ["KINDS", "FixityReport", "Problem", "VersionReport", "verify_dir", "verify_store"]

KINDS = ("MODIFIED", "SIZE", "MISSING", "UNLISTED", "UNREADABLE")
MANIFEST = layout.MANIFEST
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    path: str  # store mode: the full key; directory mode: relative to the folder
    detail: str = ""

    def line(self) -> str:
        return f"{self.kind} {self.path}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class VersionReport:
    version: str
    location: str  # key prefix or folder
    checked: int = 0  # outputs re-hashed
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # ABANDONED temp files: not failures


@dataclass
class FixityReport:
    mode: str  # "store" or "dir"
    target: str  # the title, or the folder
    location: str  # the store's url, or the folder's absolute path
    versions: list[VersionReport] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        return [p for v in self.versions for p in v.problems]

    @property
    def ok(self) -> bool:
        return bool(self.versions) and not self.problems

    @property
    def notes(self) -> list[Problem]:
        return [p for v in self.versions for p in v.notes]

    def counts(self) -> dict[str, int]:
        found = Counter(p.kind for p in self.problems)
        return {kind: found.get(kind, 0) for kind in KINDS}

    def summary(self) -> str:
        checked = sum(v.checked for v in self.versions)
        n = len(self.problems)
        what = f"{len(self.versions)} version(s), {checked} output(s) re-hashed"
        abandoned = len(self.notes)
        if abandoned:
            what += (f"; {abandoned} abandoned temp file(s) of an interrupted write (not part of any version; "
                     "the next publish of the title removes them)")
        if not n:
            return f"verify {self.target}: OK: {what}, no problems"
        counts = ", ".join(f"{k.lower()} {c}" for k, c in self.counts().items() if c)
        return f"verify {self.target}: FAILED: {what}, {n} problem(s): {counts}"

    def lines(self) -> list[str]:
        return [p.line() for p in self.problems] + [p.line() for p in self.notes] + [self.summary()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "target": self.target,
            "location": self.location,
            "ok": self.ok,
            "counts": self.counts(),
            "problems": [{**asdict(p), "version": v.version} for v in self.versions for p in v.problems],
            "notes": [{**asdict(p), "version": v.version} for v in self.versions for p in v.notes],
            "versions": [
                {"version": v.version, "location": v.location, "checked": v.checked,
                 "problems": [asdict(p) for p in v.problems]}
                for v in self.versions
            ],
            "summary": self.summary(),
        }


# --------------------------------------------------------------------------- manifest


def _parse_manifest(data: bytes) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[str]]:
    """(manifest or None, outputs, reasons it is unusable). Lenient about fields it does not need."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [], [f"not JSON: {exc}"]
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), list):
        return None, [], ["no 'outputs' list"]
    outputs, reasons = [], []
    for i, o in enumerate(doc["outputs"]):
        if not (isinstance(o, dict) and isinstance(o.get("path"), str) and isinstance(o.get("sha256"), str)
                and isinstance(o.get("size_bytes"), int) and not isinstance(o.get("size_bytes"), bool)):
            reasons.append(f"output #{i} lacks path/sha256/size_bytes")
            continue
        try:
            validate_key(o["path"])
        except ValueError:
            reasons.append(f"output #{i} path {o['path']!r} is not a safe relative path")
            continue
        if o["path"] == MANIFEST:
            reasons.append(f"output #{i} is {MANIFEST} itself")
            continue
        outputs.append(o)
    return doc, outputs, reasons


def _compare(problems: list[Problem], shown: str, expected: dict[str, Any], sha: str, size: int) -> None:
    if size != expected["size_bytes"]:
        problems.append(Problem("SIZE", shown, f"manifest {expected['size_bytes']} bytes, found {size}"))
    elif sha != expected["sha256"].lower():
        problems.append(Problem("MODIFIED", shown, f"manifest sha256 {expected['sha256'][:16]}..., "
                                                   f"found {sha[:16]}..."))


# --------------------------------------------------------------------------- store


def _store_files(store: Store, prefix: str) -> list[str]:
    """Every object under prefix/; in a local store also files written behind its back (no sidecar)."""
    keys = set(store.list(prefix + "/"))
    if isinstance(store, LocalStore):
        base = store.root / prefix
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = Path(dirpath).relative_to(store.root).as_posix()
            keys.update(f"{rel}/{name}" for name in filenames)
    return sorted(keys)


def _verify_store_version(store: Store, prefix: str, version: str, title: str) -> VersionReport:
    report = VersionReport(version=version, location=prefix)
    problems = report.problems
    mkey = f"{prefix}/{MANIFEST}"
    present = set(_store_files(store, prefix))
    data = _read_manifest(store, mkey)
    outputs: list[dict[str, Any]] = []
    if data is None:
        problems.append(Problem("MISSING", mkey, "no manifest: nothing in this version can be trusted"))
    else:
        actual = sha256_bytes(data)
        try:
            recorded: str | None = store.sha256(mkey)
        except (ObjectNotFound, IntegrityError):  # written behind the store's back: nothing recorded
            recorded = None
        if recorded is not None and recorded.lower() != actual:
            problems.append(Problem("MODIFIED", mkey, f"store recorded sha256 {recorded[:16]}..., "
                                                      f"found {actual[:16]}..."))
        doc, outputs, reasons = _parse_manifest(data)
        problems.extend(Problem("UNREADABLE", mkey, r) for r in reasons)
        if doc is not None and (doc.get("title"), doc.get("version")) != (title, version):
            problems.append(Problem("MODIFIED", mkey, f"names {doc.get('title')!r} {doc.get('version')!r}, "
                                                      f"stored as {title!r} {version!r}"))
    listed = {mkey}
    for o in outputs:
        key = f"{prefix}/{o['path']}"
        listed.add(key)
        try:
            sha, size = store.digest(key) if hasattr(store, "digest") else _download_digest(store, key)
        except ObjectNotFound:
            problems.append(Problem("MISSING", key))
            continue
        report.checked += 1
        _compare(problems, key, o, sha, size)
    for key in sorted(present - listed):
        if is_temp_name(key.rsplit("/", 1)[-1]) and isinstance(store, LocalStore):
            report.notes.append(Problem("ABANDONED", key, "temp file of an interrupted write"))
        else:
            problems.append(Problem("UNLISTED", key))
    return report


def _read_manifest(store: Store, mkey: str) -> bytes | None:
    try:
        return store.get_bytes(mkey, verify=False)
    except ObjectNotFound:
        if isinstance(store, LocalStore) and (store.root / mkey).is_file():  # sidecar gone, bytes still there
            return (store.root / mkey).read_bytes()
        return None


def _download_digest(store: Store, key: str) -> tuple[str, int]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reel-verify-") as tmp:
        path = Path(tmp) / "object"
        sha = store.get_file(key, path, verify=False)
        return sha, path.stat().st_size


def verify_store(store: Store, title: str, version: str | None = None) -> FixityReport:
    """Audit every published version of `title` (or just `version`) in `store`.

    ValueError for a bad title or version id (before any I/O); ObjectNotFound when
    nothing is published under that title (or that version).
    """
    title = validate_title_id(title)
    if version is not None:
        validate_key(version)
        if "/" in version:
            raise ValueError(f"invalid version {version!r}: one path part, like 'v-0123456789ab'")
    base = layout.title_published_prefix(title).rstrip("/")
    report = FixityReport(mode="store", target=title, location=store.url)
    if version is not None:
        versions = [version] if store.list(f"{base}/{version}/") or _local_dir(store, f"{base}/{version}") else []
    else:
        versions = sorted({key[len(base) + 1:].split("/", 1)[0] for key in _store_files(store, base)
                           if key.count("/") >= 3 and _is_part(key.split("/")[2])})
    if not versions:
        what = f"version {version!r} of {title!r}" if version else f"published version of {title!r}"
        raise ObjectNotFound(f"no {what} in {store.url}")
    for v in versions:
        report.versions.append(_verify_store_version(store, f"{base}/{v}", v, title))
    return report


def _is_part(name: str) -> bool:
    try:
        validate_key(name)
    except ValueError:
        return False
    return True


def _local_dir(store: Store, prefix: str) -> bool:
    return isinstance(store, LocalStore) and (store.root / prefix).is_dir()


# --------------------------------------------------------------------------- directory


def _hash_path(path: Path) -> tuple[str, int]:
    return sha256_file(path, _CHUNK)


def verify_dir(path: str | os.PathLike[str]) -> FixityReport:
    """Audit one copied version: DIR/manifest.json and the outputs it lists, relative to DIR."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{str(path)!r} is not a folder")
    root = root.absolute()
    report = FixityReport(mode="dir", target=str(path), location=str(root))
    present = sorted(
        Path(dirpath, name).relative_to(root).as_posix()
        for dirpath, _, filenames in os.walk(root)
        for name in filenames
    )
    outputs: list[dict[str, Any]] = []
    version = root.name
    vr = VersionReport(version=version, location=str(root))
    problems = vr.problems
    try:
        data = (root / MANIFEST).read_bytes()
    except FileNotFoundError:
        problems.append(Problem("MISSING", MANIFEST, "no manifest: nothing in this folder can be trusted"))
    else:
        doc, outputs, reasons = _parse_manifest(data)
        problems.extend(Problem("UNREADABLE", MANIFEST, r) for r in reasons)
        if doc is not None and isinstance(doc.get("version"), str):
            vr.version = doc["version"]
    listed = {MANIFEST}
    for o in outputs:
        listed.add(o["path"])
        try:
            sha, size = _hash_path(root / o["path"])
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            problems.append(Problem("MISSING", o["path"]))
            continue
        vr.checked += 1
        _compare(problems, o["path"], o, sha, size)
    problems.extend(Problem("UNLISTED", p) for p in present if p not in listed)
    report.versions.append(vr)
    return report
