"""Media I/O: probe files safely, decode frame-exact to RGB, write lossless FFV1 and masters.

Frames crossing this module's boundary are RGB in the working space of
`models.clip` (BT.709, full range): numpy arrays of shape (H, W, 3), uint8
(0..255) or uint16 (0..65535, full scale). Y'CbCr sources are converted with
their own matrix and range here, in numpy (float32, the exact BT.601/709/2020
equations), in both directions. swscale in this FFmpeg build is not precise
enough for a 16-bit pipeline: Y'CbCr->RGB with default flags is off by up to
3 code values at 8 bits, its rgb48 output is only about 8-bit accurate, RGB48
->10-bit Y'CbCr is off by up to 3.6 code values, and bilinear + full chroma
interpolation to rgb48 corrupts pixels outright.

Untrusted files are probed in a child process (`probe`) with a time and a
memory limit: FFmpeg can crash on a stream truncated inside its first frame
(PyAV issue 2344), and a small file can declare frames that need gigabytes.
The probe also refuses pictures above `DEFAULT_MAX_PIXELS`. The decoding
functions run in-process and are meant for files that passed `probe`.

Every open of an input (probe and decoding alike) is confined: only the
"file" protocol (no network, pipes or nested protocols such as concat: or
subfile:), only the container formats in `ACCEPTED_FORMATS` (checked by FFmpeg
before a header is parsed, so playlists and scripts such as HLS or ffconcat
never open the files or URLs they name), and QuickTime data references off.

Every user-facing failure raises `MediaError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any, TypeVar

import av
import numpy as np

from models.clip import ColorInfo

# No random segment UID or encoder version strings in written files: the same frames give the same bytes,
# so a rerun's master has the same sha256 (crash recovery and concurrent publishes rely on it).
BITEXACT = {"fflags": "+bitexact"}
_REPO_ROOT = Path(__file__).resolve().parents[1]

# FFmpeg's names for the colour enums (libavutil/pixfmt.h), by enum value.
_MATRIX_NAMES = {
    0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
    9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c",
    14: "ictcp", 15: "ipt-c2", 16: "ycgco-re", 17: "ycgco-ro",
}
_PRIMARIES_NAMES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
    10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
_TRANSFER_NAMES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
    10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10",
    15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}
_RANGE_NAMES = {1: "tv", 2: "pc"}
_MATRIX_IDS = {name: value for value, name in _MATRIX_NAMES.items()}
_PRIMARIES_IDS = {name: value for value, name in _PRIMARIES_NAMES.items()}
_TRANSFER_IDS = {name: value for value, name in _TRANSFER_NAMES.items()}
_RANGE_IDS = {name: value for value, name in _RANGE_NAMES.items()}

# (Kr, Kb) luma coefficients of the Y'CbCr matrices we can convert.
_LUMA_COEFFS = {
    "bt709": (0.2126, 0.0722),
    "fcc": (0.30, 0.11),
    "bt470bg": (0.299, 0.114),
    "smpte170m": (0.299, 0.114),
    "smpte240m": (0.212, 0.087),
    "bt2020nc": (0.2627, 0.0593),
}

# Demuxers that turn plain text into "video" (ANSI art): a .txt file would otherwise probe fine.
_TEXT_DEMUXERS = frozenset({"tty", "bin", "adf", "idf", "xbin"})

# Container formats Reel reads, as FFmpeg demuxer names (a name matches FFmpeg's "mov,mp4,m4a,..."
# and "matroska,webm" lists by any member). None of them opens another file or URL (QuickTime data
# references are switched off). Everything else is refused before its header is parsed: playlists
# and scripts that open other files or URLs (hls, dash, concat, webm_dash_manifest, ...), image2's
# numbered file patterns and single images (image sequences are not supported), raw elementary
# streams, and the text demuxers.
ACCEPTED_FORMATS = (
    "matroska",      # .mkv .webm
    "mov",           # .mov .mp4 .m4v .3gp .mj2
    "mxf",
    "avi",
    "mpegts",        # .ts .m2ts
    "mpeg",          # MPEG program streams: .mpg .vob
    "mpegvideo",     # raw MPEG-1/2 video: .m2v
    "dv",
    "ogg",
    "flv",
    "asf",           # .wmv
    "nut",
    "ivf",           # VP8/VP9/AV1
    "yuv4mpegpipe",  # .y4m
    "wav",           # WAV / Broadcast WAV / RF64: separate sound for a film scan (no video: refused as a source)
)
_INPUT_OPTIONS = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(ACCEPTED_FORMATS),
    "enable_drefs": "0",  # QuickTime: never follow data references to other files (FFmpeg's default)
}

# The largest picture `probe` accepts: 8192 x 4352 (8K DCI, 8192 x 4320, with margin). At 16 bits a
# decoded frame of that size is about 214 MB, which the default probe memory limit easily holds.
DEFAULT_MAX_PIXELS = 8192 * 4352
# The smallest picture Reel restores, refused at probe time before anything is ingested. Measured with
# the `colour` recipe's stages on random clips: at 8x8 OpenCV's DIS optical flow (dust, denoise) fails,
# 12x12 and 15x15 pass; the QC's SSIM needs 7x7. 16x16 keeps a margin.
MIN_SIZE = (16, 16)
# Address space the probe child may use on top of its start-up size (Python, PyAV, numpy loaded).
DEFAULT_PROBE_MEMORY_MB = 4096
_EXIT_NO_MEMORY = 3  # the probe child's exit status when it ran out of memory

_AUDIO_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class MediaError(ValueError):
    """A media file cannot be read or written; the message is one line a user can act on."""


# --- descriptions -------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream.

    fps:       exact frame rate (the stream's average rate, else FFmpeg's guess).
    frames:    frame count stored by the container, else duration x fps rounded
               (exact for constant-rate files), None when neither is known.
    bit_depth: bits per component of `pix_fmt` (8, 9, 10, 12, 14 or 16).
    color:     matrix/primaries/transfer/range from the stream or its first frame,
               with defaults for unspecified values (see `probe`).
    """

    width: int
    height: int
    fps: Fraction
    frames: int | None
    codec: str
    pix_fmt: str
    bit_depth: int
    color: ColorInfo


@dataclass(frozen=True)
class AudioInfo:
    """One audio stream; `index` is the stream's index in the container (all stream types)."""

    index: int
    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found in a file."""

    path: str
    format_name: str
    duration_seconds: float | None
    video: VideoInfo | None
    audio: tuple[AudioInfo, ...]
    subtitle_streams: int
    # Every stream of the file, in container order: {"index", "type", "codec"} plus "width", "height"
    # (video) or "sample_rate", "channels" (audio).
    streams: tuple[dict, ...] = ()
    video_index: int | None = None  # container index of the video stream described (and restored)

    @property
    def other_video_streams(self) -> list[int]:
        """Container indexes of the video streams that are not the one described."""
        return [int(s["index"]) for s in self.streams if s.get("type") == "video" and s["index"] != self.video_index]

    def to_dict(self) -> dict:
        """JSON-able dict; fps is written as "num/den"."""
        data = asdict(self)
        data["audio"] = list(data["audio"])
        data["streams"] = [dict(x) for x in self.streams]
        if self.video is not None:
            data["video"]["fps"] = f"{self.video.fps.numerator}/{self.video.fps.denominator}"
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MediaInfo:
        """Inverse of `to_dict`."""
        video = None
        if data["video"] is not None:
            v = dict(data["video"])
            video = VideoInfo(**{**v, "fps": Fraction(v["fps"]), "color": ColorInfo(**v["color"])})
        return cls(
            path=data["path"],
            format_name=data["format_name"],
            duration_seconds=data["duration_seconds"],
            video=video,
            audio=tuple(AudioInfo(**a) for a in data["audio"]),
            subtitle_streams=data["subtitle_streams"],
            streams=tuple(data.get("streams") or ()),
            video_index=data.get("video_index"),
        )


# --- small helpers ------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _av_reason(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without errno and path noise."""
    if isinstance(exc, av.FFmpegError | OSError) and exc.strerror:
        reason = exc.strerror
        log = getattr(exc, "log", None)
        if log and log[-1]:
            reason += f" ({_one_line(log[-1])})"
        return _one_line(reason)
    return _one_line(f"{type(exc).__name__}: {exc}")


def _read_error(path: str | os.PathLike, reason: str) -> MediaError:
    return MediaError(f"cannot read media {str(path)!r}: {_one_line(reason)}")


def _existing_file(path: str | os.PathLike) -> Path:
    """The path as a Path if it is a readable, non-empty regular file, else MediaError."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise _read_error(path, "no such file") from None
    except OSError as exc:  # a symlink loop, a path through a file, a name too long...
        raise _read_error(path, exc.strerror or type(exc).__name__) from None
    except ValueError as exc:  # a NUL in the name
        raise _read_error(path, str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise _read_error(path, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise _read_error(path, "is not a regular file")
    if st.st_size == 0:
        raise _read_error(path, "file is empty")
    if not os.access(p, os.R_OK):
        raise _read_error(path, "permission denied")
    return p


def _open_input(path: str | os.PathLike, shown: str, max_pixels: int | None = None
                ) -> av.container.InputContainer:
    """Open a file for demuxing, confined as the module docstring says; `shown` names it in errors.

    max_pixels also limits the decoders FFmpeg runs while reading the header.
    """
    options = {} if max_pixels is None else {"max_pixels": str(max_pixels)}
    try:
        # An absolute path: FFmpeg reads "name:rest" as protocol "name" (and the file protocol is the
        # only one allowed), so a relative file name with a colon would not open.
        container = av.open(os.path.abspath(path), "r", container_options=_INPUT_OPTIONS, options=options)
    except MemoryError:
        raise
    except (av.FFmpegError, OSError) as exc:
        refused = _refused_format(exc)
        if refused is not None and refused.split(",")[0] in _TEXT_DEMUXERS:
            raise _read_error(shown, "not a media file (FFmpeg would only show its text as ANSI art)") from None
        if refused is not None:
            raise _read_error(shown, f"container format {refused!r} is not accepted (Reel reads "
                                     f"{', '.join(ACCEPTED_FORMATS)})") from None
        if isinstance(exc, av.error.ArgumentError):  # FFmpeg's refusal, unnamed where its log is off
            raise _read_error(shown, f"FFmpeg refused to open it ({_av_reason(exc)}); is it a complete media "
                                     "file in a container format Reel reads?") from None
        raise _read_error(shown, f"FFmpeg cannot open it ({_av_reason(exc)}); is it a complete media file?"
                          ) from None
    if container.format.name in _TEXT_DEMUXERS:
        container.close()
        raise _read_error(shown, "not a media file (FFmpeg would only show its text as ANSI art)")
    return container


def _refused_format(exc: BaseException) -> str | None:
    """The demuxer FFmpeg refused for not being in ACCEPTED_FORMATS, when its log says so.

    FFmpeg logs the refusal in the demuxer's own name; the log is only kept while PyAV's logging is
    on (the probe child turns it on).
    """
    log = getattr(exc, "log", None)
    if log and len(log) == 3 and "not on whitelist" in str(log[2]) and log[1]:
        return str(log[1])
    return None


def _video_stream(container: av.container.InputContainer, shown: str, index: int | None = None
                  ) -> av.video.stream.VideoStream:
    """The first video stream, or the stream with container index `index` (which must be video)."""
    if not container.streams.video:
        audio = len(container.streams.audio)
        detail = f" ({audio} audio stream{'s' if audio != 1 else ''})" if audio else ""
        raise _read_error(shown, f"no video stream{detail}")
    if index is None:
        stream = container.streams.video[0]
    else:
        video = [s.index for s in container.streams.video]
        if index not in video:
            raise _read_error(shown, f"stream {index} is not a video stream (video streams: "
                                     f"{', '.join(map(str, video))})")
        stream = container.streams[index]
    if stream.codec_context is None:  # decoding such a stream crashes PyAV 18 (issue 2344)
        raise _read_error(shown, "FFmpeg found no codec parameters for its video stream; is it damaged or "
                                 "truncated?")
    return stream


def _pick(stream_value: int, frame_value: int, names: dict[int, str]) -> str | None:
    """The stream's name for a colour enum, else the frame's, else None (unspecified)."""
    for value in (stream_value, frame_value):
        if value in names:
            return names[value]
    return None


def _bits(pix_fmt: str) -> int:
    return av.VideoFormat(pix_fmt).components[0].bits


def _color_info(stream: av.video.stream.VideoStream, frame: av.VideoFrame) -> ColorInfo:
    """ColorInfo from the stream's tags, else the first frame's, else defaults.

    Defaults: matrix, primaries and transfer "bt709" when height >= 720, else
    "smpte170m"; range "pc" for RGB and yuvj* formats, else "tv". The matrix
    "gbr" (RGB payload) counts as unspecified: ColorInfo.matrix names the
    Y'CbCr matrix to use when encoding back. ColorInfo.bit_depth is the pixel
    format's depth rounded up to 8, 10, 12 or 16.
    """
    ctx = stream.codec_context
    default = "bt709" if frame.height >= 720 else "smpte170m"
    pix_fmt = frame.format.name
    matrix = _pick(ctx.colorspace, frame.colorspace, _MATRIX_NAMES)
    value_range = _pick(ctx.color_range, frame.color_range, _RANGE_NAMES)
    if value_range is None:
        value_range = "pc" if frame.format.is_rgb or pix_fmt.startswith("yuvj") else "tv"
    bits = _bits(pix_fmt)
    return ColorInfo(
        bit_depth=next(d for d in (8, 10, 12, 16) if d >= min(bits, 16)),
        matrix=default if matrix in (None, "gbr") else matrix,
        primaries=_pick(ctx.color_primaries, frame.color_primaries, _PRIMARIES_NAMES) or default,
        transfer=_pick(ctx.color_trc, frame.color_trc, _TRANSFER_NAMES) or default,
        range=value_range,
    )


# --- probing ------------------------------------------------------------------------------


def probe(path: str | os.PathLike, timeout_s: float = 30.0, *, max_pixels: int = DEFAULT_MAX_PIXELS,
          max_memory_mb: int = DEFAULT_PROBE_MEMORY_MB, stream: int | None = None,
          min_size: tuple[int, int] = MIN_SIZE) -> MediaInfo:
    """Describe a media file, after checking that its first video frame decodes.

    Demuxing and the first decode run in a child Python process with limits,
    so a crash, hang or memory blow-up inside FFmpeg becomes a MediaError here:
      timeout_s:     wall-clock time for the child;
      max_memory_mb: address space (RLIMIT_AS, where the OS has it) the child
                     may use on top of its start-up size;
      max_pixels:    the largest picture (width x height) accepted, checked
                     on the size the stream declares before anything is
                     decoded, and enforced on the decoder (default
                     DEFAULT_MAX_PIXELS, 8192 x 4352).
    stream:        container index of the video stream to describe (default: the first video
                   stream); `MediaInfo.streams` lists every stream.
    min_size:      the smallest (width, height) accepted (default MIN_SIZE: what the stages need).
    Raises MediaError for a missing, empty or unreadable file, a container
    format not in ACCEPTED_FORMATS, a file without video, a picture too big or too small,
    a first frame that does not decode, a crashed, timed-out or out-of-memory
    child.
    """
    if max_pixels < 1 or max_memory_mb < 1:
        raise ValueError(f"max_pixels and max_memory_mb must be >= 1, got {max_pixels}, {max_memory_mb}")
    file = _existing_file(path)
    command = [sys.executable, "-m", "infra.media", "_probe", os.path.abspath(file), str(path),
               str(int(max_pixels)), str(int(max_memory_mb)), "" if stream is None else str(int(stream)),
               f"{int(min_size[0])}x{int(min_size[1])}"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH")) if p)
    # One BLAS thread and two malloc arenas: start-up reservations stay small and the memory limit
    # measures what decoding the file needs.
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    try:
        child = subprocess.run(command, cwd=_REPO_ROOT, env=env, capture_output=True, timeout=timeout_s,
                               check=False)
    except subprocess.TimeoutExpired:
        raise _read_error(path, f"timed out after {timeout_s:g} s") from None
    except OSError as exc:
        raise _read_error(path, f"cannot start the probe process ({exc.strerror})") from None
    said = child.stderr.decode("utf-8", "replace").strip().splitlines()
    out_of_memory = _read_error(path, f"ran out of memory: decoding it needs more than the probe's "
                                      f"{max_memory_mb} MB (a decompression bomb?)")
    if child.returncode == _EXIT_NO_MEMORY:
        raise out_of_memory
    if child.returncode < 0:
        if any(_OOM_WORDS.search(line) for line in said[-5:]):
            raise out_of_memory
        number = -child.returncode
        try:
            name = f", {signal.Signals(number).name}"
        except ValueError:
            name = ""
        raise _read_error(path, f"decoder crashed (signal {number}{name})")
    lines = child.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        reply = json.loads(lines[-1])
    except (IndexError, ValueError):
        if any(_OOM_WORDS.search(line) for line in said[-5:]):
            raise out_of_memory from None
        detail = f": {said[-1][:200]}" if said else ""
        raise _read_error(path, f"probe process failed (exit code {child.returncode}){detail}") from None
    if "error" in reply:
        raise MediaError(_one_line(reply["error"]))
    return MediaInfo.from_dict(reply["info"])


# What a child that died of an allocation failure may have written last.
_OOM_WORDS = re.compile(r"MemoryError|Cannot allocate memory|out of memory|bad_alloc", re.IGNORECASE)


def _probe_in_process(path: str, shown: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                      logs: list | None = None, index: int | None = None,
                      min_size: tuple[int, int] = (1, 1)) -> MediaInfo:
    """The child's work for `probe`: open, describe, decode the first video frame.

    logs: FFmpeg's log while it is captured (see `_main`); used to name a declared picture size
    that FFmpeg's own max_pixels check already refused while reading the header.
    """
    with _open_input(path, shown, max_pixels) as container:
        stream = _video_stream(container, shown, index)
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
        if 0 < width < min_size[0] or 0 < height < min_size[1]:  # refused before anything is decoded
            raise _too_small(shown, width, height, min_size)
        if not width * height:  # FFmpeg zeroes a size its max_pixels check refused, and logs it
            found = [m for log in logs or () if (m := _TOO_BIG.search(str(log[2])))]
            width, height = (int(found[-1][1]), int(found[-1][2])) if found else (0, 0)
        if width * height > max_pixels:
            raise _read_error(shown, f"its video declares {width}x{height} pixels, more than the limit of "
                                     f"{max_pixels} ({_describe_pixels(max_pixels)})")
        # One decoding thread: one frame is all we need, and the memory limit then measures that frame.
        ctx.thread_type = "NONE"
        ctx.thread_count = 1
        ctx.options = {**ctx.options, "max_pixels": str(max_pixels)}
        try:
            first = next(container.decode(stream), None)
        except MemoryError:
            raise
        except (av.FFmpegError, OSError) as exc:
            raise _read_error(shown, f"cannot decode the first video frame ({_av_reason(exc)})") from None
        if first is None:
            raise _read_error(shown, "the video stream has no decodable frame")
        if first.width < min_size[0] or first.height < min_size[1]:
            raise _too_small(shown, first.width, first.height, min_size)
        if first.width * first.height > max_pixels:  # the decoder's own check makes this unreachable
            raise _read_error(shown, f"its first frame has {first.width}x{first.height} pixels, more than the "
                                     f"limit of {max_pixels}")
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise _read_error(shown, "the video stream has no frame rate")
        fps = Fraction(fps)
        pix_fmt = first.format.name
        duration = None if container.duration is None else container.duration / av.time_base
        video = VideoInfo(
            width=first.width,
            height=first.height,
            fps=fps,
            frames=_frame_count(stream, fps, duration),
            codec=ctx.name,
            pix_fmt=pix_fmt,
            bit_depth=_bits(pix_fmt),
            color=_color_info(stream, first),
        )
        audio = tuple(
            AudioInfo(index=s.index, codec=s.codec_context.name, sample_rate=s.codec_context.sample_rate,
                      channels=s.codec_context.layout.nb_channels)
            for s in container.streams.audio if s.codec_context is not None
        )
        return MediaInfo(path=shown, format_name=container.format.name, duration_seconds=duration,
                         video=video, audio=audio, subtitle_streams=len(container.streams.subtitles),
                         streams=tuple(_describe_stream(s) for s in container.streams), video_index=stream.index)


def _describe_stream(s: Any) -> dict:
    ctx = s.codec_context
    out: dict[str, Any] = {"index": s.index, "type": s.type, "codec": ctx.name if ctx is not None else None}
    if s.type == "video" and ctx is not None:
        out.update(width=ctx.width, height=ctx.height)
    elif s.type == "audio" and ctx is not None:
        out.update(sample_rate=ctx.sample_rate, channels=ctx.layout.nb_channels)
    return out


def _too_small(shown: str, width: int, height: int, min_size: tuple[int, int]) -> MediaError:
    return _read_error(shown, f"its video is {width}x{height} pixels, smaller than the {min_size[0]}x{min_size[1]} "
                              "the restoration stages need")


_TOO_BIG = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count")


def _describe_pixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} megapixels"


def _frame_count(stream: av.video.stream.VideoStream, fps: Fraction, container_seconds: float | None
                 ) -> int | None:
    """Stored frame count, else round(duration x fps) from the stream's or the file's duration."""
    if stream.frames:
        return int(stream.frames)
    seconds = _stream_seconds(stream)
    if seconds is None:
        seconds = container_seconds
    return None if seconds is None else round(seconds * fps)


def _stream_seconds(stream: av.video.stream.VideoStream) -> float | None:
    """The stream's own duration in seconds when the container stores one, else None."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if "DURATION" in stream.metadata:  # Matroska writes the per-stream duration as a tag
        try:
            h, m, s = stream.metadata["DURATION"].split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            return None
    return None


# --- decoding -----------------------------------------------------------------------------


def iter_frames(path: str | os.PathLike, start: int = 0, count: int | None = None,
                depth: int = 8, *, stream: int | None = None,
                on_truncated: Callable[[Shortfall], None] | None = None) -> Iterator[np.ndarray]:
    """Yield decoded frames start .. start+count-1 (all to the end when count is None).

    Frames are counted in decoder output order from 0 (no seeking). Each is an
    (H, W, 3) RGB array, full range: uint8 (0..255) for depth 8, uint16
    (0..65535) for depth 16. RGB sources convert without loss (exact when the
    source depth equals `depth`); Y'CbCr sources use the stream's matrix and
    range (see `_color_info` for defaults). Stops early at the end of the file;
    read to the end (count None), a file whose frames or sound stop short of the
    frame count or durations it declares raises `Truncated` (a MediaError,
    "truncated or damaged", see `_check_complete`) after the frames it did
    decode, unless `on_truncated` is given: it is then called with the shortfall.
    stream: container index of the video stream (default: the first video stream).
    """
    _check_decode_args(path, start, count, depth)
    return _decode(path, start, count, depth, [0], stream=stream, on_truncated=on_truncated)


T = TypeVar("T")


def prefetched(items: Iterator[T], depth: int = 8) -> Iterator[T]:
    """Yield what `items` yields, produced by a thread that runs up to `depth` items ahead (decoding
    overlaps with the consumer's work: PyAV releases the GIL). The producer's exception is raised in
    the consumer, in order; closing the generator early stops the producer."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(("item", item), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(("end", None))
        except BaseException as exc:  # handed to the consumer
            queue.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="reel-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "item":
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                queue.get_nowait()
            except Empty:
                pass
            thread.join(timeout=0.05)


def _check_decode_args(path: str | os.PathLike, start: int, count: int | None, depth: int) -> None:
    if depth not in (8, 16):
        raise ValueError(f"depth must be 8 or 16, got {depth}")
    if start < 0 or (count is not None and count < 0):
        raise ValueError(f"start and count must be >= 0, got start={start}, count={count}")
    _existing_file(path)


def _skipping(container: av.container.InputContainer, stream: av.video.stream.VideoStream, skip: int,
              decoded: list[int]) -> Iterator[av.VideoFrame]:
    """Decoded frames of an intra-only stream with one frame per packet, the first `skip` packets
    passed over undecoded (counted in decoded[0] as frames)."""
    for packet in container.demux(stream):
        if packet.size and decoded[0] < skip:
            if not packet.is_keyframe:
                raise MediaError(f"{packet.stream.container.name!r}: packet {decoded[0]} is not a key frame; "
                                 "the file is not intra-only")
            decoded[0] += 1
            continue
        yield from stream.decode(packet)


def _decode(path: str | os.PathLike, start: int, count: int | None, depth: int,
            decoded: list[int], intra_only: bool = False, stream: int | None = None,
            on_truncated: Callable[[Shortfall], None] | None = None,
            dest: Callable[[int, int], np.ndarray | None] | None = None) -> Iterator[np.ndarray]:
    """The generator behind `iter_frames`; keeps the number of frames decoded so far in decoded[0]
    (with `intra_only`, frames before `start` are counted without being decoded). `dest(height, width)`:
    the array the next frame is converted into (None: a new one)."""
    if count == 0:
        return
    stop = None if count is None else start + count
    index = stream
    with _open_input(path, str(path)) as container:
        stream = _video_stream(container, str(path), index)
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        # A backstop for a stream that grows mid-way: no picture above what probe accepts by default
        # or what the stream declared (whichever is larger).
        ctx.options = {**ctx.options, "max_pixels": str(max(DEFAULT_MAX_PIXELS, ctx.width * ctx.height))}
        color = None
        audio_ends: dict[int, list[float]] = {}  # per audio stream: [last packet end, last packet duration] (s)
        if intra_only and start:
            frames = _skipping(container, stream, start, decoded)
        elif count is None:  # read to the end: the sound's packets are followed too (a cut may lose only sound)
            frames = _video_and_audio(container, stream, audio_ends)
        else:
            frames = container.decode(stream)
        first_time = last_end = None  # seconds: the earliest frame start, the latest frame end
        while stop is None or decoded[0] < stop:
            try:
                frame = next(frames, None)
            except (av.FFmpegError, OSError) as exc:
                raise _read_error(path, f"decoding failed at frame {decoded[0]} ({_av_reason(exc)})") from None
            if frame is None:
                if count is None:
                    shortfall = _check_complete(container, stream, decoded[0], first_time, last_end, audio_ends)
                    if shortfall is not None:
                        if on_truncated is None:
                            raise Truncated(f"cannot read media {str(path)!r}: {shortfall.reason}; it is "
                                            "truncated or damaged", shortfall)
                        on_truncated(shortfall)
                return
            decoded[0] += 1
            if frame.time is not None:
                end = frame.time + _frame_seconds(frame, stream)
                first_time = frame.time if first_time is None else min(first_time, frame.time)
                last_end = end if last_end is None else max(last_end, end)
            if decoded[0] > start:
                color = color or _color_info(stream, frame)
                yield _frame_to_rgb(frame, color, depth, str(path), dest(frame.height, frame.width) if dest else None)


@dataclass(frozen=True)
class Shortfall:
    """What a file cut short lacks, measured against what it declares."""

    frames_missing: int  # video frames (declared count or duration x fps, minus those decoded)
    video_seconds_missing: float
    audio_seconds_missing: float  # the largest shortfall over the audio streams
    reason: str  # one line, for people

    def to_dict(self) -> dict:
        return asdict(self)


class Truncated(MediaError):
    """The file stops short of what it declares; `shortfall` says by how much."""

    def __init__(self, message: str, shortfall: Shortfall) -> None:
        super().__init__(message)
        self.shortfall = shortfall

    def __reduce__(self) -> tuple[Any, ...]:
        return (Truncated, (str(self), self.shortfall))


# Timestamps rounded to milliseconds (Matroska's default scale) put a complete stream's end up to about
# 1 ms off its declared duration (start and duration each rounded); 2 ms covers that.
_ROUNDING_S = 0.002


def _video_and_audio(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                     audio_ends: dict[int, list[float]]) -> Iterator[av.VideoFrame]:
    """Decoded frames of `stream`; the end time of each audio stream's packets noted (not decoded)."""
    audio = [s for s in container.streams.audio if s.codec_context is not None]
    for packet in container.demux(stream, *audio):
        if packet.stream.index == stream.index:
            yield from stream.decode(packet)
        elif packet.size and packet.pts is not None and packet.time_base:
            duration = float((packet.duration or 0) * packet.time_base)
            end = float(packet.pts * packet.time_base) + duration
            seen = audio_ends.setdefault(packet.stream.index, [end, duration])
            if end >= seen[0]:
                seen[:] = [end, duration or seen[1]]


def _check_complete(container: av.container.InputContainer, stream: av.video.stream.VideoStream, decoded: int,
                    first_time: float | None, last_end: float | None,
                    audio_ends: dict[int, list[float]] | None = None) -> Shortfall | None:
    """The shortfall when the frames decoded (or the sound's packets) stop short of what the file declares.

    A file cut short (an interrupted copy or download) often still opens and decodes up to the cut
    without any error from FFmpeg. No tolerance beyond timestamp rounding: the video counts as short
    when its end is at least half a frame plus 2 ms (`_ROUNDING_S`) before its declared end, the sound
    when it is 2 ms short (a last packet can be a few ms long), so one missing frame or packet is
    caught and millisecond rounding is not. Checked against: the frame count in the header (except in QuickTime, whose edit lists
    may hide stored frames), the video stream's own duration (measured from 0 or from the first frame,
    whichever covers more), each audio stream's own duration, and the file's duration (which covers
    the longest stream) against the latest end of all streams.
    """
    audio_ends = audio_ends or {}
    step = _average_step(stream)
    fps = 1 / step if step else 0.0
    reasons: list[str] = []
    frames_missing = 0
    video_missing = audio_missing = 0.0
    stored = int(stream.frames or 0)
    if stored and not container.format.name.startswith("mov") and stored > decoded:
        frames_missing = stored - decoded
        reasons.append(f"the video stops after {decoded} frames but the file declares {stored}")
    covered = None
    if decoded and first_time is not None and last_end is not None:
        covered = max(last_end, last_end - first_time)
    declared = _stream_seconds(stream)
    if declared and declared > 0 and (covered is not None or not decoded):
        gap = declared - (covered or 0.0)
        if gap >= step / 2 + _ROUNDING_S:
            video_missing = gap
            frames_missing = max(frames_missing, round(gap * fps))
            if not reasons:
                reasons.append(f"the video stops after {decoded} frames ({covered or 0:.3f} s) but the file "
                               f"declares {declared:.3f} s")
    for s in container.streams.audio:
        if s.codec_context is None or s.index not in audio_ends and not _stream_seconds(s):
            continue
        end, packet_s = audio_ends.get(s.index, [0.0, 0.0])
        own = _stream_seconds(s)
        if own and own - end >= _ROUNDING_S:
            audio_missing = max(audio_missing, own - end)
            reasons.append(f"audio stream {s.index} stops at {end:.3f} s but the file declares {own:.3f} s")
    total = container.duration / av.time_base if container.duration else None
    ends = [e for e, _ in audio_ends.values()] + ([covered] if covered is not None else [])
    if total and ends and not reasons:
        gap = total - max(ends)
        if gap >= (_ROUNDING_S if audio_ends else step / 2 + _ROUNDING_S):
            if covered is not None and total - covered >= step / 2 + _ROUNDING_S and not audio_ends:
                frames_missing = max(frames_missing, round((total - covered) * fps))
                video_missing = total - covered
            else:
                audio_missing = max(audio_missing, gap)
            reasons.append(f"its streams stop at {max(ends):.3f} s but the file declares {total:.3f} s")
    if not reasons:
        return None
    return Shortfall(frames_missing=int(frames_missing), video_seconds_missing=round(video_missing, 6),
                     audio_seconds_missing=round(audio_missing, 6), reason="; ".join(reasons))


def _average_step(stream: av.video.stream.VideoStream) -> float:
    fps = stream.average_rate or stream.guessed_rate
    return float(1 / fps) if fps else 0.0


def _frame_seconds(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> float:
    """How long a decoded frame lasts: its own duration, else one average frame step."""
    duration, base = getattr(frame, "duration", None), frame.time_base or stream.time_base
    if duration and base:
        return float(duration * base)
    return _average_step(stream)


def read_frames(path: str | os.PathLike, start: int, count: int, depth: int = 8,
                intra_only: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """Frames start .. start+count-1 as one (T, H, W, 3) array (dtype as in `iter_frames`).

    intra_only: the caller knows each packet of the file is one frame decodable on its own (Reel's
    FFV1 mezzanine and segments, written with gop size 1): the frames before `start` are then
    skipped without being decoded. out: a (count, H, W, 3) array of the right dtype to decode into
    (returned), e.g. a slice of a bigger one. Raises MediaError naming the numbers when the file has
    fewer frames.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    _check_decode_args(path, start, count, depth)
    if out is not None and (out.shape[0] != count or out.dtype != (np.uint8 if depth == 8 else np.uint16)):
        raise ValueError(f"out must hold {count} frames of depth {depth}, got {out.shape} {out.dtype}")
    decoded = [0]
    given: list[np.ndarray] = []  # the slot handed to the decoder for the frame being converted

    def dest(height: int, width: int) -> np.ndarray | None:
        nonlocal out
        if out is None:
            out = np.empty((count, height, width, 3), np.uint8 if depth == 8 else np.uint16)
        given[:] = [out[decoded[0] - start - 1]] if out.shape[1:3] == (height, width) else []
        return given[0] if given else None

    for i, frame in enumerate(_decode(path, start, count, depth, decoded, intra_only, dest=dest)):
        if not (given and frame is given[0]):  # not converted in place: the picture changed size
            assert out is not None
            raise _read_error(path, f"frame {start + i} is {frame.shape[1]}x{frame.shape[0]}, not "
                                    f"{out.shape[2]}x{out.shape[1]}")
    if decoded[0] < start + count:
        raise _read_error(path, f"asked for frames {start}..{start + count - 1} but the video has only "
                                f"{decoded[0]} frames")
    assert out is not None
    return out


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames the video stream decodes to (decodes everything: meant for small files)."""
    _existing_file(path)
    with _open_input(path, str(path)) as container:
        stream = _video_stream(container, str(path))
        stream.thread_type = "AUTO"
        try:
            return sum(1 for _ in container.decode(stream))
        except (av.FFmpegError, OSError) as exc:
            raise _read_error(path, f"decoding failed ({_av_reason(exc)})") from None


def _frame_to_rgb(frame: av.VideoFrame, color: ColorInfo, depth: int, shown: str,
                  out: np.ndarray | None = None) -> np.ndarray:
    """A decoded frame as (H, W, 3) RGB of `depth` bits, full range (written into `out` when given)."""
    if frame.format.is_rgb or frame.format.has_palette:
        rgb = _rgb_frame_to_array(frame, depth)
        if out is None:
            return rgb
        out[...] = rgb
        return out
    if color.matrix not in _LUMA_COEFFS:
        raise _read_error(shown, f"unsupported colour matrix {color.matrix!r}")
    return _ycbcr_frame_to_rgb(frame, color, depth, out)


def _rescale(values: np.ndarray, bits: int, depth: int) -> np.ndarray:
    """Full-range integer code values of `bits` bits to `depth` (8 or 16) bits, rounded."""
    dtype = np.uint8 if depth == 8 else np.uint16
    if bits == depth:
        return values.astype(dtype, copy=False)
    if depth == 16 and bits == 8:
        return values.astype(np.uint16) * np.uint16(257)
    scale = ((1 << depth) - 1) / ((1 << bits) - 1)
    return np.rint(values.astype(np.float32) * np.float32(scale)).astype(dtype)


def _rgb_frame_to_array(frame: av.VideoFrame, depth: int) -> np.ndarray:
    """RGB frames of any layout to (H, W, 3); only repacking, no colour maths."""
    bits = _bits(frame.format.name)
    if bits > 8 and frame.format.name in ("gbrp9le", "gbrp10le", "gbrp12le", "gbrp14le", "gbrp16le"):
        values = frame.to_ndarray()
    else:
        bits = 8 if bits <= 8 else 16
        # Same range on both sides: swscale only repacks (bit-exact for 8- and 16-bit sources).
        values = frame.to_ndarray(format="rgb24" if bits == 8 else "rgb48le",
                                  src_color_range="JPEG", dst_color_range="JPEG")
    return _rescale(values, bits, depth)


def _plane_array(plane: av.video.plane.VideoPlane, dtype: type) -> np.ndarray:
    """(height, width) view of one plane, without the line padding."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype).reshape(-1, plane.line_size // item)[: plane.height, : plane.width]


@functools.lru_cache(maxsize=32)
def _upsample_taps(n_out: int, n_in: int, cosited: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation taps from n_in chroma samples to n_out luma positions."""
    factor = -(-n_out // n_in)
    offset = 0.0 if cosited else (factor - 1) / 2
    pos = np.clip((np.arange(n_out, dtype=np.float32) - offset) / factor, 0, n_in - 1)
    i0 = np.minimum(pos.astype(np.intp), max(n_in - 2, 0))
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def _upsample(c: np.ndarray, height: int, width: int) -> np.ndarray:
    """Chroma plane to full size: horizontally co-sited (MPEG-2/H.264 'left'), vertically centred."""
    if c.shape[0] != height:
        i0, i1, w = _upsample_taps(height, c.shape[0], False)
        c = c[i0] * (1 - w)[:, None] + c[i1] * w[:, None]
    if c.shape[1] != width:
        i0, i1, w = _upsample_taps(width, c.shape[1], True)
        c = c[:, i0] * (1 - w) + c[:, i1] * w
    return c


# Rows converted at a time: the float32 temporaries of a strip stay in the CPU's cache (a whole 1080p
# plane's are 8 MB each, which made every step a trip to memory). Every value is computed by the same
# float32 operations in the same order as on the whole frame, so strips change no output bit.
_STRIP_ROWS = 32


def _ycbcr_frame_to_rgb(frame: av.VideoFrame, color: ColorInfo, depth: int,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Planar Y'CbCr (any subsampling, 8..16 bits) to (H, W, 3) RGB, full range, rounded; into `out`
    (an (H, W, 3) uint8/uint16 array as `depth` says) when given."""
    fmt = frame.format
    full = color.range == "pc"
    direct = (fmt.is_planar and not fmt.is_big_endian and len(fmt.components) >= 3
              and [c.plane for c in fmt.components[:3]] == [0, 1, 2])
    if not direct:  # nv12, yuyv422, p010, gray...: repack to planar 4:4:4 (same range: no colour maths)
        swscale_range = "JPEG" if full else "MPEG"
        frame = frame.reformat(format="yuv444p" if _bits(fmt.name) <= 8 else "yuv444p16le",
                               src_color_range=swscale_range, dst_color_range=swscale_range)
    bits = _bits(frame.format.name)
    dtype = np.uint8 if bits <= 8 else np.uint16
    y_plane, cb_plane, cr_plane = (_plane_array(frame.planes[i], dtype) for i in range(3))
    s = float(1 << (bits - 8))
    if full:
        y_off, y_span, c_span = 0.0, float((1 << bits) - 1), float((1 << bits) - 1)
    else:
        y_off, y_span, c_span = 16 * s, 219 * s, 224 * s
    scale = 255.0 if depth == 8 else 65535.0
    height, width = y_plane.shape
    if out is None:
        out = np.empty((height, width, 3), np.uint8 if depth == 8 else np.uint16)
    # Normalise straight to the output scale: Y' in [0, scale], Cb/Cr in [-scale/2, scale/2].
    y_gain, c_gain = np.float32(scale / y_span), np.float32(scale / c_span)
    kr, kb = _LUMA_COEFFS[color.matrix]
    kg = 1 - kr - kb
    r_cr, g_cr = np.float32(2 - 2 * kr), np.float32(2 * kr * (1 - kr) / kg)
    g_cb, b_cb = np.float32(2 * kb * (1 - kb) / kg), np.float32(2 - 2 * kb)
    ch, cw = cb_plane.shape
    rows = _upsample_taps(height, ch, False) if ch != height else None
    cols = _upsample_taps(width, cw, True) if cw != width else None

    def chroma(plane: np.ndarray, r0: int, r1: int) -> np.ndarray:
        """Rows r0..r1 of a chroma plane, normalised and upsampled to full size (as `_upsample`)."""
        if rows is None:
            c = (plane[r0:r1].astype(np.float32) - np.float32(128 * s)) * c_gain
        else:
            i0, i1, w = (a[r0:r1] for a in rows)
            c0 = (plane[i0].astype(np.float32) - np.float32(128 * s)) * c_gain
            c1 = (plane[i1].astype(np.float32) - np.float32(128 * s)) * c_gain
            c = c0 * (1 - w)[:, None] + c1 * w[:, None]
        if cols is not None:
            i0, i1, w = cols
            c = c[:, i0] * (1 - w) + c[:, i1] * w
        return c

    t = np.empty((min(_STRIP_ROWS, height), width), np.float32)
    for r0 in range(0, height, _STRIP_ROWS):
        r1 = min(height, r0 + _STRIP_ROWS)
        y = (y_plane[r0:r1].astype(np.float32) - np.float32(y_off)) * y_gain
        cb, cr = chroma(cb_plane, r0, r1), chroma(cr_plane, r0, r1)
        v = t[: r1 - r0]
        for k, terms in enumerate(((r_cr, cr, None, None), (g_cr, cr, g_cb, cb), (b_cb, cb, None, None))):
            a, p, b, q = terms
            if k == 1:
                np.subtract(y, a * p, out=v)
                v -= b * q
            else:
                np.add(y, a * p, out=v)
            np.rint(v, out=v)
            np.clip(v, 0, scale, out=v)
            out[r0:r1, :, k] = v
    return out


# --- encoding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _VideoCodec:
    """How one kind of output is encoded."""

    encoder: str
    pix_fmt: str
    container_format: str
    profile: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    intra_only: bool = True  # gop size 1
    threads: str = "SLICE"  # FFmpeg's thread_type for the encoder (thread count: automatic)


_FFV1_OPTIONS = (("level", "3"), ("slicecrc", "1"))
# FFV1 has no 8-bit gbrp encoder in FFmpeg; bgr0 is its 8-bit RGB format (also lossless).
_FFV1_8 = _VideoCodec("ffv1", "bgr0", "matroska", options=_FFV1_OPTIONS)
_FFV1_16 = _VideoCodec("ffv1", "gbrp16le", "matroska", options=_FFV1_OPTIONS)
_MASTER_CODECS = {
    "ffv1": _FFV1_16,
    # frame threads: prores_aw has no slice threading (1 thread and SLICE both ran 51 fps at 1080p, FRAME 95;
    # prores_ks 18 at best), and every frame is coded on its own, so the packets are the same bytes
    "prores": _VideoCodec("prores_aw", "yuv422p10le", "mov", profile="HQ", threads="FRAME"),
    "hevc": _VideoCodec("libx265", "yuv420p10le", "matroska", profile="Main 10",
                        options=(("crf", "12"), ("x265-params", "log-level=error")), intra_only=False),
}


@dataclass(frozen=True)
class _ColorTags:
    """FFmpeg enum values tagged on the stream and on every frame."""

    matrix: int
    primaries: int
    transfer: int
    range: int

    @classmethod
    def for_output(cls, pix_fmt: str, color: ColorInfo | None) -> _ColorTags:
        """RGB output: matrix gbr, range pc; Y'CbCr output: BT.709 matrix, range tv.

        Primaries and transfer come from `color` (BT.709 when None or unknown).
        """
        primaries = _PRIMARIES_IDS.get(color.primaries, 1) if color else 1
        transfer = _TRANSFER_IDS.get(color.transfer, 1) if color else 1
        if av.VideoFormat(pix_fmt).is_rgb:
            return cls(_MATRIX_IDS["gbr"], primaries, transfer, _RANGE_IDS["pc"])
        return cls(_MATRIX_IDS["bt709"], primaries, transfer, _RANGE_IDS["tv"])

    def apply(self, target: av.VideoFrame | av.video.codeccontext.VideoCodecContext) -> None:
        # prores_aw reads the tags from the frames, not from the codec context.
        target.colorspace = self.matrix
        target.color_primaries = self.primaries
        target.color_trc = self.transfer
        target.color_range = self.range


def _add_video_stream(container: av.container.OutputContainer, codec: _VideoCodec, width: int, height: int,
                      fps: Fraction, tags: _ColorTags) -> av.video.stream.VideoStream:
    """A threaded video stream (the codec's `threads` type) with codec time_base 1/fps (frame pts = frame index)."""
    stream = container.add_stream(codec.encoder, rate=fps)
    ctx = stream.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = width, height, codec.pix_fmt
    ctx.time_base = 1 / fps
    ctx.framerate = fps
    if codec.intra_only:
        ctx.gop_size = 1
    ctx.thread_type = codec.threads
    ctx.thread_count = 0
    if codec.profile:
        ctx.profile = codec.profile
    ctx.options = dict(codec.options)
    tags.apply(ctx)
    return stream


def _check_frame(frame: np.ndarray, height: int, width: int, dtype: type, what: str) -> None:
    if not isinstance(frame, np.ndarray) or frame.shape != (height, width, 3) or frame.dtype != dtype:
        got = (f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__)
        raise ValueError(f"{what} must be ({height}, {width}, 3) {np.dtype(dtype).name}, got {got}")


def _video_frame(rgb: np.ndarray, pix_fmt: str, tags: _ColorTags, pts: int) -> av.VideoFrame:
    """An (H, W, 3) uint8/uint16 full-range RGB array as a frame of `pix_fmt`."""
    if pix_fmt == "bgr0":
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
            format="bgr0", src_color_range="JPEG", dst_color_range="JPEG")
    elif pix_fmt == "gbrp16le":
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="gbrp16le")
    else:
        frame = _rgb_to_ycbcr_frame(rgb, pix_fmt)
    tags.apply(frame)
    frame.pts = pts
    return frame


def _rgb_to_ycbcr_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """(H, W, 3) uint16 RGB to a 10-bit BT.709 limited-range yuv422p10le/yuv420p10le frame.

    Chroma is filtered [1, 2, 1]/4 horizontally (co-sited samples) and averaged
    in row pairs for 4:2:0 (vertically centred), matching `_upsample`. Converted in strips of
    `_STRIP_ROWS` rows (an even number, so 4:2:0 row pairs stay whole): the same float32 operations
    per value as on the whole frame.
    """
    height, width = rgb.shape[:2]
    kr, kb = _LUMA_COEFFS["bt709"]
    wr, wg, wb = np.float32(kr), np.float32(1 - kr - kb), np.float32(kb)
    to_unit, cb_gain, cr_gain = np.float32(1 / 65535), np.float32(1 / (2 - 2 * kb)), np.float32(1 / (2 - 2 * kr))
    frame = av.VideoFrame(width, height, pix_fmt)
    planes = [_plane_array(plane, np.uint16) for plane in frame.planes]
    v420 = pix_fmt == "yuv420p10le"
    padded = np.empty((min(_STRIP_ROWS, height), width + 2), np.float32)  # a strip's chroma, edge-padded
    for r0 in range(0, height, _STRIP_ROWS):
        r1 = min(height, r0 + _STRIP_ROWS)
        x = rgb[r0:r1].astype(np.float32) * to_unit
        y = wr * x[..., 0] + wg * x[..., 1] + wb * x[..., 2]
        cb = (x[..., 2] - y) * cb_gain
        cr = (x[..., 0] - y) * cr_gain
        planes[0][r0:r1] = np.clip(np.rint(64 + 876 * y), 0, 1023)
        p = padded[: r1 - r0]
        for plane, c in zip(planes[1:], (cb, cr), strict=True):
            p[:, 1:-1], p[:, 0], p[:, -1] = c, c[:, 0], c[:, -1]  # np.pad(c, ((0, 0), (1, 1)), "edge")
            c = (p[:, 0:-2:2] + 2 * p[:, 1:-1:2] + p[:, 2::2]) * np.float32(0.25)
            if v420:
                c = (c[0::2] + c[1::2]) * np.float32(0.5)
                plane[r0 // 2:(r1 + 1) // 2] = np.clip(np.rint(512 + 896 * c), 0, 1023)
            else:
                plane[r0:r1] = np.clip(np.rint(512 + 896 * c), 0, 1023)
    return frame


@contextlib.contextmanager
def _new_output(path: str | os.PathLike, container_format: str, what: str
                ) -> Iterator[av.container.OutputContainer]:
    """An output container, closed at the end; on any error closed and deleted.

    FFmpeg and file errors become MediaError("cannot write <what> <path>: <reason>");
    other exceptions pass through unchanged.
    """
    try:
        container = av.open(str(path), "w", format=container_format, options=BITEXACT)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot write {what} {str(path)!r}: {_av_reason(exc)}") from None
    try:
        yield container
        container.close()
    except BaseException as exc:
        with contextlib.suppress(av.FFmpegError, OSError):
            container.close()
        Path(path).unlink(missing_ok=True)
        if isinstance(exc, av.FFmpegError | OSError):
            raise MediaError(f"cannot write {what} {str(path)!r}: {_av_reason(exc)}") from None
        raise


class FFV1Writer:
    """Writes RGB frames losslessly: FFV1 (level 3, slice CRCs, intra-only) in Matroska.

    depth 8 takes (H, W, 3) or (T, H, W, 3) uint8 and stores bgr0 (FFmpeg's
    FFV1 has no 8-bit gbrp); depth 16 takes uint16 and stores gbrp16le. Codec
    time_base is 1/fps, pts the frame index. Tags: range pc, matrix gbr,
    primaries/transfer from `color` (BT.709 by default). Used as a context
    manager, an exception inside the block deletes the partial file.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction, depth: int = 8,
                 color: ColorInfo | None = None) -> None:
        if depth not in (8, 16):
            raise ValueError(f"depth must be 8 or 16, got {depth}")
        if width < 1 or height < 1:
            raise ValueError(f"width and height must be >= 1, got {width}x{height}")
        fps = Fraction(fps)
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.width, self.height, self.depth = width, height, depth
        codec = _FFV1_8 if depth == 8 else _FFV1_16
        self._pix_fmt = codec.pix_fmt
        self._tags = _ColorTags.for_output(codec.pix_fmt, color)
        try:
            self._container = av.open(str(path), "w", format=codec.container_format, options=BITEXACT)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot write {str(path)!r}: {_av_reason(exc)}") from None
        self._stream = _add_video_stream(self._container, codec, width, height, fps, self._tags)
        self._frames_written = 0
        self._closed = False

    @property
    def frames_written(self) -> int:
        return self._frames_written

    def write(self, frames: np.ndarray) -> None:
        """Append one (H, W, 3) frame or a (T, H, W, 3) batch; ValueError on wrong shape or dtype."""
        if self._closed:
            raise ValueError(f"FFV1Writer for {str(self.path)!r} is closed")
        dtype = np.uint8 if self.depth == 8 else np.uint16
        if not isinstance(frames, np.ndarray) or frames.ndim not in (3, 4):
            raise ValueError(f"frames must be an (H, W, 3) or (T, H, W, 3) {np.dtype(dtype).name} array")
        batch = frames[None] if frames.ndim == 3 else frames
        for frame in batch:
            _check_frame(frame, self.height, self.width, dtype, "frames")
        try:
            for frame in batch:
                video_frame = _video_frame(frame, self._pix_fmt, self._tags, self._frames_written)
                self._container.mux(self._stream.encode(video_frame))
                self._frames_written += 1
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot write {str(self.path)!r}: {_av_reason(exc)}") from None

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise MediaError(f"cannot write {str(self.path)!r}: {_av_reason(exc)}") from None
        self._release()

    def abort(self) -> None:
        """Stop writing and delete the partial file."""
        self._closed = True
        if self._container is not None:
            with contextlib.suppress(av.FFmpegError, OSError):
                self._container.close()
        self._release()
        self.path.unlink(missing_ok=True)

    def _release(self) -> None:
        # A closed PyAV container keeps its encoder (FFV1: megabytes of per-slice state) for as long as
        # the Python objects live; a caller holding many finished writers (ingest) must not hold those.
        self._container = self._stream = None

    def __enter__(self) -> FFV1Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_film(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction,
               audio: tuple[np.ndarray, int] | None = None) -> int:
    """Write a synthetic test film: FFV1 8-bit RGB (bgr0) video + FLAC audio in Matroska.

    frames: (H, W, 3) uint8 RGB arrays, all the same size.
    audio:  (samples, sample_rate) with samples an int16 array (channels, n), 1..8 channels.
    Returns the number of frames written; the file is deleted if anything fails.
    """
    fps = Fraction(fps)
    if audio is not None:
        samples, sample_rate = audio
        if not (isinstance(samples, np.ndarray) and samples.dtype == np.int16 and samples.ndim == 2
                and 1 <= samples.shape[0] <= 8):
            raise ValueError("audio samples must be an int16 array of shape (channels 1..8, samples)")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("write_film needs at least one frame")
    height, width = first.shape[:2]
    tags = _ColorTags.for_output(_FFV1_8.pix_fmt, None)
    with _new_output(path, "matroska", "film") as container:
        video = _add_video_stream(container, _FFV1_8, width, height, fps, tags)
        audio_writer = _FlacWriter(container, *audio) if audio is not None else None
        count = 0
        for frame in _chain(first, frames):
            _check_frame(frame, height, width, np.uint8, f"frame {count}")
            container.mux(video.encode(_video_frame(frame, _FFV1_8.pix_fmt, tags, count)))
            count += 1
            if audio_writer:
                audio_writer.write_until(count / fps)
        container.mux(video.encode(None))
        if audio_writer:
            audio_writer.finish()
    return count


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


class _FlacWriter:
    """Encodes an int16 (channels, n) array to a FLAC stream in chunks, following the video's time."""

    _CHUNK = 4096

    def __init__(self, container: av.container.OutputContainer, samples: np.ndarray, sample_rate: int):
        self._container = container
        self._samples = samples
        self._rate = int(sample_rate)
        self._stream = container.add_stream("flac", rate=self._rate)
        self._stream.layout = _AUDIO_LAYOUTS[samples.shape[0]]
        self._stream.format = "s16"
        self._pos = 0

    def write_until(self, seconds: Fraction | None) -> None:
        """Encode whole chunks starting before `seconds` (everything when None)."""
        total = self._samples.shape[1]
        limit = total if seconds is None else min(total, int(seconds * self._rate))
        while self._pos < limit:
            chunk = self._samples[:, self._pos : self._pos + self._CHUNK]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T).reshape(1, -1), format="s16",
                                               layout=self._stream.layout.name)
            frame.sample_rate = self._rate
            frame.pts = self._pos
            frame.time_base = Fraction(1, self._rate)
            self._container.mux(self._stream.encode(frame))
            self._pos += chunk.shape[1]

    def finish(self) -> None:
        self.write_until(None)
        self._container.mux(self._stream.encode(None))


# --- masters ------------------------------------------------------------------------------


def encode_master(frames: Iterable[np.ndarray], out_path: str | os.PathLike, *, width: int, height: int,
                  fps: Fraction, codec: str, audio_source: str | os.PathLike | None = None,
                  audio_offset: Fraction = Fraction(0)) -> int:
    """Encode a delivery/archival master from (H, W, 3) uint16 full-range RGB frames.

    codec "ffv1":   Matroska, FFV1 gbrp16le (lossless).
    codec "prores": QuickTime, ProRes 422 HQ (prores_aw) yuv422p10le, BT.709, limited range;
                    an odd width is padded to even by repeating the last column.
    codec "hevc":   Matroska, libx265 Main10 yuv420p10le (crf 12), BT.709, limited range.
    The container format is fixed by the codec, whatever `out_path`'s extension.

    Every audio stream of `audio_source` is copied packet for packet; where the
    container refuses a codec (FLAC in QuickTime) it is decoded and stored as
    PCM (pcm_s16le for 16-bit sources, else pcm_s24le) in that container only.
    Matroska always gets a bit-identical copy. Returns the frame count. On any
    failure `out_path` is deleted; FFmpeg and file errors become MediaError,
    bad frames ValueError, and errors from the `frames` iterable pass through.
    audio_offset: seconds the sound starts after the first frame (a separate WAV placed by its BWF
    time reference or a setting; see `_CopyRoute`).
    """
    if codec not in _MASTER_CODECS:
        raise ValueError(f"codec must be one of {sorted(_MASTER_CODECS)}, got {codec!r}")
    spec = _MASTER_CODECS[codec]
    fps = Fraction(fps)
    # chroma-subsampled codecs need even sizes: an odd-sized film's delivery master is padded by
    # repeating its last column/row (the archival FFV1 master keeps the exact size)
    pad_w = int(width % 2 and spec.pix_fmt in ("yuv422p10le", "yuv420p10le"))
    pad_h = int(height % 2 and spec.pix_fmt == "yuv420p10le")
    if audio_source is not None:
        _existing_file(audio_source)
    tags = _ColorTags.for_output(spec.pix_fmt, None)
    with contextlib.ExitStack() as cleanup:
        container = cleanup.enter_context(_new_output(out_path, spec.container_format, f"{codec} master"))
        video = _add_video_stream(container, spec, width + pad_w, height + pad_h, fps, tags)
        audio = None
        if audio_source is not None:
            audio = cleanup.enter_context(contextlib.closing(_AudioCarrier(audio_source, container, audio_offset)))
        count = 0
        for frame in frames:
            _check_frame(frame, height, width, np.uint16, f"frame {count}")
            if pad_w or pad_h:
                frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            container.mux(video.encode(_video_frame(frame, spec.pix_fmt, tags, count)))
            count += 1
            if audio:
                audio.mux_until(count / fps)
        if count == 0:
            raise ValueError("encode_master got no frames")
        container.mux(video.encode(None))
        if audio:
            audio.finish()
    return count


def master_part_codec(codec: str) -> bool:
    """Whether masters of `codec` can be made from parts encoded separately (intra-only codecs)."""
    if codec not in _MASTER_CODECS:
        raise ValueError(f"codec must be one of {sorted(_MASTER_CODECS)}, got {codec!r}")
    return _MASTER_CODECS[codec].intra_only


def join_master(parts: Iterable[str | os.PathLike], out_path: str | os.PathLike, *, fps: Fraction, codec: str,
                audio_source: str | os.PathLike | None = None, audio_offset: Fraction = Fraction(0)) -> int:
    """Join master parts into one master by copying their packets: no decoding, no re-encoding.

    Each part is a run of consecutive frames encoded with `encode_master(..., codec=codec)` (or, for
    "ffv1", a 16-bit `FFV1Writer` file: the same encoder settings). The codec is intra-only (every
    packet is a key frame), so the joined packets are exactly those of one encode of all the frames.
    Timestamps are renumbered (frame i at i / fps) and the stream is tagged as `encode_master` tags
    it; audio as in `encode_master`. Every part must have the first part's codec, size, pixel format
    and codec header; else MediaError, naming the part. Returns the frame count; on any failure
    `out_path` is deleted.
    """
    if not master_part_codec(codec):
        raise ValueError(f"{codec} masters cannot be joined from parts (not intra-only)")
    spec = _MASTER_CODECS[codec]
    parts = [Path(p) for p in parts]
    if not parts:
        raise ValueError("join_master got no parts")
    fps = Fraction(fps)
    if audio_source is not None:
        _existing_file(audio_source)
    for p in parts:
        _existing_file(p)
    tags = _ColorTags.for_output(spec.pix_fmt, None)
    with contextlib.ExitStack() as cleanup:
        container = cleanup.enter_context(_new_output(out_path, spec.container_format, f"{codec} master"))
        video = None
        first: tuple[Any, ...] | None = None
        audio = None
        count = 0
        for part in parts:
            with _open_input(part, str(part)) as source:
                stream = _video_stream(source, str(part))
                ctx = stream.codec_context
                header = (ctx.name, ctx.width, ctx.height, ctx.format.name if ctx.format else None,
                          bytes(ctx.extradata or b""))
                if first is None:
                    if ctx.name != spec.encoder.split("_")[0] and ctx.name != spec.encoder:
                        raise MediaError(f"{str(part)!r} is {ctx.name}, not a {codec} master part")
                    first = header
                    video = _add_copied_video(container, stream, fps)
                    tags.apply(video.codec_context)
                    if audio_source is not None:
                        audio = cleanup.enter_context(contextlib.closing(
                            _AudioCarrier(audio_source, container, audio_offset)))
                elif header != first:
                    raise MediaError(f"{str(part)!r} was encoded differently from {str(parts[0])!r} "
                                     f"({header[:4]} vs {first[:4]}): the parts cannot be joined")
                for packet in source.demux(stream):
                    if not packet.size:
                        continue
                    if not packet.is_keyframe:
                        raise MediaError(f"{str(part)!r} has a frame that is not a key frame: not joinable")
                    _mux_as_frame(container, video, packet, count, fps)
                    count += 1
                    if audio:
                        audio.mux_until(count / fps)
        if audio:
            audio.finish()
    return count


def _add_copied_video(container: av.container.OutputContainer, template: Any, fps: Fraction) -> Any:
    """An output video stream for `template`'s packets, copied as they are, at `fps` frames a second."""
    video = container.add_stream_from_template(template)
    video.codec_context.framerate = fps  # written as the track's frame duration
    video.time_base = 1 / fps
    return video


def _mux_as_frame(container: av.container.OutputContainer, video: Any, packet: av.Packet, index: int,
                  fps: Fraction) -> None:
    """Mux a copied packet as frame `index` of `video` (timestamps renumbered: frame i at i / fps)."""
    packet.stream = video
    packet.time_base = 1 / fps  # muxing rescales to the stream's time base
    packet.pts = packet.dts = index
    packet.duration = 1
    container.mux(packet)


# Codecs that code every frame on its own (FFV1 can be written with a GOP, so packets are still checked).
INTRA_CODECS = frozenset({"ffv1", "prores"})


class NotIntraOnly(MediaError):
    """The source's video cannot be cut by copying packets: not an intra-only codec, or a packet that is
    not a key frame on its own."""


def copy_intra_chunks(path: str | os.PathLike, out_dir: str | os.PathLike, frames_per_chunk: int, *,
                      fps: Fraction, stream: int | None = None) -> Iterator[tuple[Path, int]]:
    """Cut the video stream of an intra-only file into Matroska files of `frames_per_chunk` frames by
    copying its packets: nothing is decoded or encoded, so file i decodes to exactly the source's frames
    i*n .. i*n+n-1 (the codec, its header and the colour tags travel with the packets).

    Yields (path, packets) as each file `out_dir/00000.mkv`, ... is finished. Timestamps are renumbered
    (packet i of a file at i / fps). Raises NotIntraOnly for a codec outside INTRA_CODECS or at the
    first packet that is not a key frame or that the demuxer marks to discard or as corrupt; the
    caller then encodes its chunks instead. Files already yielded stay; a partial one is deleted.
    """
    if frames_per_chunk < 1:
        raise ValueError(f"frames_per_chunk must be >= 1, got {frames_per_chunk}")
    fps = Fraction(fps)
    out_dir = Path(out_dir)
    index = stream
    with _open_input(path, str(path)) as source:
        stream = _video_stream(source, str(path), index)
        if stream.codec_context.name not in INTRA_CODECS:
            raise NotIntraOnly(f"{str(path)!r}: {stream.codec_context.name} is not an intra-only codec")
        packets = (p for p in source.demux(stream) if p.size)
        index = 0
        while True:
            first = next(packets, None)
            if first is None:
                return
            target = out_dir / f"{index:05d}.mkv"
            count = 0
            with _new_output(target, "matroska", "mezzanine chunk") as container:
                video = _add_copied_video(container, stream, fps)
                packet: av.Packet | None = first
                while packet is not None:
                    if not packet.is_keyframe or packet.is_discard or packet.is_corrupt:
                        raise NotIntraOnly(f"{str(path)!r}: packet {index * frames_per_chunk + count} is not a "
                                           "key frame decodable on its own")
                    _mux_as_frame(container, video, packet, count, fps)
                    count += 1
                    packet = next(packets, None) if count < frames_per_chunk else None
            yield target, count
            index += 1


def _can_copy(container_format: str, stream: av.audio.stream.AudioStream) -> bool:
    """Whether `container_format` accepts this stream's packets as they are.

    avformat_query_codec is not enough (it says yes to FLAC in QuickTime, and
    the header write then fails with "flac only supported in MP4"), so this
    writes a header into memory.
    """
    try:
        with av.open(io.BytesIO(), "w", format=container_format) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (av.FFmpegError, ValueError):
        return False
    return True


class _AudioCarrier:
    """Moves every audio stream of a source file into an output container, interleaved with video."""

    def __init__(self, source: str | os.PathLike, output: av.container.OutputContainer, offset: Fraction = Fraction(0)):
        """offset: seconds the sound starts after the first video frame (negative: before it; the sound
        before the first frame is then cut, sample-exactly for PCM, whole packets otherwise)."""
        self._source = _open_input(source, str(source))
        self._routes: dict[int, _CopyRoute | _PcmRoute] = {}
        self._offset = Fraction(offset)
        try:
            for stream in self._source.streams.audio:
                if _can_copy(output.format.name, stream):
                    self._routes[stream.index] = _CopyRoute(output, stream, self._offset)
                elif self._offset:
                    raise MediaError(f"cannot place audio stream {stream.index} ({stream.codec_context.name}) of "
                                     f"{str(source)!r} at an offset in {output.format.name}: only copied sound can be")
                elif output.format.name == "matroska":
                    raise MediaError(f"cannot copy audio stream {stream.index} ({stream.codec_context.name})"
                                     f" of {str(source)!r} into Matroska")
                else:
                    self._routes[stream.index] = _PcmRoute(output, stream)
        except BaseException:
            self._source.close()
            raise
        self._packets = self._source.demux(*self._source.streams.audio) if self._routes else iter(())
        self._pending = next(self._packets, None)

    def mux_until(self, seconds: Fraction | None) -> None:
        """Mux source packets that start before `seconds` (all remaining when None)."""
        while self._pending is not None:
            packet = self._pending
            if seconds is not None and packet.pts is not None and \
                    packet.pts * packet.time_base + self._offset >= seconds:
                return
            self._routes[packet.stream.index].handle(packet)
            self._pending = next(self._packets, None)

    def finish(self) -> None:
        self.mux_until(None)

    def close(self) -> None:
        self._source.close()


def pcm_frame_bytes(ctx: Any) -> int:
    """Bytes of one sample frame (all channels) of a PCM codec as stored (pcm_s24le: 3 per channel), 0 for
    codecs that are not plain PCM."""
    m = re.fullmatch(r"pcm_[suf](8|16|24|32|64)(le|be)?(_planar)?", ctx.name or "")
    if m is None or m.group(3):
        return 0
    return int(m.group(1)) // 8 * int(ctx.layout.nb_channels)


class _CopyRoute:
    """Packets go out unchanged (PyAV rebases pts/dts from the source stream's time base), moved by
    `offset` seconds. Sound that would start before 0 is cut: PCM packets sample-exactly (the rest of
    the packet's bytes go out unchanged), other codecs by whole packets."""

    def __init__(self, output: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                 offset: Fraction = Fraction(0)):
        self._output = output
        self._out = output.add_stream_from_template(stream)
        ctx = stream.codec_context
        self._pcm = ctx.name.startswith("pcm_")
        self._frame_bytes = pcm_frame_bytes(ctx) if self._pcm else 0
        self._rate = ctx.sample_rate
        self._shift = None if not offset else offset  # seconds
        self.cut_samples = 0

    def handle(self, packet: av.Packet) -> None:
        if not packet.size:  # skip the demuxer's empty end-of-stream packet
            return
        if self._shift is not None and packet.pts is not None and packet.time_base:
            base = packet.time_base
            start = packet.pts * base + self._shift  # seconds, on the output's clock
            if start < 0:
                if not (self._pcm and self._frame_bytes and self._rate):
                    self.cut_samples += packet.duration or 0
                    return
                skip = int(-start * self._rate + Fraction(1, 2))  # whole samples before 0
                data = bytes(packet)[skip * self._frame_bytes:]
                self.cut_samples += min(skip, packet.size // self._frame_bytes)
                if not data:
                    return
                moved = av.Packet(data)
                moved.time_base = base
                moved.pts = moved.dts = 0
                moved.duration = round(len(data) // self._frame_bytes * Fraction(1, self._rate) / base)
                packet = moved
            else:
                shift = round(self._shift / base)
                packet.pts = packet.pts + shift
                if packet.dts is not None:
                    packet.dts = packet.dts + shift
        packet.stream = self._out
        self._output.mux(packet)


class _PcmRoute:
    """Packets are decoded and re-encoded as PCM: pcm_s16le for <= 16-bit sources, else pcm_s24le."""

    def __init__(self, output: av.container.OutputContainer, stream: av.audio.stream.AudioStream):
        ctx = stream.codec_context
        sixteen = ctx.format.name in ("u8", "u8p", "s16", "s16p")
        encoder, sample_format = ("pcm_s16le", "s16") if sixteen else ("pcm_s24le", "s32")
        self._output = output
        self._in = stream
        self._rate = ctx.sample_rate
        self._out = output.add_stream(encoder, rate=self._rate)
        self._out.layout = ctx.layout.name
        self._out.format = sample_format
        self._resampler = av.AudioResampler(format=sample_format, layout=ctx.layout.name, rate=self._rate)
        self._next_pts: int | None = None

    def handle(self, packet: av.Packet) -> None:
        end = not packet.size  # the demuxer's end-of-stream packet: flush everything
        for frame in self._in.decode(None if end else packet):
            if self._next_pts is None:
                self._next_pts = round(frame.time * self._rate) if frame.time is not None else 0
            self._encode(self._resampler.resample(frame))
        if end:
            self._encode(self._resampler.resample(None))
            self._output.mux(self._out.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts = self._next_pts
            frame.time_base = Fraction(1, self._rate)
            self._next_pts += frame.samples
            self._output.mux(self._out.encode(frame))


def audio_packet_digests(path: str | os.PathLike) -> list[str]:
    """sha256 (hex) per audio stream, in stream order, over its packets' bytes in file order."""
    _existing_file(path)
    with _open_input(path, str(path)) as container:
        streams = list(container.streams.audio)
        digests = {s.index: hashlib.sha256() for s in streams}
        if streams:
            for packet in container.demux(*streams):
                if packet.size:
                    digests[packet.stream.index].update(bytes(packet))
        return [digests[s.index].hexdigest() for s in streams]


def frame_times(path: str | os.PathLike) -> list[float]:
    """Presentation time (seconds) of each frame of the first video stream, in decoder output order.

    Frame i here is frame i of `iter_frames`. Read from the packets' own timestamps (pts, else dts;
    demuxing only, no decoding), sorted into presentation order, relative to the first frame (frame
    0 is at 0.0): right for variable frame rates, where index / fps is not. When some packet carries
    no timestamp at all, the frames are decoded and their own (best-effort) timestamps used instead.
    """
    _existing_file(path)
    with _open_input(path, str(path)) as container:
        stream = _video_stream(container, str(path))
        base = stream.time_base
        stamps: list[int] = []
        complete = True
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    complete = False
                    break
                stamps.append(ts)
        except (av.FFmpegError, OSError) as exc:
            raise _read_error(path, f"demuxing failed ({_av_reason(exc)})") from None
    if not complete:
        with _open_input(path, str(path)) as container:
            stream = _video_stream(container, str(path))
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or 1
            stamps, base = [], Fraction(1, 1) if stream.time_base is None else stream.time_base
            try:
                for i, frame in enumerate(container.decode(stream)):
                    ts = frame.pts if frame.pts is not None else getattr(frame, "dts", None)
                    stamps.append(ts if ts is not None else round(i / (Fraction(rate) * base)))
            except (av.FFmpegError, OSError) as exc:
                raise _read_error(path, f"decoding failed ({_av_reason(exc)})") from None
    if not stamps:
        return []
    stamps.sort()
    first = stamps[0]
    return [float((ts - first) * base) for ts in stamps]


# --- child-process entry ------------------------------------------------------------------


def _main(argv: list[str]) -> int:
    """`python -m infra.media _probe FILE SHOWN [MAX_PIXELS MAX_MEMORY_MB]`.

    Prints one JSON line {"info": ...} or {"error": ...}; exits with _EXIT_NO_MEMORY when an
    allocation failed.
    """
    if len(argv) not in (3, 5, 7) or argv[0] != "_probe":
        print("usage: python -m infra.media _probe FILE SHOWN_NAME [MAX_PIXELS MAX_MEMORY_MB [STREAM MINWxMINH]]",
              file=sys.stderr)
        return 2
    max_pixels, max_memory_mb = (int(argv[3]), int(argv[4])) if len(argv) >= 5 else (DEFAULT_MAX_PIXELS, None)
    index = int(argv[5]) if len(argv) == 7 and argv[5] else None
    min_size = tuple(int(x) for x in argv[6].split("x")) if len(argv) == 7 else (1, 1)
    if max_memory_mb is not None:
        _limit_address_space(max_memory_mb)
    # FFmpeg's log on (kept, not printed): errors then carry FFmpeg's own words, and the refusal of a
    # container format names the format.
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs:
            reply = {"info": _probe_in_process(argv[1], argv[2], max_pixels, logs, index, min_size).to_dict()}
    except MemoryError:
        return _EXIT_NO_MEMORY
    except MediaError as exc:
        reply = {"error": str(exc)}
    print(json.dumps(reply))
    return 0


def _limit_address_space(extra_mb: int) -> None:
    """Cap this process's address space at its current size plus `extra_mb` (where the OS allows)."""
    try:
        import resource
    except ImportError:  # not on this OS
        return
    try:
        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        current = 0  # no /proc: the limit is then absolute
    limit = current + extra_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
