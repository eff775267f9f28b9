"""QC v4 end to end: a real restore of the tiny film, its qc.json, pictures and the offline HTML report.

(Named to sort after test_secrets.py: that test reads the Prefect API's logs with the default limit of
200 and misses its own run's log when another flow run comes before it in the session.)
"""

from __future__ import annotations

import hashlib
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import cv2

from catalog.layout import REPORT_HTML
from catalog.recipe import DEFECTS, QCThresholds, Recipe
from flows.cli import restore_to_dir
from infra.runtime import current_store
from models.qc import SHEET_MAX_WIDTH, qc_verdict

TITLE = "tiny-qc"
METRICS = ("ssim_luma", "psnr_vs_source_db", "flicker_source", "flicker_restored", "warping_error_source",
           "warping_error_restored", "colour_change_de00", "sharpness_source", "sharpness_restored",
           "noise_sigma_source", "noise_sigma_restored", "dust_pixels_filled", "scratch_pixels_filled")


class _Page(HTMLParser):
    """Rows of the shots table and every referenced file (img src, a href)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.refs: list[str] = []
        self.tags: set[str] = set()
        self._in_shots = self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._in_shots = a.get("id") == "shots"
        elif tag == "tbody":
            self._in_body = self._in_shots
        elif tag == "tr" and self._in_body:
            self.rows.append({k: v or "" for k, v in a.items()})
        elif tag == "img":
            self.refs.append(a["src"] or "")
        elif tag == "a":
            self.refs.append(a["href"] or "")
        elif tag in ("link", "script", "iframe", "object"):
            self.refs.append(a.get("src") or a.get("href") or f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._in_shots = False


def test_qc_report_of_a_real_restore(tiny_film, local_store_env, tmp_path):
    # a warping-error limit no restored shot can meet: every shot needs review, naming that threshold
    recipe = Recipe(name="defects-strict-qc", stages=[*DEFECTS], qc=QCThresholds(max_warping_error=1e-6))
    out = tmp_path / "out"
    r = restore_to_dir(tiny_film["path"], TITLE, recipe, out)
    manifest = r["manifest_data"]
    n_shots = len(tiny_film["truth"]["cuts"]) + 1

    # qc.json: every shot, each with >= 6 numeric metrics (the new ones included)
    qc = json.loads((out / "qc.json").read_text())
    assert qc["qc_version"] == "6" and len(qc["shots"]) == n_shots
    for s in qc["shots"]:
        numeric = [m for m in METRICS if isinstance(s.get(m), int | float) and math.isfinite(s[m])]
        assert len(numeric) >= 6 and set(numeric) == set(METRICS), s
        assert s["sampled_frames"]["warping_pairs"] >= 1
        # the defects chain removes grain: less noise than the source
        assert s["noise_sigma_restored"] < s["noise_sigma_source"], s
        assert s["verdict"] == "review"
        assert any(x.startswith("max_warping_error:") and "warping_error_restored" in x for x in s["reasons"])
    assert qc["summary"]["review"] == [s["shot"] for s in qc["shots"]] and qc["summary"]["passed"] == 0
    assert manifest["review"]["shots_below_threshold"] == qc["summary"]["review"]

    # the default thresholds do not flag this film; a limit between the shots' values splits them
    assert all(qc_verdict(s, QCThresholds()) == ("pass", []) for s in qc["shots"])
    values = sorted(s["warping_error_restored"] for s in qc["shots"])
    limit = (values[0] + values[-1]) / 2
    judged = {s["shot"]: qc_verdict(s, QCThresholds(max_warping_error=limit)) for s in qc["shots"]}
    assert {v for v, _ in judged.values()} == {"pass", "review"}
    for shot, (verdict, reasons) in judged.items():
        assert (verdict == "review") == (next(s for s in qc["shots"] if s["shot"] == shot)
                                         ["warping_error_restored"] > limit)
        assert all("max_warping_error" in x for x in reasons)

    # pictures and the report are published, listed with their kinds, and copied by --out
    kinds: dict[str, list[str]] = {}
    for o in manifest["outputs"]:
        kinds.setdefault(o["kind"], []).append(o["path"])
        assert hashlib.sha256((out / o["path"]).read_bytes()).hexdigest() == o["sha256"]
    assert len(kinds["qc-image"]) == len(kinds["qc-contact-sheet"]) == n_shots
    assert kinds["qc-report-html"] == [REPORT_HTML]
    for path in kinds["qc-contact-sheet"]:
        sheet = cv2.imread(str(out / path))
        assert sheet is not None and sheet.shape[1] <= SHEET_MAX_WIDTH and sheet.shape[0] > 120  # two rows
    prefix = f"published/{TITLE}/{manifest['version']}"
    assert current_store().exists(f"{prefix}/{REPORT_HTML}")

    # the HTML page: parses, one row per shot (worst first), every reference a published file
    html_path = out / REPORT_HTML
    text = html_path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    assert text.startswith("<!DOCTYPE html>") and "script" not in page.tags
    assert sorted(int(row["data-shot"]) for row in page.rows) == list(range(n_shots))
    assert all(row["class"] == "review" for row in page.rows)
    assert page.refs and all("://" not in ref and not ref.startswith("/") for ref in page.refs)
    listed = {o["path"] for o in manifest["outputs"]}
    for ref in page.refs:
        target = (html_path.parent / ref).resolve()
        assert target.is_file(), ref
        assert target.relative_to(out.resolve()).as_posix() in listed
    assert {Path(p).name for p in kinds["qc-contact-sheet"]} <= {Path(ref).name for ref in page.refs}
    assert "max_warping_error" in text and "1e-06" in text  # thresholds in the summary

