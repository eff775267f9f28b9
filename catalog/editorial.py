"""A published version's shot list for grading suites and conform (issue #22): OpenTimelineIO and CMX 3600.

Pure data: the shot table in, an OTIO Timeline or EDL text out (no I/O).

Frames and rates. Everything is counted in the source's frames at its exact rate (a Fraction: 24,
16 for silent film, 24000/1001). The OTIO timeline uses that rate as its RationalTime rate, so a
clip's `source_range` is exactly the shot's frames ([start_frame, end_frame), offset by the start
timecode when one is set). Timecode (the EDL, and the start-timecode setting) is always counted
non-drop-frame at the nominal integer rate (round(fps): 24000/1001 counts 24 frames a timecode second,
30000/1001 counts 30), as `catalog.shots.timecode` does: "FCM: NON-DROP FRAME". At 1000/1001 rates the
timecode therefore runs 0.1% slower than the wall clock; frame numbers stay exact, which is what a
conform needs. Drop-frame timecode is not written.

OpenTimelineIO 0.18 has no CMX 3600 adapter in its core (it moved to the `otio-cmx3600-adapter`
plugin), so `edl_text` writes CMX 3600 itself; the tests read it back with that plugin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import opentimelineio as otio

DEFAULT_START_TIMECODE = "00:00:00:00"
TIMECODE = re.compile(r"^(\d{2}):([0-5]\d):([0-5]\d):(\d{2})$")
REEL_LEN = 8  # CMX 3600 reel names: at most 8 characters


def clip_name(shot: int) -> str:
    return f"shot{shot:04d}"


def nominal_rate(fps: Fraction) -> int:
    """Frames per timecode second (non-drop-frame): the rate rounded to an integer."""
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return max(1, round(fps))


def timecode_frames(tc: str, fps: Fraction) -> int:
    """HH:MM:SS:FF (non-drop-frame, at the nominal rate) as a frame count."""
    m = TIMECODE.match(tc)
    if not m:
        raise ValueError(f"timecode must be HH:MM:SS:FF, got {tc!r}")
    h, mi, s, f = (int(x) for x in m.groups())
    base = nominal_rate(fps)
    if f >= base:
        raise ValueError(f"timecode {tc}: frame {f} does not exist at {fps} fps (0..{base - 1})")
    return ((h * 60 + mi) * 60 + s) * base + f


def frames_timecode(frames: int, fps: Fraction) -> str:
    """A frame count as HH:MM:SS:FF (non-drop-frame, at the nominal rate; hours may pass 23)."""
    base = nominal_rate(fps)
    secs, ff = divmod(frames, base)
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}:{ff:02d}"


def reel_name(source_name: str) -> str:
    """The source's file name (without extension) as a CMX 3600 reel name: A-Z, 0-9, _ and at most 8."""
    stem = source_name.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    name = re.sub(r"[^A-Z0-9_]", "_", stem.upper())[:REEL_LEN].strip("_")
    return name or "AX"


def _rows(shots: Any) -> list[dict[str, Any]]:
    """The shot table (a DataFrame with the manifest's columns, or mappings) as checked rows in order."""
    records: Iterable[Mapping[str, Any]] = shots.to_dict("records") if hasattr(shots, "to_dict") else shots
    rows: list[dict[str, Any]] = [{"shot": int(r["shot"]), "start_frame": int(r["start_frame"]), "end_frame": int(r["end_frame"]),
             "kind": str(r.get("kind", "shot")), "start_timecode": r.get("start_timecode")} for r in records]
    rows.sort(key=lambda r: r["start_frame"])
    if not rows:
        raise ValueError("a shot list needs at least one shot")
    for r in rows:
        if not 0 <= r["start_frame"] < r["end_frame"]:
            raise ValueError(f"shot {r['shot']}: empty or negative range [{r['start_frame']}, {r['end_frame']})")
    for a, b in zip(rows, rows[1:], strict=False):
        if a["end_frame"] != b["start_frame"]:
            raise ValueError(f"shots {a['shot']} and {b['shot']} do not meet "
                             f"({a['end_frame']} != {b['start_frame']})")
    return rows


def _rt(frames: int, rate: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, rate)


def shot_timeline(shots: Any, fps: Fraction | str | int, source_name: str, title: str, version: str = "",
                  start_timecode: str = DEFAULT_START_TIMECODE, total_frames: int | None = None,
                  sequence: Mapping[str, Any] | None = None) -> otio.schema.Timeline:
    """One video track, one clip per shot (`shot0003`), each referring to the source file by name with its
    frames as `source_range` (in the source's timecode: `start_timecode` + frame). Metadata under "reel":
    the title, version and rate on the timeline; shot number, kind and Reel's frame range on each clip.
    sequence: for an image-sequence source, {"prefix", "suffix", "first", "padding"} (`reel1.`, `.dpx`,
    86400, 7): the clips then refer to its frames with an ImageSequenceReference (frame numbers as the
    scanner wrote them)."""
    fps = Fraction(fps)
    rows = _rows(shots)
    rate = float(fps)
    offset = timecode_frames(start_timecode, fps)
    total = rows[-1]["end_frame"] if total_frames is None else int(total_frames)
    if total < rows[-1]["end_frame"]:
        raise ValueError(f"the shots end at frame {rows[-1]['end_frame']}, after the source's {total} frames")
    tl = otio.schema.Timeline(name=f"{title} {version}".strip(), global_start_time=_rt(offset, rate))
    tl.metadata["reel"] = {"title": title, "version": version, "source": source_name, "fps": str(fps),
                           "start_timecode": start_timecode, "frames": total}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    available = otio.opentime.TimeRange(_rt(offset, rate), _rt(total, rate))
    for r in rows:
        ref: otio.core.MediaReference
        if sequence is not None:
            ref = otio.schema.ImageSequenceReference(
                target_url_base="", name_prefix=str(sequence["prefix"]), name_suffix=str(sequence["suffix"]),
                start_frame=int(sequence["first"]), frame_step=1, rate=rate,
                frame_zero_padding=int(sequence["padding"]), available_range=available)
        else:
            ref = otio.schema.ExternalReference(target_url=source_name, available_range=available)
        clip = otio.schema.Clip(
            name=clip_name(r["shot"]), media_reference=ref,
            source_range=otio.opentime.TimeRange(_rt(offset + r["start_frame"], rate),
                                                 _rt(r["end_frame"] - r["start_frame"], rate)))
        clip.metadata["reel"] = {"title": title, "version": version, "shot": r["shot"], "kind": r["kind"],
                                 "start_frame": r["start_frame"], "end_frame": r["end_frame"]}
        track.append(clip)
    tl.tracks.append(track)
    return tl


def otio_text(timeline: otio.schema.Timeline) -> str:
    return str(otio.adapters.write_to_string(timeline, "otio_json")) + "\n"


def edl_text(shots: Any, fps: Fraction | str | int, source_name: str, title: str, version: str = "",
             start_timecode: str = DEFAULT_START_TIMECODE) -> str:
    """CMX 3600: TITLE, FCM: NON-DROP FRAME, then one cut event per shot (event number, reel, V, C, source
    in/out, record in/out; outs exclusive), each followed by `* FROM CLIP NAME:` (the shot) and `* FROM CLIP:` (the source file, Avid style)
    comments. The record side is laid 1:1 on the source's timecode (the shots tile the source).
    Events are numbered 001..999, then 1000 on (more than CMX's three digits; common readers accept it)."""
    fps = Fraction(fps)
    rows = _rows(shots)
    offset = timecode_frames(start_timecode, fps)
    reel = reel_name(source_name)
    head = one_line(f"{title} {version}".strip())[:70]
    lines = [f"TITLE: {head}", "FCM: NON-DROP FRAME", ""]
    for i, r in enumerate(rows, start=1):
        tc_in = frames_timecode(offset + r["start_frame"], fps)
        tc_out = frames_timecode(offset + r["end_frame"], fps)
        lines.append(f"{i:03d}  {reel:<8} V     C        {tc_in} {tc_out} {tc_in} {tc_out}")
        lines.append(f"* FROM CLIP NAME: {clip_name(r['shot'])}")
        lines.append(f"* FROM CLIP: {one_line(source_name)}")
        lines.append("")
    return "\n".join(lines)


def one_line(text: str) -> str:
    """A name for an EDL line: control characters (a line break in a file name) become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


def handoff_timeline(entries: Sequence[Mapping[str, Any]], fps: Fraction | str | int, title: str, version: str = "",
                     start_timecode: str = DEFAULT_START_TIMECODE) -> otio.schema.Timeline:
    """The shots handed to an artist as one timeline: a clip per shot (handles included) over its restored image
    sequence (an OTIO ImageSequenceReference: `folder/<stem>.<frame:07d>.<ext>`, numbered by the film's frame
    index), laid one after another. Each entry: shot, first_frame, last_frame (exclusive, handles included),
    start_frame, end_frame (the shot), folder (relative to the timeline's file), stem, ext. Metadata under
    "reel" on each clip: the shot, its frames and the handles."""
    fps = Fraction(fps)
    rate = float(fps)
    offset = timecode_frames(start_timecode, fps)
    tl = otio.schema.Timeline(name=f"{title} {version} handoff".strip().replace("  ", " "))
    tl.metadata["reel"] = {"title": title, "version": version, "fps": str(fps), "start_timecode": start_timecode}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for e in sorted(entries, key=lambda e: int(e["first_frame"])):
        first, last = int(e["first_frame"]), int(e["last_frame"])
        available = otio.opentime.TimeRange(_rt(offset + first, rate), _rt(last - first, rate))
        ref = otio.schema.ImageSequenceReference(
            target_url_base=str(e["folder"]).rstrip("/") + "/", name_prefix=f"{e['stem']}.", name_suffix=f".{e['ext']}",
            start_frame=first, frame_step=1, rate=rate, frame_zero_padding=7, available_range=available)
        clip = otio.schema.Clip(name=clip_name(int(e["shot"])), media_reference=ref, source_range=available)
        clip.metadata["reel"] = {"title": title, "version": version, "shot": int(e["shot"]),
                                 "start_frame": int(e["start_frame"]), "end_frame": int(e["end_frame"]),
                                 "first_frame": first, "last_frame": last}
        track.append(clip)
    tl.tracks.append(track)
    return tl


def handoff_edl(entries: Sequence[Mapping[str, Any]], fps: Fraction | str | int, source_name: str, title: str,
                version: str = "", start_timecode: str = DEFAULT_START_TIMECODE) -> str:
    """CMX 3600 pull list of the shots handed to an artist: one cut event per shot with its handles, source
    in/out in the film's timecode, record side laid one after another from the start timecode; `* FROM CLIP
    NAME:` the shot, `* HANDLES:` the frames before and after the shot."""
    fps = Fraction(fps)
    offset = timecode_frames(start_timecode, fps)
    reel = reel_name(source_name)
    head = one_line(f"{title} {version} handoff".strip())[:70]
    lines = [f"TITLE: {head}", "FCM: NON-DROP FRAME", ""]
    rec = offset
    for i, e in enumerate(sorted(entries, key=lambda e: int(e["first_frame"])), start=1):
        first, last = int(e["first_frame"]), int(e["last_frame"])
        src_in, src_out = frames_timecode(offset + first, fps), frames_timecode(offset + last, fps)
        rec_in, rec_out = frames_timecode(rec, fps), frames_timecode(rec + last - first, fps)
        rec += last - first
        lines.append(f"{i:03d}  {reel:<8} V     C        {src_in} {src_out} {rec_in} {rec_out}")
        lines.append(f"* FROM CLIP NAME: {clip_name(int(e['shot']))}")
        lines.append(f"* FROM CLIP: {one_line(str(e['folder']))}")
        lines.append(f"* HANDLES: {int(e['start_frame']) - first} BEFORE, {last - int(e['end_frame'])} AFTER")
        lines.append("")
    return "\n".join(lines)
