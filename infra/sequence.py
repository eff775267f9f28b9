"""Film scans as numbered image files: list a sequence safely, read a frame, write frames.

A scanner (Scanity, ARRISCAN, Lasergraphics, Cintel) writes one image per frame: DPX (8/10/12/16-bit,
packed or filled, either byte order, RGB or luma), TIFF (8/16-bit), OpenEXR (half/float) or PNG,
named like `reel1.0086400.dpx`. This module is the one place Reel touches such files. Pixels are
read and written by OpenImageIO (`import OpenImageIO as oiio`); nothing here parses pixel data by
hand. The only bytes read directly are the DPX file and image-element headers' sizes and offsets,
checked against the file's real size before OpenImageIO allocates anything (OpenImageIO reads a DPX
whose data offset points past the end without complaint, as zeros or garbage).

API (stable: the artist handoff/takeback of issue 23 builds on it)

* `list_sequence(source, roots=None)` -> `Sequence`: a folder (`SCANS/`) or a pattern
  (`SCANS/reel1.%07d.dpx`, `SCANS/reel1.#######.dpx`, `%d` for unpadded numbers). Frames are the
  regular files the pattern or the folder's one numbered run names, in frame-number order; gaps are
  listed (`Sequence.missing`), two files with the same number (`f.001.dpx`, `f.0001.dpx`) are an
  error, as is a file whose real path (symlinks resolved) lies outside the folder or outside `roots`,
  a pattern with `..`, or a folder holding more than one numbered run. Nothing is opened.
* `read_header(path, max_pixels=...)` -> `FrameInfo`: size, channels, sample type and bits, transfer
  (DPX `Printing density` / `Logarithmic` -> "log"), byte order, packing, frame rate and timecode
  from the header where the format has them. Refuses what Reel cannot read (another format behind
  the extension, 2 or 5+ channels, deep or multi-part EXR, pictures over `max_pixels`) and a DPX
  whose header sizes/offsets do not fit the file.
* `read_frame(path, expect=None, max_pixels=...)` -> `(pixels, FrameInfo)`: (H, W, C) uint16 for
  integer formats (full scale: code * 65535 / (2^bits - 1), so 10-bit code values come back exactly
  with `codes_from_uint16`) or float32 for half/float EXR. With `expect` (the sequence's first
  frame's `FrameInfo`), a frame of another size, channel count, sample type or bit depth is an error
  naming the file, found from the header before any pixel is read. A truncated file is an error
  naming the file.
* `iter_sequence(seq)`: (frame, pixels) in order, each frame checked against the first's layout.
* `rgb(pixels)`: (H, W, 3) from luma (repeated) or RGBA (alpha dropped).
* `FrameFormat(kind, bits, ...)` + `write_frame(path, pixels, fmt)`: one file, written to a temp name
  beside it and renamed (never a half-written frame under the final name). `SequenceWriter(folder,
  stem, fmt)` names frames `<stem>.<number:07d>.<ext>` and returns their paths.

Errors are `SequenceError` (a `MediaError`, so a ValueError) with one line naming the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from infra.media import DEFAULT_MAX_PIXELS, MediaError

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "EXTENSIONS",
    "FORMATS",
    "FrameFormat",
    "FrameInfo",
    "Sequence",
    "SequenceError",
    "SequenceFrame",
    "SequenceWriter",
    "codes_from_uint16",
    "is_sequence_source",
    "iter_sequence",
    "list_sequence",
    "parse_timecode",
    "read_frame",
    "read_header",
    "rgb",
    "uint16_from_codes",
    "write_frame",
]

# file extension (lower case) -> the OpenImageIO plugin that must read it
EXTENSIONS = {"dpx": "dpx", "tif": "tiff", "tiff": "tiff", "exr": "openexr", "png": "png"}
FORMATS = ("dpx", "tiff", "exr", "png")  # what `FrameFormat.kind` may name
_KIND_EXT = {"dpx": "dpx", "tiff": "tif", "exr": "exr", "png": "png"}
DEFAULT_MAX_FRAMES = 2_000_000  # a day of film at 24 fps: more files than that is not one reel
_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+")
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)\.(?P<ext>[A-Za-z0-9]+)$")
_TIMECODE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})[:;](\d{2})$")
_DPX_LOG = {"printing density", "logarithmic"}


class SequenceError(MediaError):
    """An image sequence cannot be listed, read or written; the message is one line naming the file."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# --- listing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceFrame:
    """One file of a sequence: its frame number (from the name), real path, name and size."""

    number: int
    path: Path
    name: str
    size: int


@dataclass(frozen=True)
class Sequence:
    """The files of one numbered image sequence, in frame-number order.

    folder:  the folder's real path (symlinks resolved); every frame lies in it.
    pattern: printf-style name of the frames (`reel1.%07d.dpx`, `%d` when unpadded), for messages.
    frames:  the files found; `missing` the numbers between the first and last that have no file.
    """

    folder: Path
    pattern: str
    ext: str
    frames: tuple[SequenceFrame, ...]
    missing: tuple[int, ...] = ()

    @property
    def first(self) -> int:
        return self.frames[0].number

    @property
    def last(self) -> int:
        return self.frames[-1].number

    @property
    def span(self) -> int:
        """Frames from the first number to the last, gaps included."""
        return self.last - self.first + 1

    @property
    def shown(self) -> str:
        return str(self.folder / self.pattern)

    def __len__(self) -> int:
        return len(self.frames)


def is_sequence_source(source: str | os.PathLike) -> bool:
    """Whether a local source names an image sequence: a folder, or a file name with a frame-number
    pattern (`%07d`, `%d`, `####`). Looks at the name and (for folders) the file system only."""
    text = os.fspath(source)
    if "://" in text:
        return False
    name = os.path.basename(text.rstrip("/\\"))
    if (_PRINTF.search(name) or "#" in name) and name.rsplit(".", 1)[-1].lower() in EXTENSIONS:
        return True  # (a video file named "take#1.mkv" or "100%done.mov" is a file)
    try:
        return stat.S_ISDIR(os.stat(text).st_mode)
    except (OSError, ValueError):
        return text.endswith(("/", os.sep))


def _pattern_regex(name: str) -> tuple[re.Pattern[str], str, str]:
    """A file-name pattern as (regex with one `digits` group, printf form, extension)."""
    printf = list(_PRINTF.finditer(name))
    hashes = list(_HASHES.finditer(name))
    if len(printf) + len(hashes) != 1:
        raise SequenceError(f"sequence pattern {name!r} must hold exactly one frame number (%07d, %d or ####)")
    if printf:
        m = printf[0]
        width = int(m.group(2) or 0)
        if m.group(2) and not m.group(1) and width > 1:
            raise SequenceError(f"sequence pattern {name!r}: use %0{width}d for zero-padded numbers")
    else:
        m = hashes[0]
        width = len(m.group(0))
    before, after = name[: m.start()], name[m.end():]
    # zero-padded to `width` digits (more only for numbers that need them); unpadded: no leading zero
    digits = rf"(?P<digits>\d{{{width}}}|[1-9]\d{{{width},}})" if width > 1 else r"(?P<digits>0|[1-9]\d*)"
    regex = re.compile(re.escape(before) + digits + re.escape(after) + r"\Z")
    ext = after.rsplit(".", 1)[-1].lower() if "." in after else ""
    printf_name = before + (f"%0{width}d" if width > 1 else "%d") + after
    return regex, printf_name, ext


def _real_folder(folder: Path, shown: str, roots: list[Path] | None, exists: bool = True) -> Path:
    if roots:  # outside the roots is refused whether the folder exists or not (nothing probed out there)
        try:
            loose = folder.resolve(strict=False)
        except (OSError, RuntimeError) as exc:
            raise SequenceError(f"sequence {shown}: cannot resolve its folder ({getattr(exc, 'strerror', None) or exc})"
                                ) from None
        if not any(loose.is_relative_to(r) for r in roots):
            raise SequenceError(f"sequence {shown} is outside the allowed source roots (REEL_SOURCE_ROOTS)")
    if not exists:
        return folder
    try:
        real = folder.resolve(strict=True)
    except FileNotFoundError:
        raise SequenceError(f"sequence {shown}: no such folder") from None
    except (OSError, RuntimeError) as exc:
        raise SequenceError(f"sequence {shown}: cannot resolve its folder ({getattr(exc, 'strerror', None) or exc})"
                            ) from None
    if not real.is_dir():
        raise SequenceError(f"sequence {shown}: {folder} is not a folder")
    if roots and not any(real.is_relative_to(r) for r in roots):
        raise SequenceError(f"sequence {shown} is outside the allowed source roots (REEL_SOURCE_ROOTS)")
    return real


def list_sequence(source: str | os.PathLike, *, roots: Iterable[str | os.PathLike] | None = None,
                  max_frames: int = DEFAULT_MAX_FRAMES) -> Sequence:
    """The frames a folder or pattern names (see the module docstring). Opens no file.

    roots: folders the sequence must lie under (REEL_SOURCE_ROOTS; symlinks resolved first); a frame
    whose real path leaves the sequence's folder is refused whatever the roots.
    """
    text = os.fspath(source)
    shown = repr(text if len(text) <= 200 else text[:200] + "...")
    if not text or "\x00" in text or any(ord(c) < 32 for c in text):
        raise SequenceError(f"sequence {shown}: empty, or holds control characters")
    root_paths = [Path(r).expanduser().resolve() for r in roots or ()]
    given = Path(text)
    pattern_name = None
    if not text.endswith(("/", os.sep)) and (_PRINTF.search(given.name) or "#" in given.name):
        pattern_name = given.name
        folder = given.parent
    else:
        folder = given
    if ".." in given.parts:
        _real_folder(folder, shown, root_paths, exists=False)  # outside the roots says so first
        raise SequenceError(f"sequence {shown}: '..' is not allowed in a sequence path")
    folder_real = _real_folder(folder, shown, root_paths)
    if pattern_name is not None:
        regex, printf_name, ext = _pattern_regex(pattern_name)
        if ext not in EXTENSIONS:
            raise SequenceError(f"sequence {shown}: .{ext or '?'} files are not read (Reel reads "
                                f"{', '.join('.' + e for e in EXTENSIONS)})")
        found = _scan(folder_real, shown, lambda n: (m := regex.match(n)) and m.group("digits"), max_frames)
    else:
        found, printf_name, ext = _scan_folder(folder_real, shown, max_frames)
    frames = _checked(found, folder_real, shown, root_paths)
    if not frames:
        raise SequenceError(f"sequence {shown}: no frame files found")
    numbers = [f.number for f in frames]
    have = set(numbers)
    missing = tuple(n for n in range(numbers[0], numbers[-1] + 1) if n not in have)
    if len(missing) > max_frames:
        raise SequenceError(f"sequence {shown}: frame numbers {numbers[0]}..{numbers[-1]} leave {len(missing)} "
                            "frames missing; is this one sequence?")
    return Sequence(folder=folder_real, pattern=printf_name, ext=ext, frames=tuple(frames), missing=missing)


def _scan(folder: Path, shown: str, digits_of: Any, max_frames: int) -> list[tuple[str, str]]:
    """(name, digits) of the entries whose names `digits_of` accepts."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                digits = digits_of(entry.name)
                if digits:
                    found.append((entry.name, digits))
                    if len(found) > max_frames:
                        raise SequenceError(f"sequence {shown}: more than {max_frames} frame files")
    except OSError as exc:
        raise SequenceError(f"sequence {shown}: cannot list its folder ({exc.strerror or exc})") from None
    return found


def _scan_folder(folder: Path, shown: str, max_frames: int) -> tuple[list[tuple[str, str]], str, str]:
    """The one numbered run of image files in a folder: (name, digits) pairs, printf name, extension."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    count = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                m = _NUMBERED.match(entry.name)
                if m is None or entry.name.startswith(".") or m.group("ext").lower() not in EXTENSIONS:
                    continue  # the sound, notes, checksums, hidden files: not frames
                groups.setdefault((m.group("prefix"), m.group("ext")), []).append((entry.name, m.group("digits")))
                count += 1
                if count > max_frames:
                    raise SequenceError(f"sequence {shown}: more than {max_frames} frame files")
    except OSError as exc:
        raise SequenceError(f"sequence {shown}: cannot list its folder ({exc.strerror or exc})") from None
    if not groups:
        raise SequenceError(f"sequence {shown}: the directory holds no numbered "
                            f"{'/'.join('.' + e for e in EXTENSIONS)} files (a directory is read as an image "
                            "sequence)")
    if len(groups) > 1:
        runs = sorted(groups.items(), key=lambda kv: -len(kv[1]))
        listed = ", ".join(f"{p}####.{e} ({len(v)} files)" for (p, e), v in runs[:4])
        raise SequenceError(f"sequence {shown}: the folder holds {len(groups)} numbered runs ({listed}); "
                            "name one with a pattern such as DIR/reel1.%07d.dpx")
    (prefix, ext), found = next(iter(groups.items()))
    widths = {len(d) for _, d in found}
    width = min(widths)
    padded = width > 1 and all(len(d) == width or not d.startswith("0") for _, d in found)
    printf_name = prefix + (f"%0{width}d" if padded else "%d") + "." + ext
    return found, printf_name, ext.lower()


def _checked(found: list[tuple[str, str]], folder: Path, shown: str, roots: list[Path]) -> list[SequenceFrame]:
    """SequenceFrames for the names found, in number order: regular files inside the folder (and the roots)."""
    by_number: dict[int, str] = {}
    for name, digits in found:
        number = int(digits)
        if number in by_number:
            a, b = sorted((by_number[number], name))
            raise SequenceError(f"sequence {shown}: frame {number} is there twice ({a!r} and {b!r})")
        by_number[number] = name
    frames = []
    for number in sorted(by_number):
        name = by_number[number]
        path = folder / name
        try:
            real = path.resolve(strict=True)
            st = os.stat(real)
        except (OSError, RuntimeError) as exc:
            raise SequenceError(f"sequence {shown}: frame {name!r} cannot be read "
                                f"({getattr(exc, 'strerror', None) or exc})") from None
        if real.parent != folder:
            raise SequenceError(f"sequence {shown}: frame {name!r} is a link to a file outside the sequence's "
                                f"folder ({real}); frames must lie in the folder itself")
        if roots and not any(real.is_relative_to(r) for r in roots):
            raise SequenceError(f"sequence {shown}: frame {name!r} is outside the allowed source roots "
                                "(REEL_SOURCE_ROOTS)")
        if not stat.S_ISREG(st.st_mode):
            raise SequenceError(f"sequence {shown}: {name!r} is not a regular file")
        frames.append(SequenceFrame(number=number, path=real, name=name, size=int(st.st_size)))
    return frames


# --- headers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameInfo:
    """What one frame's header says.

    format:     OpenImageIO's plugin name: dpx, tiff, openexr, png.
    sample:     uint8, uint16, half or float (the file's storage type).
    bits:       bits per sample (DPX 8/10/12/16, TIFF/PNG 8/16, EXR 16 half or 32 float).
    transfer:   "log" (DPX printing density / logarithmic), "linear" (EXR) or "display"
                (code values meant for a display: TIFF, PNG, DPX video/linear/unspecified).
    dpx_transfer, byte_order ("big"/"little", DPX), packing (DPX "Packed" / "Filled, method A|B").
    fps:        frame rate from the header (DPX film/TV header, EXR FramesPerSecond), else None.
    timecode:   HH:MM:SS:FF from the header (DPX, EXR smpte:TimeCode), else None.
    """

    width: int
    height: int
    channels: int
    channel_names: tuple[str, ...]
    format: str
    sample: Literal["uint8", "uint16", "half", "float"]
    bits: int
    transfer: Literal["log", "linear", "display"]
    dpx_transfer: str | None = None
    byte_order: str | None = None
    packing: str | None = None
    fps: Fraction | None = None
    timecode: str | None = None

    @property
    def is_float(self) -> bool:
        return self.sample in ("half", "float")

    def layout(self) -> tuple[int, int, int, str, int]:
        """What every frame of one sequence must share: width, height, channels, sample type, bits."""
        return (self.width, self.height, self.channels, self.sample, self.bits)

    def describe(self) -> str:
        kind = {"uint8": "", "uint16": "", "half": " half", "float": " float"}[self.sample]
        chans = {1: "luma", 3: "RGB", 4: "RGBA"}.get(self.channels, f"{self.channels}-channel")
        return f"{self.width}x{self.height} {self.bits}-bit{kind} {chans}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["channel_names"] = list(self.channel_names)
        data["fps"] = None if self.fps is None else f"{self.fps.numerator}/{self.fps.denominator}"
        return data


def _oiio() -> Any:
    import OpenImageIO as oiio

    return oiio


def _shown(path: str | os.PathLike) -> str:
    return repr(os.fspath(path))


def _file_size(path: str | os.PathLike) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SequenceError(f"frame {_shown(path)}: no such file") from None
    except (OSError, ValueError) as exc:
        raise SequenceError(f"frame {_shown(path)}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SequenceError(f"frame {_shown(path)}: not a regular file")
    if st.st_size == 0:
        raise SequenceError(f"frame {_shown(path)}: the file is empty")
    return int(st.st_size)


def _dpx_check(path: str | os.PathLike, size: int) -> str:
    """Check a DPX file's header sizes and offsets against the file's real size; its byte order.

    Reads the first 2048 bytes: magic (0), offset to image data (4), file size (16), element count
    (770), pixels per line (772), lines (776), element 1's descriptor (800), bit size (803), packing
    (804), encoding (806) and data offset (808). The data the header promises (at its densest packing)
    must fit between the data offset and the end of the file: a truncated file, or an offset past the
    end, is refused here, before anything is allocated.
    """
    shown = _shown(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
    except OSError as exc:
        raise SequenceError(f"frame {shown}: {exc.strerror or exc}") from None
    magic = head[:4]
    if magic == b"SDPX":
        order, endian = ">", "big"
    elif magic == b"XPDS":
        order, endian = "<", "little"
    else:
        raise SequenceError(f"frame {shown}: not a DPX file (magic {magic!r})")
    if len(head) < 812:
        raise SequenceError(f"frame {shown}: {len(head)} bytes is too short for a DPX header (truncated?)")
    data_offset, = struct.unpack_from(order + "I", head, 4)
    elements, = struct.unpack_from(order + "H", head, 770)
    width, height = struct.unpack_from(order + "II", head, 772)
    descriptor, _, _, bits = struct.unpack_from("BBBB", head, 800)
    encoding, = struct.unpack_from(order + "H", head, 806)
    element_offset, = struct.unpack_from(order + "I", head, 808)
    if not 1 <= elements <= 8:
        raise SequenceError(f"frame {shown}: the DPX header declares {elements} image elements (hostile or damaged)")
    if encoding not in (0, 0xFFFF):
        raise SequenceError(f"frame {shown}: run-length encoded DPX is not read (encoding {encoding})")
    if bits not in (1, 8, 10, 12, 16, 32, 64):
        raise SequenceError(f"frame {shown}: the DPX header declares {bits}-bit samples (hostile or damaged)")
    offset = element_offset if element_offset not in (0, 0xFFFFFFFF) else data_offset
    if not 768 <= offset < size:
        raise SequenceError(f"frame {shown}: the DPX header puts the image data at byte {offset}, "
                            f"outside the file's {size} bytes (hostile, damaged or truncated)")
    channels = {50: 3, 51: 4, 52: 4, 6: 1, 1: 1, 2: 1, 3: 1, 4: 1, 8: 1}.get(descriptor, 1)
    need = height * math.ceil(width * channels * bits / 32) * 4  # the densest packing: bits back to back
    if offset + need > size:
        raise SequenceError(f"frame {shown}: the DPX header declares {width}x{height} {bits}-bit pixels "
                            f"({need} bytes from byte {offset}) but the file has {size} bytes; it is "
                            "truncated or its header is hostile")
    return endian


def _timecode_text(value: Any) -> str | None:
    """HH:MM:SS:FF from OpenImageIO's smpte:TimeCode ((BCD time, user bits) or a string)."""
    if isinstance(value, str):
        return value if _TIMECODE.match(value) else None
    try:
        bcd = int(value[0])
    except (TypeError, ValueError, IndexError):
        return None
    if bcd in (0xFFFFFFFF, 0):
        return None if bcd == 0xFFFFFFFF else "00:00:00:00"
    parts = [(bcd >> s) & 0xFF for s in (24, 16, 8, 0)]
    masks = (0x3F, 0x7F, 0x7F, 0x3F)  # drop the flag bits (drop frame, colour frame, field)
    values = []
    for p, mask in zip(parts, masks, strict=True):
        p &= mask
        tens, ones = p >> 4, p & 0xF
        if ones > 9:
            return None
        values.append(tens * 10 + ones)
    return "{:02d}:{:02d}:{:02d}:{:02d}".format(*values)


def parse_timecode(text: str) -> tuple[int, int, int, int]:
    """HH:MM:SS:FF -> (h, m, s, f)."""
    m = _TIMECODE.match(text)
    if not m:
        raise ValueError(f"timecode must be HH:MM:SS:FF, got {text!r}")
    return tuple(int(x) for x in m.groups())  # type: ignore[return-value]


def _timecode_bcd(text: str) -> int:
    value = 0
    for part in parse_timecode(text):
        value = (value << 8) | ((part // 10) << 4) | (part % 10)
    return value


_KNOWN_RATES = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(48000, 1001))


def _rate(value: Any) -> Fraction | None:
    """A header's frame rate as an exact fraction (23.976 -> 24000/1001), None when unset or absurd."""
    try:
        if isinstance(value, tuple | list):
            rate = Fraction(int(value[0]), int(value[1])) if int(value[1]) else None
        else:
            f = float(value)
            if not math.isfinite(f) or f <= 0:
                return None
            rate = next((r for r in _KNOWN_RATES if abs(float(r) - f) < 5e-4), None) or \
                Fraction(f).limit_denominator(1001)
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    if rate is None or not 1 <= rate <= 1000:
        return None
    return rate


def read_header(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> FrameInfo:
    """The frame's header as a `FrameInfo` (no pixel read); SequenceError for anything Reel does not read."""
    info, inp = _open(path, max_pixels)
    inp.close()
    return info


def _open(path: str | os.PathLike, max_pixels: int) -> tuple[FrameInfo, Any]:
    """Check the file and its header, open it with OpenImageIO: (info, open ImageInput)."""
    oiio = _oiio()
    shown = _shown(path)
    size = _file_size(path)
    ext = os.fspath(path).rsplit(".", 1)[-1].lower()
    plugin = EXTENSIONS.get(ext)
    if plugin is None:
        raise SequenceError(f"frame {shown}: .{ext} files are not read (Reel reads "
                            f"{', '.join('.' + e for e in EXTENSIONS)})")
    byte_order = _dpx_check(path, size) if plugin == "dpx" else None
    inp = oiio.ImageInput.open(os.fspath(path))
    if inp is None:
        reason = " ".join(oiio.geterror().split()) or "unreadable"
        raise SequenceError(f"frame {shown}: OpenImageIO cannot read it ({reason[:300]})")
    try:
        if inp.format_name() != plugin:
            raise SequenceError(f"frame {shown}: the file is {inp.format_name()}, not the .{ext} its name says")
        spec = inp.spec()
        width, height, channels = int(spec.width), int(spec.height), int(spec.nchannels)
        if width < 1 or height < 1:
            raise SequenceError(f"frame {shown}: the header declares {width}x{height} pixels")
        if width * height > max_pixels:
            raise SequenceError(f"frame {shown}: the header declares {width}x{height} pixels, more than the limit "
                                f"of {max_pixels} (REEL_MAX_SOURCE_PIXELS)")
        if channels not in (1, 3, 4):
            raise SequenceError(f"frame {shown}: {channels} channels ({', '.join(spec.channelnames)}); Reel reads "
                                "luma, RGB or RGBA frames")
        if spec.deep:
            raise SequenceError(f"frame {shown}: deep images are not read")
        if spec.get_int_attribute("oiio:subimages", 1) > 1 and plugin == "openexr":
            raise SequenceError(f"frame {shown}: multi-part EXR files are not read (one picture per file)")
        basetype = str(spec.format).lower()
        sample = {"uint8": "uint8", "uint16": "uint16", "half": "half", "float": "float"}.get(basetype)
        if sample is None:
            raise SequenceError(f"frame {shown}: {basetype} samples are not read (8/16-bit integer, half or float)")
        bits = int(spec.get_int_attribute("oiio:BitsPerSample", 0)) or {"uint8": 8, "uint16": 16, "half": 16,
                                                                          "float": 32}[sample]
        if sample == "uint16" and not 9 <= bits <= 16 or sample == "uint8" and bits > 8:
            bits = 16 if sample == "uint16" else 8
        attrs = {a.name: a.value for a in spec.extra_attribs}
        dpx_transfer = attrs.get("dpx:Transfer") if plugin == "dpx" else None
        if plugin == "openexr":
            transfer = "linear"
        elif plugin == "dpx" and str(dpx_transfer or "").lower() in _DPX_LOG:
            transfer = "log"
        else:
            transfer = "display"
        fps = None
        for key in ("FramesPerSecond", "dpx:FrameRate", "dpx:TemporalFrameRate"):
            if key in attrs and (fps := _rate(attrs[key])) is not None:
                break
        timecode = _timecode_text(attrs.get("dpx:TimeCode") or attrs.get("smpte:TimeCode")) \
            if ("dpx:TimeCode" in attrs or "smpte:TimeCode" in attrs) else None
        info = FrameInfo(width=width, height=height, channels=channels,
                         channel_names=tuple(str(c) for c in spec.channelnames), format=plugin,
                         sample=sample,  # type: ignore[arg-type]
                         bits=bits, transfer=transfer,  # type: ignore[arg-type]
                         dpx_transfer=str(dpx_transfer) if dpx_transfer is not None else None,
                         byte_order=byte_order, packing=str(attrs["dpx:Packing"]) if "dpx:Packing" in attrs else None,
                         fps=fps, timecode=timecode)
    except BaseException:
        inp.close()
        raise
    return info, inp


def read_frame(path: str | os.PathLike, expect: FrameInfo | None = None, *,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, FrameInfo]:
    """The frame's pixels, (H, W, C): uint16 full scale for integer files, float32 for half/float EXR.

    expect: the layout every frame of the sequence must share (the first frame's FrameInfo): a
    frame that differs in size, channels, sample type or bit depth is refused from its header.
    """
    info, inp = _open(path, max_pixels)
    try:
        if expect is not None and info.layout() != expect.layout():
            raise SequenceError(f"frame {_shown(path)} is {info.describe()} but the sequence is {expect.describe()}")
        pixels = inp.read_image(0, 0, 0, info.channels, "float" if info.is_float else "uint16")
        if pixels is None or not isinstance(pixels, np.ndarray):
            reason = " ".join((inp.geterror() or "no pixels").split())
            raise SequenceError(f"frame {_shown(path)}: cannot read its pixels ({reason[:300]}); it is truncated "
                                "or damaged")
    finally:
        inp.close()
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape != (info.height, info.width, info.channels):
        raise SequenceError(f"frame {_shown(path)}: read {pixels.shape}, expected "
                            f"{(info.height, info.width, info.channels)}")
    return pixels, info


def rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) from (H, W, 1) luma (repeated into R, G and B) or (H, W, 4) RGBA (alpha dropped)."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] == 3:
        return pixels
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[..., :3])
    raise ValueError(f"expected 1, 3 or 4 channels, got {pixels.shape}")


def codes_from_uint16(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Full-scale uint16 values back to `bits`-bit code values (exact for what `read_frame` returns)."""
    if bits == 16:
        return pixels.astype(np.uint16, copy=False)
    scale = ((1 << bits) - 1) / 65535.0
    return np.rint(pixels.astype(np.float64) * scale).astype(np.uint16)


def uint16_from_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """`bits`-bit code values as full-scale uint16 (code * 65535 / (2^bits - 1), rounded)."""
    if bits == 16:
        return codes.astype(np.uint16, copy=False)
    scale = 65535.0 / ((1 << bits) - 1)
    return np.rint(codes.astype(np.float64) * scale).astype(np.uint16)


# --- writing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameFormat:
    """How frames are written.

    kind:       dpx, tiff, exr or png.
    bits:       dpx 8/10/12/16, tiff and png 8/16, exr 16 (half) or 32 (float).
    transfer:   DPX transfer characteristic written in the header ("Printing density" for log scans,
                "ITU-R 709-4" for display-referred video, "Linear", "User defined", ...).
    byte_order: DPX "big" (SMPTE 268M's usual) or "little".
    packing:    DPX "filled" (method A: 10-bit samples three to a 32-bit word) or "packed" (bits back
                to back). OpenImageIO writes 12-bit DPX packed whatever is asked (it reads both).
    fps:        written into the header (DPX film header frame rate, EXR FramesPerSecond).
    compression: TIFF/EXR compression (OpenImageIO's names: "zip", "none", "piz", ...).
    """

    kind: Literal["dpx", "tiff", "exr", "png"]
    bits: int = 16
    transfer: str | None = None
    byte_order: Literal["big", "little"] = "big"
    packing: Literal["filled", "packed"] = "filled"
    fps: Fraction | None = None
    compression: str | None = None

    def __post_init__(self) -> None:
        allowed = {"dpx": (8, 10, 12, 16), "tiff": (8, 16), "png": (8, 16), "exr": (16, 32)}
        if self.kind not in allowed:
            raise ValueError(f"frame format must be one of {', '.join(FORMATS)}, got {self.kind!r}")
        if self.bits not in allowed[self.kind]:
            raise ValueError(f"{self.kind} frames are written with {', '.join(map(str, allowed[self.kind]))} bits, "
                             f"not {self.bits}")

    @property
    def ext(self) -> str:
        return _KIND_EXT[self.kind]

    @property
    def sample(self) -> str:
        if self.kind == "exr":
            return "half" if self.bits == 16 else "float"
        return "uint8" if self.bits == 8 else "uint16"


def _spec(width: int, height: int, channels: int, fmt: FrameFormat, timecode: str | None) -> Any:
    oiio = _oiio()
    spec = oiio.ImageSpec(width, height, channels, fmt.sample)
    if channels == 1:
        spec.channelnames = ("Y",)
    if fmt.kind in ("dpx", "tiff", "png"):
        spec.attribute("oiio:BitsPerSample", int(fmt.bits))
    if fmt.kind == "dpx":
        spec.attribute("oiio:Endian", fmt.byte_order)
        spec.attribute("dpx:Packing", "Packed" if fmt.packing == "packed" else "Filled, method A")
        if fmt.transfer:
            spec.attribute("dpx:Transfer", fmt.transfer)
            spec.attribute("dpx:Colorimetric", fmt.transfer if fmt.transfer != "Linear" else "User defined")
        if fmt.fps is not None:
            spec.attribute("dpx:FrameRate", float(fmt.fps))
    if fmt.kind == "exr" and fmt.fps is not None:
        spec.attribute("FramesPerSecond", "rational", [fmt.fps.numerator, fmt.fps.denominator])
    if fmt.compression and fmt.kind in ("tiff", "exr"):
        spec.attribute("compression", fmt.compression)
    if timecode and fmt.kind in ("dpx", "exr"):
        spec.attribute("smpte:TimeCode", "timecode", [_timecode_bcd(timecode), 0])
    spec.attribute("Software", "Reel")
    spec.attribute("DateTime", "")  # no clock time in the file: the same frames give the same bytes
    return spec


def write_frame(path: str | os.PathLike, pixels: np.ndarray, fmt: FrameFormat, *, timecode: str | None = None
                ) -> Path:
    """Write one frame: (H, W, 1|3|4) or (H, W) uint16 full scale (or uint8 for 8-bit formats) for
    integer formats, float32 for EXR. Written to a temp file in the same folder, then renamed: the
    final name never holds a partial frame. Returns the path."""
    oiio = _oiio()
    path = Path(path)
    data = np.asarray(pixels)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.shape[2] not in (1, 3, 4):
        raise ValueError(f"frame must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {data.shape}")
    if fmt.kind == "exr":
        if data.dtype not in (np.float32, np.float16):
            raise ValueError(f"EXR frames take float32 pixels, got {data.dtype}")
        data = data.astype(np.float32, copy=False)
    elif data.dtype == np.uint8 and fmt.bits == 8:
        pass
    elif data.dtype != np.uint16:
        raise ValueError(f"{fmt.kind} frames take uint16 pixels (full scale), got {data.dtype}")
    elif fmt.bits == 8:
        data = np.rint(data.astype(np.float32) * np.float32(255 / 65535)).astype(np.uint8)
    elif fmt.bits < 16:
        # exact multiples of the code step: OpenImageIO's conversion to 10/12 bits then lands on the code
        data = uint16_from_codes(codes_from_uint16(data, fmt.bits), fmt.bits)
    height, width, channels = data.shape
    spec = _spec(width, height, channels, fmt, timecode)
    # a private temp folder beside the frame, the frame under its final name in it (DPX headers record
    # the file name), then renamed into place
    tmpdir = tempfile.mkdtemp(prefix=".tmp-", dir=path.parent)
    tmp = os.path.join(tmpdir, path.name)
    try:
        out = oiio.ImageOutput.create(tmp)
        if out is None:
            raise SequenceError(f"cannot write {_shown(path)}: {oiio.geterror()}")
        try:
            if not out.open(tmp, spec):
                raise SequenceError(f"cannot write {_shown(path)}: {' '.join(out.geterror().split())}")
            if not out.write_image(np.ascontiguousarray(data)):
                raise SequenceError(f"cannot write {_shown(path)}: {' '.join(out.geterror().split())}")
        finally:
            out.close()
        if fmt.kind == "dpx":
            _dpx_file_name(tmp, path.name)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with contextlib.suppress(OSError):
            os.rmdir(tmpdir)
    return path


def _dpx_file_name(path: str, name: str) -> None:
    """OpenImageIO writes the full path it wrote to into the DPX header's file-name field (bytes 36-135):
    put the frame's own name there instead (no local folder leaks into a deliverable, and the same
    pixels give the same bytes wherever they are written)."""
    field_bytes = name.encode("utf-8", "replace")[:99].ljust(100, b"\0")
    with open(path, "r+b") as f:
        f.seek(36)
        f.write(field_bytes)


@dataclass
class SequenceWriter:
    """Writes numbered frames `<folder>/<stem>.<number:0{digits}d>.<ext>`, from `start` on.

    `write(pixels, timecode=None)` returns the path written; `paths` lists them in order. The frames'
    timecode advances from `start_timecode` (when given) at the format's rate (DPX/EXR headers).
    """

    folder: Path
    stem: str
    fmt: FrameFormat
    start: int = 0
    digits: int = 7
    start_timecode: str | None = None
    paths: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}", self.stem):
            raise ValueError(f"sequence stem {self.stem!r}: letters, digits, '.', '_' and '-' only")
        self.folder.mkdir(parents=True, exist_ok=True)

    def name(self, index: int) -> str:
        """The file name of the `index`-th frame written (0-based)."""
        return f"{self.stem}.{self.start + index:0{self.digits}d}.{self.fmt.ext}"

    def write(self, pixels: np.ndarray) -> Path:
        index = len(self.paths)
        timecode = None
        if self.start_timecode is not None:
            from catalog.editorial import frames_timecode, timecode_frames

            rate = self.fmt.fps or Fraction(24)
            timecode = frames_timecode(timecode_frames(self.start_timecode, rate) + index, rate)
        path = write_frame(self.folder / self.name(index), pixels, self.fmt, timecode=timecode)
        self.paths.append(path)
        return path

    def write_all(self, frames: Iterable[np.ndarray]) -> list[Path]:
        for frame in frames:
            self.write(frame)
        return list(self.paths)


def iter_sequence(seq: Sequence, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[tuple[SequenceFrame, np.ndarray]]:
    """(frame, pixels) for every file of the sequence in order, each checked against the first's layout."""
    expect: FrameInfo | None = None
    for frame in seq.frames:
        pixels, info = read_frame(frame.path, expect, max_pixels=max_pixels)
        expect = expect or info
        yield frame, pixels
