"""Grading as a colourist meets it: export stills, grade them, learn a .cube, apply it to the film,
and let a recipe's reference pairs drive the restore-title flow."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from infra.images import read_image, write_image
from infra.media import read_frames, write_film
from models.grade import delta_e00, read_cube
from models.synth import SynthConfig, render_film
from models.synth_grade import BLEACH_WARM, YELLOW_FADE

TRAIN = (3, 15, 27)  # one frame in each of the three shots


@pytest.fixture(scope="module")
def faded_film(tmp_path_factory) -> dict:
    """A clean 3-shot colour film faded with YELLOW_FADE (8-bit, as a cheap scan would be)."""
    d = tmp_path_factory.mktemp("grade")
    cfg = SynthConfig(width=160, height=120, shots=3, frames_per_shot=12, seed=7, blotches=False,
                      scratches=False, flicker=False, grain=False, weave=False, fade=False)
    f = render_film(cfg)
    clean = f.clean.astype(np.float32) / 255
    faded = np.rint(YELLOW_FADE(clean) * 255).astype(np.uint8)
    path = d / "faded.mkv"
    write_film(path, faded, Fraction(24), (f.audio, f.audio_sample_rate))
    return {"dir": d, "path": path, "graded": BLEACH_WARM(clean), "frames": len(clean)}


def _grade_stills(film: dict, capsys) -> tuple[Path, Path]:
    orig, graded = film["dir"] / "orig", film["dir"] / "graded"
    if not graded.is_dir():
        at = ",".join(map(str, TRAIN))
        assert main(["grade", "frames", str(film["path"]), "--at", at, "-o", str(orig)]) == 0
        graded.mkdir()
        for f in TRAIN:  # the "colourist" grades each exported still
            name = f"faded-{f:06d}.png"
            assert read_image(orig / name).shape == (120, 160, 3)
            write_image(graded / name, film["graded"][f])
        capsys.readouterr()
    return orig, graded


def test_learn_and_apply_a_grade_from_the_command_line(faded_film, tmp_path, capsys):
    orig, graded = _grade_stills(faded_film, capsys)
    cube = tmp_path / "look.cube"
    assert main(["grade", "learn", "--originals", str(orig), "--graded", str(graded), "-o", str(cube),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 3 and report["cv_delta_e00"] < 3.0
    text = cube.read_text()
    assert "LUT_3D_SIZE 33" in text and read_cube(text).shape == (33, 33, 33, 3)

    out = tmp_path / "graded.mkv"
    assert main(["grade", "apply", str(cube), str(faded_film["path"]), str(out)]) == 0
    got = read_frames(out, 0, faded_film["frames"], depth=16).astype(np.float32) / 65535
    held = [i for i in range(faded_film["frames"]) if i not in TRAIN]
    de = float(delta_e00(got[held], faded_film["graded"][held]).mean())
    before = float(delta_e00(read_frames(faded_film["path"], 0, faded_film["frames"])[held] / 255.0,
                             faded_film["graded"][held]).mean())
    print(f"held-out mean dE2000: {de:.2f} (faded input {before:.2f})")
    assert de < 1.5 < before / 5  # 8-bit input: the quantisation alone costs a few tenths


def test_grade_errors_are_one_line(faded_film, tmp_path, capsys):
    orig, graded = _grade_stills(faded_film, capsys)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    write_image(lonely / "other.png", np.zeros((8, 8, 3)))
    assert main(["grade", "learn", "--originals", str(orig), "--graded", str(lonely), "-o",
                 str(tmp_path / "x.cube")]) == 1
    err = capsys.readouterr().err
    assert "same file names" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.cube").exists()

    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 2\n0 0 0\n")
    assert main(["grade", "apply", str(bad), str(faded_film["path"]), str(tmp_path / "o.mkv")]) == 1
    assert "needs 8 entries" in capsys.readouterr().err
    assert not (tmp_path / "o.mkv").exists()


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_recipe_reference_pairs_drive_the_flow(faded_film, local_store_env, tmp_path, capsys):
    from flows.restore_title import run_restore

    orig, graded = _grade_stills(faded_film, capsys)
    recipe = tmp_path / "recipes" / "graded.yaml"
    recipe.parent.mkdir()
    # relative paths are taken from the recipe file's folder, not from where the run starts
    recipe.write_text(f"""
name: graded
stages: [grade]
grade:
  references:
    - originals: {os.path.relpath(orig, recipe.parent)}
      graded: {os.path.relpath(graded, recipe.parent)}
      label: warm
""")
    summary = run_restore(str(faded_film["path"]), "graded-tiny", str(recipe))
    m = summary["manifest"]
    luts = [o for o in m["outputs"] if o["kind"] == "grade-lut"]
    assert [o["path"] for o in luts] == ["grades/warm.cube"]
    assert m["recipe"]["grades"][0]["report"]["pairs"] == 3
    assert all(r["lut_label"] == "warm" for s in m["shots"] for r in s["stage_reports"])

    master = local_store_env / "published" / "graded-tiny" / m["version"] / "master.mkv"
    got = read_frames(master, 0, faded_film["frames"], depth=16).astype(np.float32) / 65535
    held = [i for i in range(faded_film["frames"]) if i not in TRAIN]
    assert float(delta_e00(got[held], faded_film["graded"][held]).mean()) < 1.5

    # QC measures colour against the grade too: the grade moved colour far from the source on purpose,
    # and the restored shots sit on the grade (a grade-only recipe: within rounding of the 16-bit master)
    qc = json.loads((master.parent / "qc.json").read_text())
    for shot in qc["shots"]:
        assert shot["colour_change_de00"] > 3.0 and shot["colour_vs_grade_de00"] < 0.5

    again = run_restore(str(faded_film["path"]), "graded-tiny", str(recipe))
    assert again["pieces_restored"] == 0 and again["manifest"]["version"] == m["version"]

    # the colourist re-grades one still: a new version, not the old one
    name = f"faded-{TRAIN[0]:06d}.png"
    write_image(graded / name, np.clip(read_image(graded / name) * 0.9, 0, 1))
    try:
        regraded = run_restore(str(faded_film["path"]), "graded-tiny", str(recipe))
    finally:
        write_image(graded / name, faded_film["graded"][TRAIN[0]])
    assert regraded["manifest"]["version"] != m["version"] and regraded["pieces_restored"] > 0


def test_recipe_grade_rules():
    from catalog.recipe import parse_recipe

    with pytest.raises(ValueError, match="no 'grade' stage"):
        parse_recipe("name: x\nstages: [dust]\ngrade: {references: [{originals: a, graded: b}]}", "yaml")
    with pytest.raises(ValueError, match="drop 'colour'"):
        parse_recipe("name: x\nstages: [colour, grade]\ngrade: {references: [{originals: a, graded: b}]}", "yaml")
    with pytest.raises(ValueError, match="needs a 'grade' section"):
        parse_recipe("name: x\nstages: [grade]", "yaml")
    with pytest.raises(ValueError, match="named by two"):
        parse_recipe("name: x\nstages: [grade]\ngrade: {references: [{originals: a, graded: b, shots: [1]},"
                     " {originals: c, graded: d, shots: [1, 2]}]}", "yaml")
    r = parse_recipe("name: x\nstages: [grade]\ngrade: {references: [{originals: a, graded: b, shots: [1]},"
                     " {originals: c, graded: d}]}", "yaml")
    assert [r.grade.label_for_shot(s) for s in (0, 1, 2)] == ["grade2", "grade1", "grade2"]


def test_stage_colour_corrects_each_detected_shot(tiny_film, tmp_path, capsys):
    """`reel stage colour` finds the shots, analyses each, and keeps the black-and-white one neutral."""
    out = tmp_path / "colour.mkv"
    assert main(["stage", "colour", str(tiny_film["path"]), str(out)]) == 0
    n = tiny_film["truth"]["frames"]
    got = read_frames(out, 0, n, depth=16).astype(np.float32) / 65535
    clean = tiny_film["clean_frames"].astype(np.float32) / 255
    src = tiny_film["degraded"].astype(np.float32) / 255
    grey = [s for s in tiny_film["truth"]["shots"] if s["greyscale"]][0]
    g = got[grey["start"]:grey["end"]]
    assert np.abs(g[..., 0] - g[..., 1]).max() < 2 / 65535 and np.abs(g[..., 1] - g[..., 2]).max() < 2 / 65535
    assert np.abs(src[grey["start"]:grey["end"], ..., 0] - src[grey["start"]:grey["end"], ..., 1]).mean() > 0.01
    # the print's cast is gone: colour is closer to the clean film than the faded scan was
    before, after = float(delta_e00(src[::6], clean[::6]).mean()), float(delta_e00(got[::6], clean[::6]).mean())
    print(f"colour stage on the tiny film: mean dE2000 vs clean {before:.2f} -> {after:.2f}")
    assert after < 0.8 * before
