"""The shot table and the restoration pieces cut from it (pandas; no I/O)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import pandas as pd

SHOT_COLUMNS = ["shot", "start_frame", "end_frame", "frames", "start_seconds", "start_timecode"]


def timecode(frame: int, fps: Fraction) -> str:
    """Non-drop-frame SMPTE-style HH:MM:SS:FF at the nominal (rounded) frame rate."""
    base = max(1, round(fps))
    ff = frame % base
    total = frame // base
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}:{ff:02d}"


def shot_table(cuts: list[int], total_frames: int, fps: Fraction) -> pd.DataFrame:
    """One row per shot: frame range [start_frame, end_frame), length, start time and timecode."""
    if total_frames < 1:
        raise ValueError("a film needs at least one frame")
    bad = [c for c in cuts if not 0 < c < total_frames]
    if bad or sorted(set(cuts)) != list(cuts):
        raise ValueError(f"cuts must be increasing frame indices inside (0, {total_frames}), got {cuts}")
    starts = [0, *cuts]
    ends = [*cuts, total_frames]
    rows = [
        {
            "shot": i,
            "start_frame": s,
            "end_frame": e,
            "frames": e - s,
            "start_seconds": float(Fraction(s) / fps),
            "start_timecode": timecode(s, fps),
        }
        for i, (s, e) in enumerate(zip(starts, ends, strict=True))
    ]
    return pd.DataFrame(rows, columns=SHOT_COLUMNS)


@dataclass(frozen=True)
class Piece:
    """A unit of restoration work: frames [start, end) of one shot plus halo frames read around it.

    read_start/read_end never leave the shot, so no temporal stage sees across a cut.
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
