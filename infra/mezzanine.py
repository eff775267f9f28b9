"""Frame-exact access to a title's frames through its mezzanine chunks.

Chunk i holds frames [i * chunk_frames, (i + 1) * chunk_frames). Any frame range is read by fetching
the chunks it touches (checksums verified) into a local cache folder and decoding only those. A
video source's chunks are intra-only FFV1 (or its own packets); an image sequence's chunk is a JSON
list of its frames' stored originals, each read with OpenImageIO (`infra.sequence`) and converted
to the working space (`infra.scan_colour`: a log or linear scan through OpenColorIO).

`read` gives working-space code values (uint8 for 8-bit sources, else uint16; log scans clipped to
full scale), what analysis, shot detection and QC take; `read_float` gives a sequence's unclamped
float32 working values (a restored piece starts from them, so a log scan goes back to its own codes
exactly); `scan_colour()` converts.
"""

from __future__ import annotations

import json
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
        self._colour = None

    def _chunk_path(self, index: int) -> Path:
        key = self.record.chunks[index]
        return self._fetch(key)

    def _fetch(self, key: str) -> Path:
        path = self.cache_dir / key.replace("/", "__")
        if not path.exists():
            self.store.get_file(key, path)
        return path

    def scan_colour(self):  # type: ignore[no-untyped-def]  # infra.scan_colour.ScanColour
        """The conversion of this source's frames to the working space (identity for video sources)."""
        if self._colour is None:
            from infra.scan_colour import ScanColour, ScanEncoding

            self._colour = ScanColour(ScanEncoding.from_dict((self.record.sequence or {}).get("encoding")))
        return self._colour

    def read(self, start: int, end: int) -> np.ndarray:
        """Frames [start, end) as (T, H, W, 3) uint8 (8-bit sources) or uint16; a video source's decoded
        straight into one array (no copy of the blocks)."""
        r = self.record
        if r.mezzanine == "sequence":
            return np.concatenate(list(self.iter_blocks(start, end)))
        out = np.empty((end - start, r.height, r.width, 3), np.uint8 if r.bit_depth == 8 else np.uint16)
        for a, b, path in self._spans(start, end):
            read_frames(path, a - (a // r.chunk_frames) * r.chunk_frames, b - a, depth=r.bit_depth,
                        intra_only=True, out=out[a - start:b - start])
        return out

    def read_float(self, start: int, end: int) -> np.ndarray:
        """Frames [start, end) as (T, H, W, 3) float32 working values, unclamped for log and linear scans."""
        if self.record.mezzanine != "sequence":
            frames = self.read(start, end)
            return frames.astype(np.float32) * np.float32(1 / (255 if frames.dtype == np.uint8 else 65535))
        colour = self.scan_colour()
        out: np.ndarray | None = None
        for i, pixels in enumerate(self.sequence_pixels(start, end)):
            frame = colour.working_float(pixels)
            if out is None:
                out = np.empty((end - start, *frame.shape), np.float32)
            out[i] = frame
        assert out is not None
        return out

    def read_for_shots(self, start: int, end: int) -> list[np.ndarray]:
        """Frames [start, end) as the shot detector takes them: full frames of a video source, an image
        sequence's thumbnails in the working space (`infra.pipeline.scans.shot_frame`, as its ingest scored
        them)."""
        if self.record.mezzanine != "sequence":
            return list(self.read(start, end))
        from infra.pipeline.scans import shot_frame

        colour = self.scan_colour()
        return [shot_frame(colour, p, self.record.bit_depth) for p in self.sequence_pixels(start, end)]

    def iter_blocks(self, start: int, end: int) -> Iterator[np.ndarray]:
        """Frames [start, end) as consecutive (t, H, W, 3) blocks, one per chunk touched."""
        r = self.record
        if r.mezzanine == "sequence":
            self._check_range(start, end)
            colour = self.scan_colour()
            depth = r.bit_depth
            for a, b in self._chunk_ranges(start, end):
                yield np.stack([colour.working_uint(p, depth) for p in self.sequence_pixels(a, b)])
            return
        for a, b, path in self._spans(start, end):
            yield read_frames(path, a - (a // r.chunk_frames) * r.chunk_frames, b - a, depth=r.bit_depth,
                              intra_only=True)

    def _check_range(self, start: int, end: int) -> None:
        if not 0 <= start < end <= self.record.frames:
            raise ValueError(f"frame range [{start}, {end}) outside the title's {self.record.frames} frames")

    def _spans(self, start: int, end: int) -> Iterator[tuple[int, int, Path]]:
        """(first frame, end frame, local chunk file) of each chunk of a video source that [start, end)
        touches."""
        self._check_range(start, end)
        for index, (a, b) in enumerate(self._chunk_ranges(start, end), start=start // self.record.chunk_frames):
            yield a, b, self._chunk_path(index)

    def _chunk_ranges(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        n = self.record.chunk_frames
        for index in range(start // n, (end - 1) // n + 1):
            c0 = index * n
            yield max(start, c0), min(end, c0 + n)

    def sequence_pixels(self, start: int, end: int) -> Iterator[np.ndarray]:
        """The stored original frames [start, end) of an image sequence, as `infra.sequence.read_frame`
        gives them, each checked against the sequence's header layout."""
        from infra.sequence import FrameInfo, read_frame

        header = dict((self.record.sequence or {})["header"])
        header["channel_names"] = tuple(header["channel_names"])
        header["fps"] = None
        expect = FrameInfo(**header)
        n = self.record.chunk_frames
        for a, b in self._chunk_ranges(start, end):
            index = a // n
            keys = json.loads(self._chunk_path(index).read_text())
            for i in range(a, b):
                pixels, _ = read_frame(self._fetch(keys[i - index * n]), expect)
                yield pixels
