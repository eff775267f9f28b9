"""Running a chain of stages over a piece of a shot, doing no more work than the output needs.

A piece is read with a halo of sum(context_frames) on each side, but only the first stage
needs all of it: stage i must deliver the piece plus the context of the stages after it, so
each stage runs on a shrinking window. The output equals running every stage over the whole
read window and keeping the piece (each stage's output for a frame depends only on frames
within its own context), at a fraction of the cost when halos are large.

`run_piece` is the one stage loop's body: integer frames of a piece (with its halo) in, the piece's
restored 16-bit frames and the stages' reports out. The flow's restore-piece step, `reel stage` and
the benchmarks' plain loop all call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from models.clip import Clip, ColorInfo
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


def check_chain(stages: list[Stage]) -> int:
    """The chain's output frames per input frame; ValueError for a chain no piece can run: a frame-rate
    changer must be the last stage (the stages after it would count frames differently) and must read
    at least one frame of context (the successor of a piece's last frame)."""
    factor = 1
    for i, stage in enumerate(stages):
        k = int(stage.frame_factor)
        if k < 1:
            raise ValueError(f"stage {stage.name!r}: frame_factor must be >= 1, got {k}")
        if k > 1 and stage.context_frames < 1:
            raise ValueError(f"stage {stage.name!r}: frame_factor {k} needs context_frames >= 1 "
                             "(the successor of each piece's last frame)")
        if k > 1 and i != len(stages) - 1:
            raise ValueError(f"stage {stage.name!r} changes the frame rate ({k} frames per frame): it must be "
                             "the last stage of a chain")
        factor = k
    return factor


def run_chain(stages: list[Stage], clip: Clip, start: int, end: int) -> tuple[Clip, list[dict[str, Any]]]:
    """Frames [start, end) of `clip` (indices into it) after every stage, and each stage's report
    restricted to those frames. `clip` must hold the halo the stages need, or reach the shot's ends.

    A last stage with `frame_factor` k > 1 gives k * (end - start) frames at k times the rate
    (output numbering, see `Stage.frame_factor`)."""
    n = clip.num_frames
    if not 0 <= start < end <= n:
        raise ValueError(f"output range [{start}, {end}) outside clip of {n} frames")
    factor = check_chain(stages)
    contexts = [s.context_frames for s in stages]
    cur, offset = clip, 0  # cur.frames[0] is frame `offset` of `clip`
    reports = []
    for i, stage in enumerate(stages):
        later = sum(contexts[i + 1:])
        lo, hi = max(0, start - later - contexts[i]), min(n, end + later + contexts[i])
        out_lo, out_hi = max(0, start - later), min(n, end + later)
        before = cur.slice(lo - offset, hi - offset)
        done, report = stage.process(before)
        k = stage.frame_factor
        if done.num_frames != before.num_frames * k:
            raise ValueError(f"stage {stage.name!r} returned {done.num_frames} frames for {before.num_frames} "
                             f"(frame_factor {k})")
        change = stage_change(before, done, (start + end) // 2 - lo)
        reports.append({"stage": stage.name, **trim_report(report, hi - lo, start - lo, end - lo),
                        **({"change": change} if change else {})})
        cur, offset = done.slice((out_lo - lo) * k, (out_hi - lo) * k), out_lo
    return cur.slice((start - offset) * factor, (end - offset) * factor), reports


@dataclass(frozen=True)
class PieceOutput:
    """A restored piece: (T, H, W, 3) uint16 frames (T = its frames times the chain's frame factor), their
    rate, and one report per stage (restricted to the piece's frames)."""

    frames: np.ndarray
    fps: Fraction
    reports: list[dict[str, Any]]

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])


def run_piece(stages: list[Stage], frames: np.ndarray, fps: Fraction, color: ColorInfo, read_start: int,
              start: int, end: int) -> PieceOutput:
    """Restore frames [start, end) of a film (source frame numbers) with `stages` (bound for the piece's
    shot), from `frames` = its uint8/uint16 RGB frames read_start .. (the piece and its halo)."""
    clip = Clip.from_uint(frames, fps, first_frame=read_start, color=color)
    out, reports = run_chain(stages, clip, start - read_start, end - read_start)
    del clip
    return PieceOutput(out.to_uint(np.uint16), out.fps, reports)
