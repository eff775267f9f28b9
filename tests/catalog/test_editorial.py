"""Shot lists for grading suites (issue #22): the OTIO timeline and CMX 3600 EDL built from a shot table."""

from __future__ import annotations

import re
from fractions import Fraction

import opentimelineio as otio
import pytest

from catalog.editorial import (
    edl_text,
    frames_timecode,
    otio_text,
    reel_name,
    shot_timeline,
    timecode_frames,
)
from catalog.shots import shot_table

EVENT = re.compile(r"^(\d{3,})  (\S{1,8}) +V +C +(\S+) (\S+) (\S+) (\S+)$")


def _roundtrip(table, fps, **kw):
    text = otio_text(shot_timeline(table, fps, "reel1.mov", "the-kid", "v-0123456789ab", **kw))
    return otio.adapters.read_from_string(text, "otio_json")


def _events(edl: str) -> list[tuple[str, ...]]:
    return [m.groups() for line in edl.splitlines() if (m := EVENT.match(line))]


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(16), Fraction(24000, 1001), Fraction(18)])
def test_otio_round_trip_gives_back_every_shot(fps):
    table = shot_table([1, 40, 41, 100], 160, fps, transitions=[{"start": 100, "end": 130, "kind": "dissolve"}])
    tl = _roundtrip(table, fps, total_frames=160)
    [track] = tl.tracks
    assert track.kind == otio.schema.TrackKind.Video
    clips = list(tl.find_clips())
    assert [c.name for c in clips] == [f"shot{i:04d}" for i in range(len(table))]
    for c, row in zip(clips, table.itertuples(), strict=True):
        assert c.source_range.start_time.value == row.start_frame
        assert c.source_range.duration.value == row.end_frame - row.start_frame
        assert c.source_range.start_time.rate == pytest.approx(float(fps))
        assert c.media_reference.target_url == "reel1.mov"
        assert c.media_reference.available_range.duration.value == 160
        meta = c.metadata["reel"]
        assert (meta["shot"], meta["kind"], meta["title"], meta["version"]) == \
            (row.shot, row.kind, "the-kid", "v-0123456789ab")
    assert clips[0].source_range.duration.value == clips[2].source_range.duration.value == 1  # one-frame shots
    assert clips[4].metadata["reel"]["kind"] == "dissolve"
    assert tl.duration().value == 160
    assert tl.metadata["reel"]["fps"] == str(fps)


def test_one_shot_and_start_timecode():
    table = shot_table([], 48, Fraction(24))
    tl = _roundtrip(table, Fraction(24), start_timecode="01:00:00:00")
    [clip] = tl.find_clips()
    assert clip.source_range.start_time.value == 86400  # source timecode 01:00:00:00 = frame 0
    assert clip.metadata["reel"]["start_frame"] == 0
    assert tl.global_start_time.value == 86400
    edl = edl_text(table, 24, "reel1.mov", "the-kid", start_timecode="01:00:00:00")
    assert _events(edl) == [("001", "REEL1", "01:00:00:00", "01:00:02:00", "01:00:00:00", "01:00:02:00")]


@pytest.mark.parametrize("fps, rate", [(Fraction(24), 24), (Fraction(24000, 1001), 24)])
def test_edl_is_read_back_by_otio_cmx_3600_adapter(fps, rate):
    table = shot_table([10, 11, 50], 100, fps)
    edl = edl_text(table, fps, "Reel 1 scan.mov", "the-kid", "v-0123456789ab", start_timecode="01:00:00:00")
    assert edl.splitlines()[:2] == ["TITLE: the-kid v-0123456789ab", "FCM: NON-DROP FRAME"]
    tl = otio.adapters.read_from_string(edl, "cmx_3600", rate=rate)
    clips = list(tl.find_clips())
    assert [c.name for c in clips] == ["shot0000", "shot0001", "shot0002", "shot0003"]
    assert [(c.source_range.start_time.value - 86400, c.source_range.duration.value) for c in clips] == \
        [(0, 10), (10, 1), (11, 39), (50, 50)]
    assert {c.media_reference.target_url for c in clips} == {"Reel 1 scan.mov"}


def test_edl_at_16_fps_counts_sixteen_frames_a_second():
    table = shot_table([15, 16, 33], 40, Fraction(16))
    events = _events(edl_text(table, 16, "nosferatu_r2.dpx", "nosferatu"))
    assert events == [
        ("001", "NOSFERAT", "00:00:00:00", "00:00:00:15", "00:00:00:00", "00:00:00:15"),
        ("002", "NOSFERAT", "00:00:00:15", "00:00:01:00", "00:00:00:15", "00:00:01:00"),
        ("003", "NOSFERAT", "00:00:01:00", "00:00:02:01", "00:00:01:00", "00:00:02:01"),
        ("004", "NOSFERAT", "00:00:02:01", "00:00:02:08", "00:00:02:01", "00:00:02:08"),
    ]


def test_hundreds_of_shots():
    fps = Fraction(24000, 1001)
    table = shot_table(list(range(3, 3 * 1200, 3)), 3 * 1200, fps)
    events = _events(edl_text(table, fps, "feature.mkv", "feature"))
    assert len(events) == 1200
    assert [e[0] for e in events[998:1001]] == ["999", "1000", "1001"]
    assert all(a[3] == b[2] for a, b in zip(events, events[1:], strict=False))  # each out is the next in
    assert events[-1][3] == frames_timecode(3600, fps) == "00:02:30:00"  # 24 frames a timecode second
    assert len(list(_roundtrip(table, fps).find_clips())) == 1200


def test_timecodes_and_reel_names():
    assert timecode_frames("00:00:01:15", Fraction(16)) == 31
    assert frames_timecode(31, Fraction(16)) == "00:00:01:15"
    assert timecode_frames("10:00:00:00", Fraction(30000, 1001)) == 10 * 3600 * 30
    with pytest.raises(ValueError, match="frame 16"):
        timecode_frames("00:00:00:16", Fraction(16))
    with pytest.raises(ValueError, match="HH:MM:SS:FF"):
        timecode_frames("1:00:00:00", Fraction(24))
    assert reel_name("A001_C002 final.mov") == "A001_C00"
    assert reel_name("...") == "AX"
    assert reel_name("x.y/z.mov") == "Z"


def test_shots_must_tile():
    with pytest.raises(ValueError, match="do not meet"):
        edl_text([{"shot": 0, "start_frame": 0, "end_frame": 5}, {"shot": 1, "start_frame": 6, "end_frame": 9}],
                 24, "a.mov", "t")
    with pytest.raises(ValueError, match="at least one shot"):
        shot_timeline([], 24, "a.mov", "t")
