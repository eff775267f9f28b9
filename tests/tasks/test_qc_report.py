"""QC v4 pieces without a flow: the noise metric, thresholds and verdicts, contact sheet, HTML escaping.

The end-to-end check (a real restore, qc.json, the published report.html) is tests/flows/test_shot_qc.py.
"""

from __future__ import annotations

from fractions import Fraction
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from catalog.qc_report import esc, render_report_html
from catalog.recipe import BUILTIN_RECIPES, QCThresholds, parse_recipe
from models.clip import Clip
from models.metrics import noise_sigma
from models.qc import SHEET_MAX_WIDTH, contact_sheet, qc_verdict, sheet_tile_size, worst_first
from models.registry import make_stage


def _grey_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float, base: np.ndarray | float = 0.5
                ) -> np.ndarray:
    """(H, W, 3) grey frame: the same noise on all channels, so the luma noise is `sigma`."""
    y = base + rng.normal(0.0, sigma, shape)
    return np.repeat(np.clip(y, 0, 1)[..., None], 3, axis=2).astype(np.float32)


# --------------------------------------------------------------------------- noise metric


@pytest.mark.parametrize("sigma", [0.005, 0.02, 0.06])
def test_noise_sigma_of_a_flat_frame_with_known_noise(sigma):
    rng = np.random.default_rng(1)
    est = noise_sigma(_grey_noise(rng, (120, 160), sigma))
    assert est == pytest.approx(sigma, rel=0.15)
    assert noise_sigma(np.full((120, 160, 3), 0.5, np.float32)) == 0.0


def test_noise_sigma_ignores_shading_and_a_few_edges():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:240, 0:320] / 320.0
    scene = 0.2 + 0.5 * xx * yy  # smooth shading ...
    scene[:, 150:170] += 0.3  # ... and a bar with two hard edges
    scene[100:110, :] -= 0.15
    est = noise_sigma(_grey_noise(rng, (240, 320), 0.02, scene))
    assert est == pytest.approx(0.02, rel=0.15)


def test_noise_sigma_is_lower_after_denoising():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:80] / 80.0
    scene = 0.3 + 0.4 * xx
    frames = np.stack([_grey_noise(rng, (64, 80), 0.03, scene) for _ in range(5)])
    before = np.mean([noise_sigma(f) for f in frames])
    assert before == pytest.approx(0.03, rel=0.15)
    blurred = noise_sigma(cv2.GaussianBlur(frames[2], (0, 0), 1.0))
    out, _ = make_stage("denoise", {"flow_preset": "fast"}).process(Clip(frames, Fraction(24)))
    temporal = noise_sigma(out.frames[2])  # the project's temporal denoiser, on a static scene
    assert blurred < 0.5 * before and temporal < 0.7 * before


# --------------------------------------------------------------------------- thresholds


SHOT = {"shot": 4, "ssim_luma": 0.9, "warping_error_source": 0.02, "warping_error_restored": 0.01,
        "warping_error_ratio": 0.5, "colour_change_de00": 3.0, "flicker_restored": 0.002}


def test_default_thresholds_check_only_ssim_and_old_recipes_parse_unchanged():
    t = QCThresholds()
    assert t.min_ssim == 0.6 and all(v is None for k, v in t.model_dump().items() if k != "min_ssim")
    assert qc_verdict(SHOT, t) == ("pass", [])
    old = parse_recipe("name: old\nstages: [dust]\nqc:\n  min_ssim: 0.95\n", "yaml")
    assert old.qc == QCThresholds(min_ssim=0.95) and old.qc.max_warping_error is None
    verdict, reasons = qc_verdict(SHOT, old.qc)
    assert verdict == "review" and reasons == ["min_ssim: ssim_luma 0.9 < 0.95"]
    assert BUILTIN_RECIPES["default"].qc == QCThresholds()
    with pytest.raises(ValueError, match="max_warping_eror"):
        parse_recipe("name: typo\nqc:\n  max_warping_eror: 0.1\n", "yaml")
    with pytest.raises(ValueError):
        parse_recipe("name: neg\nqc:\n  max_colour_shift_de00: -1\n", "yaml")


@pytest.mark.parametrize(("limits", "failed"), [
    ({"max_warping_error": 0.005}, ["max_warping_error"]),
    ({"max_warping_error": 0.05}, []),
    ({"max_warping_error_ratio": 0.4}, ["max_warping_error_ratio"]),
    ({"max_colour_shift_de00": 2.0}, ["max_colour_shift_de00"]),
    ({"max_flicker_restored": 0.001, "min_ssim": 0.95}, ["min_ssim", "max_flicker_restored"]),
])
def test_each_threshold_names_itself_with_the_values(limits, failed):
    verdict, reasons = qc_verdict(SHOT, QCThresholds(**limits))
    assert verdict == ("review" if failed else "pass")
    assert [r.split(":")[0] for r in reasons] == failed
    for r, name in zip(reasons, failed, strict=True):
        assert f"{limits[name]:.6g}" in r


def test_a_metric_that_could_not_be_measured_is_not_judged():
    one_frame = {**SHOT, "warping_error_restored": None, "warping_error_ratio": None}
    assert qc_verdict(one_frame, QCThresholds(max_warping_error=0.0, max_warping_error_ratio=0.1)) == ("pass", [])


def test_worst_first_puts_review_shots_first_then_lowest_ssim():
    shots = [{"shot": 0, "verdict": "pass", "ssim_luma": 0.7}, {"shot": 1, "verdict": "review", "ssim_luma": 0.99,
             "reasons": ["a"]}, {"shot": 2, "verdict": "pass", "ssim_luma": 0.65},
             {"shot": 3, "verdict": "review", "ssim_luma": 0.99, "reasons": ["a", "b"]}]
    assert [r["shot"] for r in worst_first(shots)] == [3, 1, 2, 0]


# --------------------------------------------------------------------------- pictures


def test_contact_sheet_is_two_labelled_rows_within_the_width_limit():
    for w, h in ((160, 120), (1920, 1080), (4096, 1716)):
        tw, th = sheet_tile_size(w, h)
        tiles = [np.full((th, tw, 3), v, np.float32) for v in (0.1, 0.4, 0.6, 0.9)]
        sheet = contact_sheet([0, 10, 20, 30], tiles, tiles[::-1])
        assert sheet.dtype == np.uint8 and sheet.shape[1] <= SHEET_MAX_WIDTH and sheet.shape[0] == 2 * th + 4
        assert tw == min(w, (SHEET_MAX_WIDTH - 12) // 4)
    with pytest.raises(ValueError):
        contact_sheet([0, 1], tiles[:2], tiles[:1])


# --------------------------------------------------------------------------- HTML report


HOSTILE = '<script>alert("x")</script>&\'"'


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data):
        self.text.append(data)


def test_esc_escapes_markup_and_quotes():
    assert esc(HOSTILE) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;&quot;"
    assert esc(3) == "3" and esc(None) == "None"


def test_report_html_escapes_every_string_from_the_document():
    shot = {**SHOT, "start_frame": 0, "end_frame": 12, "frames": 12, "verdict": "review",
            "reasons": [HOSTILE], "psnr_vs_source_db": 30.0, "flicker_source": 0.01, "sharpness_source": 0.01,
            "sharpness_restored": 0.01, "noise_sigma_source": 0.01, "noise_sigma_restored": 0.005,
            "dust_pixels_filled": 1, "scratch_pixels_filled": 0, "weave_corrected_px_mean": 0.1,
            "duplicate_frames": [3], "image": 'qc/a"><script>x</script>.png',
            "contact_sheet": "javascript:alert(1)"}
    doc = {"title": HOSTILE, "recipe": HOSTILE, "chain_hash": HOSTILE, "source_sha256": HOSTILE,
           "qc_version": "4", "thresholds": {HOSTILE: HOSTILE, "min_ssim": 0.6},
           "summary": {"ssim_luma_min": 0.9}, "shots": [shot]}
    page = render_report_html(doc)
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    parsed = _Collect()
    parsed.feed(page)
    parsed.close()
    assert "script" not in parsed.tags
    assert any(HOSTILE in t for t in parsed.text)  # shown as text, verbatim
    assert all(":" not in ref.split("/")[0] for ref in parsed.refs)  # no scheme: every link a relative file
    assert parsed.tags.count("tr") == 2  # header + one shot


def test_colour_threshold_uses_the_grade_when_the_shot_has_one():
    from catalog.recipe import QCThresholds
    from models.qc import qc_verdict

    limits = QCThresholds(min_ssim=0.0, max_colour_shift_de00=2.0)
    graded = {"ssim_luma": 0.9, "colour_change_de00": 9.0, "colour_vs_grade_de00": 0.4}
    assert qc_verdict(graded, limits) == ("pass", [])  # far from the source, on the grade: intended
    off_grade = {**graded, "colour_vs_grade_de00": 3.5}
    assert qc_verdict(off_grade, limits) == ("review", ["max_colour_shift_de00: colour_vs_grade_de00 3.5 > 2"])
    ungraded = {"ssim_luma": 0.9, "colour_change_de00": 9.0, "colour_vs_grade_de00": None}
    assert qc_verdict(ungraded, limits)[0] == "review"
