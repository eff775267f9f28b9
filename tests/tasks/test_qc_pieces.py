"""QC measured piece by piece (restore-piece does it while the frames are in memory) and joined per shot.

The pieces' numbers joined by `finish_shot` must give the shot's metrics as one pass over the whole shot
does: same sampled frames, same repeated-frame decisions, same pictures. Only a sampled warping pair
that would straddle two pieces moves one frame later.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.duplicates import DuplicateDetector, find_duplicates
from models.qc import WARP_PAIRS, _sampling, finish_shot, measure_piece
from models.synth import SynthConfig, render_film


@pytest.fixture(scope="module")
def shot() -> dict:
    """One 40-frame shot: degraded source (uint8) and a 'restored' version (uint16), with two frames
    repeated in the source (a re-scan: the same picture with new noise)."""
    film = render_film(SynthConfig(width=96, height=64, shots=1, frames_per_shot=40, seed=3))
    src = film.degraded.copy()
    rng = np.random.default_rng(0)
    for t in (13, 27):  # repeats of the frame before, re-scanned
        noisy = src[t - 1].astype(np.int16) + rng.integers(-2, 3, src[t - 1].shape)
        src[t] = np.clip(noisy, 0, 255).astype(np.uint8)
    restored = (film.clean.astype(np.uint16) * 257)
    return {"src": src, "res": restored, "start": 100}  # the shot starts at frame 100 of the film


def measure(shot: dict, cuts: list[int]) -> tuple[dict, dict]:
    """Measure the shot in pieces split at the shot-relative frames `cuts`, then join."""
    src, res, s0 = shot["src"], shot["res"], shot["start"]
    n = len(src)
    bounds = [0, *cuts, n]
    parts = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        q, pics = measure_piece(src[a:b], res[a:b], shot_start=s0, shot_end=s0 + n, start=s0 + a, bit_depth=8,
                                before=src[a - 1] if a else None)
        parts.append((json.loads(json.dumps(q)), pics))  # as stored in the segment record
    return finish_shot(parts[::-1], shot=5, start=s0, end=s0 + n, reports=[])  # any order


def test_pieces_joined_equal_one_pass_over_the_shot(shot):
    n = len(shot["src"])
    _, _, warp_ends, _ = _sampling(n)
    cuts = [c for c in (9, 20, 31) if c not in warp_ends and c - 1 not in warp_ends]
    assert len(cuts) >= 2, "pick cuts away from the sampled warping pairs"
    whole, whole_png = measure(shot, [])
    split, split_png = measure(shot, cuts)
    assert split == whole
    assert split_png == whole_png  # the before/after picture and the contact sheet, byte for byte
    assert whole["sampled_frames"]["warping_pairs"] == WARP_PAIRS
    # the repeated frames are found, across piece boundaries too (27 is 4 frames after a cut)
    assert {113, 127} <= set(whole["duplicate_frames"])
    assert whole["duplicate_frames"] == [d["frame"] + 100 for d in find_duplicates(shot["src"])]


def test_a_sampled_warping_pair_on_a_piece_boundary_moves_one_frame_later(shot):
    n = len(shot["src"])
    _, _, warp_ends, _ = _sampling(n)
    cut = sorted(warp_ends)[3]  # the pair (cut - 1, cut) would straddle the boundary
    whole, _ = measure(shot, [])
    split, _ = measure(shot, [cut])
    assert split["sampled_frames"]["warping_pairs"] == whole["sampled_frames"]["warping_pairs"] == WARP_PAIRS
    assert split["warping_error_source"] != whole["warping_error_source"]  # one pair differs ...
    same = {k: v for k, v in whole.items() if not k.startswith("warping")}
    assert {k: v for k, v in split.items() if not k.startswith("warping")} == same  # ... nothing else


def test_joining_refuses_gaps_and_missing_neighbours(shot):
    src, res, s0 = shot["src"], shot["res"], shot["start"]
    n = len(src)
    first = measure_piece(src[:20], res[:20], shot_start=s0, shot_end=s0 + n, start=s0, bit_depth=8)
    rest = measure_piece(src[21:], res[21:], shot_start=s0, shot_end=s0 + n, start=s0 + 21, bit_depth=8,
                         before=src[20])
    with pytest.raises(RuntimeError, match="covers"):
        finish_shot([first, rest], shot=1, start=s0, end=s0 + n, reports=[])
    no_before = measure_piece(src[20:], res[20:], shot_start=s0, shot_end=s0 + n, start=s0 + 20, bit_depth=8)
    with pytest.raises(RuntimeError, match="repeated-frame distances"):
        finish_shot([first, no_before], shot=1, start=s0, end=s0 + n, reports=[])
    with pytest.raises(ValueError):
        measure_piece(src[:3], res[:2], shot_start=s0, shot_end=s0 + n, start=s0, bit_depth=8)


def test_duplicate_detector_from_distances_decides_as_streaming_does(shot):
    det = DuplicateDetector()
    for f in shot["src"]:
        det.push(f)
    again = DuplicateDetector.from_distances(det.distances, det.shifts)
    assert again.results() == det.results() and det.results()
    with pytest.raises(ValueError, match="distances but"):
        DuplicateDetector.from_distances([0.1], [])
