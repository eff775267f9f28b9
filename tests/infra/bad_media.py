"""A corpus of bad, odd and hostile media files, generated in code (PyAV, numpy, plain bytes).

Each maker takes the folder to write in and returns the path to hand to Reel (or None when the
case cannot be made here, with the reason in `skip_reason`). The base film every truncation and
renaming starts from is `base_film`: FFV1 bgr0 64x48, 12 painted frames at 24 fps, stereo FLAC.
Frames are painted so that a decoded frame names its own index (`painted`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from itertools import accumulate, count
from pathlib import Path

import av
import numpy as np

from infra.media import encode_master, write_film

FPS = Fraction(24)
W, H = 64, 48
FRAMES = 12
RATE = 48000


def painted(index: int, width: int = W, height: int = H) -> np.ndarray:
    """(H, W, 3) uint8 frame: red = 10 x index (flat, survives lossy codecs), green/blue gradients."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (10 * index) % 256
    frame[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[..., 2] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    return frame


def deep(index: int) -> np.ndarray:
    """(H, W, 3) uint16 frame using all 16 bits: `painted` x 256 + index in the low byte."""
    return painted(index).astype(np.uint16) * np.uint16(256) + np.uint16(index)


def tone(frames: int, channels: int = 2, fps: Fraction = FPS) -> np.ndarray:
    n = int(frames / fps * RATE)
    t = np.arange(n) / RATE
    return np.stack([np.sin(2 * np.pi * (220 + 55 * c) * t) * 9000 for c in range(channels)]).astype(np.int16)


@contextmanager
def _video_output(path: Path, fmt: str, codec: str, pix_fmt: str, *, rate: Fraction | int = FPS,
                  options: dict | None = None, container_options: dict | None = None,
                  ) -> Iterator[tuple[av.container.OutputContainer, av.VideoStream]]:
    """An output container of format `fmt` with one W x H video stream (codec, pix_fmt); yields both."""
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as c:
        s = c.add_stream(codec, rate=rate, options=options or {})
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        yield c, s


def _write_frames(c: av.container.OutputContainer, s: av.VideoStream, pictures: Iterable[np.ndarray] | None = None,
                  *, source_format: str = "rgb24", pts: Iterable[int] | None = None,
                  time_base: Fraction | None = None) -> None:
    """Encode and mux `pictures` (default: FRAMES painted frames) with pts 0, 1, 2... unless given; then flush."""
    if pictures is None:
        pictures = (painted(i) for i in range(FRAMES))
    for picture, t in zip(pictures, count() if pts is None else pts, strict=False):
        f = av.VideoFrame.from_ndarray(picture, format=source_format)
        if source_format != s.pix_fmt:
            f = f.reformat(format=s.pix_fmt)
        f.pts = t
        if time_base is not None:
            f.time_base = time_base
        c.mux(s.encode(f))
    c.mux(s.encode(None))


def _flac_stream(c: av.container.OutputContainer, layout: str) -> av.AudioStream:
    a = c.add_stream("flac", rate=RATE)
    a.layout, a.format = layout, "s16"
    return a


def _write_tone(c: av.container.OutputContainer, a: av.AudioStream) -> None:
    """Mux FRAMES worth of `tone` into the s16 FLAC stream `a` (as many channels as its layout), then flush."""
    samples = tone(FRAMES, channels=a.layout.nb_channels)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T).reshape(1, -1), format="s16",
                                       layout=a.layout.name)
    frame.sample_rate, frame.pts = RATE, 0
    c.mux(a.encode(frame))
    c.mux(a.encode(None))


def base_film(folder: Path) -> Path:
    """The valid film every derived case starts from (written once per folder)."""
    path = folder / "base.mkv"
    if not path.exists():
        write_film(path, (painted(i) for i in range(FRAMES)), FPS, (tone(FRAMES), RATE))
    return path


# --- plain bytes ----------------------------------------------------------------------------


def empty(d: Path) -> Path:
    (p := d / "empty.mkv").touch()
    return p


def garbage(d: Path) -> Path:
    p = d / "garbage.mkv"
    p.write_bytes(np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return p


def text_txt(d: Path) -> Path:
    p = d / "notes.txt"
    p.write_text("shot list\nreel 1: opening titles\n" * 100)  # FFmpeg's tty demuxer shows .txt as ANSI art
    return p


def text_mkv(d: Path) -> Path:
    p = d / "notes.mkv"
    p.write_text("shot list\nreel 1: opening titles\n" * 100)
    return p


def zeros(d: Path) -> Path:
    p = d / "zeros.mov"
    p.write_bytes(bytes(100_000))
    return p


def srt_subtitles(d: Path) -> Path:
    """Subtitles only: a SubRip file (FFmpeg reads it as a file with one subtitle stream)."""
    p = d / "subs.srt"
    p.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> 00:00:04,000\nWorld\n")
    return p


def sdp_session(d: Path) -> Path:
    """An SDP file: would make FFmpeg listen for RTP on a UDP port."""
    p = d / "session.sdp"
    p.write_text("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=reel\nc=IN IP4 127.0.0.1\nt=0 0\n"
                 "m=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n")
    return p


def png_image(d: Path) -> Path:
    p = d / "still.png"
    with _video_output(p, "image2", "png", "rgb24", rate=1) as (c, s):
        _write_frames(c, s, [painted(0)])
    return p


# --- references to other files (HLS, ffconcat) -------------------------------------------


def _fifo(d: Path, name: str) -> Path:
    """A named pipe with no writer: whoever opens it for reading blocks (a tell-tale for 'opened')."""
    fifo = d / name
    os.mkfifo(fifo)
    return fifo


def _playlist(target: Path | str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n"


def hls_playlist(d: Path) -> Path:
    """An .m3u8 naming a local segment that is a FIFO: opening the segment would hang until the timeout."""
    p = d / "playlist.m3u8"
    p.write_text(_playlist(_fifo(d, "segment0.ts")))
    return p


def hls_playlist_to_film(d: Path) -> Path:
    """An .m3u8 naming a real local film: before the allow-list, Reel restored the film it points to."""
    p = d / "film.m3u8"
    p.write_text(_playlist(base_film(d)))
    return p


def hls_in_avi(d: Path) -> Path:
    p = d / "playlist.avi"
    p.write_text(_playlist(_fifo(d, "segment1.ts")))
    return p


def hls_in_mkv(d: Path) -> Path:
    p = d / "playlist.mkv"
    p.write_text(_playlist(_fifo(d, "segment2.ts")))
    return p


def hls_network(d: Path) -> Path:
    p = d / "remote.m3u8"
    p.write_text(_playlist("http://127.0.0.1:9/segment.ts"))
    return p


def concat_script(d: Path) -> Path:
    p = d / "list.ffconcat"
    p.write_text(f"ffconcat version 1.0\nfile '{_fifo(d, 'part3.mkv')}'\n")
    return p


def concat_in_mkv(d: Path) -> Path:
    p = d / "list.mkv"
    p.write_text(f"ffconcat version 1.0\nfile '{base_film(d)}'\nfile '{base_film(d)}'\n")
    return p


# --- file-system oddities -------------------------------------------------------------------


def directory(d: Path) -> Path:
    (p := d / "folder.mkv").mkdir()
    return p


def missing(d: Path) -> Path:
    return d / "missing.mkv"


def symlink_loop(d: Path) -> Path:
    a, b = d / "loop_a.mkv", d / "loop_b.mkv"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def symlink_to_film(d: Path) -> Path:
    (p := d / "link.mkv").symlink_to(base_film(d))
    return p


def fifo_input(d: Path) -> Path:
    return _fifo(d, "pipe.mkv")


def unreadable(d: Path) -> Path | None:
    p = d / "locked.mkv"
    shutil.copy(base_film(d), p)
    p.chmod(0)
    return p


def non_utf8_name(d: Path) -> Path:
    p = Path(os.fsdecode(bytes(d) + b"/caf\xe9-\xff.mkv"))  # Latin-1 bytes: not valid UTF-8
    shutil.copy(base_film(d), p)
    return p


def protocol_like_name(d: Path) -> Path:
    """A file whose name reads like FFmpeg protocol syntax ('concat:...|...')."""
    p = d / "concat:a.mkv|b.mkv"
    shutil.copy(base_film(d), p)
    return p


# --- valid content, wrong or no extension ------------------------------------------------------


def renamed(suffix: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"film{suffix}"
        shutil.copy(base_film(d), p)
        return p

    make.__name__ = f"mkv_named{suffix or '_without_extension'}"
    return make


# --- truncations ------------------------------------------------------------------------------


def _first_video_packet(path: Path) -> av.Packet:
    with av.open(str(path)) as c:
        return next(p for p in c.demux(c.streams.video[0]) if p.size)


def truncated_header(d: Path) -> Path:
    p = d / "cut_header.mkv"
    p.write_bytes(base_film(d).read_bytes()[:300])
    return p


def truncated_first_frame(d: Path) -> Path:
    film = base_film(d)
    first = _first_video_packet(film)
    p = d / "cut_first_frame.mkv"
    p.write_bytes(film.read_bytes()[: first.pos + first.size // 2])
    return p


def long_film(d: Path) -> Path:
    """48 frames (2 s): long enough that losing half of it is beyond every tolerance."""
    path = d / "long.mkv"
    if not path.exists():
        write_film(path, (painted(i) for i in range(48)), FPS, (tone(48), RATE))
    return path


def truncated_middle(d: Path) -> Path:
    film = long_film(d)
    p = d / "cut_middle.mkv"
    p.write_bytes(film.read_bytes()[: film.stat().st_size // 2])
    return p


def _h264(path: Path, fmt: str, frames: int = FRAMES, options: dict | None = None) -> Path:
    with _video_output(path, fmt, "libx264", "yuv420p", options={"crf": "10", "bf": "2", "g": "6"},
                       container_options=options) as (c, s):
        _write_frames(c, s, (painted(i) for i in range(frames)))
    return path


def truncated_mp4_first_frame(d: Path) -> Path:
    """H.264 in MP4 with the index up front (faststart), cut inside the first frame (PyAV issue 2344)."""
    film = _h264(d / "faststart.mp4", "mp4", options={"movflags": "faststart"})
    first = _first_video_packet(film)
    p = d / "cut_faststart.mp4"
    p.write_bytes(film.read_bytes()[: first.pos + first.size // 2])
    return p


def truncated_mp4_index_at_end(d: Path) -> Path:
    film = _h264(d / "plain.mp4", "mp4")
    p = d / "cut_plain.mp4"
    p.write_bytes(film.read_bytes()[: film.stat().st_size * 2 // 3])
    return p


def truncated_avi_middle(d: Path) -> Path:
    film = _h264(d / "whole.avi", "avi", frames=48)
    p = d / "cut_middle.avi"
    p.write_bytes(film.read_bytes()[: film.stat().st_size // 2])
    return p


def corrupt_first_frame(d: Path) -> Path:
    """Bytes inside the first FFV1 frame overwritten (its slice CRCs no longer match)."""
    film = base_film(d)
    first = _first_video_packet(film)
    data = bytearray(film.read_bytes())
    for i in range(first.pos + 16, first.pos + first.size - 8):
        data[i] ^= 0x5A
    p = d / "corrupt_first.mkv"
    p.write_bytes(bytes(data))
    return p


# --- streams: missing, many, empty -------------------------------------------------------------


def audio_only(d: Path) -> Path:
    p = d / "audio_only.mkv"
    with av.open(str(p), "w", format="matroska") as c:
        _write_tone(c, _flac_stream(c, "stereo"))
    return p


def zero_length_video(d: Path) -> Path:
    """A video track with no packets at all, next to an audio track that has some."""
    p = d / "no_video_packets.mkv"
    with _video_output(p, "matroska", "ffv1", "bgr0") as (c, v):
        _write_tone(c, _flac_stream(c, "stereo"))
        _write_frames(c, v, [])
    return p


def eight_audio_streams(d: Path) -> Path:
    """Video plus eight FLAC streams (1 to 8 channels)."""
    p = d / "eight_audio.mkv"
    with _video_output(p, "matroska", "ffv1", "bgr0") as (c, v):
        audio = [_flac_stream(c, layout) for layout in ["mono", "stereo", "3.0", "quad", "5.0", "5.1", "6.1", "7.1"]]
        _write_frames(c, v)
        for a in audio:
            _write_tone(c, a)
    return p


# --- timing -----------------------------------------------------------------------------------


def variable_frame_rate(d: Path) -> Path:
    """FFV1 in Matroska, 1 ms time base: 6 frames 40 ms apart, then 6 frames 100 ms apart."""
    p = d / "vfr.mkv"
    with _video_output(p, "matroska", "ffv1", "bgr0") as (c, s):
        s.codec_context.time_base = Fraction(1, 1000)
        _write_frames(c, s, pts=accumulate([40] * 6 + [100] * 5, initial=0), time_base=Fraction(1, 1000))
    return p


def raw_mpeg2_elementary(d: Path) -> Path:
    """MPEG-2 video elementary stream (.m2v): no container, no timestamps."""
    p = d / "raw.m2v"
    with _video_output(p, "mpeg2video", "mpeg2video", "yuv420p", options={"qscale": "2"}) as (c, s):
        s.codec_context.qmax = 2
        _write_frames(c, s)
    return p


def y4m(d: Path) -> Path:
    """yuv4mpeg2 (no timestamps: frame rate from the header only), 4:4:4."""
    p = d / "clip.y4m"
    with _video_output(p, "yuv4mpegpipe", "rawvideo", "yuv444p") as (c, s):
        _write_frames(c, s)
    return p


# --- pictures ---------------------------------------------------------------------------------


ODD = (641, 479)


def odd_dimensions(d: Path) -> Path:
    p = d / "odd_641x479.mkv"
    write_film(p, (painted(i, *ODD) for i in range(FRAMES)), FPS)
    return p


def sixteen_bit(d: Path) -> Path:
    p = d / "gbrp16.mkv"
    encode_master((deep(i) for i in range(FRAMES)), p, width=W, height=H, fps=FPS, codec="ffv1")
    return p


def rgb48_raw_nut(d: Path) -> Path:
    """rawvideo rgb48le in NUT: 16-bit packed RGB, no compression."""
    p = d / "rgb48.nut"
    with _video_output(p, "nut", "rawvideo", "rgb48le") as (c, s):
        _write_frames(c, s, (deep(i) for i in range(FRAMES)), source_format="rgb48le")
    return p


def prores_10_bit(d: Path) -> Path:
    p = d / "master.mov"
    encode_master((painted(i).astype(np.uint16) * 257 for i in range(FRAMES)), p, width=W, height=H, fps=FPS,
                  codec="prores")
    return p


def rotated(d: Path) -> Path:
    """H.264 in MP4 with a 90-degree display matrix (as phones write)."""
    p = d / "rotated.mp4"
    with _video_output(p, "mp4", "libx264", "yuv420p", options={"crf": "10"}) as (c, s):
        s.set_display_rotation(90)
        _write_frames(c, s)
    return p


def rotate_tag(d: Path) -> Path:
    """FFV1 in Matroska with the old 'rotate' stream tag."""
    p = d / "rotate_tag.mkv"
    with _video_output(p, "matroska", "ffv1", "bgr0") as (c, s):
        s.metadata["rotate"] = "90"
        _write_frames(c, s)
    return p


def interlaced(d: Path) -> Path:
    """MPEG-2 encoded interlaced (field DCT and motion, top field first), in MPEG-TS."""
    p = d / "interlaced.ts"
    with _video_output(p, "mpegts", "mpeg2video", "yuv420p", rate=Fraction(25),
                       options={"flags": "+ildct+ilme", "top": "1"}) as (c, s):
        s.codec_context.qmax = 2
        _write_frames(c, s)
    return p


def field_order_tag(d: Path) -> Path:
    """FFV1 in Matroska whose track says 'interlaced, top field first'."""
    p = d / "tff.mkv"
    with _video_output(p, "matroska", "ffv1", "bgr0") as (c, s):
        s.codec_context.field_order = 2  # AV_FIELD_TT: top field coded and shown first
        _write_frames(c, s)
    return p


def _y4m_header(d: Path, name: str, width: int, height: int) -> Path:
    p = d / name
    p.write_bytes(f"YUV4MPEG2 W{width} H{height} F24:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + bytes(4096))
    return p


def huge_y4m(d: Path) -> Path:
    """A 4 KB y4m whose header declares 16000x16000 (within FFmpeg's own limit, above Reel's)."""
    return _y4m_header(d, "huge.y4m", 16000, 16000)


def giant_y4m(d: Path) -> Path:
    """A y4m header declaring 30000x30000: beyond what FFmpeg itself accepts."""
    return _y4m_header(d, "giant.y4m", 30000, 30000)


def _declaring(d: Path, name: str, width: int, height: int) -> Path:
    """A one-frame 256x256 FFV1 Matroska file whose track header then declares width x height.

    FFV1 takes the picture size from the container, so the decoder believes the header. 256 is
    the smallest size whose EBML PixelWidth/PixelHeight take two bytes, so any size up to 65535
    is patched in place.
    """
    source = d / "square256.mkv"
    if not source.exists():
        write_film(source, [np.zeros((256, 256, 3), np.uint8)], FPS)
    data = source.read_bytes()
    old_w, old_h = b"\xb0\x82\x01\x00", b"\xba\x82\x01\x00"
    assert data.count(old_w) == 1 and data.count(old_h) == 1, "the Matroska muxer's layout changed"
    data = data.replace(old_w, b"\xb0\x82" + width.to_bytes(2, "big"))
    data = data.replace(old_h, b"\xba\x82" + height.to_bytes(2, "big"))
    p = d / name
    p.write_bytes(data)
    return p


def declares_12000_square(d: Path) -> Path:
    """3 KB of Matroska declaring 12000x12000 (144 megapixels)."""
    return _declaring(d, "declares_12000.mkv", 12000, 12000)


def declares_8000x4000(d: Path) -> Path:
    """Declares 8000x4000 (32 megapixels, under the pixel limit): a decompression bomb for a tight memory limit."""
    return _declaring(d, "declares_8000x4000.mkv", 8000, 4000)


def flat_4k(d: Path) -> Path:
    """One flat 4096x2160 FFV1 frame: about 17 KB on disk, 35 MB once decoded."""
    p = d / "flat_4k.mkv"
    write_film(p, [np.full((2160, 4096, 3), 90, np.uint8)], FPS)
    return p
