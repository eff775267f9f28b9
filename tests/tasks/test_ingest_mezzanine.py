"""The mezzanine: an intra-only FFV1 or ProRes source is cut by copying its packets, anything else
(or REEL_MEZZANINE=ffv1) is encoded as lossless FFV1; either way the chunks read back as the
source's own frames, and a copy that does not match the decode falls back to encoding."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from infra.media import encode_master, iter_frames, write_film
from infra.mezzanine import MezzanineReader
from infra.pipeline.ingest import ingest_file
from infra.pipeline.shots import shots_key
from infra.runtime import process_runtime

FPS = Fraction(24)


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    monkeypatch.setenv("REEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "5")


def frames(n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        f = rng.integers(0, 256, (48, 64, 3), np.uint8)
        f[:, :, 0] = 20 * (i // 6)  # two "shots"
        out.append(f)
    return out


def ingest_and_read(path: Path, title: str, tmp_path: Path):
    rt = process_runtime()
    record = ingest_file(rt.store, path, path.name, title, rt.settings)
    reader = MezzanineReader(rt.store, record, tmp_path / f"cache-{title}")
    got = reader.read(0, record.frames)
    table = pd.read_parquet(io.BytesIO(rt.store.get_bytes(shots_key(record))))
    return record, got, table


def test_an_intra_only_ffv1_source_is_copied_and_reads_back_as_its_frames(tmp_path, store_env, monkeypatch):
    path = tmp_path / "film.mkv"
    write_film(path, frames(), FPS)
    record, got, table = ingest_and_read(path, "copied", tmp_path)
    assert record.mezzanine == "copy" and len(record.chunks) == 3 and record.frames == 12
    assert np.array_equal(got, np.stack(list(iter_frames(path))))
    # the same title encoded instead (the setting): same frames, same shot table
    monkeypatch.setenv("REEL_MEZZANINE", "ffv1")
    encoded, got2, table2 = ingest_and_read(path, "encoded", tmp_path)
    assert encoded.mezzanine == "ffv1"
    assert np.array_equal(got2, got)
    pd.testing.assert_frame_equal(table2, table)


def test_a_prores_source_is_copied_and_read_at_16_bits(tmp_path, store_env):
    path = tmp_path / "film.mov"
    source = [f.astype(np.uint16) * 257 for f in frames(7)]
    encode_master(iter(source), path, width=64, height=48, fps=FPS, codec="prores")
    record, got, _ = ingest_and_read(path, "prores", tmp_path)
    assert (record.mezzanine, record.bit_depth, got.dtype) == ("copy", 16, np.uint16)
    assert np.array_equal(got, np.stack(list(iter_frames(path, depth=16))))


def test_a_long_gop_ffv1_source_falls_back_to_encoding(tmp_path, store_env):
    path = tmp_path / "gop.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        stream.codec_context.gop_size = 4
        for i, rgb in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    record, got, _ = ingest_and_read(path, "gop", tmp_path)
    assert record.mezzanine == "ffv1"
    assert np.array_equal(got, np.stack(list(iter_frames(path))))


def test_a_copy_that_does_not_match_the_decoded_frames_is_not_used(tmp_path, store_env, monkeypatch):
    """The safety net for packets the decoder skips (edit lists, damage): the count must agree."""
    import infra.pipeline.ingest as ingest_module

    real = ingest_module.copy_intra_chunks

    def short_by_one_chunk(*args, **kwargs):
        yield from list(real(*args, **kwargs))[:-1]

    monkeypatch.setattr(ingest_module, "copy_intra_chunks", short_by_one_chunk)
    path = tmp_path / "film.mkv"
    write_film(path, frames(), FPS)
    record, got, _ = ingest_and_read(path, "mismatch", tmp_path)
    assert record.mezzanine == "ffv1" and len(record.chunks) == 3
    assert np.array_equal(got, np.stack(list(iter_frames(path))))
