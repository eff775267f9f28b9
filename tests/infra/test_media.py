"""Tests for infra.media: probing, frame-exact decoding, FFV1 writing, masters.

All media is generated in code at tiny sizes (64x48, a few frames).
"""

from __future__ import annotations

import json
import stat
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from infra.media import (
    AudioInfo,
    FFV1Writer,
    MediaError,
    MediaInfo,
    audio_packet_digests,
    count_frames,
    encode_master,
    iter_frames,
    join_master,
    probe,
    read_frames,
    write_film,
)
from models.clip import ColorInfo

FPS = Fraction(24000, 1001)
W, H = 64, 48
RATE = 48000


def painted(index: int, width: int = W, height: int = H) -> np.ndarray:
    """(H, W, 3) uint8 frame whose red channel is its index; green/blue a gradient."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = index
    frame[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[..., 2] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    return frame


def gradient16(index: int) -> np.ndarray:
    """(H, W, 3) uint16 smooth colour gradient, shifted a little per frame."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r = x / (W - 1)
    g = y / (H - 1)
    b = 0.5 + 0.4 * np.sin((x + y + index) / 20)
    return np.rint(np.stack([r, g, b], -1) * 65535).astype(np.uint16)


def tone(frames: int, channels: int = 2) -> np.ndarray:
    """int16 (channels, samples) covering `frames` video frames at FPS."""
    n = int(frames / FPS * RATE)
    t = np.arange(n) / RATE
    return np.stack([np.sin(2 * np.pi * (220 + 110 * c) * t) * 12000 for c in range(channels)]).astype(np.int16)


def psnr16(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(65535.0**2 / mse)


def decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray() for f in c.decode(c.streams.audio[0])], axis=1)


def write_flac_only(path: Path, bits: int = 16) -> None:
    """Audio-only Matroska file: 0.2 s stereo FLAC, 16- or 24-bit."""
    with av.open(str(path), "w", format="matroska") as out:
        options = {"bits_per_raw_sample": "24"} if bits == 24 else {}
        stream = out.add_stream("flac", rate=RATE, options=options)
        stream.layout, stream.format = "stereo", "s16" if bits == 16 else "s32"
        samples = np.arange(2 * 9600, dtype=np.int32).reshape(1, -1) % 5000 * 6
        if bits == 24:
            samples = (samples * 256) << 8  # 24-bit values, left-aligned in s32 as FFmpeg stores them
        frame = av.AudioFrame.from_ndarray(samples.astype(np.int16 if bits == 16 else np.int32),
                                           format=stream.format.name, layout="stereo")
        frame.sample_rate, frame.pts = RATE, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """12 painted frames at 24000/1001 with 2-channel FLAC audio."""
    path = tmp_path_factory.mktemp("film") / "film.mkv"
    assert write_film(path, (painted(i) for i in range(12)), FPS, (tone(12), RATE)) == 12
    return path


def assert_one_line_error(excinfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message


# --- FFV1Writer -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("size", [(64, 48), (65, 47)])  # odd sizes work: FFV1 RGB has no chroma subsampling
def test_ffv1_writer_roundtrip_is_bit_exact(tmp_path, depth, size):
    width, height = size
    rng = np.random.default_rng(depth)
    dtype, top = (np.uint8, 256) if depth == 8 else (np.uint16, 65536)
    frames = rng.integers(0, top, (4, height, width, 3)).astype(dtype)
    path = tmp_path / f"rgb{depth}.mkv"
    with FFV1Writer(path, width, height, FPS, depth=depth) as writer:
        writer.write(frames[0])  # one (H, W, 3) frame
        writer.write(frames[1:])  # a (T, H, W, 3) batch
        assert writer.frames_written == 4
    assert np.array_equal(read_frames(path, 0, 4, depth=depth), frames)
    info = probe(path)
    assert (info.video.width, info.video.height, info.video.frames) == (width, height, 4)
    assert info.video.pix_fmt == ("bgr0" if depth == 8 else "gbrp16le")
    assert info.video.bit_depth == depth and info.video.codec == "ffv1"
    assert info.video.color.range == "pc"


def test_ffv1_writer_8_bit_file_reads_as_16_bit_exactly(tmp_path):
    frame = painted(7)
    path = tmp_path / "p.mkv"
    with FFV1Writer(path, W, H, FPS) as writer:
        writer.write(frame)
    assert np.array_equal(read_frames(path, 0, 1, depth=16)[0], frame.astype(np.uint16) * 257)


def test_ffv1_writer_tags_colour(tmp_path):
    path = tmp_path / "tagged.mkv"
    with FFV1Writer(path, W, H, FPS, depth=16, color=ColorInfo(16, "bt470bg", "bt470bg", "bt709", "tv")) as w:
        w.write(np.zeros((H, W, 3), np.uint16))
    color = probe(path).video.color
    # RGB payload: range is always pc; matrix "gbr" reads back as the size default.
    assert (color.primaries, color.transfer, color.range, color.matrix) == ("bt470bg", "bt709", "pc",
                                                                            "smpte170m")


def test_ffv1_writer_rejects_bad_frames(tmp_path):
    path = tmp_path / "bad.mkv"
    with FFV1Writer(path, W, H, FPS, depth=16) as writer:
        with pytest.raises(ValueError, match="uint16"):
            writer.write(np.zeros((H, W, 3), np.uint8))
        with pytest.raises(ValueError, match=r"\(48, 64, 3\)"):
            writer.write(np.zeros((H, W + 1, 3), np.uint16))
        with pytest.raises(ValueError):
            writer.write(np.zeros((H, W), np.uint16))
        writer.write(np.zeros((H, W, 3), np.uint16))
    assert count_frames(path) == 1
    with pytest.raises(ValueError):
        FFV1Writer(tmp_path / "x.mkv", W, H, FPS, depth=12)


def test_ffv1_writer_deletes_partial_file_on_error(tmp_path):
    path = tmp_path / "partial.mkv"
    with pytest.raises(RuntimeError, match="stage failed"):
        with FFV1Writer(path, W, H, FPS) as writer:
            writer.write(painted(0))
            raise RuntimeError("stage failed")
    assert not path.exists()


# --- probe ----------------------------------------------------------------------------------


def test_probe_describes_a_film(film):
    info = probe(film)
    assert info.path == str(film)
    assert info.format_name.startswith("matroska")
    v = info.video
    assert v.fps == Fraction(24000, 1001) and isinstance(v.fps, Fraction)
    assert (v.width, v.height, v.frames, v.codec, v.pix_fmt, v.bit_depth) == (W, H, 12, "ffv1", "bgr0", 8)
    assert v.color == ColorInfo(bit_depth=8, matrix="smpte170m", primaries="bt709", transfer="bt709",
                                range="pc")
    assert info.audio == (AudioInfo(index=1, codec="flac", sample_rate=RATE, channels=2),)
    assert info.subtitle_streams == 0
    assert info.duration_seconds == pytest.approx(12 / FPS, abs=0.01)
    as_json = json.loads(json.dumps(info.to_dict()))
    assert as_json["video"]["fps"] == "24000/1001"
    assert MediaInfo.from_dict(as_json) == info


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())


def _text(path: Path) -> None:
    path.write_text("shot list\n" * 200)  # FFmpeg's tty demuxer would read this as ANSI-art video


def _truncated(film: Path, path: Path, size: int | None) -> None:
    data = film.read_bytes()
    if size is None:  # cut inside the first video packet (the case that can crash FFmpeg)
        with av.open(str(film)) as c:
            first = next(p for p in c.demux(c.streams.video[0]) if p.size)
        size = first.pos + first.size // 2
    path.write_bytes(data[:size])


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("garbage", "FFmpeg cannot open it"),
        ("text", "not a media file"),
        ("empty", "file is empty"),
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("truncated_300_bytes", "cannot read media"),
        ("truncated_in_first_frame", "no decodable frame"),
        ("audio_only", "no video stream (1 audio stream)"),
    ],
)
def test_probe_rejects_unusable_files(tmp_path, film, case, fragment):
    path = tmp_path / f"{case}.mkv"
    if case == "garbage":
        _garbage(path)
    elif case == "text":
        path = tmp_path / "notes.txt"
        _text(path)
    elif case == "empty":
        path.touch()
    elif case == "directory":
        path.mkdir()
    elif case == "truncated_300_bytes":
        _truncated(film, path, 300)
    elif case == "truncated_in_first_frame":
        _truncated(film, path, None)
    elif case == "audio_only":
        write_flac_only(path)
    with pytest.raises(MediaError) as excinfo:
        probe(path)
    assert_one_line_error(excinfo, f"cannot read media {str(path)!r}", fragment)


def test_file_truncated_in_the_middle(tmp_path, film):
    path = tmp_path / "half.mkv"
    _truncated(film, path, film.stat().st_size // 2)
    try:
        probe(path)  # the header survived: either describes it or refuses it, but never crashes
    except MediaError as exc:
        assert "\n" not in str(exc)
    with pytest.raises(MediaError) as excinfo:
        read_frames(path, 0, 12)
    assert_one_line_error(excinfo, "asked for frames 0..11", "only")


def _fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize(
    "body, timeout_s, fragment",
    [
        ("kill -SEGV $$", 30.0, "decoder crashed (signal 11, SIGSEGV)"),
        ("exec sleep 30", 0.5, "timed out after 0.5 s"),
        ("echo 'not json'", 30.0, "probe process failed (exit code 0)"),
    ],
)
def test_probe_survives_a_broken_child(tmp_path, film, monkeypatch, body, timeout_s, fragment):
    monkeypatch.setattr(sys, "executable", _fake_python(tmp_path, body))
    with pytest.raises(MediaError) as excinfo:
        probe(film, timeout_s=timeout_s)
    assert_one_line_error(excinfo, str(film), fragment)


# --- decoding -------------------------------------------------------------------------------


def test_read_frames_is_frame_exact(film):
    frames = read_frames(film, 3, 4)
    assert frames.shape == (4, H, W, 3) and frames.dtype == np.uint8
    assert [int(f[0, 0, 0]) for f in frames] == [3, 4, 5, 6]
    assert np.array_equal(frames[0], painted(3))
    assert [int(f[0, 0, 0]) for f in iter_frames(film, start=10)] == [10, 11]
    assert [int(f[0, 0, 0]) for f in iter_frames(film, count=2)] == [0, 1]
    assert count_frames(film) == 12


def test_read_frames_past_the_end_names_the_numbers(film):
    with pytest.raises(MediaError) as excinfo:
        read_frames(film, 10, 5)
    assert_one_line_error(excinfo, "asked for frames 10..14", "only 12 frames")
    with pytest.raises(MediaError, match=r"asked for frames 20\.\.21 but the video has only 12 frames"):
        read_frames(film, 20, 2)


def test_decoding_arguments_are_checked_before_decoding(film, tmp_path):
    with pytest.raises(ValueError, match="depth must be 8 or 16"):
        iter_frames(film, depth=10)
    with pytest.raises(ValueError, match="start and count"):
        iter_frames(film, start=-1)
    with pytest.raises(MediaError, match="no such file"):
        iter_frames(tmp_path / "gone.mkv")
    assert list(iter_frames(film, start=5, count=0)) == []


def test_10_bit_ycbcr_444_matches_the_bt709_equations(tmp_path):
    """Random limited-range 10-bit Y'CbCr (stored losslessly with FFV1) against float64 maths."""
    rng = np.random.default_rng(3)
    y = rng.integers(64, 941, (H, W)).astype(np.uint16)
    cb, cr = (rng.integers(64, 961, (H, W)).astype(np.uint16) for _ in range(2))
    path = tmp_path / "ycbcr10.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p10le"
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range = 1, 1
        frame = av.VideoFrame(W, H, "yuv444p10le")
        for plane, values in zip(frame.planes, (y, cb, cr), strict=True):
            rows = np.frombuffer(plane, np.uint16).reshape(H, -1)
            rows[:, :W] = values
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    kr, kb = 0.2126, 0.0722
    yf, cbf, crf = (y - 64.0) / 876, (cb - 512.0) / 896, (cr - 512.0) / 896
    r = yf + (2 - 2 * kr) * crf
    b = yf + (2 - 2 * kb) * cbf
    g = (yf - kr * r - kb * b) / (1 - kr - kb)
    expected = np.clip(np.stack([r, g, b], -1) * 65535, 0, 65535)
    got = read_frames(path, 0, 1, depth=16)[0].astype(np.float64)
    assert np.abs(got - expected).max() <= 1.0  # rounding plus float32 arithmetic


def _ycbcr(rgb: tuple[int, int, int], kr: float, kb: float) -> tuple[int, int, int]:
    """8-bit limited-range Y'CbCr code values of an 8-bit RGB colour."""
    r, g, b = (c / 255 for c in rgb)
    y = kr * r + (1 - kr - kb) * g + kb * b
    return round(16 + 219 * y), round(128 + 224 * (b - y) / (2 - 2 * kb)), round(128 + 224 * (r - y) / (2 - 2 * kr))


# Lossless encoders only, so any error is the conversion's: libx264 at qp 0, else FFV1.
# (mpeg4 at qscale 1 is lossy: saturated yellow comes back 3 code values off.)
ENCODER_420 = "libx264" if "libx264" in av.codec.codecs_available else "ffv1"


@pytest.mark.parametrize("matrix, kr, kb, tag", [("bt709", 0.2126, 0.0722, 1), ("smpte170m", 0.299, 0.114, 6)])
def test_limited_range_yuv420p_flat_colour_decodes_to_rgb(tmp_path, matrix, kr, kb, tag):
    encoder = ENCODER_420
    colours = [(200, 100, 50), (16, 180, 235), (128, 128, 128), (250, 250, 10)]
    path = tmp_path / f"flat_{matrix}.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(encoder, rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.options = {"qp": "0"} if encoder == "libx264" else {}
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = tag, 1, 1, 1
        for i, rgb in enumerate(colours):
            frame = av.VideoFrame(W, H, "yuv420p")
            for plane, value in zip(frame.planes, _ycbcr(rgb, kr, kb), strict=True):
                plane.update(np.full(plane.buffer_size, value, np.uint8).tobytes())
            frame.colorspace, frame.color_range, frame.pts = tag, 1, i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    color = probe(path).video.color
    assert (color.matrix, color.range) == (matrix, "tv")
    expected = np.array(colours, np.float64)[:, None, None, :]
    got8 = read_frames(path, 0, len(colours), depth=8).astype(np.float64)
    got16 = read_frames(path, 0, len(colours), depth=16).astype(np.float64) / 257
    assert np.abs(got8 - expected).max() <= 2
    assert np.abs(got16 - expected).max() <= 2


# --- masters --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def master_input() -> list[np.ndarray]:
    return [gradient16(i) for i in range(6)]


def test_encode_master_ffv1_is_lossless_with_bit_identical_audio(tmp_path, film, master_input):
    out = tmp_path / "master.tmp"  # callers pass temp names: the container comes from the codec
    n = encode_master(iter(master_input), out, width=W, height=H, fps=FPS, codec="ffv1", audio_source=film)
    assert n == 6
    info = probe(out)
    assert info.format_name.startswith("matroska")
    assert (info.video.frames, info.video.fps, info.video.pix_fmt) == (6, FPS, "gbrp16le")
    assert np.array_equal(read_frames(out, 0, 6, depth=16), np.stack(master_input))
    assert audio_packet_digests(out) == audio_packet_digests(film)
    assert len(audio_packet_digests(out)) == 1


def test_encode_master_prores_is_close_and_converts_flac_to_pcm(tmp_path, film, master_input):
    out = tmp_path / "master.mov"
    n = encode_master(iter(master_input), out, width=W, height=H, fps=FPS, codec="prores", audio_source=film)
    assert n == 6
    info = probe(out)
    assert info.format_name.startswith("mov")
    assert (info.video.codec, info.video.pix_fmt, info.video.frames, info.video.fps) == (
        "prores", "yuv422p10le", 6, FPS)
    assert (info.video.color.matrix, info.video.color.range, info.video.color.primaries) == ("bt709", "tv",
                                                                                             "bt709")
    decoded = read_frames(out, 0, 6, depth=16)
    assert min(psnr16(d, s) for d, s in zip(decoded, master_input, strict=True)) > 40
    # QuickTime refuses FLAC ("flac only supported in MP4"): the samples arrive as 16-bit PCM.
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == [("pcm_s16le", RATE, 2)]
    assert np.array_equal(decoded_audio(out), decoded_audio(film))


def test_encode_master_hevc(tmp_path, film, master_input):
    out = tmp_path / "master.mkv"
    assert encode_master(iter(master_input), out, width=W, height=H, fps=FPS, codec="hevc",
                         audio_source=film) == 6
    info = probe(out)
    assert (info.video.codec, info.video.pix_fmt, count_frames(out)) == ("hevc", "yuv420p10le", 6)
    decoded = read_frames(out, 0, 6, depth=16)
    assert min(psnr16(d, s) for d, s in zip(decoded, master_input, strict=True)) > 40
    assert audio_packet_digests(out) == audio_packet_digests(film)


def test_encode_master_24_bit_flac_becomes_pcm_s24le_in_mov(tmp_path, master_input):
    source = tmp_path / "audio24.mkv"
    write_flac_only(source, bits=24)
    out = tmp_path / "master.mov"
    encode_master(iter(master_input), out, width=W, height=H, fps=FPS, codec="prores", audio_source=source)
    assert [a.codec for a in probe(out).audio] == ["pcm_s24le"]
    assert np.array_equal(decoded_audio(out), decoded_audio(source))


def test_encode_master_without_audio(tmp_path, master_input):
    out = tmp_path / "silent.mkv"
    assert encode_master(iter(master_input[:2]), out, width=W, height=H, fps=24, codec="ffv1") == 2
    assert probe(out).audio == () and audio_packet_digests(out) == []


def test_encode_master_errors_remove_the_partial_file(tmp_path, master_input):
    out = tmp_path / "bad.mov"
    bad = [master_input[0], master_input[1].astype(np.uint8)]
    with pytest.raises(ValueError, match="frame 1 must be"):
        encode_master(iter(bad), out, width=W, height=H, fps=FPS, codec="prores")
    assert not out.exists()

    def failing():
        yield master_input[0]
        raise RuntimeError("restoration stage failed")

    with pytest.raises(RuntimeError, match="restoration stage failed"):
        encode_master(failing(), out, width=W, height=H, fps=FPS, codec="ffv1")
    assert not out.exists()
    with pytest.raises(ValueError, match="no frames"):  # odd widths are padded now; nothing to pad here
        encode_master(iter([]), out, width=65, height=H, fps=FPS, codec="prores")
    assert not out.exists()
    with pytest.raises(ValueError, match="codec must be one of"):
        encode_master(iter([]), out, width=W, height=H, fps=FPS, codec="dnxhd")
    with pytest.raises(MediaError, match="no such file"):
        encode_master(iter(master_input), out, width=W, height=H, fps=FPS, codec="ffv1",
                      audio_source=tmp_path / "missing.wav")
    assert not out.exists()


def test_prores_master_of_an_odd_width_is_padded_with_its_edge(tmp_path, master_input):
    """ProRes 4:2:2 needs an even width: a 63-wide film gets one repeated column, the FFV1 master none."""
    frames = [f[:, :W - 1] for f in master_input]
    out = tmp_path / "odd.mov"
    assert encode_master(iter(frames), out, width=W - 1, height=H, fps=FPS, codec="prores") == len(frames)
    info = probe(out)
    assert (info.video.width, info.video.height) == (W, H)
    got = next(iter_frames(out, depth=16)).astype(np.float64)
    assert np.abs(got[:, -1] - got[:, -2]).max() < 0.01 * 65535
    assert np.abs(got[:, : W - 1] - frames[0]).mean() < 0.01 * 65535
    exact = tmp_path / "odd.mkv"
    encode_master(iter(frames), exact, width=W - 1, height=H, fps=FPS, codec="ffv1")
    assert probe(exact).video.width == W - 1


def _packets(path: Path) -> list[tuple[str, int, bytes]]:
    """(stream type, pts in its time base, payload) of every packet, in file order."""
    with av.open(str(path)) as c:
        return [(p.stream.type, p.pts, bytes(p)) for p in c.demux() if p.size]


@pytest.mark.parametrize("codec", ["ffv1", "prores"])
def test_join_master_equals_one_encode_of_all_frames(tmp_path, film, master_input, codec):
    """Parts encoded piece by piece (FFV1: segments written by FFV1Writer, tagged with the source's
    colour) and joined = one encode of all the frames: the same packets, timestamps, tags and audio."""
    whole = tmp_path / f"whole-{codec}"
    encode_master(iter(master_input), whole, width=W, height=H, fps=FPS, codec=codec, audio_source=film)
    parts = []
    for i, (a, b) in enumerate([(0, 2), (2, 3), (3, 6)]):
        parts.append(tmp_path / f"part{i}")
        if codec == "ffv1":
            with FFV1Writer(parts[-1], W, H, FPS, depth=16,
                            color=ColorInfo(primaries="bt470bg", transfer="smpte170m")) as w:
                w.write(np.stack(master_input[a:b]))
        else:
            encode_master(iter(master_input[a:b]), parts[-1], width=W, height=H, fps=FPS, codec=codec)
    joined = tmp_path / f"joined-{codec}"
    assert join_master(parts, joined, fps=FPS, codec=codec, audio_source=film) == 6
    assert _packets(joined) == _packets(whole)  # video and audio, interleaved the same way
    a, b = probe(joined), probe(whole)
    assert (a.video.frames, a.video.fps, a.video.pix_fmt, a.video.color) == (
        b.video.frames, b.video.fps, b.video.pix_fmt, b.video.color)
    assert a.audio == b.audio
    assert np.array_equal(read_frames(joined, 0, 6, depth=16), read_frames(whole, 0, 6, depth=16))


def test_join_master_refuses_parts_that_do_not_join(tmp_path, master_input):
    ok = tmp_path / "ok"
    encode_master(iter(master_input[:2]), ok, width=W, height=H, fps=FPS, codec="prores")
    smaller = tmp_path / "smaller"
    encode_master(iter(f[:, :-2] for f in master_input[2:4]), smaller, width=W - 2, height=H, fps=FPS,
                  codec="prores")
    out = tmp_path / "out.mov"
    with pytest.raises(MediaError, match="encoded differently"):
        join_master([ok, smaller], out, fps=FPS, codec="prores")
    assert not out.exists()
    with pytest.raises(MediaError, match="not a ffv1 master part"):
        join_master([ok], out, fps=FPS, codec="ffv1")
    with pytest.raises(ValueError, match="not intra-only"):
        join_master([ok], out, fps=FPS, codec="hevc")
    with pytest.raises(MediaError, match="no such file"):
        join_master([ok, tmp_path / "missing"], out, fps=FPS, codec="prores")
    truncated = tmp_path / "truncated"
    truncated.write_bytes(ok.read_bytes()[: ok.stat().st_size // 2])
    with pytest.raises(MediaError):
        join_master([ok, truncated], out, fps=FPS, codec="prores")
    assert not out.exists()


def test_read_frames_of_an_intra_only_file_skips_without_decoding(tmp_path, master_input, monkeypatch):
    """Reel's own FFV1 files: frames before `start` are passed over undecoded, the frames are the same."""
    path = tmp_path / "chunk.mkv"
    with FFV1Writer(path, W, H, FPS, depth=16) as w:
        w.write(np.stack(master_input))
    for start, count in ((0, 6), (1, 2), (4, 2), (5, 1)):
        assert np.array_equal(read_frames(path, start, count, depth=16, intra_only=True),
                              read_frames(path, start, count, depth=16))
    with pytest.raises(MediaError, match="only 6 frames"):
        read_frames(path, 5, 2, depth=16, intra_only=True)

    decoded = []
    real = av.video.stream.VideoStream.decode

    def counting(self, packet=None):
        frames = real(self, packet)
        decoded.extend(frames)
        return frames

    monkeypatch.setattr(av.video.stream.VideoStream, "decode", counting)
    read_frames(path, 4, 2, depth=16, intra_only=True)
    assert len(decoded) == 2  # only the two frames asked for

    hevc = tmp_path / "long-gop.mkv"
    encode_master(iter(master_input), hevc, width=W, height=H, fps=FPS, codec="hevc")
    with pytest.raises(MediaError, match="not intra-only"):
        read_frames(hevc, 3, 1, depth=16, intra_only=True)


def test_prefetched_keeps_order_raises_in_order_and_stops_when_closed():
    import threading

    from infra.media import prefetched

    assert list(prefetched(iter(range(100)), 3)) == list(range(100))

    def failing():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetched(failing(), 8):
            got.append(x)
    assert got == [1, 2]  # everything before the error arrives first

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetched(endless(), 2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # the consumer leaves early: the producer thread stops and closes its source
    assert closed.wait(5)


# --- mezzanine chunks copied from intra-only sources -------------------------------------------


def _ffv1_file(path: Path, frames: list[np.ndarray], pix_fmt: str, gop: int = 1, tags: tuple = ()) -> Path:
    """An FFV1 file of `pix_fmt` (any GOP: FFV1 with a GOP above 1 has frames that are not key frames)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.codec_context.gop_size = gop
        if tags:
            ctx = stream.codec_context
            ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = tags
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            if tags:
                frame.colorspace, frame.color_range = tags[:2]
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def test_copied_chunks_hold_the_sources_own_packets_and_decode_to_its_frames(tmp_path):
    from infra.media import copy_intra_chunks

    source = tmp_path / "film.mkv"
    write_film(source, (painted(i) for i in range(10)), FPS, audio=(tone(10), RATE))
    out = tmp_path / "chunks"
    out.mkdir()
    chunks = list(copy_intra_chunks(source, out, 4, fps=FPS))
    assert [(p.name, n) for p, n in chunks] == [("00000.mkv", 4), ("00001.mkv", 4), ("00002.mkv", 2)]
    assert sum((_packets(p) for p, _ in chunks), []) == _packets(source)  # video only, bytes unchanged
    whole = read_frames(source, 0, 10)
    for i, (path, n) in enumerate(chunks):
        assert np.array_equal(read_frames(path, 0, n), whole[4 * i: 4 * i + n])
        assert np.array_equal(read_frames(path, 1, 1, intra_only=True)[0], whole[4 * i + 1])
        info = probe(path)
        assert (info.video.fps, info.video.frames, info.audio) == (FPS, n, ())
        assert info.video.color == probe(source).video.color


@pytest.mark.parametrize("kind", ["prores", "ffv1-yuv420p-bt709"])
def test_copied_chunks_of_prores_and_yuv_sources_decode_as_the_source_does(tmp_path, kind, master_input):
    from infra.media import copy_intra_chunks

    if kind == "prores":
        source = tmp_path / "film.mov"
        encode_master(iter(master_input), source, width=W, height=H, fps=FPS, codec="prores")
    else:
        source = _ffv1_file(tmp_path / "film.mkv", [painted(i * 40) for i in range(6)], "yuv420p",
                            tags=(1, 1, 1, 1))
        assert probe(source).video.color.matrix == "bt709"
    out = tmp_path / "chunks"
    out.mkdir()
    chunks = list(copy_intra_chunks(source, out, 4, fps=FPS))
    assert [n for _, n in chunks] == [4, 2]
    for depth in (8, 16):
        whole = read_frames(source, 0, 6, depth=depth)
        got = np.concatenate([read_frames(p, 0, n, depth=depth) for p, n in chunks])
        assert np.array_equal(got, whole), depth
    assert probe(chunks[0][0]).video.color == probe(source).video.color


def test_sources_that_are_not_intra_only_are_refused_and_leave_no_partial_chunk(tmp_path, master_input):
    from infra.media import NotIntraOnly, copy_intra_chunks

    gop = _ffv1_file(tmp_path / "gop.mkv", [painted(i) for i in range(8)], "bgr0", gop=3)
    out = tmp_path / "chunks"
    out.mkdir()
    with pytest.raises(NotIntraOnly, match="packet 1 is not a key frame"):
        list(copy_intra_chunks(gop, out, 4, fps=FPS))
    assert list(out.iterdir()) == []
    assert np.array_equal(read_frames(gop, 0, 8)[5], painted(5))  # it decodes: only copying is refused
    hevc = tmp_path / "long-gop.mkv"
    encode_master(iter(master_input), hevc, width=W, height=H, fps=FPS, codec="hevc")
    with pytest.raises(NotIntraOnly, match="hevc is not an intra-only codec"):
        list(copy_intra_chunks(hevc, out, 4, fps=FPS))
    assert isinstance(NotIntraOnly("x"), MediaError)
