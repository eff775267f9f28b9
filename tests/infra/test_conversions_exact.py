"""The fast paths of #24 change no bit: Y'CbCr <-> RGB in strips equal the whole-frame equations they replaced,
decoding into a given array equals decoding into a new one, and Clip's integer conversions equal the plain
numpy expressions (what the refactor check shows for one film, here over formats, sizes, ranges, matrices)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from infra import media
from infra.media import _frame_to_rgb, _plane_array, _rgb_to_ycbcr_frame, _upsample, read_frames, write_film
from models.clip import Clip, ColorInfo, to_uint

# --- the whole-frame code these replaced (infra/media.py before #24), kept as the reference -------------


# the chroma upsampling (infra.media._upsample) is unchanged by #24 and shared with the reference below


def whole_frame_to_rgb(frame: av.VideoFrame, color: ColorInfo, depth: int) -> np.ndarray:
    fmt = frame.format
    full = color.range == "pc"
    direct = (fmt.is_planar and not fmt.is_big_endian and len(fmt.components) >= 3
              and [c.plane for c in fmt.components[:3]] == [0, 1, 2])
    if not direct:
        r = "JPEG" if full else "MPEG"
        frame = frame.reformat(format="yuv444p" if media._bits(fmt.name) <= 8 else "yuv444p16le",
                               src_color_range=r, dst_color_range=r)
    bits = media._bits(frame.format.name)
    dtype = np.uint8 if bits <= 8 else np.uint16
    y, cb, cr = (_plane_array(frame.planes[i], dtype).astype(np.float32) for i in range(3))
    s = float(1 << (bits - 8))
    y_off, y_span, c_span = (0.0, float((1 << bits) - 1), float((1 << bits) - 1)) if full else \
        (16 * s, 219 * s, 224 * s)
    scale = 255.0 if depth == 8 else 65535.0
    y = (y - y_off) * np.float32(scale / y_span)
    cb = _upsample((cb - 128 * s) * np.float32(scale / c_span), *y.shape)
    cr = _upsample((cr - 128 * s) * np.float32(scale / c_span), *y.shape)
    kr, kb = media._LUMA_COEFFS[color.matrix]
    kg = 1 - kr - kb
    rgb = np.empty((3, *y.shape), np.float32)
    np.add(y, np.float32(2 - 2 * kr) * cr, out=rgb[0])
    np.subtract(y, np.float32(2 * kr * (1 - kr) / kg) * cr, out=rgb[1])
    rgb[1] -= np.float32(2 * kb * (1 - kb) / kg) * cb
    np.add(y, np.float32(2 - 2 * kb) * cb, out=rgb[2])
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, scale, out=rgb)
    return rgb.transpose(1, 2, 0).astype(np.uint8 if depth == 8 else np.uint16)


def whole_frame_to_ycbcr(rgb: np.ndarray, pix_fmt: str) -> list[np.ndarray]:
    x = rgb.astype(np.float32) * np.float32(1 / 65535)
    kr, kb = media._LUMA_COEFFS["bt709"]
    y = np.float32(kr) * x[..., 0] + np.float32(1 - kr - kb) * x[..., 1] + np.float32(kb) * x[..., 2]
    cb = (x[..., 2] - y) * np.float32(1 / (2 - 2 * kb))
    cr = (x[..., 0] - y) * np.float32(1 / (2 - 2 * kr))
    planes = [np.rint(64 + 876 * y)]
    for c in (cb, cr):
        padded = np.pad(c, ((0, 0), (1, 1)), mode="edge")
        c = (padded[:, 0:-2:2] + 2 * padded[:, 1:-1:2] + padded[:, 2::2]) * np.float32(0.25)
        if pix_fmt == "yuv420p10le":
            c = (c[0::2] + c[1::2]) * np.float32(0.5)
        planes.append(np.rint(512 + 896 * c))
    return [np.clip(p, 0, 1023).astype(np.uint16) for p in planes]


# --- the tests ------------------------------------------------------------------------------------------

SIZES = [(64, 48), (37, 29), (30, 70), (1920, 1080)]  # odd sizes; 1080 rows = 33 strips of 32 and one of 24


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p16le",
                                 "nv12", "p010le", "yuyv422"])
@pytest.mark.parametrize("size", SIZES)
def test_ycbcr_to_rgb_in_strips_equals_the_whole_frame_equations(fmt, size):
    w, h = size
    if fmt in ("nv12", "p010le", "yuyv422") and (w % 2 or h % 2):
        pytest.skip("packed/semi-planar formats need even sizes")
    rng = np.random.default_rng(w * h)
    frame = av.VideoFrame(w, h, fmt)
    if fmt in ("nv12", "p010le", "yuyv422"):  # random pictures through swscale
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24").reformat(
            format=fmt)
    else:  # every code value, not only those a picture gives
        bits = media._bits(fmt)
        for plane in frame.planes:
            a = _plane_array(plane, np.uint8 if bits <= 8 else np.uint16)
            a[...] = rng.integers(0, 1 << bits, a.shape)
    for rng_name in ("tv", "pc"):
        for matrix in ("bt709", "bt470bg", "bt2020nc"):
            color = ColorInfo(bit_depth=8, matrix=matrix, range=rng_name)
            for depth in (8, 16):
                want = whole_frame_to_rgb(frame, color, depth)
                got = _frame_to_rgb(frame, color, depth, "x")
                assert got.dtype == want.dtype and np.array_equal(got, want), (fmt, size, rng_name, matrix, depth)
                into = np.zeros_like(want)
                assert _frame_to_rgb(frame, color, depth, "x", into) is into and np.array_equal(into, want)


@pytest.mark.parametrize("pix_fmt", ["yuv422p10le", "yuv420p10le"])
@pytest.mark.parametrize("size", [(64, 48), (38, 30), (37, 30), (640, 66), (1920, 1080)])
def test_rgb_to_ycbcr_in_strips_equals_the_whole_frame_equations(pix_fmt, size):
    w, h = size
    rgb = np.random.default_rng(h).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    frame = _rgb_to_ycbcr_frame(rgb, pix_fmt)
    for plane, want in zip(frame.planes, whole_frame_to_ycbcr(rgb, pix_fmt), strict=True):
        assert np.array_equal(_plane_array(plane, np.uint16), want)


def test_decoding_into_a_given_array_equals_decoding_into_a_new_one(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "film.mkv"
    write_film(path, [rng.integers(0, 256, (30, 44, 3), dtype=np.uint8) for _ in range(9)], Fraction(24))
    for depth in (8, 16):
        want = np.stack([read_frames(path, i, 1, depth=depth)[0] for i in range(2, 8)])
        big = np.zeros((10, 30, 44, 3), want.dtype)
        got = read_frames(path, 2, 6, depth=depth, intra_only=True, out=big[3:9])
        assert np.shares_memory(got, big) and np.array_equal(big[3:9], want) and not big[:3].any()
    with pytest.raises(ValueError, match="must hold"):
        read_frames(path, 0, 3, depth=16, out=np.zeros((2, 30, 44, 3), np.uint16))
    with pytest.raises(ValueError, match="is 44x30, not 40x30"):
        read_frames(path, 0, 2, depth=8, out=np.zeros((2, 30, 40, 3), np.uint8))


def test_clip_integer_conversions_equal_the_plain_expressions():
    rng = np.random.default_rng(2)
    for shape in ((3, 17, 23, 3), (17, 23, 3), (2, 2, 5, 7, 3)):
        for dtype in (np.float32, np.float64):
            x = (rng.random(shape) * 1.4 - 0.2).astype(dtype)
            for out in (np.uint8, np.uint16):
                scale = 255.0 if out is np.uint8 else 65535.0
                assert np.array_equal(to_uint(x, out), np.clip(np.rint(x * scale), 0, scale).astype(out))
    levels = (np.arange(65536, dtype=np.float32) / np.float32(65535)).reshape(1, 256, 256, 1).repeat(3, -1)
    assert np.array_equal(to_uint(levels), np.arange(65536, dtype=np.uint16).reshape(1, 256, 256, 1).repeat(3, -1))
    for dtype, scale in ((np.uint8, 255.0), (np.uint16, 65535.0)):
        u = rng.integers(0, np.iinfo(dtype).max + 1, (4, 9, 11, 3)).astype(dtype)
        assert np.array_equal(Clip.from_uint(u, Fraction(24)).frames, u.astype(np.float32) / np.float32(scale))
