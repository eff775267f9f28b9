"""The title's QC report: the document stored as qc.json, its Prefect summary (markdown, table rows) and
the self-contained HTML page of a published version. Pure data and text, no I/O."""

from __future__ import annotations

import html
import posixpath
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from catalog.layout import REPORT_HTML
from models.interpolate import MAX_RUN, consecutive_runs
from models.qc import QC_VERSION, qc_verdict, rounded_mean, worst_first

TABLE_COLUMNS = ["shot", "start_frame", "end_frame", "verdict", "ssim_luma", "psnr_vs_source_db", "flicker_source",
                 "flicker_restored", "warping_error_source", "warping_error_restored", "colour_change_de00",
                 "colour_vs_grade_de00",
                 "sharpness_source", "sharpness_restored", "noise_sigma_source", "noise_sigma_restored",
                 "dust_pixels_filled", "scratch_pixels_filled", "weave_corrected_px_mean", "weave_decision"]


def source_events(sequence: dict[str, Any] | None, audio: dict[str, Any] | None, fps: Any) -> list[dict[str, Any]]:
    """What the source itself got wrong, for the QC report: frame numbers missing from an image sequence
    (held from the frame before at ingest; offered to `interpolate`'s `rebuild_frames`, runs of at most
    3 frames) and separate sound whose length differs from the picture's by more than a frame.
    `sequence`, `audio`: the ingest record's fields of those names."""
    events: list[dict[str, Any]] = []
    missing = (sequence or {}).get("missing") or []
    if missing:
        frames = [int(m["frame"]) for m in missing]
        numbers = [int(m["number"]) for m in missing]
        rebuildable = [f for r in consecutive_runs(frames) if len(r) <= MAX_RUN for f in r]
        shown = ", ".join(map(str, numbers[:12])) + (" ..." if len(numbers) > 12 else "")
        events.append({
            "kind": "missing-frames", "frames": frames, "numbers": numbers,
            "detail": f"{len(frames)} frame number(s) missing from the scan ({shown}); the frame before stands in "
                      "for each",
            "rebuild": {"stage": "interpolate", "params": {"factor": 1, "rebuild_frames": rebuildable}}
            if rebuildable else None,
            "suggest": (f"add {{name: interpolate, params: {{factor: 1, rebuild_frames: {rebuildable}}}}} to the "
                        "recipe to rebuild them from their neighbours") if rebuildable else
                       "runs longer than 3 frames cannot be rebuilt: find the missing files"})
    mismatch = (audio or {}).get("length_mismatch_seconds")
    if mismatch is not None:
        frames_off = float(mismatch) * float(fps)
        events.append({"kind": "sound-length", "seconds": mismatch, "frames": round(frames_off, 2),
                       "detail": f"the sound ends {abs(mismatch):.3f} s ({abs(frames_off):.1f} frames) "
                                 f"{'after' if mismatch > 0 else 'before'} the picture"})
    return events


def title_report(title: str, source_sha256: str, recipe: Any, shots: list[dict[str, Any]],
                 events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The title's QC document from its shots' QC records (re-judged with the recipe's thresholds: whatever
    the shots came with, the thresholds are the recipe's). `recipe`: catalog.recipe.Recipe. `events`: what
    the source got wrong (`source_events`), listed as they are."""
    shots = sorted(shots, key=lambda r: r["shot"])
    for r in shots:
        r["verdict"], r["reasons"] = qc_verdict(r, recipe.qc)
    review = [r["shot"] for r in shots if r["verdict"] != "pass"]

    def mean_of(name: str, digits: int = 5) -> float | None:
        return rounded_mean([r[name] for r in shots if r.get(name) is not None], digits)

    return {
        "title": title, "source_sha256": source_sha256, "recipe": recipe.name,
        "chain_hash": recipe.chain_hash(), "qc_version": QC_VERSION, "thresholds": recipe.qc.model_dump(),
        "summary": {"shots": len(shots), "passed": len(shots) - len(review), "review": review,
                    "ssim_luma_min": min(r["ssim_luma"] for r in shots),
                    "flicker_source_mean": mean_of("flicker_source"),
                    "flicker_restored_mean": mean_of("flicker_restored"),
                    "warping_error_source_mean": mean_of("warping_error_source"),
                    "warping_error_restored_mean": mean_of("warping_error_restored"),
                    "noise_sigma_source_mean": mean_of("noise_sigma_source"),
                    "noise_sigma_restored_mean": mean_of("noise_sigma_restored"),
                    "colour_change_de00_max": max(r["colour_change_de00"] for r in shots),
                    "dust_pixels_filled": sum(r["dust_pixels_filled"] for r in shots),
                    "scratch_pixels_filled": sum(r.get("scratch_pixels_filled", 0) for r in shots),
                    "duplicate_frames": [f for r in shots for f in r.get("duplicate_frames", [])],
                    "source_events": len(events or [])},
        "events": list(events or []),
        "shots": shots,
    }


def table_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per shot for the Prefect table artifact."""
    return [{**{c: r.get(c) for c in TABLE_COLUMNS}, "reasons": "; ".join(r["reasons"])} for r in report["shots"]]


def markdown_summary(report: dict[str, Any], recipe_name: str, link: Callable[[str], str]) -> str:
    """The worst shots as a markdown table (the Prefect summary artifact); `link`: a stored key as a URL."""
    shots, review = report["shots"], report["summary"]["review"]
    worst = worst_first(shots)[:max(5, min(len(review), 20))]
    lines = [f"# QC: {report['title']} ({recipe_name})", "",
             f"{len(shots)} shots; needing review: {review or 'none'}", "",
             "| shot | frames | SSIM (luma) | flicker before → after | warping error before → after | ΔE00 | "
             "dust px | verdict | pictures |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in worst:
        verdict = r["verdict"] + (f" ({'; '.join(r['reasons'])})" if r["reasons"] else "")
        pictures = f"[before/after]({link(r['image_key'])})"
        if r.get("contact_sheet_key"):
            pictures += f" [contact sheet]({link(r['contact_sheet_key'])})"
        lines.append(f"| {r['shot']} | {r['start_frame']}-{r['end_frame'] - 1} | {r['ssim_luma']:.3f} | "
                     f"{r['flicker_source']:.4f} → {r['flicker_restored']:.4f} | "
                     f"{_num(r.get('warping_error_source'), 4)} → {_num(r.get('warping_error_restored'), 4)} | "
                     f"{r['colour_change_de00']:.2f} | {r['dust_pixels_filled']} | {verdict} | {pictures} |")
    return "\n".join(lines)


# --- the HTML report -------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """Text for HTML (element content or a quoted attribute): every string in the report goes through this."""
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _href(path: str) -> str:
    """A published path ("qc/...") as an escaped link relative to the report's own folder (qc/)."""
    rel = posixpath.relpath(path, posixpath.dirname(REPORT_HTML)) if path.startswith("qc/") else path
    return esc(quote(rel))  # quoted: a ':' cannot make a scheme, so links stay relative files


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#eee;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.review td{background:#fff3e0}tr.review td.verdict{color:#b71c1c;font-weight:bold}
td.verdict{color:#1b5e20}ul.reasons{margin:0;padding-left:1.1em}img{display:block;max-width:420px;height:auto}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dl.meta dt{font-weight:bold}
dl.meta dd{margin:0}"""

_SHOT_COLUMNS = ("shot", "frames", "verdict", "reasons", "SSIM (luma)", "PSNR dB", "flicker before → after",
                 "warping error before → after", "ΔE00 vs source", "sharpness before → after",
                 "noise σ before → after", "dust px (frames)", "scratch px (frames)", "weave px",
                 "repeated frames", "pictures")


def _pair(r: dict[str, Any], name: str, digits: int = 4) -> str:
    return f"{_num(r.get(name + '_source'), digits)} → {_num(r.get(name + '_restored'), digits)}"


def _shot_row(r: dict[str, Any]) -> str:
    reasons = "".join(f"<li>{esc(x)}</li>" for x in r.get("reasons", []))
    pictures = []
    if r.get("contact_sheet"):
        pictures.append(f'<a href="{_href(r["contact_sheet"])}"><img src="{_href(r["contact_sheet"])}" '
                        f'alt="shot {esc(r["shot"])} contact sheet" loading="lazy"></a>')
    if r.get("image"):
        pictures.append(f'<a href="{_href(r["image"])}">before/after (middle frame)</a>')
    cells = [
        ("num", _num(r["shot"])), ("", f"{_num(r['start_frame'])}–{_num(r['end_frame'] - 1)} ({_num(r['frames'])})"),
        ("verdict", r["verdict"]), ("", None), ("num", _num(r.get("ssim_luma"))),
        ("num", _num(r.get("psnr_vs_source_db"))), ("num", _pair(r, "flicker")), ("num", _pair(r, "warping_error")),
        ("num", _num(r.get("colour_change_de00"))), ("num", _pair(r, "sharpness")),
        ("num", _pair(r, "noise_sigma")),
        ("num", f"{_num(r.get('dust_pixels_filled'))} ({_num(r.get('dust_frames'))})"),
        ("num", f"{_num(r.get('scratch_pixels_filled'))} ({_num(r.get('scratch_frames'))})"),
        ("num", _num(r.get("weave_corrected_px_mean"))),
        ("", ", ".join(_num(f) for f in r.get("duplicate_frames", [])) or "–"), ("", None),
    ]
    tds = []
    for (cls, text), col in zip(cells, _SHOT_COLUMNS, strict=True):
        attr = f' class="{cls}"' if cls else ""
        if col == "reasons":
            tds.append(f'<td><ul class="reasons">{reasons}</ul></td>' if reasons else "<td>–</td>")
        elif col == "pictures":
            tds.append(f"<td>{''.join(pictures) or '–'}</td>")
        else:
            tds.append(f"<td{attr}>{esc(text)}</td>")
    return f'<tr class="{esc(r["verdict"])}" data-shot="{esc(r["shot"])}">{"".join(tds)}</tr>'


def render_report_html(doc: dict[str, Any]) -> str:
    """A self-contained HTML page for a published qc.json document (`doc`), to be stored at REPORT_HTML.

    No scripts, no external assets: pictures are linked by paths relative to the report's folder, so the
    page works opened straight from a published folder or a `reel restore --out` copy. Every string from
    the document is escaped.
    """
    shots = doc.get("shots", [])
    summary = doc.get("summary", {})
    review = [r for r in shots if r.get("verdict") != "pass"]
    title = f"QC report: {doc.get('title', '')}"
    meta = [("title", doc.get("title")), ("recipe", doc.get("recipe")), ("chain hash", doc.get("chain_hash")),
            ("source sha256", doc.get("source_sha256")), ("QC version", doc.get("qc_version")),
            ("shots", len(shots)), ("pass", len(shots) - len(review)),
            ("review", f"{len(review)}" + (f" (shots {', '.join(str(r['shot']) for r in review)})" if review else "")),
            ("lowest SSIM", _num(summary.get("ssim_luma_min"))),
            ("flicker before → after (mean)",
             f"{_num(summary.get('flicker_source_mean'))} → {_num(summary.get('flicker_restored_mean'))}"),
            ("warping error before → after (mean)",
             f"{_num(summary.get('warping_error_source_mean'))} → {_num(summary.get('warping_error_restored_mean'))}"),
            ("noise σ before → after (mean)",
             f"{_num(summary.get('noise_sigma_source_mean'))} → {_num(summary.get('noise_sigma_restored_mean'))}"),
            ("dust / scratch pixels filled",
             f"{_num(summary.get('dust_pixels_filled'))} / {_num(summary.get('scratch_pixels_filled'))}")]
    thresholds = doc.get("thresholds", {}) or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>", "<h2>Summary</h2>", '<dl class="meta">',
        *(f"<dt>{esc(k)}</dt><dd>{esc('–' if v is None else v)}</dd>" for k, v in meta), "</dl>",
        "<h2>Thresholds</h2>", '<dl class="meta thresholds">',
        *(f"<dt>{esc(k)}</dt><dd>{esc('not checked' if v is None else v)}</dd>" for k, v in thresholds.items()),
        "</dl>",
        *(["<h2>Source events</h2>", "<ul>",
            *(f"<li>{esc(e.get('kind'))}: {esc(e.get('detail'))}"
              + (f" ({esc(e['suggest'])})" if e.get("suggest") else "") + "</li>" for e in doc.get("events") or []),
            "</ul>"] if doc.get("events") else []),
        "<h2>Shots, worst first</h2>",
        "<p>Metrics compare the restored shot with its source at source resolution (0–1 scales unless "
        "noted); σ is the luma noise estimate; warping error is the temporal instability along the "
        "optical flow on sampled frame pairs.</p>",
        '<table id="shots"><thead><tr>', *(f"<th>{esc(c)}</th>" for c in _SHOT_COLUMNS), "</tr></thead><tbody>",
        *(_shot_row(r) for r in worst_first(shots)), "</tbody></table>", "</body></html>", "",
    ]
    return "\n".join(parts)
