"""The `Clip` value: a run of frames from one source, checked on construction.

Working space (stated once, used everywhere in `models/`):
RGB, ITU-R BT.709 primaries and transfer (display-referred, gamma-encoded,
not linear light), full range, float32 in [0, 1]. Media code in `infra/`
converts from the source's matrix/range into this space on decode and back
on encode, so stages never see Y'CbCr or limited-range code values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class ColorInfo:
    """Where the frames came from, kept for provenance and for encoding back.

    `bit_depth` is the source's bits per component (8, 10, 12 or 16); it decides
    the precision the mezzanine and masters keep. The other fields use FFmpeg's
    names ("bt709", "bt470bg", "smpte170m", ...; range "tv" or "pc").
    """

    bit_depth: int = 8
    matrix: str = "bt709"
    primaries: str = "bt709"
    transfer: str = "bt709"
    range: str = "pc"

    def __post_init__(self) -> None:
        if self.bit_depth not in (8, 10, 12, 16):
            raise ValueError(f"bit_depth must be 8, 10, 12 or 16, got {self.bit_depth}")
        if self.range not in ("tv", "pc"):
            raise ValueError(f"range must be 'tv' or 'pc', got {self.range!r}")


@dataclass(frozen=True)
class Clip:
    """Frames of one shot (or part of one), with timing and colour.

    frames:      (T, H, W, 3) float32, RGB in the working space, values in [0, 1].
    fps:         frames per second as an exact fraction.
    first_frame: index, in the source's decoded-frame order, of frames[0].
    color:       the source's colour description.
    """

    frames: np.ndarray
    fps: Fraction
    first_frame: int = 0
    color: ColorInfo = field(default_factory=ColorInfo)

    def __post_init__(self) -> None:
        f = self.frames
        if not isinstance(f, np.ndarray):
            raise TypeError(f"Clip.frames must be a numpy array, got {type(f).__name__}")
        if f.ndim != 4 or f.shape[-1] != 3:
            raise ValueError(f"Clip.frames must have shape (T, H, W, 3), got {f.shape}")
        if f.dtype != np.float32:
            raise ValueError(f"Clip.frames must be float32, got {f.dtype} (use Clip.from_uint)")
        if f.shape[0] < 1 or f.shape[1] < 1 or f.shape[2] < 1:
            raise ValueError(f"Clip.frames must not be empty, got {f.shape}")
        if not f.flags.c_contiguous:  # e.g. planar Y'CbCr decoded and stacked: OpenCV wants rows of pixels
            object.__setattr__(self, "frames", np.ascontiguousarray(f))
        if not isinstance(self.fps, Fraction):
            object.__setattr__(self, "fps", Fraction(self.fps))
        if self.fps <= 0:
            raise ValueError(f"Clip.fps must be positive, got {self.fps}")
        if self.first_frame < 0:
            raise ValueError(f"Clip.first_frame must be >= 0, got {self.first_frame}")

    # --- shape helpers -------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def with_frames(self, frames: np.ndarray) -> Clip:
        """A new clip with other frames (same timing and colour): stages return this."""
        return replace(self, frames=frames)

    def slice(self, start: int, stop: int) -> Clip:
        """Frames [start, stop) of this clip, relative to frames[0]."""
        if not 0 <= start < stop <= self.num_frames:
            raise ValueError(f"slice [{start}, {stop}) outside clip of {self.num_frames} frames")
        return replace(self, frames=self.frames[start:stop], first_frame=self.first_frame + start)

    # --- integer conversion ---------------------------------------------------
    @classmethod
    def from_uint(cls, frames: np.ndarray, fps: Fraction, first_frame: int = 0,
                  color: ColorInfo | None = None) -> Clip:
        """Build from (T, H, W, 3) uint8 or uint16 RGB (full-scale code values)."""
        if frames.dtype == np.uint8:
            scale = 255.0
        elif frames.dtype == np.uint16:
            scale = 65535.0
        else:
            raise ValueError(f"from_uint takes uint8 or uint16 frames, got {frames.dtype}")
        out = np.empty(frames.shape, np.float32)
        for src, dst in zip(frames, out, strict=True):  # frame by frame: no piece-sized temporary
            np.divide(src, np.float32(scale), out=dst, dtype=np.float32)
        return cls(out, Fraction(fps), first_frame, color or ColorInfo(bit_depth=8 if frames.dtype == np.uint8 else 16))

    def to_uint(self, dtype: type = np.uint16) -> np.ndarray:
        """(T, H, W, 3) uint8/uint16 code values, clipped and rounded."""
        return to_uint(self.frames, dtype)


def to_uint(frames: np.ndarray, dtype: type = np.uint16) -> np.ndarray:
    """Float frames in [0, 1] to uint8 or uint16 code values (clipped, rounded)."""
    if dtype is np.uint8:
        scale = 255.0
    elif dtype is np.uint16:
        scale = 65535.0
    else:
        raise ValueError(f"dtype must be numpy.uint8 or numpy.uint16, got {dtype}")
    if frames.ndim < 3 or frames.size == 0:
        return np.clip(np.rint(frames * scale), 0, scale).astype(dtype)
    out = np.empty(frames.shape, dtype)
    # frame by frame through one float32 buffer: a piece of 1080p frames made three temporaries of its
    # own size (1.2 GB each for 48 frames), and the page faults cost more than the arithmetic
    flat = frames[None] if frames.ndim == 3 else frames.reshape(-1, *frames.shape[-3:])
    dst = out.reshape(flat.shape)
    buf = np.empty(flat.shape[1:], np.result_type(frames.dtype, scale))  # as frames * scale would be
    for src, d in zip(flat, dst, strict=True):
        np.multiply(src, scale, out=buf)
        np.rint(buf, out=buf)
        np.clip(buf, 0, scale, out=buf)
        d[...] = buf
    return out


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.709 luma Y' of RGB frames (..., 3) -> (...), same dtype family (float32)."""
    w = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return frames.astype(np.float32, copy=False) @ w
