"""The pieces of a film scan's restore that need no flow: the OCIO conversion of log and linear scans (and
back, every code kept), separate sound placed by its BWF time reference or an offset (bit-identical,
sample-exact), what the QC report says about gaps and sound, the sources policy for sequences."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from catalog.qc_report import source_events
from infra.media import FFV1Writer, encode_master, probe
from infra.scan_colour import ScanColour, make_encoding
from infra.sequence import FrameFormat, SequenceWriter, codes_from_uint16, uint16_from_codes
from infra.sound import probe_sound, sound_offset
from infra.sources import SourceNotFound, SourceRefused, check_source
from tests.flows.test_scans import RATE, bwf, pcm_bytes


def test_cineon_log_to_working_and_back_keeps_every_10_bit_code() -> None:
    colour = ScanColour(make_encoding("log", 10, False, None, None, None))
    codes = np.arange(1024, dtype=np.uint16).reshape(32, 32, 1).repeat(3, axis=2)
    working = colour.working_float(uint16_from_codes(codes, 10))
    assert abs(working[95 // 32, 95 % 32, 0]) < 1e-5  # black (code 95) -> 0
    assert abs(working[685 // 32, 685 % 32, 0] - 1.0) < 1e-4  # 90 % white (685) -> 1
    assert working.min() < 0 and working.max() > 3  # below black and super-whites are kept, unclamped
    assert np.array_equal(codes_from_uint16(colour.scan_uint16(working), 10), codes)
    # through 16-bit working values (analysis, QC) the codes between black and white survive too
    via16 = colour.working_uint(uint16_from_codes(codes, 10)).astype(np.float32) / 65535
    inside = (codes >= 95) & (codes <= 685)
    assert np.array_equal(codes_from_uint16(colour.scan_uint16(via16), 10)[inside], codes[inside])


def test_an_ocio_config_by_name() -> None:
    enc = make_encoding("log", 10, False, "ocio://studio-config-latest", "ADX10", "Gamma 2.4 Encoded Rec.709")
    out = ScanColour(enc).working_float(np.full((2, 2, 3), 30000, np.uint16))
    assert out.shape == (2, 2, 3) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="has no colour space 'Nope'"):
        make_encoding("log", 10, False, "ocio://studio-config-latest", "Nope", "ACEScg")
    with pytest.raises(ValueError, match="name the scan's and the working colour space"):
        make_encoding("log", 10, False, "ocio://studio-config-latest", None, None)


def test_display_scans_pass_through_untouched() -> None:
    colour = ScanColour(make_encoding("display", 16, False, None, None, None))
    pixels = np.random.default_rng(0).integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    assert colour.working_uint(pixels) is pixels or np.array_equal(colour.working_uint(pixels), pixels)
    assert np.array_equal(colour.working_uint(pixels[..., :1]), np.repeat(pixels[..., :1], 3, axis=2))


def _film(path: Path, frames: int = 12) -> Path:
    with FFV1Writer(path, 32, 32, Fraction(24), depth=16) as w:
        w.write(np.zeros((frames, 32, 32, 3), np.uint16))
    return path


@pytest.mark.parametrize("offset", [Fraction(0), Fraction(1, 10), Fraction(-1, 8)])
def test_sound_is_placed_bit_identically_and_sample_exactly(tmp_path: Path, offset: Fraction) -> None:
    samples = np.random.default_rng(1).integers(-(1 << 23), 1 << 23, size=(2, RATE // 2), dtype=np.int64)
    wav = bwf(tmp_path / "s.wav", samples, None)
    info = probe_sound(wav)
    assert (info.codec, info.sample_rate, info.channels, info.samples) == ("pcm_s24le", RATE, 2, RATE // 2)
    frames = np.zeros((12, 32, 32, 3), np.uint16)
    out = tmp_path / "m.mkv"
    encode_master(iter(frames), out, width=32, height=32, fps=Fraction(24), codec="ffv1", audio_source=wav,
                  audio_offset=offset)
    stored = pcm_bytes(wav)
    with av.open(str(out)) as c:
        first = next(p for p in c.demux(c.streams.audio[0]) if p.size)
        start = first.pts * first.time_base
    got = pcm_bytes(out)
    if offset >= 0:
        assert got == stored and start == offset  # every sample, moved
    else:  # sound before the first frame is cut, to the sample; the rest is unchanged
        cut = int(-offset * RATE)
        assert got == stored[cut * 6:] and start == 0


def test_sound_offset_from_the_bwf_time_reference(tmp_path: Path) -> None:
    wav = bwf(tmp_path / "s.wav", np.zeros((1, 4800), np.int64), time_reference=3600 * RATE + RATE // 2)
    info = probe_sound(wav)
    assert info.time_reference == 3600 * RATE + RATE // 2
    at = sound_offset(info, setting=None, picture_start_frames=86400, fps=Fraction(24))
    assert at == (Fraction(1, 2), "bwf-time-reference")  # the sound starts half a second after 01:00:00:00
    assert sound_offset(info, setting=-0.25, picture_start_frames=86400, fps=Fraction(24)) == (Fraction(-1, 4),
                                                                                                "setting")
    assert sound_offset(info, setting=None, picture_start_frames=None, fps=Fraction(24)) == (0, "start")
    with pytest.raises(Exception, match="holds video"):
        probe_sound(_film(tmp_path / "v.mkv"))
    assert probe(_film(tmp_path / "v2.mkv")).video is not None


def test_source_events_offer_the_missing_frames_to_interpolate() -> None:
    missing = [{"frame": 5, "number": 86405}, {"frame": 9, "number": 86409}, {"frame": 10, "number": 86410}]
    events = source_events({"missing": missing}, {"length_mismatch_seconds": -0.125}, Fraction(24))
    gap, sound = events
    assert gap["kind"] == "missing-frames" and gap["numbers"] == [86405, 86409, 86410]
    assert gap["rebuild"] == {"stage": "interpolate", "params": {"factor": 1, "rebuild_frames": [5, 9, 10]}}
    assert sound["kind"] == "sound-length" and sound["frames"] == -3.0
    long_gap = [{"frame": f, "number": 100 + f} for f in range(4, 9)]  # 5 in a row: more than can be rebuilt
    assert source_events({"missing": long_gap}, None, 24)[0]["rebuild"] is None
    assert source_events(None, None, 24) == []


def test_the_sources_policy_for_sequences(tmp_path: Path, monkeypatch) -> None:
    from infra.settings import Settings

    SequenceWriter(tmp_path / "root" / "scans", "r", FrameFormat("dpx", 10)).write_all(
        [np.zeros((16, 16, 3), np.uint16)] * 2)
    settings = Settings(source_roots=[str(tmp_path / "root")])
    spec = check_source(str(tmp_path / "root" / "scans"), settings)
    assert spec.kind == "sequence" and spec.name == "r.%07d.dpx"
    assert check_source(str(tmp_path / "root" / "scans" / "r.%07d.dpx"), settings).kind == "sequence"
    with pytest.raises(SourceRefused, match="outside the allowed source roots"):
        check_source(str(tmp_path / "elsewhere" / "x.%04d.dpx"), settings)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(SourceRefused, match="outside the allowed source roots"):
        check_source(str(tmp_path / "elsewhere"), settings)
    with pytest.raises(SourceNotFound, match="no frame files"):
        check_source(str(tmp_path / "root" / "scans" / "q.%04d.dpx"), settings)
    with pytest.raises(SourceRefused, match=r"'\.\.'"):
        check_source(str(tmp_path / "root" / "scans" / ".." / "scans" / "r.%07d.dpx"), settings)
