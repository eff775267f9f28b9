"""The shot table and the restoration pieces cut from it (pandas; no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import pandas as pd

SHOT_COLUMNS = ["shot", "start_frame", "end_frame", "frames", "start_seconds", "start_timecode", "kind"]
SHOT_KINDS = ("shot", "fade_out", "fade_in", "dissolve")


def timecode(frame: int, fps: Fraction) -> str:
    """Non-drop-frame SMPTE-style HH:MM:SS:FF at the nominal (rounded) frame rate."""
    base = max(1, round(fps))
    ff = frame % base
    total = frame // base
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}:{ff:02d}"


def _range(t: Any) -> tuple[int, int, str]:
    """(start, end, kind) of a transition given as a mapping or an object with those fields."""
    if isinstance(t, dict):
        return int(t["start"]), int(t["end"]), str(t["kind"])
    return int(t.start), int(t.end), str(t.kind)


def shot_table(cuts: list[int], total_frames: int, fps: Fraction, transitions: Iterable[Any] = ()
               ) -> pd.DataFrame:
    """One row per shot: frame range [start_frame, end_frame), length, start time and timecode, kind.

    Gradual transitions (`{"start", "end" (exclusive), "kind"}` mappings or models.shots.Transition)
    are kept whole and get rows of their own, kind "fade_out", "fade_in" or "dissolve": a shot
    boundary at each transition's start and end, so restoration's temporal stages (which never read
    across a row's ends, see `plan_pieces`) do not blend the pictures on either side of a dissolve or
    fade into each other, and work on the transition's frames only among themselves. Every other row
    is kind "shot". Cuts may coincide with a transition's ends but not fall inside one.
    """
    if total_frames < 1:
        raise ValueError("a film needs at least one frame")
    bad = [c for c in cuts if not 0 < c < total_frames]
    if bad or sorted(set(cuts)) != list(cuts):
        raise ValueError(f"cuts must be increasing frame indices inside (0, {total_frames}), got {cuts}")
    spans = sorted(_range(t) for t in transitions)
    prev_end = 0
    for a, b, kind in spans:
        if kind not in SHOT_KINDS[1:]:
            raise ValueError(f"transition kind must be one of {SHOT_KINDS[1:]}, got {kind!r}")
        if not 0 <= a < b <= total_frames or a < prev_end:
            raise ValueError(f"transitions must be non-overlapping ranges inside [0, {total_frames}], got {spans}")
        inside = [c for c in cuts if a < c < b]
        if inside:
            raise ValueError(f"cuts {inside} fall inside the {kind} [{a}, {b})")
        prev_end = b
    kinds = {(a, b): kind for a, b, kind in spans}
    bounds = sorted({0, total_frames, *cuts, *(x for a, b, _ in spans for x in (a, b))})
    rows = [
        {
            "shot": i,
            "start_frame": s,
            "end_frame": e,
            "frames": e - s,
            "start_seconds": float(Fraction(s) / fps),
            "start_timecode": timecode(s, fps),
            "kind": kinds.get((s, e), "shot"),
        }
        for i, (s, e) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
    return pd.DataFrame(rows, columns=SHOT_COLUMNS)


@dataclass(frozen=True)
class DetectedShots:
    """What the shot detector found in a film: hard cuts (0-based index of the first frame of each new
    shot), gradual transitions (objects or mappings with start, end (exclusive), kind), the number of
    frames, the nominal rate, and each frame's presentation time in seconds relative to frame 0 (its own
    timestamp: right for variable frame rates)."""

    cuts: list[int]
    transitions: list[Any]
    frames: int
    fps: Fraction
    frame_seconds: list[float]
    detector_version: str

    def table(self) -> pd.DataFrame:
        """The shot table (`shot_table`): transitions as rows of their own."""
        return shot_table(self.cuts, self.frames, self.fps, self.transitions)

    def seconds(self, frame: int) -> float:
        """Time of frame `frame` (for `frames`, the end: the last frame's time plus one nominal frame)."""
        if frame < self.frames:
            return round(self.frame_seconds[frame], 6)
        return round(self.frame_seconds[-1] + float(1 / self.fps), 6) if self.frames else 0.0

    def to_json(self) -> dict[str, Any]:
        """As `reel shots --json` prints it: {"cuts", "cut_seconds", "transitions": [{"start", "end", "kind",
        "start_seconds", "end_seconds"}], "frames", "fps": "num/den", "detector_version"}."""
        spans = [_range(t) for t in self.transitions]
        return {"cuts": list(self.cuts), "cut_seconds": [self.seconds(c) for c in self.cuts],
                "transitions": [{"start": a, "end": b, "kind": kind, "start_seconds": self.seconds(a),
                                 "end_seconds": self.seconds(b)} for a, b, kind in spans],
                "frames": self.frames, "fps": f"{self.fps.numerator}/{self.fps.denominator}",
                "detector_version": self.detector_version}


@dataclass(frozen=True)
class Piece:
    """A unit of restoration work: frames [start, end) of one shot plus halo frames read around it.

    read_start/read_end never leave the shot (or transition) row, so no temporal stage sees across
    a cut or into or out of a fade or dissolve.
    """

    shot: int
    part: int
    start: int
    end: int
    read_start: int
    read_end: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def plan_pieces(shots: pd.DataFrame, max_frames: int, halo: int) -> list[Piece]:
    """Split each shot into pieces of at most `max_frames` output frames, each with up to `halo` context frames."""
    if max_frames < 1:
        raise ValueError("max_frames must be >= 1")
    pieces: list[Piece] = []
    for row in shots.itertuples(index=False):
        s0, s1 = int(row.start_frame), int(row.end_frame)
        n_parts = -(-(s1 - s0) // max_frames)
        size = -(-(s1 - s0) // n_parts)  # balanced parts
        for k in range(n_parts):
            a = s0 + k * size
            b = min(s1, a + size)
            pieces.append(Piece(int(row.shot), k, a, b, max(s0, a - halo), min(s1, b + halo)))
    return pieces
