from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from models.clip import Clip, ColorInfo, to_uint
from models.metrics import cut_scores, mask_scores
from models.shots import (
    DETECTOR_VERSION,
    HEAL,
    SHOT_DETECTOR,
    StreamingScores,
    decide,
    decide_cuts,
    detect_cuts,
    frame_features,
    score_frames,
    score_rows,
)
from models.synth import SynthConfig, render_film


def test_clip_checks_itself():
    with pytest.raises(ValueError, match="shape"):
        Clip(np.zeros((4, 4, 3), np.float32), Fraction(24))
    with pytest.raises(ValueError, match="float32"):
        Clip(np.zeros((1, 4, 4, 3), np.uint8), Fraction(24))
    with pytest.raises(ValueError, match="fps"):
        Clip(np.zeros((1, 4, 4, 3), np.float32), Fraction(0))
    with pytest.raises(ValueError):
        ColorInfo(bit_depth=9)
    u16 = (np.arange(2 * 4 * 4 * 3) * 1000 % 65536).astype(np.uint16).reshape(2, 4, 4, 3)
    c = Clip.from_uint(u16, Fraction(24000, 1001), first_frame=5)
    assert np.array_equal(c.to_uint(np.uint16), u16)
    assert c.slice(1, 2).first_frame == 6
    assert np.array_equal(to_uint(np.array([0.0, 0.5, 1.0, 2.0], np.float32), np.uint8), [0, 128, 255, 255])


def test_synthetic_cuts_found_exactly_with_every_degradation_on():
    for seed in (0, 1, 2):
        f = render_film(SynthConfig(seed=seed, shots=4, frames_per_shot=20))
        frames = f.degraded.astype(np.float32) / 255
        assert detect_cuts(frames) == f.truth["cuts"], seed


def test_flash_and_blotch_frames_are_not_cuts():
    f = render_film(SynthConfig(seed=5, shots=2, frames_per_shot=20))
    frames = f.degraded.astype(np.float32) / 255
    frames[7] = 0.3 * frames[7] + 0.7  # a flash toward white
    frames[13, 40:200, 60:260] = 0.95  # a huge single-frame blotch
    assert detect_cuts(frames) == f.truth["cuts"]


def test_chunked_scores_equal_serial_scores():
    f = render_film(SynthConfig(seed=4, shots=3, frames_per_shot=10))
    frames = f.degraded.astype(np.float32) / 255
    serial = score_rows([frame_features(x) for x in frames], 0, len(frames))
    parts = []
    for start in range(0, len(frames), 7):  # odd chunk length on purpose; each chunk computes its own features
        count = min(7, len(frames) - start)
        lo, hi = max(0, start - 1), min(len(frames), start + count + HEAL)
        parts.append(score_rows([frame_features(x) for x in frames[lo:hi]], start - lo, count))
    chunked = np.concatenate(parts)
    assert np.array_equal(np.nan_to_num(serial, nan=-1), np.nan_to_num(chunked, nan=-1))
    assert np.array_equal(np.nan_to_num(score_frames(frames), nan=-1), np.nan_to_num(serial, nan=-1))
    assert decide_cuts(chunked) == decide_cuts(serial) == f.truth["cuts"]
    assert decide(chunked) == decide(serial)
    streaming = StreamingScores()  # the ingest's way: frames pushed one by one as they are decoded
    for x in frames:
        streaming.push(x)
    assert np.array_equal(np.nan_to_num(streaming.finish(), nan=-1), np.nan_to_num(serial, nan=-1))
    short = StreamingScores()  # a film shorter than the detector's window
    for x in frames[:2]:
        short.push(x)
    assert np.array_equal(np.nan_to_num(short.finish(), nan=-1),
                          np.nan_to_num(score_rows([frame_features(x) for x in frames[:2]], 0, 2), nan=-1))
    assert StreamingScores().finish().shape == (0, serial.shape[1])


def test_the_shot_detector_gives_the_same_rows_on_every_path():
    """One detector object for ingest (streaming), the chunk tasks (a chunk read with its halo) and `reel
    shots` (a whole film's features): the same rows, the same decision."""
    f = render_film(SynthConfig(seed=6, shots=3, frames_per_shot=9))
    frames = f.degraded
    det = SHOT_DETECTOR
    whole = det.score(frames)
    streaming = det.streaming()
    for x in frames:
        streaming.push(x)
    parts = []
    for start in range(0, len(frames), 5):
        end = min(len(frames), start + 5)
        lo, hi = det.chunk_window(start, end, len(frames))
        assert (start - lo, hi - end) == (min(start, det.halo_before), min(len(frames) - end, det.halo_after))
        parts.append(det.score_chunk(list(frames[lo:hi]), start, end, lo))
    features = det.score(det.features(x) for x in frames)  # what `reel shots` feeds it
    for rows in (streaming.finish(), np.concatenate(parts), features):
        assert np.array_equal(np.nan_to_num(rows, nan=-1), np.nan_to_num(whole, nan=-1))
    assert det.decide(whole).cuts == det.detect(frames).cuts == f.truth["cuts"]
    assert det.version == DETECTOR_VERSION


def test_scores_count_true_and_false_positives():
    assert cut_scores([10, 20, 31], [10, 30]) == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8}
    m = np.zeros((2, 2), bool)
    t = m.copy()
    t[0, 0] = True
    assert mask_scores(m, t)["recall"] == 0.0


def test_frames_laid_out_plane_by_plane_are_made_contiguous_for_the_stages():
    """10-bit ProRes decodes to planes; stacked and transposed they are not pixel rows, and OpenCV's
    warpAffine (stabilise) refused them in `reel stage` ("Layout ... incompatible")."""
    from models.stabilise import Stabilise

    rng = np.random.default_rng(0)
    planar = (rng.random((6, 3, 40, 56)) * 65535).astype(np.uint16)
    frames = planar.transpose(0, 2, 3, 1)  # (T, H, W, 3) view, not C-contiguous
    assert not frames.flags.c_contiguous
    clip = Clip.from_uint(frames, Fraction(24))
    assert clip.frames.flags.c_contiguous
    out, _ = Stabilise(mode="weave").process(clip)
    assert out.frames.shape == clip.frames.shape
