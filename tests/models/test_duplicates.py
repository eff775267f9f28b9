"""Duplicated-frame detection (models/duplicates.py) on synthetic films with known repeats."""

from __future__ import annotations

import math
from fractions import Fraction

import cv2
import numpy as np
import pytest

from models.clip import Clip
from models.duplicates import DuplicateDetector, duplicate_cadence, find_duplicates
from tests.models.conftest import film, textured

SEEDS = (1, 2, 3)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def rescan(clean: np.ndarray, truth: dict, t: int, rng: np.random.Generator, shift=(0.0, 0.0),
           gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """Frame t printed again: the film's own flicker and weave (plus an extra shift and exposure
    change) and freshly drawn grain with the film's grain statistics, quantised to 8 bits."""
    x = clean.astype(np.float32)
    H, W = x.shape[:2]
    fl = truth["flicker"]
    xc = (2 * np.arange(W, dtype=np.float32) / (W - 1) - 1)[None, :, None]
    x = np.clip(x * (fl["gain"][t] * gain * (1 + fl["spatial_slope"][t] * xc)) + fl["offset"][t] + offset, 0, 1)
    dx, dy = truth["weave"][t]
    m = np.float32([[1, 0, dx + shift[0]], [0, 1, dy + shift[1]]])
    x = np.clip(cv2.warpAffine(x, m, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), 0, 1)
    g = truth["grain"]
    k = cv2.getGaussianKernel(2 * math.ceil(3 * g["blur_sigma"]) + 1, g["blur_sigma"], cv2.CV_32F)
    n = (rng.standard_normal((H, W, 3), dtype=np.float32) * np.float32(math.sqrt(1 - g["mono"] ** 2))
         + rng.standard_normal((H, W, 1), dtype=np.float32) * np.float32(g["mono"]))
    n = cv2.sepFilter2D(n, -1, k, k, borderType=cv2.BORDER_REFLECT) / np.float32((k.astype(np.float64) ** 2).sum())
    lum = x @ _LUMA
    x = np.clip(x + n * (g["sigma"] * (0.4 + 2.4 * lum * (1 - lum)))[..., None], 0, 1)
    return (np.rint(x * 255) / 255).astype(np.float32)


# extra shift (px) and exposure change of the copies, cycled: none, +1 px and brighter, -1/+1 px and darker
VARIANTS = [((0.0, 0.0), 1.0, 0.0), ((1.0, 0.0), 1.08, 0.01), ((-1.0, 1.0), 0.94, -0.01)]


def with_repeats(seed: int, after: list[int] | None = None, every: int | None = None, frames: int = 24):
    """A grain+flicker+weave film with rescanned copies inserted; returns (frames, {copy: original})."""
    degraded, clean, truth = film(grain=True, flicker=True, weave=True, frames=frames, seed=seed)
    rng = np.random.default_rng([seed, 99])
    out, truth_dups = [], {}
    for t in range(frames):
        out.append(degraded.frames[t])
        original = len(out) - 1
        copies = after.count(t) if after is not None else int(t % every == every - 1)
        for _ in range(copies):
            shift, gain, offset = VARIANTS[len(truth_dups) % 3]
            truth_dups[len(out)] = original
            out.append(rescan(clean.frames[t], truth, t, rng, shift, gain, offset))
    return np.stack(out), truth_dups


def scores(found: list[dict], truth_dups: dict[int, int]) -> tuple[int, int, int]:
    got = {d["frame"]: d["of"] for d in found}
    tp = sum(1 for f in got if f in truth_dups)
    return tp, len(got) - tp, len(truth_dups) - tp


@pytest.fixture(scope="module")
def repeat_runs():
    runs = []
    for seed in SEEDS:
        # irregular: single repeats, one frame printed three times, a repeat right at the start
        runs.append(with_repeats(seed, after=[0, 5, 11, 11, 16, 21]))
        # regular: every 4th frame repeated (as 20 fps material brought to 25)
        runs.append(with_repeats(seed, every=4))
    return [(frames, truth, find_duplicates(frames)) for frames, truth in runs]


def test_finds_rescanned_repeats(repeat_runs):
    tp = fp = fn = 0
    of_right = 0
    for _, truth, found in repeat_runs:
        a, b, c = scores(found, truth)
        tp, fp, fn = tp + a, fp + b, fn + c
        of_right += sum(1 for d in found if truth.get(d["frame"]) == d["of"])
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall, tp, fp, fn)
    assert of_right >= 0.95 * tp


def test_regular_pattern_is_summarised(repeat_runs):
    frames, truth, found = repeat_runs[1]
    c = duplicate_cadence(found, len(frames), fps=Fraction(25))
    assert c["regular"] and c["period"] == 5 and c["source_fps"] == pytest.approx(20.0), c
    assert duplicate_cadence([], 10)["count"] == 0
    irregular = duplicate_cadence(repeat_runs[0][2], len(repeat_runs[0][0]))
    assert not irregular["regular"] and irregular["count"] >= 5


def test_no_repeats_reports_nothing():
    for seed in SEEDS:
        degraded, _, _ = film(grain=True, flicker=True, weave=True, frames=24, seed=seed)
        assert find_duplicates(degraded) == [], seed


def test_slow_motion_reports_nothing():
    # a texture panning 0.3 px/frame with a disc drifting 0.5 px/frame, new grain every frame
    frames = textured(seed=4, t=24, h=180, w=240, pan=0.3)
    rng = np.random.default_rng(5)
    for i, f in enumerate(frames):
        cv2.circle(f, (round((60 + 0.5 * i) * 16), 90 * 16), 14 * 16, (0.8, 0.8, 0.8), -1, cv2.LINE_AA, 4)
        f += cv2.GaussianBlur(rng.standard_normal(f.shape).astype(np.float32), (0, 0), 0.7) * np.float32(0.035)
    assert find_duplicates(np.clip(frames, 0, 1)) == []


def test_static_scene_rule():
    """Nothing moves and every frame is a rescan (new grain, flicker, weave): each pair is as close as
    its neighbours, so no frame is reported (a repeat there cannot be told from the pictures).
    A bit-identical (digital) copy in the same scene is much closer than its neighbours: reported."""
    degraded, clean, truth = film(grain=True, flicker=True, weave=True, frames=24, seed=2)
    rng = np.random.default_rng(7)
    static = np.stack([rescan(clean.frames[5], truth, t, rng) for t in range(24)])
    assert find_duplicates(static) == []
    static[12] = static[11]
    found = find_duplicates(static)
    assert [(d["frame"], d["of"]) for d in found] == [(12, 11)]


def test_streaming_matches_batch_and_clip_offsets(repeat_runs):
    frames, _, found = repeat_runs[0]
    det = DuplicateDetector(first_frame=100)
    for f in frames:
        det.push((f * 255 + 0.5).astype(np.uint8))  # 8-bit frames work as well
    streamed = det.results()
    assert [(d["frame"] - 100, d["of"] - 100) for d in streamed] == [(d["frame"], d["of"]) for d in found]
    clip = Clip(frames, Fraction(24), first_frame=100)
    assert [d["frame"] for d in find_duplicates(clip)] == [d["frame"] + 100 for d in found]
    assert len(det.distances) == len(frames) - 1
    with pytest.raises(ValueError):
        DuplicateDetector(ratio=1.5)
