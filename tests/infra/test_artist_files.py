"""Issue 23: what a handoff writes and reads back, without a store: pixels through every hand-off format
(DPX, TIFF, EXR linear), the OTIO shot list of a handoff with its image sequences, and the sidecar rules."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import opentimelineio as otio
import pytest

from catalog import editorial
from catalog.handoff import FrameFile, HandoffError, SequenceSpec, Sidecar, check_frame, expected_numbers
from infra.pipeline.artist import frame_format, from_file_pixels, to_file_pixels
from infra.sequence import read_frame, write_frame

RNG = np.random.default_rng(3)
FRAME = RNG.integers(0, 65536, (12, 16, 3), dtype=np.uint16)


@pytest.mark.parametrize("kind,bits,exact", [("dpx", 16, True), ("tiff", 16, True), ("dpx", 10, False),
                                             ("exr", 32, True), ("exr", 16, False)])
def test_frames_come_back_as_they_went_out(tmp_path, kind, bits, exact):
    fmt = frame_format(kind, bits, Fraction(24))
    path = write_frame(tmp_path / f"f.0000001.{fmt.ext}", to_file_pixels(FRAME, fmt), fmt)
    px, info = read_frame(path)
    back = from_file_pixels(px)
    assert back.dtype == np.uint16 and back.shape == FRAME.shape
    err = np.abs(back.astype(np.int64) - FRAME).max()
    if exact:  # 16-bit integer files and float EXR: Reel's frames come back bit for bit
        assert err == 0
    else:  # 10-bit DPX: a code step (64); half EXR: 11 bits of mantissa in linear light
        assert err <= (33 if kind == "dpx" else 40), err
    if kind == "exr":  # linear light in the file: R'G'B' ** 2.4
        mid = px[..., :3].astype(np.float64)
        assert np.allclose(mid, (FRAME / 65535.0) ** 2.4, atol=2e-3)


def _sidecar(first=8, start=10, end=18, last=20, bits=16, sample="uint16", files_from=None) -> Sidecar:
    files = [FrameFile(number=n, name=f"t-shot0001.{n:07d}.tif", sha256="0" * 64)
             for n in range(first if files_from is None else files_from, last)]
    seq = dict(pattern="t-shot0001.%07d.tif", kind="tiff", bits=bits, sample=sample, transfer="display",
               width=64, height=48, files=files)
    return Sidecar(handoff="0123456789ab", title="t", version="v-1", shot=1, start_frame=start, end_frame=end,
                   first_frame=first, last_frame=last, handles=2, fps="24", start_timecode="00:00:00:00",
                   source={"sha256": "a" * 64}, recipe={"name": "x"}, created_utc="2026-01-01T00:00:00+00:00",
                   source_frames=SequenceSpec(folder="source", **seq), restored_frames=SequenceSpec(folder="restored", **seq))


def test_returned_frame_numbers_and_headers_are_checked():
    sc = _sidecar()
    assert expected_numbers(sc, list(range(8, 20))) == list(range(8, 20))  # with the handles
    assert expected_numbers(sc, list(range(10, 18))) == list(range(10, 18))  # the shot only
    with pytest.raises(HandoffError, match="missing frames 12-13"):
        expected_numbers(sc, [10, 11, 14, 15, 16, 17])
    with pytest.raises(HandoffError, match="frames 20 outside"):
        expected_numbers(sc, list(range(8, 21)))
    good = dict(format="tiff", width=64, height=48, sample="uint16", bits=16, channels=3)
    check_frame(sc, "a.tif", good)
    for change, why in ((dict(format="dpx"), "dpx instead of tiff"), (dict(width=32), "32x48 instead of 64x48"),
                        (dict(channels=4), "4 channels"), (dict(sample="half", bits=16), "16-bit half")):
        with pytest.raises(HandoffError, match=why):
            check_frame(sc, "a.tif", {**good, **change})
    with pytest.raises(ValueError, match="files must number frames"):
        _sidecar(first=8, files_from=9)


def test_handoff_timeline_points_at_the_image_sequences():
    entries = [{"shot": 3, "first_frame": 22, "last_frame": 40, "start_frame": 24, "end_frame": 38,
                "folder": "film-shot0003/restored", "stem": "film-shot0003", "ext": "dpx"}]
    tl = editorial.handoff_timeline(entries, Fraction(24), "film", "v-1", "01:00:00:00")
    back = otio.adapters.read_from_string(editorial.otio_text(tl), "otio_json")
    clip = back.find_clips()[0]
    ref = clip.media_reference
    assert isinstance(ref, otio.schema.ImageSequenceReference)
    assert ref.target_url_for_image_number(0) == "film-shot0003/restored/film-shot0003.0000022.dpx"
    assert clip.source_range.duration.value == 18 and clip.metadata["reel"]["start_frame"] == 24
    edl = editorial.handoff_edl(entries, Fraction(24), "film.mkv", "film", "v-1", "01:00:00:00")
    assert "001  FILM     V     C        01:00:00:22 01:00:01:16 01:00:00:00 01:00:00:18" in edl
    assert "* HANDLES: 2 BEFORE, 2 AFTER" in edl
