"""A media file's pictures as the shot detector takes them, decoded through `infra.media`'s confined open.

Y'CbCr pictures are read on their luma plane as decoded (no RGB conversion: several times faster than
`iter_frames` on HD, and what the detector keeps of a frame is luma anyway), packed 8-bit RGB is
weighed in place; anything else is converted to RGB by PyAV. Used by `reel shots` and `reel stage`
(`infra.pipeline.file`); the flow's ingest and shot-score tasks score RGB frames they decode anyway.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

# The confined open and the stream choice every decode in infra.media uses (file protocol only, the
# accepted container formats, no QuickTime data references; a video stream with codec parameters).
from infra.media import DEFAULT_MAX_PIXELS, MediaError, _existing_file, _open_input, _video_stream
from models.shots import FrameFeatures, ShotDetector

_PACKED_RGB = {"rgb24", "bgr24", "rgba", "bgra", "argb", "abgr", "rgb0", "bgr0", "0rgb", "0bgr"}


@dataclass
class DecodedTimes:
    """The decoded frames' own timestamps (filled while `picture_features` runs)."""

    pts: list[int | None] = field(default_factory=list)
    time_base: Fraction = Fraction(1, 1)

    def seconds(self) -> list[float] | None:
        """Each decoded frame's time relative to the first, in presentation order (None when a frame had
        no timestamp)."""
        if not self.pts or any(p is None for p in self.pts):
            return None
        stamps = [int(p) for p in self.pts if p is not None]
        first = min(stamps)
        return sorted(float((p - first) * self.time_base) for p in stamps)


def picture_features(path: str | os.PathLike, detector: ShotDetector, times: DecodedTimes,
                     stream: int | None = None) -> Iterator[FrameFeatures]:
    """The detector's features of each decoded picture of the video stream (container index `stream`,
    default the first), in decoder output order; their timestamps go into `times`. A decoding error is a
    MediaError naming the frame."""
    _existing_file(path)
    shown = str(path)
    with _open_input(path, shown) as container:
        video = _video_stream(container, shown, stream)
        video.thread_type = "AUTO"
        ctx = video.codec_context
        ctx.options = {**ctx.options, "max_pixels": str(max(DEFAULT_MAX_PIXELS, ctx.width * ctx.height))}
        times.time_base = video.time_base or Fraction(1, 1)
        try:
            for frame in container.decode(video):
                times.pts.append(frame.pts)
                yield _features(frame, detector)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot read media {shown!r}: decoding failed at frame {len(times.pts)} ({exc})"
                             ) from None


def _features(frame: av.VideoFrame, detector: ShotDetector) -> FrameFeatures:
    name = frame.format.name
    plane = frame.planes[0]
    if name.startswith(("yuv", "nv12", "nv21")) and not name.endswith("be"):  # the luma plane as decoded
        bits = frame.format.components[0].bits
        y = np.frombuffer(memoryview(plane), np.uint8 if bits <= 8 else np.uint16).reshape(plane.height, -1)
        y = y[:, : plane.width]
        if name.startswith("yuvj") or frame.color_range == 2:  # full range
            return detector.features(y, 1.0 / ((1 << bits) - 1))
        lo, span = 16 << (bits - 8), 219 << (bits - 8)
        return detector.features(y, 1.0 / span, -lo / span)
    order = name[:3] if name.endswith("24") else name[:4]
    if name in _PACKED_RGB and set("rgb") <= set(order):  # packed 8-bit RGB: weigh the channels in place
        weights = [0.0] * len(order)
        for ch, k in zip("rgb", (0.2126, 0.7152, 0.0722), strict=True):
            weights[order.index(ch)] = k
        px = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, -1)[:, : plane.width * len(order)]
        return detector.features(px.reshape(plane.height, plane.width, len(order)), weights=weights)
    return detector.features(frame.to_ndarray(format="rgb24"))
