"""Every content hash Reel computes: sha256 of a file or of bytes, and short hashes of canonical JSON.

One place, one style: sha256 hex digests (lowercase). A stored object's checksum, a source's identity and
every content address (segment keys, version ids, QC tags) come from here. `short_hash` uses the same
canonical JSON as `catalog.recipe.Recipe.chain_hash` (sorted keys, no spaces), so the two agree on the
same data (tests/infra/test_hashing.py); catalog/ cannot import infra/, so it keeps its own two lines.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

BLOCK_BYTES = 1 << 20  # read files a megabyte at a time


def sha256_file(path: str | Path, block: int = BLOCK_BYTES) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a local file (FileNotFoundError if missing)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def sha256_bytes(data: bytes) -> str:
    """sha256 hex of `data`."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces (values JSON cannot hold written with str())."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def short_hash(obj: Any, length: int = 16) -> str:
    """The first `length` hex digits of the sha256 of `obj`'s canonical JSON."""
    return sha256_bytes(canonical_json(obj).encode())[:length]


def short_text_hash(text: str, length: int = 32) -> str:
    """The first `length` hex digits of the sha256 of a string (names of cached records)."""
    return sha256_bytes(text.encode())[:length]
