"""The review form's description leads with what needs a decision (the UI shows only its top)."""

from __future__ import annotations

from catalog.recipe import BUILTIN_RECIPES
from tasks.review import ReviewForm, describe

REPORT = {"summary": {"passed": 2, "shots": 3, "review": [1]},
          "shots": [{"shot": 0, "start_frame": 0, "end_frame": 12, "verdict": "pass", "reasons": []},
                    {"shot": 1, "start_frame": 12, "end_frame": 24, "verdict": "review",
                     "reasons": ["min_ssim: ssim_luma 0.5 < 0.6"]},
                    {"shot": 2, "start_frame": 24, "end_frame": 36, "verdict": "pass", "reasons": []}]}


def _paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p.strip()]


def test_the_first_paragraph_names_the_failing_shots_and_why():
    first = _paragraphs(describe("film", BUILTIN_RECIPES["defects"], REPORT, 1, None))[0]
    assert first == "**Review film (round 1)**: shot 1 (frames 12-23): min_ssim: ssim_luma 0.5 < 0.6."


def test_a_refused_answer_comes_first_then_the_decision_then_history():
    text = describe("film", BUILTIN_RECIPES["defects"], REPORT, 2, "no shot 9",
                    [{"round": 1, "by": "Ana", "decision": "redo", "redo_shots": [1],
                      "overrides": ["dust.threshold=5"], "at": "2026-11-25T00:00:00+00:00"}])
    paras = _paragraphs(text)
    assert paras[0] == "**Your last answer was not used:** no shot 9"
    assert paras[1].startswith("**Review film (round 2)**: shot 1")
    assert paras[2] == "Round 1: Ana asked to redo shots [1] with dust.threshold=5 (2026-11-25T00:00:00+00:00)."
    assert "`dust`: threshold=4.0" in text  # the parameters a reviewer can override, with their values


def test_review_always_with_every_shot_passing_says_so():
    passing = {"summary": {"passed": 3, "shots": 3, "review": []},
               "shots": [{**s, "verdict": "pass", "reasons": []} for s in REPORT["shots"]]}
    first = _paragraphs(describe("film", BUILTIN_RECIPES["defects"], passing, 1, None))[0]
    assert "all 3 shots pass QC; the recipe asks for a review every time" in first


def test_the_form_schema_has_the_six_fields_and_a_typed_decision():
    schema = ReviewForm.model_json_schema()
    assert set(schema["properties"]) == {"reviewer", "decision", "redo_shots", "overrides", "artist_shots", "note"}
    assert schema["properties"]["decision"]["enum"] == ["approve", "redo", "send to artist"]
    assert set(schema["required"]) == {"reviewer", "decision"}
