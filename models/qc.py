"""QC maths: per-piece and per-shot metrics of restored frames against their source, the verdict against
thresholds, and the QC pictures (before/after, contact sheet). Pure: numpy and OpenCV, no Prefect, no store.

`measure_piece` measures one piece while its frames are in memory (restore-piece calls it); `finish_shot`
joins the pieces of a shot into its metrics and pictures; `qc_verdict` judges them. The title report
document and its HTML are catalog.qc_report; storing them is tasks/qc.py's job.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from models.clip import luma
from models.duplicates import DuplicateDetector
from models.grade import apply_lut, delta_e00
from models.metrics import (
    colour_jitter,
    flicker_from_means,
    noise_sigma,
    psnr,
    sharpness_planes,
    ssim_planes,
    warping_error,
)

PieceQC = tuple[dict[str, Any], dict[str, np.ndarray]]  # a piece's numbers (JSON-able) and its pictures

QC_VERSION = "6"
SSIM_SAMPLES = 12  # frames per shot measured with SSIM, sharpness, noise, colour change (cost bound);
#                    PSNR and flicker use every frame
WARP_PAIRS = 8  # consecutive frame pairs per shot measured for the warping error (two DIS flows each) ...
WARP_MAX_WIDTH = 480  # ... at most this wide
SHEET_FRAMES = 4  # frames across the shot on the contact sheet (before row over after row) ...
SHEET_MAX_WIDTH = 1280  # ... at most this wide
SHEET_GAP = 4

# (threshold, metric, comparison): a shot whose metric is on the wrong side of a set threshold is "review"
THRESHOLD_CHECKS = (
    ("min_ssim", "ssim_luma", "<"),
    ("max_warping_error", "warping_error_restored", ">"),
    ("max_warping_error_ratio", "warping_error_ratio", ">"),
    # vs the learned grade where the shot has one (the grade is the intended look), else vs the source
    ("max_colour_shift_de00", ("colour_vs_grade_de00", "colour_change_de00"), ">"),
    ("max_flicker_restored", "flicker_restored", ">"),
)


def _label(img: np.ndarray, text: str, x: int, y: int, scale: float) -> None:
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def before_after(src: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Side-by-side 8-bit BGR picture (source | restored at source size) with labels."""
    h, w = src.shape[:2]
    pair = np.concatenate([src, cv2.resize(res, (w, h), interpolation=cv2.INTER_AREA)], axis=1)
    img = cv2.cvtColor(np.clip(pair * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    scale = max(0.4, h / 600)
    for text, x in (("before", 8), ("after", w + 8)):
        _label(img, text, x, int(24 * scale) + 4, scale)
    return img


def sheet_tile_size(width: int, height: int, frames: int = SHEET_FRAMES) -> tuple[int, int]:
    """(w, h) of one contact-sheet tile: the source size, shrunk so `frames` tiles fit SHEET_MAX_WIDTH."""
    tw = max(16, min(width, (SHEET_MAX_WIDTH - SHEET_GAP * (frames - 1)) // max(1, frames)))
    return tw, max(8, round(height * tw / width))


def contact_sheet(frames: list[int], before: list[np.ndarray], after: list[np.ndarray]) -> np.ndarray:
    """8-bit BGR sheet: the source tiles in a row over the restored tiles, each labelled with its frame number.

    before/after: float RGB tiles in [0, 1], all of one size (see `sheet_tile_size`).
    """
    if not frames or not len(frames) == len(before) == len(after):
        raise ValueError("contact_sheet needs one before and one after tile per frame number")
    th, tw = before[0].shape[:2]
    k, g = len(frames), SHEET_GAP
    sheet = np.full((2 * th + g, k * tw + (k - 1) * g, 3), 40, np.uint8)
    scale = max(0.35, th / 400)
    for col, (f, b, a) in enumerate(zip(frames, before, after, strict=True)):
        x = col * (tw + g)
        for row, (tile, word) in enumerate(((b, "before"), (a, "after"))):
            y = row * (th + g)
            sheet[y:y + th, x:x + tw] = cv2.cvtColor(np.clip(tile * 255 + 0.5, 0, 255).astype(np.uint8),
                                                     cv2.COLOR_RGB2BGR)
            _label(sheet, f"{word} {f}", x + 4, y + int(20 * scale) + 4, scale)
    return sheet

def qc_verdict(metrics: dict[str, Any], thresholds: Any) -> tuple[str, list[str]]:
    """("pass" | "review", reasons): each reason names the failed threshold with both values.
    `thresholds`: an object with the THRESHOLD_CHECKS names as attributes (catalog.recipe.QCThresholds);
    None means not checked."""
    reasons = []
    for name, candidates, op in THRESHOLD_CHECKS:
        metric = next((m for m in ((candidates,) if isinstance(candidates, str) else candidates)
                       if metrics.get(m) is not None), None)
        limit, value = getattr(thresholds, name), metrics.get(metric) if metric else None
        if limit is None or value is None:
            continue
        if (value < limit) if op == "<" else (value > limit):
            reasons.append(f"{name}: {metric} {value:.6g} {op} {limit:.6g}")
    harm = metrics.get("harm")
    if harm and not harm.get("resolved"):  # the harm guard could not clear it: a person decides
        reasons.extend(f"harm: {f['reason']}" for f in harm.get("remaining", harm.get("findings", [])))
    return ("review" if reasons else "pass"), reasons


def worst_first(shots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shots needing review first (most failed thresholds first), then by lowest SSIM."""
    return sorted(shots, key=lambda r: (r["verdict"] == "pass", -len(r.get("reasons", [])), r["ssim_luma"],
                                        r["shot"]))


def _shrink(x: np.ndarray, width: int, height: int) -> np.ndarray:
    if x.shape[1] == width and x.shape[0] == height:
        return x
    return cv2.resize(x, (width, height), interpolation=cv2.INTER_AREA)


def _evenly(lo: int, hi: int, k: int) -> set[int]:
    """Up to k distinct integers spread evenly over [lo, hi] (empty when hi < lo)."""
    if hi < lo or k <= 0:
        return set()
    return {int(v) for v in np.linspace(lo, hi, min(k, hi - lo + 1)).round()}


def rounded_mean(values: list[float], digits: int) -> float | None:
    return round(float(np.mean(values)), digits) if values else None


def _sampling(n: int) -> tuple[int, int, set[int], set[int]]:
    """(SSIM step, middle frame, warping-pair ends, contact-sheet frames) of a shot of n frames."""
    return max(1, n // SSIM_SAMPLES), n // 2, _evenly(1, n - 1, WARP_PAIRS), _evenly(0, n - 1, SHEET_FRAMES)


def measure_piece(source: Iterable[np.ndarray], restored: Iterable[np.ndarray], *, shot_start: int, shot_end: int,
                  start: int, bit_depth: int, grade_lut: np.ndarray | None = None,
                  before: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """QC of one piece of a shot, from its source frames (uint8/uint16 as `bit_depth` says) and restored
    frames (uint16) streamed in step, frames start, start + 1, ... of the shot [shot_start, shot_end).
    `before`: the source frame start - 1 when start > shot_start (the repeated-frame test compares each
    frame with the one before). The frames sampled for SSIM etc., warping pairs and the contact sheet
    are chosen over the whole shot, so `finish_shot` over all its pieces measures the shot; a sampled
    warping pair that would straddle two pieces is moved one frame later.

    Returns (numbers, JSON-able; pictures: contact-sheet tiles of the sampled frames in the piece and,
    in the piece holding the shot's middle frame, the before/after picture)."""
    n = shot_end - shot_start
    scale = np.float32(255.0 if bit_depth == 8 else 65535.0)
    step, middle, warp_ends, sheet_at = _sampling(n)
    a = start - shot_start
    out: dict[str, Any] = {k: [] for k in ("means_src", "means_res", "rgb_src", "rgb_res", "psnr", "ssim",
                                           "sharp_src", "sharp_res", "noise_src", "noise_res", "colour_change",
                                           "vs_grade", "warp_src", "warp_res")}
    sheet_frames, sheet_src, sheet_res = [], [], []
    pictures: dict[str, np.ndarray] = {}
    repeats = DuplicateDetector()
    if before is not None:
        repeats.push(before)
    ends: set[int] = set()  # warping pairs (t - 1, t) inside this piece
    prev: tuple[np.ndarray, np.ndarray] | None = None
    t = a
    for t, (s_u, r_u) in enumerate(zip(source, restored, strict=True), start=a):
        s = np.divide(s_u, scale, dtype=np.float32)  # = s_u.astype(np.float32) / scale, one pass
        repeats.push(s)
        r_full = np.divide(r_u, np.float32(65535.0), dtype=np.float32)
        r = cv2.resize(r_full, (s.shape[1], s.shape[0]), interpolation=cv2.INTER_AREA) \
            if r_full.shape != s.shape else r_full
        if t == a:  # sizes of the warping-error frames and the contact-sheet tiles
            h, w = s.shape[:2]
            ww, wh = min(w, WARP_MAX_WIDTH), max(8, round(h * min(w, WARP_MAX_WIDTH) / w))
            sw, sh = sheet_tile_size(w, h, len(sheet_at))
            ends = {e for e in warp_ends if e > a} | ({a + 1} if a in warp_ends and a > 0 else set())
        y_s, y_r = luma(s), luma(r)  # each frame's luma once, for every measure below
        out["means_src"].append(float(y_s.mean()))
        out["means_res"].append(float(y_r.mean()))
        out["rgb_src"].append([float(v) for v in s.reshape(-1, 3).mean(axis=0)])
        out["rgb_res"].append([float(v) for v in r.reshape(-1, 3).mean(axis=0)])
        out["psnr"].append(float(psnr(r, s)))
        if t % step == 0:
            out["ssim"].append(float(ssim_planes(y_r, y_s)))
            out["sharp_src"].append(float(sharpness_planes(y_s)))
            out["sharp_res"].append(float(sharpness_planes(y_r)))
            out["noise_src"].append(float(noise_sigma(y_s)))
            out["noise_res"].append(float(noise_sigma(y_r)))
            k = max(1, max(s.shape[:2]) // 160)
            out["colour_change"].append(float(delta_e00(r[::k, ::k], s[::k, ::k]).mean()))
            if grade_lut is not None:  # how far the restored colour is from the source under the grade
                out["vs_grade"].append(float(delta_e00(r[::k, ::k], apply_lut(grade_lut, s[::k, ::k])).mean()))
        if t in ends or t + 1 in ends:
            cur = (_shrink(s, ww, wh), _shrink(r, ww, wh))
            if t in ends and prev is not None:  # each on its own flow: the restored motion is
                out["warp_src"].append(float(warping_error(np.stack([prev[0], cur[0]]))))  # steadier than the source's
                out["warp_res"].append(float(warping_error(np.stack([prev[1], cur[1]]))))
            prev = cur if t + 1 in ends else None
        if t in sheet_at:
            sheet_frames.append(shot_start + t)
            sheet_src.append(_shrink(s, sw, sh))
            sheet_res.append(_shrink(r, sw, sh))
        if t == middle:
            pictures["before_after"] = before_after(s, r_full)
    if not out["psnr"]:
        raise ValueError(f"no frames to measure at frame {start}")
    out.update(version=QC_VERSION, shot=[shot_start, shot_end], frames=[start, shot_start + t + 1],
               pairs_from=start if before is not None else start + 1,
               pairs=[[round(d, 6), round(dx, 4), round(dy, 4)]
                      for d, (dx, dy) in zip(repeats.distances, repeats.shifts, strict=True)])
    if sheet_frames:
        to16 = np.float32(65535.0)
        pictures.update(sheet_frames=np.array(sheet_frames, np.int64),
                        sheet_src=np.rint(np.clip(np.stack(sheet_src), 0, 1) * to16).astype(np.uint16),
                        sheet_res=np.rint(np.clip(np.stack(sheet_res), 0, 1) * to16).astype(np.uint16))
    return out, pictures


def pictures_bytes(pictures: dict[str, np.ndarray]) -> bytes:
    """A piece's QC pictures as one .npz (stored next to its segment). Not compressed: zlib took 0.1 s
    a piece (a ninth of its QC) to save 7 % of 4 MB at 320x240 (16-bit film grain hardly compresses)."""
    buf = io.BytesIO()
    np.savez(buf, **pictures)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
    return buf.getvalue()


def finish_shot(parts: list[tuple[dict[str, Any], dict[str, np.ndarray]]], *, shot: int, start: int, end: int,
                reports: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The shot's QC metrics and pictures (PNG bytes: "before-after", "contact-sheet") from the
    `measure_piece` results of all its pieces. `reports`: the stage reports of its pieces (dust,
    scratch and weave figures come from them)."""
    parts = sorted(parts, key=lambda p: p[0]["frames"][0])
    spans = [p[0]["frames"] for p in parts]
    if spans[0][0] != start or spans[-1][1] != end or any(x[1] != y[0] for x, y in itertools.pairwise(spans)):
        raise RuntimeError(f"the QC of shot {shot}'s pieces covers {spans}, not frames {start}..{end}")

    def joined(name: str) -> list[Any]:
        return [v for q, _ in parts for v in q[name]]

    n = end - start
    pairs = joined("pairs")
    if parts[0][0]["pairs_from"] != start + 1 or len(pairs) != n - 1:
        raise RuntimeError(f"shot {shot}: {len(pairs)} repeated-frame distances for {n} frames")
    repeats = DuplicateDetector.from_distances([p[0] for p in pairs], [(p[1], p[2]) for p in pairs],
                                               first_frame=start)
    sheet_frames = [int(f) for _, pic in parts for f in pic.get("sheet_frames", [])]
    sheet_src = [t.astype(np.float32) / 65535 for _, pic in parts for t in pic.get("sheet_src", [])]
    sheet_res = [t.astype(np.float32) / 65535 for _, pic in parts for t in pic.get("sheet_res", [])]
    picture = next((pic["before_after"] for _, pic in parts if "before_after" in pic), None)
    if picture is None:
        raise RuntimeError(f"shot {shot}: no piece holds the middle frame's before/after picture")

    def stage_reports(name: str) -> list[dict[str, Any]]:
        return [rep for rep in reports if rep.get("stage") == name]

    dust = [c for rep in stage_reports("dust") for c in rep.get("dust_pixels", [])]
    scratch = [c for rep in stage_reports("scratch") for c in rep.get("pixels_per_frame", [])]
    shifts = [float(np.hypot(x, y)) for rep in stage_reports("stabilise")
              for x, y in zip(rep.get("dx", []), rep.get("dy", []), strict=True)]
    decided = next((rep for rep in stage_reports("stabilise") if rep.get("decision")), None)
    warp_s, warp_r = rounded_mean(joined("warp_src"), 5), rounded_mean(joined("warp_res"), 5)
    vs_grade = joined("vs_grade")
    metrics = {
        "shot": shot, "start_frame": start, "end_frame": end, "frames": n,
        "ssim_luma": round(float(np.mean(joined("ssim"))), 4),
        "psnr_vs_source_db": round(float(np.mean(np.minimum(joined("psnr"), 99.0))), 2),
        "flicker_source": round(flicker_from_means(np.array(joined("means_src"))), 5),
        "flicker_restored": round(flicker_from_means(np.array(joined("means_res"))), 5),
        # temporal consistency: mean |frame t - frame t-1 warped onto t| on up to WARP_PAIRS sampled pairs
        "warping_error_source": warp_s,
        "warping_error_restored": warp_r,
        "warping_error_ratio": round(warp_r / warp_s, 4) if warp_s and warp_r is not None else None,
        "sharpness_source": round(float(np.mean(joined("sharp_src"))), 6),
        "sharpness_restored": round(float(np.mean(joined("sharp_res"))), 6),
        "noise_sigma_source": round(float(np.mean(joined("noise_src"))), 5),
        "noise_sigma_restored": round(float(np.mean(joined("noise_res"))), 5),
        "colour_jitter_source": round(colour_jitter(np.array(joined("rgb_src"))), 4),
        "colour_jitter_restored": round(colour_jitter(np.array(joined("rgb_res"))), 4),
        "colour_change_de00": round(float(np.mean(joined("colour_change"))), 3),
        "colour_vs_grade_de00": round(float(np.mean(vs_grade)), 3) if vs_grade else None,
        "dust_pixels_filled": int(sum(dust)),
        "dust_frames": int(sum(c > 0 for c in dust)),
        "scratch_pixels_filled": int(sum(scratch)),
        "scratch_frames": int(sum(c > 0 for c in scratch)),
        "weave_corrected_px_mean": round(float(np.mean(shifts)), 3) if shifts else 0.0,
        # stabilise's per-shot decision (weave, follow, none) and why: the camera's moves are kept
        "weave_decision": decided["decision"] if decided else None,
        "weave_reason": decided.get("reason") if decided else None,
        # an upscaler that reports its fidelity (output shrunk back vs its input: realesrgan): the worst piece
        "upscale_fidelity_de00": max(fid) if (fid := [float(rep["fidelity_max_delta_e00"])
                                                      for rep in stage_reports("upscale")
                                                      if rep.get("fidelity_max_delta_e00") is not None]) else None,
        # repeated frames of the source (old transfers), as frame indices of the film
        "duplicate_frames": [d["frame"] for d in repeats.results()],
        "sampled_frames": {"ssim": len(joined("ssim")), "warping_pairs": len(joined("warp_res")),
                           "contact_sheet": sheet_frames},
    }
    pngs = {}
    for name, img in (("before-after", picture), ("contact-sheet", contact_sheet(sheet_frames, sheet_src,
                                                                                  sheet_res))):
        ok, png = cv2.imencode(".png", img)
        if not ok:
            raise RuntimeError(f"could not encode the {name} picture of shot {shot}")
        pngs[name] = png.tobytes()
    return metrics, pngs
