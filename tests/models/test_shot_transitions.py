"""Transitions (fades, dissolves) and transients (flashes, blotches) in shot detection; synthetic events."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from catalog.shots import plan_pieces, shot_table
from models.shots import HEAL, Transition, decide, frame_features, score_frames, score_rows
from models.synth import SynthConfig, render_film
from models.synth_events import add_flashes, add_transitions

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "oldfilm"

# cut 48: fade out 10 + 2 black + fade in 12; cut 96: 12-frame dissolve; cut 144: 30-frame dissolve;
# cut 192 stays a hard cut; cut 240: fade through white.
PLAN = [
    {"cut": 48, "kind": "fade", "out": 10, "in": 12, "hold": 2},
    {"cut": 96, "kind": "dissolve", "frames": 12},
    {"cut": 144, "kind": "dissolve", "frames": 30},
    {"cut": 240, "kind": "fade", "out": 8, "in": 10, "colour": "white"},
]


@pytest.fixture(scope="module")
def film():
    """Six 48-frame shots, every degradation on, the transitions of PLAN, flashes elsewhere."""
    f = render_film(SynthConfig(seed=4, shots=6, frames_per_shot=48))
    return add_flashes(add_transitions(f, seed=4, plan=PLAN), seed=4)


@pytest.fixture(scope="module")
def rows(film):
    return score_frames(film.degraded)


def _matches(found: list[Transition], truth: dict) -> list[Transition]:
    return [t for t in found if t.kind == truth["kind"] and t.start < truth["end"] and truth["start"] < t.end]


def test_synthetic_events_keep_their_truth(film):
    t = film.truth
    assert t["cuts"] == [192]
    kinds = [(r["start"], r["end"], r["kind"]) for r in t["transitions"]]
    assert kinds == [(36, 48, "fade_out"), (48, 60, "fade_in"), (90, 102, "dissolve"), (129, 159, "dissolve"),
                     (232, 240, "fade_out"), (240, 250, "fade_in")]
    assert t["flash_frames"] and not set(t["flash_frames"]) & set(t["edited_frames"]) - set(t["flash_frames"])
    for fl in t["flash_frames"]:
        assert all(not r["start"] - 3 <= fl < r["end"] + 3 for r in t["transitions"])
    assert film.degraded[46:48].mean() < 0.25 * film.degraded[30:36].mean()  # the held black
    assert film.degraded[236:240].mean() > film.degraded[220:230].mean()  # through white
    small = render_film(SynthConfig(seed=2, shots=3, frames_per_shot=30, width=96, height=64))
    one, two = (add_flashes(add_transitions(small, seed=9, probability=1.0), seed=9) for _ in range(2))
    assert np.array_equal(one.degraded, two.degraded) and np.array_equal(one.clean, two.clean)
    assert json.dumps(one.truth) == json.dumps(two.truth) and one.truth["transitions"]
    assert json.dumps(small.truth) != json.dumps(one.truth)  # the input film is left as it was
    moved = {r["cut"] for r in one.truth["transitions"]}
    assert sorted(set(one.truth["cuts"]) | moved) == small.truth["cuts"] and not set(one.truth["cuts"]) & moved
    with pytest.raises(ValueError, match="does not fit"):
        add_transitions(render_film(SynthConfig(seed=1, shots=2, frames_per_shot=12)), plan=[
            {"cut": 12, "kind": "dissolve", "frames": 20}])


def test_fades_and_dissolves_are_found_and_flashes_are_not_cuts(film, rows):
    found = decide(rows)
    assert found.cuts == film.truth["cuts"]  # no cut at a flash, a transition or a blotch
    for truth in film.truth["transitions"]:
        assert len(_matches(found.transitions, truth)) == 1, (truth, found.transitions)
    assert len(found.transitions) == len(film.truth["transitions"])
    assert all(t.end - t.start >= 6 for t in found.transitions)
    table = shot_table(found.cuts, len(rows), Fraction(24), found.transitions)  # what save_shots stores
    assert table["kind"].tolist().count("shot") == 6 and table["frames"].sum() == len(rows)


def test_chunked_rows_equal_serial_rows_with_transitions(film, rows):
    frames = film.degraded
    parts = []
    for start in range(0, len(frames), 37):  # chunk edges fall inside fades and dissolves
        count = min(37, len(frames) - start)
        lo, hi = max(0, start - 1), min(len(frames), start + count + HEAL)
        parts.append(score_rows([frame_features(f) for f in frames[lo:hi]], start - lo, count))
    chunked = np.concatenate(parts)
    assert np.array_equal(np.nan_to_num(chunked, nan=-7), np.nan_to_num(rows, nan=-7))
    assert decide(chunked) == decide(rows)


def test_flashes_and_blotches_are_neither_cuts_nor_transitions():
    f = render_film(SynthConfig(seed=5, shots=2, frames_per_shot=40))
    f = add_flashes(f, plan=[
        {"frame": 6, "kind": "full", "strength": [0.95]},                      # gunfire, nearly white
        {"frame": 14, "kind": "full", "strength": [0.85, 0.45, 0.15]},        # lightning fading out
        {"frame": 25, "kind": "partial", "strength": [1.0], "center": [80, 60], "radius": 90},
        {"frame": 52, "kind": "full", "strength": [0.7, 0.7]},
    ])
    frames = f.degraded.copy()
    frames[33, 30:200, 40:260] = 245  # a huge single-frame blotch
    frames[62, 100:140, 10:300] = 8   # and a dark one
    found = decide(score_frames(frames))
    assert found.cuts == f.truth["cuts"] == [40]
    assert found.transitions == []


def test_shot_table_keeps_transitions_whole():
    cuts = [30]
    trans = [Transition(50, 62, "fade_out"), Transition(62, 75, "fade_in"), {"start": 100, "end": 120,
                                                                             "kind": "dissolve"}]
    t = shot_table(cuts, 150, Fraction(24), trans)
    assert list(zip(t["start_frame"], t["end_frame"], t["kind"], strict=True)) == [
        (0, 30, "shot"), (30, 50, "shot"), (50, 62, "fade_out"), (62, 75, "fade_in"), (75, 100, "shot"),
        (100, 120, "dissolve"), (120, 150, "shot")]
    assert t["shot"].tolist() == list(range(7)) and t["frames"].sum() == 150
    for p in plan_pieces(t, max_frames=8, halo=5):
        row = t.iloc[p.shot]
        assert row.start_frame <= p.read_start <= p.start < p.end <= p.read_end <= row.end_frame
    assert shot_table([], 10, Fraction(24))["kind"].tolist() == ["shot"]
    with pytest.raises(ValueError, match="inside"):
        shot_table([55], 150, Fraction(24), trans)
    with pytest.raises(ValueError, match="non-overlapping"):
        shot_table([], 150, Fraction(24), [Transition(10, 20, "dissolve"), Transition(15, 30, "dissolve")])


@pytest.mark.skipif(not (SHARED / "cuts.json").exists(), reason="../shared/data/oldfilm not present")
@pytest.mark.parametrize("name", ["four_films.mkv", "four_films_flashes.mkv"])
def test_shared_real_clips_give_exactly_their_cuts(name):
    from infra.media import iter_frames

    truth = json.loads((SHARED / "cuts.json").read_text())[name]
    found = decide(score_frames(iter_frames(SHARED / name)))
    assert found.cuts == truth["cuts"] == [60, 109, 157]
    assert found.transitions == []
