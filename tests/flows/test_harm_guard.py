"""The harm guard: a shot that a stage moved away from its source is restored again without that stage,
and the manifest says which stage was dropped and why."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from catalog.harm import HarmLimits, harm_findings, offending_stages
from catalog.recipe import Recipe
from flows.restore_title import run_restore
from infra.media import write_film
from models.qc import qc_verdict
from tests.models.test_weave_decision import handheld


def _film(path) -> None:
    """Shot 0: a hand-held camera (large, smooth shake, no weave); shot 1: another scene, steady."""
    _, camera, _ = handheld(seed=5, t=24, h=120, w=160, shake=0.05)
    rng = np.random.default_rng(9)
    still = cv2.GaussianBlur(rng.random((120, 160, 3)).astype(np.float32), (0, 0), 3.0)
    still = (still - still.min()) / (still.max() - still.min()) * 0.6 + 0.2
    frames = np.concatenate([camera.frames, np.repeat(still[None], 16, axis=0)])
    write_film(path, np.clip(frames * 255 + 0.5, 0, 255).astype(np.uint8), Fraction(24))


def test_a_stage_that_harms_a_shot_is_dropped_for_it_and_the_manifest_says_so(tmp_path, local_store_env):
    src = tmp_path / "handheld.mkv"
    _film(src)
    # forcing weave mode treats the hand-held camera's own motion as weave: the framing moves
    rec = Recipe(name="forced-weave", stages=[{"name": "stabilise", "params": {"mode": "weave"}}, "deflicker"])
    out = run_restore(str(src), "harmed", rec)
    shots = {s["shot"]: s for s in out["manifest"]["shots"]}
    assert len(shots) == 2
    harm = shots[0]["harm"]
    assert harm["dropped"] == ["stabilise"] and harm["resolved"] is True, harm
    assert any(f["check"] in ("framing", "structure") for f in harm["findings"])
    assert all("stabilise" in f["reason"] for f in harm["findings"] if f["check"] == "framing")
    assert shots[1]["harm"] is None  # the steady shot kept its full chain
    # the published shot 0 is the fallback: no stabilise report in it, deflicker's is there
    assert [r["stage"] for r in shots[0]["stage_reports"]][:1] == ["deflicker"]
    steady = next(r for r in shots[1]["stage_reports"] if r["stage"] == "stabilise")
    assert steady["decision"] == "weave" and steady["reason"]  # forced, and said so
    review = out["manifest"]["review"]
    assert review["harm"][0]["shot"] == 0 and review["harm"][0]["dropped"] == ["stabilise"]
    assert out["manifest"]["review"]["shots_below_threshold"] == []


def test_findings_name_the_stage_and_review_policy_marks_the_shot():
    reports = [{"stage": "stabilise", "dx": [3.0] * 4, "dy": [0.0] * 4, "change": {"ssim": 0.4, "sharpness": 0.9}},
               {"stage": "denoise", "change": {"ssim": 0.95, "sharpness": 0.3}}]
    metrics = {"ssim_luma": 0.45, "sharpness_source": 1.0, "sharpness_restored": 0.25}
    found = harm_findings(metrics, reports, 160, HarmLimits())
    assert {f["check"]: f["stage"] for f in found} == {"structure": "stabilise", "sharpness": "denoise",
                                                        "framing": "stabilise"}
    assert offending_stages(found, ["stabilise", "deflicker", "denoise"]) == ["stabilise", "denoise"]
    # unresolved harm (review policy, or a fallback that did not clear it) sends the shot to review
    verdict, reasons = qc_verdict({**metrics, "harm": {"findings": found, "resolved": False}},
                                  Recipe(name="r").qc)
    assert verdict == "review" and any(r.startswith("harm: ") for r in reasons)
    assert qc_verdict({"harm": {"findings": found, "resolved": True}}, Recipe(name="r").qc)[0] == "pass"
    # healthy restorations are not findings
    assert harm_findings({"ssim_luma": 0.85, "sharpness_source": 1.0, "sharpness_restored": 0.7},
                         [{"stage": "stabilise", "dx": [0.5], "dy": [0.2]}], 320, HarmLimits()) == []


def test_an_upscaler_that_invents_colour_is_a_finding():
    found = harm_findings({"ssim_luma": 0.9, "upscale_fidelity_de00": 3.5},
                          [{"stage": "upscale", "fidelity_max_delta_e00": 3.5}], 320, HarmLimits())
    assert [(f["check"], f["stage"]) for f in found] == [("fidelity", "upscale")]
    assert harm_findings({"ssim_luma": 0.9, "upscale_fidelity_de00": 0.4}, [], 320, HarmLimits()) == []
