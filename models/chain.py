"""Running a chain of stages over a piece of a shot, doing no more work than the output needs.

A piece is read with a halo of sum(context_frames) on each side, but only the first stage
needs all of it: stage i must deliver the piece plus the context of the stages after it, so
each stage runs on a shrinking window. The output equals running every stage over the whole
read window and keeping the piece (each stage's output for a frame depends only on frames
within its own context), at a fraction of the cost when halos are large.
"""

from __future__ import annotations

from typing import Any

from models.clip import Clip
from models.stage import Stage


def trim_report(report: dict[str, Any], n: int, a: int, b: int) -> dict[str, Any]:
    """Keep entries a..b of per-frame lists (those with one entry per processed frame)."""
    return {k: (v[a:b] if isinstance(v, list) and len(v) == n else v) for k, v in report.items()}


def run_chain(stages: list[Stage], clip: Clip, start: int, end: int) -> tuple[Clip, list[dict[str, Any]]]:
    """Frames [start, end) of `clip` (indices into it) after every stage, and each stage's report
    restricted to those frames. `clip` must hold the halo the stages need, or reach the shot's ends."""
    n = clip.num_frames
    if not 0 <= start < end <= n:
        raise ValueError(f"output range [{start}, {end}) outside clip of {n} frames")
    contexts = [s.context_frames for s in stages]
    cur, offset = clip, 0  # cur.frames[0] is frame `offset` of `clip`
    reports = []
    for i, stage in enumerate(stages):
        later = sum(contexts[i + 1:])
        lo, hi = max(0, start - later - contexts[i]), min(n, end + later + contexts[i])
        out_lo, out_hi = max(0, start - later), min(n, end + later)
        done, report = stage.process(cur.slice(lo - offset, hi - offset))
        reports.append({"stage": stage.name, **trim_report(report, hi - lo, start - lo, end - lo)})
        cur, offset = done.slice(out_lo - lo, out_hi - lo), out_lo
    return cur.slice(start - offset, end - offset), reports
