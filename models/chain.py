"""Running a chain of stages over a piece of a shot, doing no more work than the output needs.

A piece is read with a halo of sum(context_frames) on each side, but only the first stage
needs all of it: stage i must deliver the piece plus the context of the stages after it, so
each stage runs on a shrinking window. The output equals running every stage over the whole
read window and keeping the piece (each stage's output for a frame depends only on frames
within its own context), at a fraction of the cost when halos are large.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.clip import Clip
from models.metrics import sharpness, ssim_luma
from models.stage import Stage


def stage_change(before: Clip, after: Clip, t: int) -> dict[str, float] | None:
    """How much a stage changed frame t (luma SSIM, sharpness kept) where it kept the frame's size and
    count (None otherwise): the evidence the harm guard uses to tell which stage harmed a shot."""
    if after.num_frames != before.num_frames or after.frames.shape[1:] != before.frames.shape[1:]:
        return None
    a, b = before.frames[t], after.frames[t]
    s_a = float(sharpness(a[None]))
    return {"ssim": round(float(ssim_luma(b, a)), 4),
            "sharpness": round(float(sharpness(b[None])) / s_a, 4) if s_a > 1e-12 else 1.0,
            "mean_abs": round(float(np.abs(b - a).mean()), 5)}


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
        before = cur.slice(lo - offset, hi - offset)
        done, report = stage.process(before)
        change = stage_change(before, done, (start + end) // 2 - lo)
        reports.append({"stage": stage.name, **trim_report(report, hi - lo, start - lo, end - lo),
                        **({"change": change} if change else {})})
        cur, offset = done.slice(out_lo - lo, out_hi - lo), out_lo
    return cur.slice(start - offset, end - offset), reports
