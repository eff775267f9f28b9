"""infra/sequence.py: image sequences listed safely, read and written through OpenImageIO, every variant
of DPX Reel promises (8/10/12/16-bit, packed/filled, both byte orders, RGB and luma), 16-bit TIFF, half
and float EXR, PNG; damaged and hostile files refused with the file named."""

from __future__ import annotations

import os
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from infra.sequence import (
    FrameFormat,
    SequenceError,
    SequenceWriter,
    codes_from_uint16,
    is_sequence_source,
    list_sequence,
    read_frame,
    read_header,
    rgb,
    uint16_from_codes,
    write_frame,
)

H, W = 48, 64


def ramp(bits: int, channels: int = 3) -> np.ndarray:
    """Every code value of `bits` bits (cycled) over the frame: codes, not scaled."""
    n = H * W * channels
    return (np.arange(n, dtype=np.int64) * 7 % (1 << bits)).reshape(H, W, channels).astype(np.uint16)


@pytest.mark.parametrize("bits", [8, 10, 12, 16])
@pytest.mark.parametrize("byte_order", ["big", "little"])
@pytest.mark.parametrize("packing", ["filled", "packed"])
def test_dpx_variants_round_trip_every_code_value(tmp_path: Path, bits: int, byte_order: str, packing: str) -> None:
    codes = ramp(bits)
    fmt = FrameFormat("dpx", bits, transfer="Printing density", byte_order=byte_order,  # type: ignore[arg-type]
                      packing=packing)  # type: ignore[arg-type]
    path = write_frame(tmp_path / "f.0000001.dpx", uint16_from_codes(codes, bits), fmt)
    assert path.read_bytes()[:4] == (b"SDPX" if byte_order == "big" else b"XPDS")
    pixels, info = read_frame(path)
    assert pixels.dtype == np.uint16 and pixels.shape == (H, W, 3)
    assert np.array_equal(codes_from_uint16(pixels, bits), codes)
    assert (info.bits, info.byte_order, info.transfer, info.format) == (bits, byte_order, "log", "dpx")
    if bits == 10:
        assert info.packing == ("Packed" if packing == "packed" else "Filled, method A")
    if bits == 12:  # OpenImageIO writes 12-bit DPX packed only (it reads both)
        assert info.packing == "Packed"


@pytest.mark.parametrize("bits", [10, 16])
def test_luma_only_dpx(tmp_path: Path, bits: int) -> None:
    codes = ramp(bits, 1)
    path = write_frame(tmp_path / "y.0001.dpx", uint16_from_codes(codes, bits), FrameFormat("dpx", bits))
    pixels, info = read_frame(path)
    assert info.channels == 1 and info.transfer == "display"
    assert np.array_equal(codes_from_uint16(pixels, bits), codes)
    three = rgb(pixels)
    assert three.shape == (H, W, 3) and np.array_equal(three[..., 0], three[..., 2])


@pytest.mark.parametrize("kind,bits", [("tiff", 16), ("tiff", 8), ("png", 16), ("png", 8)])
def test_tiff_and_png(tmp_path: Path, kind: str, bits: int) -> None:
    codes = ramp(bits)
    path = write_frame(tmp_path / f"t.001.{'tif' if kind == 'tiff' else kind}", uint16_from_codes(codes, bits),
                       FrameFormat(kind, bits))  # type: ignore[arg-type]
    pixels, info = read_frame(path)
    assert (info.bits, info.sample, info.transfer) == (bits, "uint8" if bits == 8 else "uint16", "display")
    assert np.array_equal(codes_from_uint16(pixels, bits), codes)


@pytest.mark.parametrize("bits", [16, 32])
def test_exr_half_and_float(tmp_path: Path, bits: int) -> None:
    values = (np.arange(H * W * 3, dtype=np.float32).reshape(H, W, 3) / (H * W * 3)) * 4 - 0.5  # below 0, above 1
    fmt = FrameFormat("exr", bits, fps=Fraction(24000, 1001))
    path = write_frame(tmp_path / "e.0001.exr", values, fmt, timecode="10:00:00:12")
    pixels, info = read_frame(path)
    assert pixels.dtype == np.float32 and info.transfer == "linear"
    assert info.sample == ("half" if bits == 16 else "float")
    expected = values.astype(np.float16).astype(np.float32) if bits == 16 else values
    assert np.array_equal(pixels, expected)
    assert info.fps == Fraction(24000, 1001) and info.timecode == "10:00:00:12"


def test_writer_names_frames_and_carries_rate_and_timecode(tmp_path: Path) -> None:
    fmt = FrameFormat("dpx", 10, transfer="Printing density", fps=Fraction(18))
    writer = SequenceWriter(tmp_path / "out", "reel1", fmt, start=86400, start_timecode="01:00:00:00")
    paths = writer.write_all(uint16_from_codes(ramp(10), 10) for _ in range(3))
    assert [p.name for p in paths] == ["reel1.0086400.dpx", "reel1.0086401.dpx", "reel1.0086402.dpx"]
    infos = [read_header(p) for p in paths]
    assert [i.timecode for i in infos] == ["01:00:00:00", "01:00:00:01", "01:00:00:02"]
    assert {i.fps for i in infos} == {Fraction(18)}
    # the same pixels give the same bytes (no clock time in the header)
    (tmp_path / "again").mkdir()
    again = write_frame(tmp_path / "again" / paths[0].name, uint16_from_codes(ramp(10), 10), fmt,
                        timecode="01:00:00:00")
    assert again.read_bytes() == paths[0].read_bytes()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp")]


# --- listing ----------------------------------------------------------------------------------------


def make_seq(folder: Path, numbers: list[int], name: str = "reel1.{:07d}.dpx") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fmt = FrameFormat("dpx", 10)
    return [write_frame(folder / name.format(n), uint16_from_codes(ramp(10), 10), fmt) for n in numbers]


def test_folder_and_patterns_list_the_same_frames_with_gaps(tmp_path: Path) -> None:
    make_seq(tmp_path / "scans", [1, 2, 3, 5, 6, 9])
    (tmp_path / "scans" / "reel1.wav").write_bytes(b"RIFF")  # the sound beside the frames is not a frame
    (tmp_path / "scans" / ".DS_Store").write_bytes(b"x")
    by_folder = list_sequence(tmp_path / "scans")
    assert by_folder.pattern == "reel1.%07d.dpx"
    assert [f.number for f in by_folder.frames] == [1, 2, 3, 5, 6, 9]
    assert by_folder.missing == (4, 7, 8) and by_folder.span == 9
    for pattern in ("reel1.%07d.dpx", "reel1.#######.dpx"):
        seq = list_sequence(tmp_path / "scans" / pattern)
        assert [f.name for f in seq.frames] == [f.name for f in by_folder.frames]
    assert is_sequence_source(tmp_path / "scans") and is_sequence_source("x/reel1.%07d.dpx")
    assert not is_sequence_source(tmp_path / "scans" / "reel1.wav")
    assert not is_sequence_source("take#1.mkv") and not is_sequence_source("100%done.mov")


def test_unpadded_numbers(tmp_path: Path) -> None:
    make_seq(tmp_path, [8, 9, 10, 11], name="f_{}.dpx")
    seq = list_sequence(tmp_path / "f_%d.dpx")
    assert [f.number for f in seq.frames] == [8, 9, 10, 11]
    assert list_sequence(tmp_path).pattern == "f_%d.dpx"


def test_the_same_number_twice_is_an_error(tmp_path: Path) -> None:
    make_seq(tmp_path, [1, 2], name="a.{:04d}.dpx")
    make_seq(tmp_path, [2], name="a.{:05d}.dpx")
    with pytest.raises(SequenceError, match=r"frame 2 is there twice \('a.00002.dpx' and 'a.0002.dpx'\)"):
        list_sequence(tmp_path)


def test_a_folder_with_two_runs_asks_for_a_pattern(tmp_path: Path) -> None:
    make_seq(tmp_path, [1, 2], name="a.{:04d}.dpx")
    make_seq(tmp_path, [1], name="b.{:04d}.dpx")
    with pytest.raises(SequenceError, match="2 numbered runs"):
        list_sequence(tmp_path)
    assert len(list_sequence(tmp_path / "b.%04d.dpx")) == 1


def test_nothing_outside_the_folder_or_the_roots(tmp_path: Path) -> None:
    inside, outside = tmp_path / "root" / "scans", tmp_path / "elsewhere"
    make_seq(inside, [1, 2])
    secret = make_seq(outside, [3])[0]
    with pytest.raises(SequenceError, match=r"'\.\.' is not allowed"):
        list_sequence(str(inside / ".." / "scans" / "reel1.%07d.dpx"))
    os.symlink(secret, inside / "reel1.0000003.dpx")
    with pytest.raises(SequenceError, match="outside the sequence's folder"):
        list_sequence(inside)
    (inside / "reel1.0000003.dpx").unlink()
    os.symlink(outside, tmp_path / "root" / "link")  # a folder reached through a link that leaves the roots
    with pytest.raises(SequenceError, match="outside the allowed source roots"):
        list_sequence(tmp_path / "root" / "link", roots=[tmp_path / "root"])
    assert len(list_sequence(inside, roots=[tmp_path / "root"])) == 2


def test_no_frames_and_bad_patterns(tmp_path: Path) -> None:
    with pytest.raises(SequenceError, match="no such folder"):
        list_sequence(tmp_path / "missing" / "a.%04d.dpx")
    with pytest.raises(SequenceError, match="no frame files"):
        list_sequence(tmp_path / "a.%04d.dpx")
    with pytest.raises(SequenceError, match="exactly one frame number"):
        list_sequence(tmp_path / "a.%04d.%04d.dpx")
    with pytest.raises(SequenceError, match=r"\.mov files are not read"):
        list_sequence(tmp_path / "a.%04d.mov")


# --- what scans get wrong ---------------------------------------------------------------------------------


def test_a_frame_of_another_size_or_depth_is_named(tmp_path: Path) -> None:
    first = write_frame(tmp_path / "a.0001.dpx", uint16_from_codes(ramp(10), 10), FrameFormat("dpx", 10))
    other = write_frame(tmp_path / "a.0002.dpx", np.zeros((H, W + 2, 3), np.uint16), FrameFormat("dpx", 10))
    deeper = write_frame(tmp_path / "a.0003.dpx", np.zeros((H, W, 3), np.uint16), FrameFormat("dpx", 12))
    _, info = read_frame(first)
    with pytest.raises(SequenceError, match=r"a\.0002\.dpx' is 66x48 10-bit RGB but the sequence is 64x48 10-bit RGB"):
        read_frame(other, info)
    with pytest.raises(SequenceError, match=r"a\.0003\.dpx' is 64x48 12-bit RGB"):
        read_frame(deeper, info)


@pytest.mark.parametrize("ext,fmt", [("dpx", FrameFormat("dpx", 10)), ("tif", FrameFormat("tiff", 16)),
                                     ("exr", FrameFormat("exr", 16)), ("png", FrameFormat("png", 16))])
def test_a_truncated_frame_is_named(tmp_path: Path, ext: str, fmt: FrameFormat) -> None:
    pixels = np.random.default_rng(0).random((H, W, 3), dtype=np.float32)
    data = pixels if ext == "exr" else (pixels * 65535).astype(np.uint16)
    path = write_frame(tmp_path / f"cut.0001.{ext}", data, fmt)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(SequenceError, match=rf"cut\.0001\.{ext}"):
        read_frame(path)


def _dpx_bytes(tmp_path: Path) -> bytearray:
    path = write_frame(tmp_path / "good.dpx", uint16_from_codes(ramp(10), 10), FrameFormat("dpx", 10))
    return bytearray(path.read_bytes())


def test_hostile_dpx_headers_are_refused_before_reading(tmp_path: Path) -> None:
    huge = _dpx_bytes(tmp_path)
    struct.pack_into(">II", huge, 772, 60000, 60000)  # 3.6 gigapixels declared in a 10 kB file
    (tmp_path / "huge.dpx").write_bytes(huge)
    with pytest.raises(SequenceError, match=r"huge\.dpx.*60000x60000.*truncated or its header is hostile"):
        read_frame(tmp_path / "huge.dpx")
    past = _dpx_bytes(tmp_path)
    struct.pack_into(">I", past, 808, 10**9)  # image data "a gigabyte in": OpenImageIO would read zeros
    (tmp_path / "past.dpx").write_bytes(past)
    with pytest.raises(SequenceError, match=r"past\.dpx.*image data at byte 1000000000, outside the file"):
        read_frame(tmp_path / "past.dpx")
    elements = _dpx_bytes(tmp_path)
    struct.pack_into(">H", elements, 770, 4000)
    (tmp_path / "elements.dpx").write_bytes(elements)
    with pytest.raises(SequenceError, match="4000 image elements"):
        read_header(tmp_path / "elements.dpx")


def test_size_limit_and_impostors(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "a.0001.dpx", uint16_from_codes(ramp(10), 10), FrameFormat("dpx", 10))
    with pytest.raises(SequenceError, match="64x48 pixels, more than the limit of 1000"):
        read_header(path, max_pixels=1000)
    png = write_frame(tmp_path / "p.png", np.zeros((H, W, 3), np.uint16), FrameFormat("png", 16))
    (tmp_path / "fake.0001.dpx").write_bytes(png.read_bytes())
    with pytest.raises(SequenceError, match=r"fake\.0001\.dpx.*not a DPX file"):
        read_header(tmp_path / "fake.0001.dpx")
    (tmp_path / "fake.tif").write_bytes(png.read_bytes())
    with pytest.raises(SequenceError, match=r"fake\.tif.*(is png, not the \.tif|cannot read)"):
        read_header(tmp_path / "fake.tif")
    (tmp_path / "empty.0001.dpx").write_bytes(b"")
    with pytest.raises(SequenceError, match="empty"):
        read_header(tmp_path / "empty.0001.dpx")


def test_frame_format_checks_its_bits() -> None:
    with pytest.raises(ValueError, match="tiff frames are written with 8, 16 bits"):
        FrameFormat("tiff", 10)
    with pytest.raises(ValueError, match="frame format must be one of"):
        FrameFormat("jpeg", 8)  # type: ignore[arg-type]
