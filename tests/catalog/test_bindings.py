"""The per-shot preparation hook (Stage.prepare) and the typed values it makes: ShotBindings, TitleGrade."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from catalog.bindings import ShotBindings, StageBinding, prepare_shots
from catalog.grades import UNGRADED, TitleGrade, shot_look
from catalog.recipe import Recipe
from models.clip import Clip
from models.registry import make_stage
from models.stage import Look, bound_digest


def _lut(gain: float) -> np.ndarray:
    g = np.linspace(0, 1, 5, dtype=np.float32)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1) * np.float32(gain)


def _grade(label: str, shots: list[int] | None, gain: float) -> TitleGrade:
    lut = _lut(gain)
    return TitleGrade(label, shots, lut, bound_digest({"lut": lut}), f"# {label}", {"frames": []})


def test_each_stage_prepares_its_own_per_shot_data():
    """Shot-analysis stages bind their solved statistics, the grade stage the look the title gives each
    shot (ungraded: no LUT), every other stage nothing; bindings are checked against the chain's names."""
    stages = [make_stage("deflicker"), make_stage("colour", {"scope": "shot"}), make_stage("grade")]
    rng = np.random.default_rng(1)
    clips = {s: Clip(rng.random((4, 16, 16, 3), dtype=np.float32) * np.float32(0.5 + 0.2 * s), Fraction(24))
             for s in (0, 1)}
    analyses = {s: {1: stages[1].analyse(clip)} for s, clip in clips.items()}
    looks = {0: Look("warm", _lut(0.9)), 1: Look(UNGRADED, None)}
    bound = prepare_shots(stages, [(0, 0, 10), (1, 10, 24)], analyses, looks)
    assert set(bound) == {0, 1} and bound[0].names == ["deflicker", "colour", "grade"]
    assert bound[0].stages[0].data == {}
    assert bound[0].stages[1].data == {"stats": stages[1].solve([analyses[0][1]])[0]}
    assert bound[0].stages[2].data["label"] == "warm" and bound[0].lut is not None
    assert bound[1].stages[2].data == {"lut": None, "label": UNGRADED} and bound[1].lut is None
    chain = bound[0].apply(stages)
    assert chain[0] is stages[0] and chain[1].bound == bound[0].stages[1].data  # nothing bound: the same stage
    assert chain[2].spec()["bound"] == bound_digest({"lut": looks[0].lut, "label": "warm"})
    assert bound[0].without(["grade"]).names == ["deflicker", "colour"] and bound[0].without(["grade"]).lut is None
    with pytest.raises(ValueError, match="applied to"):
        bound[0].apply(stages[:2])
    with pytest.raises(ValueError, match="shot analysis"):
        prepare_shots(stages, [(0, 0, 10)], {}, looks)  # colour without its statistics


def test_a_lut_bound_by_the_caller_stays_when_no_look_is_known():
    """`reel grade apply` binds the .cube itself; the file pipeline prepares stages without grades."""
    grade = make_stage("grade").bind(lut=_lut(0.8), label="look")
    bound = prepare_shots([grade], [(0, 0, 5)])
    assert bound[0] == ShotBindings(0, (StageBinding("grade", {}),))
    assert bound[0].apply([grade])[0] is grade


def test_the_recipe_says_which_grade_each_shot_gets():
    recipe = Recipe.model_validate({"name": "g", "stages": ["grade"], "grade": {"references": [
        {"originals": "o1", "graded": "g1", "shots": [2], "label": "night"},
        {"originals": "o2", "graded": "g2", "label": "day"}]}})
    grades = [_grade("night", [2], 0.7), _grade("day", None, 0.9)]
    assert shot_look(recipe, grades, 2).label == "night"
    assert shot_look(recipe, grades, 5).label == "day" and np.array_equal(shot_look(recipe, grades, 5).lut, _lut(0.9))
    only = Recipe.model_validate({"name": "g", "stages": ["grade"], "grade": {"references": [
        {"originals": "o1", "graded": "g1", "shots": [2]}]}})
    assert shot_look(only, grades[:1], 3) == Look(UNGRADED, None)  # a shot no reference names
    cube = Recipe.model_validate({"name": "c", "stages": [{"name": "grade", "params": {"cube": "/x/look.cube"}}]})
    assert cube.grade_cube() == "/x/look.cube" and recipe.grade_cube() is None
    assert shot_look(cube, [_grade("look", None, 0.8)], 9).label == "look"  # one .cube: every shot
    assert grades[0].identity() == ["night", grades[0].digest]
    assert grades[0].manifest_entry("grades/night.cube")["path"] == "grades/night.cube"
