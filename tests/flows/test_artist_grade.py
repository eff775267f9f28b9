"""Issue 23: learn the grade from an artist. One shot of a faded synthetic film is handed off, graded by the
"artist" with a known look (models.synth_grade), taken back; a recipe then learns the grade from that shot's
(source, manual) frame pairs and applies it to the other shots of its group.

The film cuts between two scenes, A B A B (shot, reverse shot): a shot group is the shots that share a scene's
light and colours, which is what a grade group is for. Measured here (64x48, seeds 3/5/7/11): learned from the
first A shot, the later A shot lands 0.2-0.3 mean dE2000 from the artist's grade; applied to a B shot (another
scene, colours the artist never graded) 1.0-1.4; across the synthetic film's unrelated shots 0.7-8.2. So a
grade learned from one shot is for its group, and the recipe names the group."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import tifffile

from flows.cli import main
from infra.media import read_frames, write_film
from models.grade import apply_lut, delta_e00, read_cube
from models.synth import SynthConfig, render_film
from models.synth_grade import BLEACH_WARM, YELLOW_FADE

TITLE = "graded-by-hand"
FPS = 8


@pytest.fixture
def faded(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("REEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "16")
    monkeypatch.setenv("REEL_CATALOGUE", str(tmp_path / "no-catalogue.csv"))
    cfg = SynthConfig(width=64, height=48, shots=2, frames_per_shot=2 * FPS, seed=7, blotches=False, scratches=False,
                      flicker=False, grain=False, weave=False, fade=False)
    f = render_film(cfg)
    a, b = np.arange(0, 2 * FPS), np.arange(2 * FPS, 4 * FPS)  # two scenes, cut A B A B
    order = np.concatenate([a[:FPS], b[:FPS], a[FPS:], b[FPS:]])
    clean = f.clean[order].astype(np.float32) / 255
    path = tmp_path / "faded.mkv"
    write_film(path, np.rint(YELLOW_FADE(clean) * 255).astype(np.uint8), Fraction(24), (f.audio, f.audio_sample_rate))
    return {"path": path, "graded": BLEACH_WARM(clean), "frames": len(clean), "dir": tmp_path}


@pytest.mark.slow  # two restores and a takeback (~40 s): make test-all
def test_a_grade_learned_from_one_manually_graded_shot_grades_its_group(faded, tmp_path, capsys):
    d, n, look = faded["dir"], faded["frames"], faded["graded"]
    (d / "plain.yaml").write_text("name: plain\nstages: []\nmasters: [ffv1]\n")
    assert main(["restore", str(faded["path"]), "--title", TITLE, "--recipe", str(d / "plain.yaml"),
                 "--out", str(d / "v1")]) == 0
    assert main(["handoff", TITLE, "--shots", "0", "--format", "tiff", "--handles", "0", "-o", str(d / "hand")]) == 0
    folder = d / "hand" / f"{TITLE}-shot0000"
    artist = {}
    for path in sorted((folder / "restored").glob("*.tif")):  # the artist grades shot 0 in their suite
        f = int(path.name.split(".")[-2])
        artist[f] = np.rint(look[f] * 65535).astype(np.uint16)
        tifffile.imwrite(path, artist[f], photometric="rgb")
    assert sorted(artist) == list(range(FPS))
    assert main(["takeback", TITLE, "--shot", "0", str(folder), "--by", "Colourist", "--note", "warm bleach"]) == 0

    (d / "learned.yaml").write_text("name: learned\nstages: [grade]\nmasters: [ffv1]\n"  # shot 2: scene A again
                                    "grade: {references: [{manual_shot: 0, shots: [2], label: from-shot0}]}\n")
    capsys.readouterr()
    assert main(["restore", str(faded["path"]), "--title", TITLE, "--recipe", str(d / "learned.yaml"),
                 "--out", str(d / "v2")]) == 0
    got = read_frames(d / "v2" / "master.mkv", 0, n, depth=16)
    for f, frame in artist.items():  # the graded shot itself is the artist's frames, not the learned LUT's
        assert np.array_equal(got[f], frame)
    group = list(range(2 * FPS, 3 * FPS))  # shot 2
    de = float(delta_e00(got[group].astype(np.float32) / 65535, look[group]).mean())
    source = read_frames(faded["path"], 0, n).astype(np.float32) / 255
    before = float(delta_e00(source[group], look[group]).mean())
    cube = read_cube((d / "v2" / "grades" / "from-shot0.cube").read_text())
    scene_b = list(range(FPS, 2 * FPS)) + list(range(3 * FPS, n))  # outside the group: ungraded, as the recipe says
    assert np.array_equal(got[scene_b], np.rint(source[scene_b] * 65535).astype(np.uint16))
    de_b = float(delta_e00(apply_lut(cube, source[scene_b]), look[scene_b]).mean())
    print(f"shot 2 (shot 0's group) vs the artist's grade: mean dE2000 {de:.2f} (ungraded {before:.2f}); "
          f"the same .cube on the other scene's shots: {de_b:.2f}")
    assert de < 1.5 and before > 5.0
    manifest = json.loads((d / "v2" / "manifest.json").read_text())
    grade = manifest["recipe"]["grades"][0]
    assert grade["label"] == "from-shot0" and grade["report"]["frames"][0].startswith("shot0000-")
    assert (d / "v2" / "grades" / "from-shot0.cube").is_file()
    shots = {s["shot"]: s for s in manifest["shots"]}
    assert shots[0]["manual"]["by"] == "Colourist" and shots[1].get("manual") is None

    # a recipe that learns from a shot nobody took back: one clear error before any restore
    (d / "missing.yaml").write_text("name: missing\nstages: [grade]\nmasters: [ffv1]\n"
                                    "grade: {references: [{manual_shot: 2}]}\n")
    assert main(["restore", str(faded["path"]), "--title", TITLE, "--recipe", str(d / "missing.yaml")]) == 1
    assert "shot 2's manual work" in capsys.readouterr().err
