"""Frame-exact access to a title's frames through its intra-only FFV1 mezzanine chunks.

Chunk i holds frames [i * chunk_frames, (i + 1) * chunk_frames). Any frame
range is read by fetching the chunks it touches (checksums verified) into a
local cache folder and decoding only those.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from catalog.records import IngestRecord
from infra.media import read_frames
from infra.storage import Store


class MezzanineReader:
    def __init__(self, store: Store, record: IngestRecord, cache_dir: Path) -> None:
        self.store = store
        self.record = record
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _chunk_path(self, index: int) -> Path:
        key = self.record.chunks[index]
        path = self.cache_dir / key.replace("/", "__")
        if not path.exists():
            self.store.get_file(key, path)
        return path

    def read(self, start: int, end: int) -> np.ndarray:
        """Frames [start, end) as (T, H, W, 3) uint8 (8-bit sources) or uint16, decoded straight into
        one array (no copy of the blocks)."""
        r = self.record
        out = np.empty((end - start, r.height, r.width, 3), np.uint8 if r.bit_depth == 8 else np.uint16)
        for a, b, path in self._spans(start, end):
            read_frames(path, a - (a // r.chunk_frames) * r.chunk_frames, b - a, depth=r.bit_depth,
                        intra_only=True, out=out[a - start:b - start])
        return out

    def iter_blocks(self, start: int, end: int) -> Iterator[np.ndarray]:
        """Frames [start, end) as consecutive (t, H, W, 3) blocks, one per chunk touched."""
        r = self.record
        for a, b, path in self._spans(start, end):
            yield read_frames(path, a - (a // r.chunk_frames) * r.chunk_frames, b - a, depth=r.bit_depth,
                              intra_only=True)

    def _spans(self, start: int, end: int) -> Iterator[tuple[int, int, Path]]:
        """(first frame, end frame, local chunk file) of each chunk that [start, end) touches."""
        r = self.record
        if not 0 <= start < end <= r.frames:
            raise ValueError(f"frame range [{start}, {end}) outside the title's {r.frames} frames")
        n = r.chunk_frames
        for index in range(start // n, (end - 1) // n + 1):
            c0 = index * n
            yield max(start, c0), min(end, c0 + n), self._chunk_path(index)
