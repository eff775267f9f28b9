"""Reading the titles catalogue file, and remembering source checksums between status checks.

`read_catalogue` reads a CSV or Parquet file (by suffix), validates it with
`catalog.titles.parse_titles` and anchors relative paths (sources and recipe files) to the
catalogue file's folder, so a catalogue means the same thing from any working directory.

`SourceChecksums` gives the sha256 of a local source file without re-reading unchanged files:
one small JSON object per source under `catalogue/checksums/` in the store, keyed by the file's
resolved path and trusted while its size and mtime_ns are unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pandas as pd

from catalog import layout
from catalog.recipe import BUILTIN_RECIPES
from catalog.titles import Title, parse_titles
from infra.hashing import sha256_file, short_text_hash
from infra.storage import StorageError, Store

__all__ = ["CHECKSUMS_PREFIX", "SourceChecksums", "anchor_title", "read_catalogue", "read_table"]

CHECKSUMS_PREFIX = layout.CHECKSUMS_PREFIX
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")  # as infra.sources: anything with a scheme is a URL
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 32 * 2**20  # infra.settings: catalogue_max_bytes
DEFAULT_MAX_ROWS = 100_000  # infra.settings: catalogue_max_rows


def read_catalogue(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES,
                   max_rows: int = DEFAULT_MAX_ROWS) -> list[Title]:
    """The titles in a catalogue file (.csv or .parquet), validated, relative paths anchored.

    Raises FileNotFoundError for a missing file and ValueError (one line, naming the file) for
    an unreadable or invalid one, one larger than `max_bytes` (checked before parsing) or with more
    than `max_rows` titles.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"catalogue {str(p)!r}: no such file (set REEL_CATALOGUE or pass --catalogue)")
    table = read_table(p, max_bytes=max_bytes, max_rows=max_rows)
    try:
        titles = parse_titles(table, first_row=2 if p.suffix.lower() in CSV_SUFFIXES else 1)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    base = p.resolve().parent
    return [anchor_title(t, base) for t in titles]


def read_table(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, max_rows: int = DEFAULT_MAX_ROWS) -> pd.DataFrame:
    """The raw table. CSV cells are read as text exactly as written (an empty cell is ''; 'NA' stays 'NA');
    UTF-8 with or without a byte-order mark. Every CSV row must have as many fields as the header (a
    stray comma would otherwise shift the columns): ValueError naming the line otherwise."""
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path}: catalogue is {size} bytes, more than the limit of {max_bytes} "
                         "(REEL_CATALOGUE_MAX_BYTES)")
    try:
        if suffix in CSV_SUFFIXES:
            return _read_csv_strict(path, max_rows)
        if suffix in PARQUET_SUFFIXES:
            table = pd.read_parquet(path)
            _check_rows(path, len(table), max_rows)
            return table
    except (UnicodeDecodeError, csv.Error, pd.errors.ParserError, OSError) as e:
        kind = "CSV" if suffix in CSV_SUFFIXES else "Parquet"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a readable {kind} file: {first}") from None
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        kind = "CSV" if suffix in CSV_SUFFIXES else "Parquet"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a readable {kind} file: {first}") from None
    raise ValueError(f"{path}: catalogue must be .csv or .parquet, not {suffix or 'a file without suffix'!r}")


def _check_rows(path: Path, rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise ValueError(f"{path}: catalogue has more than {max_rows} titles (REEL_CATALOGUE_MAX_ROWS); "
                         "split it")


def _read_csv_strict(path: Path, max_rows: int) -> pd.DataFrame:
    """CSV as text cells; every non-blank row has exactly the header's number of fields."""
    text = path.read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip() and header is not None):
            continue  # a blank line
        if header is None:
            header = row
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}: line {reader.line_num}: {len(row)} field{'s' if len(row) != 1 else ''} "
                             f"but the header has {len(header)} ({','.join(header)}); a stray or missing "
                             "comma? Quote cells that contain commas")
        rows.append(row)
        _check_rows(path, len(rows), max_rows)
    if header is None:
        raise ValueError(f"{path}: empty file (a catalogue needs a header row: id,source,...)")
    return pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(columns=header, dtype=str)


def anchor_title(title: Title, base: Path) -> Title:
    """Make a relative local source and a relative recipe file absolute, taken from `base`.
    URLs and built-in recipe names are kept as they are. (No file is touched.)"""
    update = {}
    if not _SCHEME.match(title.source) and not Path(title.source).is_absolute():
        update["source"] = str(base / title.source)
    if title.recipe not in BUILTIN_RECIPES and not Path(title.recipe).is_absolute():
        update["recipe"] = str(base / title.recipe)
    if title.audio and not _SCHEME.match(title.audio) and not Path(title.audio).is_absolute():
        update["audio"] = str(base / title.audio)
    return title.model_copy(update=update) if update else title


class SourceChecksums:
    """sha256 of local files, cached in the store while (path, size, mtime_ns) are unchanged.

    `hashed` and `reused` count what this instance did (for logs and tests).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hashed = 0
        self.reused = 0

    def sha256(self, path: Path) -> str:
        """sha256 (hex) of the file at `path` (resolved by the caller). OSError if it cannot be read."""
        ident = _identity(path)
        key = layout.checksum_key(short_text_hash(str(path)))
        cached = self._cached(key)
        if cached is not None and {k: cached.get(k) for k in ident} == ident \
                and _SHA256.fullmatch(str(cached.get("sha256", ""))):
            self.reused += 1
            return str(cached["sha256"])
        sha = _hash_file(path)
        self.hashed += 1
        if _identity(path) == ident:  # not changed while we read it: worth remembering
            self.store.put_bytes(key, json.dumps({**ident, "sha256": sha}).encode(), content_type="application/json")
        return sha

    def _remote_key(self, source: str) -> str:
        return layout.checksum_key("remote-" + short_text_hash(source))

    def remember_remote(self, source: str, identity: dict | None, sha256: str) -> None:
        """Note that the remote `source`, while the server described it by `identity` (its ETag, size
        and date at the time it was fetched), had this sha256. Nothing is noted without an identity."""
        if identity:
            self.store.put_bytes(self._remote_key(source),
                                 json.dumps({"source": source, "identity": identity, "sha256": sha256}).encode(),
                                 content_type="application/json")

    def remote_sha256(self, source: str, identity: dict | None) -> str | None:
        """sha256 of the remote `source` if it was fetched and hashed while it had this identity."""
        cached = self._cached(self._remote_key(source)) if identity else None
        if cached is None or cached.get("source") != source or cached.get("identity") != identity \
                or not _SHA256.fullmatch(str(cached.get("sha256", ""))):
            return None
        self.reused += 1
        return str(cached["sha256"])

    def _cached(self, key: str) -> dict | None:
        try:
            if not self.store.exists(key):
                return None
            data = json.loads(self.store.get_bytes(key))
        except StorageError as e:
            if e.transient:
                raise
            return None  # a damaged cache entry is only a cache miss
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def _identity(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _hash_file(path: Path) -> str:
    return sha256_file(path, _CHUNK)[0]
