"""A film scan's code values to Reel's working space and back, through OpenColorIO.

The stages work in BT.709 R'G'B' (display-referred, full range; `models.clip`). A scan is one of
  - display: code values meant for a display (TIFF, PNG, DPX marked video/linear/unspecified): taken as
    working-space values as they are (no conversion at all);
  - log: Cineon/DPX printing density (DPX transfer "Printing density" or "Logarithmic");
  - linear: scene-linear BT.709 (OpenEXR).

Log and linear scans go through an OpenColorIO processor. The config comes from the recipe
(`source.ocio_config`) or the settings (`REEL_OCIO_CONFIG`), with the scan's and the working colour
space named (`REEL_OCIO_SCAN_SPACE`, `REEL_OCIO_WORKING_SPACE`; for a built-in config such as
`ocio://studio-config-latest`, e.g. "ADX10" and "Gamma 2.4 Encoded Rec.709"). Without one, Reel's
built-in config (`builtin_config`) is used, documented here:

  reference  "Linear Rec.709"          scene-linear, BT.709 primaries
  "Cineon Log"                          Kodak Cineon printing density, 10-bit code values c / 1023:
                                        lin = (10^((1023 c - 685) / 300) - b) / (1 - b), b = 10^((95 - 685) / 300)
                                        (black at code 95, 90 % white at 685, 0.002 density per code value,
                                        film gamma 0.6), an OCIO LogAffineTransform (base 10, log slope
                                        300/1023, log offset 685/1023, lin slope 1 - b, lin offset b)
  "Rec.709 R'G'B'"                      the BT.709 OETF (ExponentWithLinearTransform, gamma 1/0.45, offset
                                        0.099, linear below 0.018 x 4.5), Reel's working space

Every transform is unclamped: codes below black (0..94) and above white (686..1023) come out below 0
and above 1 in the float working values, and go back to the same codes. Where the pipeline holds
frames as 16-bit integers (analysis, QC, the delivery master) the working values are clipped to
[0, 1]; a restored piece converts its float result straight back to the scan's code values, so an
archival master of a log scan keeps every code (a 10-bit ramp survives; tests/infra/test_scan_colour.py).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from infra.sequence import codes_from_uint16, rgb, uint16_from_codes

BUILTIN = "reel-builtin"
LINEAR = "Linear Rec.709"
CINEON = "Cineon Log"
WORKING = "Rec.709 R'G'B'"
_BLACK, _WHITE, _STEP = 95.0, 685.0, 300.0  # Cineon: code values of black and 90 % white, codes per decade


@functools.lru_cache(maxsize=1)
def builtin_config() -> Any:
    """Reel's built-in OCIO config (see the module docstring)."""
    import PyOpenColorIO as ocio

    config = ocio.Config.CreateRaw()
    config.setName("reel-builtin")
    reference = ocio.ColorSpace(ocio.REFERENCE_SPACE_SCENE, LINEAR)
    reference.setFamily("Linear")
    offset = 10 ** ((_BLACK - _WHITE) / _STEP)
    cineon = ocio.ColorSpace(ocio.REFERENCE_SPACE_SCENE, CINEON)
    log = ocio.LogAffineTransform(logSideSlope=[_STEP / 1023] * 3, logSideOffset=[_WHITE / 1023] * 3,
                                  linSideSlope=[1 - offset] * 3, linSideOffset=[offset] * 3)
    log.setBase(10.0)
    cineon.setTransform(log, ocio.COLORSPACE_DIR_FROM_REFERENCE)
    working = ocio.ColorSpace(ocio.REFERENCE_SPACE_SCENE, WORKING)
    working.setTransform(ocio.ExponentWithLinearTransform(gamma=[1 / 0.45] * 3 + [1.0], offset=[0.099] * 3 + [0.0],
                                                          negativeStyle=ocio.NEGATIVE_LINEAR),
                         ocio.COLORSPACE_DIR_TO_REFERENCE)
    for space in (reference, cineon, working):
        config.addColorSpace(space)
    config.setRole(ocio.ROLE_SCENE_LINEAR, LINEAR)
    config.setRole(ocio.ROLE_DEFAULT, LINEAR)
    config.validate()
    return config


@dataclass(frozen=True)
class ScanEncoding:
    """What a scan's code values are and how they reach the working space (kept in the ingest record).

    encoding:      display | log | linear.
    bits:          the scan's bits per sample (what the source-encoded masters keep).
    float_samples: the scan's samples are half/float (EXR).
    config:        the OCIO config (a path or ocio:// URI), or "reel-builtin".
    scan_space, working_space: colour space names in that config.
    """

    encoding: Literal["display", "log", "linear"]
    bits: int
    float_samples: bool = False
    config: str = BUILTIN
    scan_space: str | None = None
    working_space: str | None = None

    @property
    def converts(self) -> bool:
        return self.encoding != "display"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ScanEncoding:
        return cls(**data) if data else cls(encoding="display", bits=16)

    def spaces(self) -> tuple[str, str]:
        if self.config == BUILTIN:
            return (CINEON if self.encoding == "log" else LINEAR), WORKING
        if not self.scan_space or not self.working_space:
            raise ValueError(f"OCIO config {self.config!r}: name the scan's and the working colour space "
                             "(REEL_OCIO_SCAN_SPACE, REEL_OCIO_WORKING_SPACE)")
        return self.scan_space, self.working_space


def make_encoding(encoding: str, bits: int, float_samples: bool, config: str | None, scan_space: str | None,
                  working_space: str | None) -> ScanEncoding:
    """A checked ScanEncoding: the config loads and names both colour spaces (ValueError otherwise)."""
    enc = ScanEncoding(encoding=encoding, bits=bits, float_samples=float_samples,  # type: ignore[arg-type]
                       config=config or BUILTIN, scan_space=scan_space if config else None,
                       working_space=working_space if config else None)
    if enc.converts:
        _processors(enc.config, *enc.spaces())
    return enc


@functools.lru_cache(maxsize=16)
def _config(name: str) -> Any:
    import PyOpenColorIO as ocio

    if name == BUILTIN:
        return builtin_config()
    try:
        return ocio.Config.CreateFromFile(name)
    except Exception as exc:  # OCIO's own exception type
        raise ValueError(f"OCIO config {name!r} cannot be loaded: {' '.join(str(exc).split())[:300]}") from None


@functools.lru_cache(maxsize=16)
def _processors(config_name: str, scan: str, working: str) -> tuple[Any, Any]:
    """(scan -> working, working -> scan) CPU processors, float32."""
    config = _config(config_name)
    names = {cs.getName() for cs in config.getColorSpaces()}
    for name in (scan, working):
        if name not in names:
            raise ValueError(f"OCIO config {config_name!r} has no colour space {name!r}")
    forward = config.getProcessor(scan, working).getDefaultCPUProcessor()
    inverse = config.getProcessor(working, scan).getDefaultCPUProcessor()
    return forward, inverse


@functools.lru_cache(maxsize=16)
def _tables(config_name: str, scan: str, working: str) -> np.ndarray | None:
    """(65536, 3) float32 (or (65536,) when all channels share one curve): the forward processor's output for every 16-bit input value, per channel, when the
    conversion has no channel crosstalk (Reel's built-in one, most log curves); None otherwise. Integer
    frames then convert by table lookup: the very values OCIO gives, ten times faster."""
    import PyOpenColorIO as ocio

    config = _config(config_name)
    processor = config.getProcessor(scan, working)
    if processor.hasChannelCrosstalk():
        return None
    values = np.repeat((np.arange(65536, dtype=np.float32) / np.float32(65535))[:, None], 3, axis=1)
    values = np.ascontiguousarray(values.reshape(256, 256, 3))
    processor.getDefaultCPUProcessor().apply(ocio.PackedImageDesc(values, 256, 256, 3))
    table = values.reshape(65536, 3)
    if np.array_equal(table[:, 0], table[:, 1]) and np.array_equal(table[:, 0], table[:, 2]):
        return np.ascontiguousarray(table[:, 0])  # the same curve on every channel
    return table


class ScanColour:
    """Converts one scan's frames (as `infra.sequence.read_frame` gives them) to the working space and back."""

    def __init__(self, enc: ScanEncoding) -> None:
        self.enc = enc
        self._forward: Any = None
        self._inverse: Any = None
        if enc.converts:
            self._forward, self._inverse = _processors(enc.config, *enc.spaces())
        self._table = _tables(enc.config, *enc.spaces()) if enc.converts and not enc.float_samples else None
        self._table16: np.ndarray | None = None

    def _normalised(self, pixels: np.ndarray) -> np.ndarray:
        three = rgb(pixels)
        if three.dtype == np.float32:
            return np.array(three, np.float32, copy=True, order="C")
        if three.dtype == np.uint8:
            return three.astype(np.float32) * np.float32(1 / 255)
        return three.astype(np.float32) * np.float32(1 / 65535)

    def working_float(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 working-space values, unclamped (log codes outside black..white go past 0..1)."""
        if self._table is not None and pixels.dtype == np.uint16:
            return _lookup(self._table, rgb(pixels))
        x = self._normalised(pixels)
        if self._forward is not None:
            _apply(self._forward, x)
        return x

    def working_uint(self, pixels: np.ndarray, depth: int = 16) -> np.ndarray:
        """(H, W, 3) working-space code values, clipped to full scale: uint16, or uint8 for depth 8. A display
        scan's integer pixels pass through untouched."""
        if not self.enc.converts and pixels.dtype != np.float32:
            three = rgb(pixels)
            if depth == 8:
                return three if three.dtype == np.uint8 else np.rint(three.astype(np.float32) / 257).astype(np.uint8)
            return three.astype(np.uint16) * np.uint16(257) if three.dtype == np.uint8 else three
        if self._table is not None and pixels.dtype == np.uint16 and depth == 16:
            if self._table16 is None:
                self._table16 = np.clip(np.rint(self._table * np.float32(65535)), 0, 65535).astype(np.uint16)
            return _lookup(self._table16, rgb(pixels))
        scale = 255.0 if depth == 8 else 65535.0
        x = self.working_float(pixels)
        return np.clip(np.rint(x * np.float32(scale)), 0, scale).astype(np.uint8 if depth == 8 else np.uint16)

    def scan_float(self, working: np.ndarray) -> np.ndarray:
        """Working-space float values back to the scan's encoding (float32, normalised: 1.0 = full scale)."""
        x = np.array(working, np.float32, copy=True, order="C")
        if self._inverse is not None:
            _apply(self._inverse, x)
        return x

    def scan_uint16(self, working: np.ndarray) -> np.ndarray:
        """Working-space float values as the scan's code values, full-scale uint16 on the scan's own bit grid
        (a 10-bit scan: code * 65535 / 1023), clipped to the code range."""
        x = self.scan_float(working)
        bits = min(self.enc.bits, 16) if not self.enc.float_samples else 16
        top = (1 << bits) - 1
        codes = np.clip(np.rint(x * np.float32(top)), 0, top).astype(np.uint16)
        return uint16_from_codes(codes, bits)


def _lookup(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """table[:, c][pixels[..., c]] for the three channels, as one (H, W, 3) array of the table's type."""
    if table.ndim == 1:  # one curve for all three channels
        return np.take(table, pixels, mode="clip")  # uint16 indices never need the clip: no bounds checks
    out = np.empty(pixels.shape, table.dtype)
    for c in range(3):
        np.take(np.ascontiguousarray(table[:, c]), pixels[..., c], out=out[..., c], mode="clip")
    return out


def _apply(processor: Any, x: np.ndarray) -> None:
    """Run a CPU processor over (H, W, 3) float32 C-contiguous values in place (a packed image
    description: ten times faster than applyRGB on a numpy array)."""
    import PyOpenColorIO as ocio

    processor.apply(ocio.PackedImageDesc(x, x.shape[1], x.shape[0], 3))


def scan_codes(pixels: np.ndarray, bits: int) -> np.ndarray:
    """A frame's full-scale uint16 values as its `bits`-bit codes (for tests and reports)."""
    return codes_from_uint16(pixels, bits)
