"""The pipeline over one media file in this process, with no store or orchestration: what `reel shots`,
`reel stage`, `reel grade apply` and the benchmarks' plain loop run.

It is the flow's pipeline with frames from one sequential decode instead of mezzanine chunks, made
of the same parts: the shot detector (`models.shots.SHOT_DETECTOR`), the shot table and the pieces
with their halos (`catalog.shots`), the stages' per-shot preparation hook over the shots' analysis
(`catalog.bindings.prepare_shots`, analysis frames subsampled as the flow's are) and the stage loop's
body (`models.chain.run_piece`). Every open of the file goes through `infra.media`'s confined open.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from catalog.bindings import ShotBindings, prepare_shots
from catalog.shots import DetectedShots, Piece, plan_pieces, shot_table
from infra.luma import DecodedTimes, picture_features
from infra.media import (
    MediaError,
    MediaInfo,
    VideoInfo,
    count_frames,
    encode_master,
    frame_times,
    iter_frames,
    probe,
)
from infra.settings import Settings
from models.chain import PieceOutput, check_chain, run_piece
from models.clip import Clip
from models.shots import SHOT_DETECTOR, ShotDetector
from models.stage import Stage, analysis_step


def probe_file(path: str | os.PathLike, settings: Settings, stream: int | None = None) -> MediaInfo:
    """`infra.media.probe` (in a child process) with the settings' limits."""
    return probe(path, timeout_s=settings.probe_timeout_s, max_pixels=settings.max_source_pixels,
                 max_memory_mb=settings.probe_max_memory_mb, stream=stream)


def video_of(info: MediaInfo) -> VideoInfo:
    if info.video is None:  # probe refuses files without video
        raise ValueError(f"{info.path}: no video stream")
    return info.video


def decode_depth(video: VideoInfo) -> int:
    """8 (uint8 frames) for sources of 8 bits or fewer, else 16: what the mezzanine keeps too."""
    return 8 if video.bit_depth <= 8 else 16


def detect_file(path: str | os.PathLike, info: MediaInfo, detector: ShotDetector = SHOT_DETECTOR) -> DetectedShots:
    """Cuts and transitions of a media file (its first video stream), with each frame's time.

    Frames are 0-based decoded-frame indices. Times are the frames' own presentation times
    (`infra.media.frame_times`), relative to frame 0, so they are right for variable frame rates; where
    the demuxer and the decoder disagree on the number of frames, the decoded frames' own stamps."""
    fps = video_of(info).fps
    stamps = DecodedTimes()
    rows = detector.score(picture_features(path, detector, stamps))
    found = detector.decide(rows)
    n = int(rows.shape[0])
    times = frame_times(path)
    if len(times) != n:  # the demuxer and the decoder disagree: use the decoded frames' own stamps
        times = stamps.seconds() or [float(Fraction(i) / fps) for i in range(n)]
    return DetectedShots(found.cuts, list(found.transitions), n, fps, times, detector.version)


def shots_of_file(path: str | os.PathLike, settings: Settings, detector: ShotDetector = SHOT_DETECTOR
                  ) -> DetectedShots:
    """`reel shots`: the file probed (with the settings' limits), then `detect_file`."""
    return detect_file(path, probe_file(path, settings), detector)


def needs_shots(stages: Sequence[Stage]) -> bool:
    """Whether the chain needs the film's shots: temporal stages (their pieces end at cuts, so no frame is
    restored from another shot's) and shot-analysis ones; the others run on any piece."""
    return any(s.shot_analysis or s.context_frames > 0 or s.frame_factor > 1 for s in stages)


def analyse_file_shots(stages: Sequence[Stage], path: str | os.PathLike, shots: pd.DataFrame,
                       info: MediaInfo) -> dict[int, dict[int, dict]]:
    """{shot: {stage index: statistics}} of the chain's shot-analysis stages, from the frames each asks for
    in each shot (one decode, stopped after the last frame wanted), subsampled as the flow's are."""
    v = video_of(info)
    wanted: dict[int, list[tuple[int, int]]] = {}  # frame -> [(stage index, shot)]
    for i, stage in enumerate(stages):
        if stage.shot_analysis:
            for row in shots.itertuples(index=False):
                for f in stage.analysis_frames(int(row.start_frame), int(row.end_frame)):
                    wanted.setdefault(int(f), []).append((i, int(row.shot)))
    if not wanted:
        return {}
    step = analysis_step(v.height, v.width)
    samples: dict[tuple[int, int], list[np.ndarray]] = {}
    first: dict[tuple[int, int], int] = {}
    last = max(wanted)
    for n, frame in enumerate(iter_frames(path, depth=decode_depth(v))):
        for key in wanted.get(n, []):
            samples.setdefault(key, []).append(np.ascontiguousarray(frame[::step, ::step]))
            first.setdefault(key, n)
        if n >= last:
            break
    out: dict[int, dict[int, dict]] = {}
    for (i, shot), frames in sorted(samples.items()):
        clip = Clip.from_uint(np.stack(frames), v.fps, first_frame=first[(i, shot)], color=v.color)
        out.setdefault(shot, {})[i] = stages[i].analyse(clip)
    return out


@dataclass(frozen=True)
class FilePlan:
    """How a chain runs over a file: the shot table (one shot when the chain does not need shots), the
    pieces with their halos, each shot's bindings, and the chain's frame factor."""

    info: MediaInfo
    shots: pd.DataFrame
    pieces: list[Piece]
    bindings: dict[int, ShotBindings]
    factor: int

    @property
    def video(self) -> VideoInfo:
        return video_of(self.info)


def plan_file(stages: Sequence[Stage], path: str | os.PathLike, info: MediaInfo, settings: Settings,
              detector: ShotDetector = SHOT_DETECTOR) -> FilePlan:
    """Shots (detected where the chain needs them), pieces of at most the settings' piece_frames with the
    chain's halo, and the stages' per-shot preparation over the shots' analysis."""
    factor = check_chain(list(stages))
    v = video_of(info)
    if needs_shots(stages):
        shots = detect_file(path, info, detector).table()
    else:
        shots = shot_table([], v.frames or count_frames(path), v.fps)
    halo = sum(s.context_frames for s in stages)
    pieces = plan_pieces(shots, settings.piece_frames, halo)
    rows = [(int(r.shot), int(r.start_frame), int(r.end_frame)) for r in shots.itertuples(index=False)]
    bindings = prepare_shots(stages, rows, analyse_file_shots(stages, path, shots, info))
    return FilePlan(info, shots, pieces, bindings, factor)


def windowed(frames: Iterator[np.ndarray], pieces: list[Piece]) -> Iterator[tuple[Piece, np.ndarray]]:
    """Yield (piece, frames[read_start:read_end]) from one sequential decode, holding one window at a time."""
    buf: list[np.ndarray] = []
    buf_start = 0
    for piece in pieces:
        while buf_start + len(buf) < piece.read_end:
            frame = next(frames, None)
            if frame is None:
                raise MediaError(f"the file ended at frame {buf_start + len(buf)}, before frame {piece.read_end - 1} "
                                 "that its container declares")
            buf.append(frame)
        drop = piece.read_start - buf_start
        if drop > 0:
            del buf[:drop]
            buf_start = piece.read_start
        yield piece, np.stack(buf[: piece.read_end - buf_start])


def restore_file_pieces(stages: Sequence[Stage], plan: FilePlan, path: str | os.PathLike
                        ) -> Iterator[tuple[Piece, np.ndarray, PieceOutput]]:
    """The stage loop over a file: (piece, its source frames with halo, its restored frames) in film order,
    from one sequential decode."""
    v = plan.video
    chains = {shot: b.apply(list(stages)) for shot, b in plan.bindings.items()}
    for piece, frames in windowed(iter_frames(path, depth=decode_depth(v)), plan.pieces):
        yield piece, frames, run_piece(chains[piece.shot], frames, v.fps, v.color, piece.read_start, piece.start,
                                       piece.end)


def chain_output_size(stages: Sequence[Stage], width: int, height: int) -> tuple[int, int]:
    for s in stages:
        width, height = s.output_size(width, height)
    return width, height


@dataclass(frozen=True)
class StageOutput:
    """What `run_stages_on_file` wrote."""

    path: Path
    frames: int
    width: int
    height: int
    codec: str
    fps: Fraction
    factor: int


Progress = Callable[[Iterator[tuple[Piece, np.ndarray, PieceOutput]], int], Iterator[tuple[Piece, np.ndarray,
                                                                                          PieceOutput]]]


def run_stages_on_file(stages: Sequence[Stage], src: Path, out: Path, settings: Settings,
                       progress: Progress | None = None) -> StageOutput:
    """Run a chain of stages (bound as the caller likes) over a whole file, writing FFV1 16-bit (.mkv) or
    ProRes 422 HQ (.mov) with the source's audio; the output appears complete or not at all.

    A chain whose last stage has `frame_factor` k > 1 (frame interpolation) writes k times the frames at
    k times the frame rate. For temporal stages the pieces end at detected cuts and transitions, so no
    frame is restored or interpolated from another shot's frames; shot-analysis stages get their
    statistics per detected shot. `progress(pieces, count)` may wrap the restored pieces (a bar)."""
    info = probe_file(src, settings)
    plan = plan_file(stages, src, info, settings)
    v = plan.video
    width, height = chain_output_size(stages, v.width, v.height)
    codec = "prores" if out.suffix.lower() == ".mov" else "ffv1"
    pieces = restore_file_pieces(stages, plan, src)
    if progress is not None:
        pieces = progress(pieces, len(plan.pieces))
    frames = (frame for _, _, done in pieces for frame in done.frames)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        written = encode_master(frames, tmp, width=width, height=height, fps=v.fps * plan.factor, codec=codec,
                                audio_source=str(src) if info.audio else None)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return StageOutput(out, written, width, height, codec, v.fps * plan.factor, plan.factor)
