"""Colour tasks: per-shot statistics for shot-analysis stages, and grades learned from reference pairs."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import layout
from catalog.recipe import Recipe
from catalog.records import IngestRecord
from infra.images import read_pairs
from infra.mezzanine import MezzanineReader
from infra.settings import load_settings
from infra.sources import check_reference_path
from models.clip import Clip, ColorInfo
from models.grade import learn_grade, read_cube, write_cube
from models.stage import bound_digest
from tasks.common import current_store, retry_transient

SAMPLES_PER_SHOT = 12
ANALYSIS_MAX_SIDE = 640


def _read_frames(reader: MezzanineReader, idx: list[int]) -> np.ndarray:
    """Frames `idx` (sorted), consecutive runs read at once, shrunk to at most ANALYSIS_MAX_SIDE."""
    frames: list[np.ndarray] = []
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        frames.extend(reader.read(idx[i], idx[j] + 1))
        i = j + 1
    h, w = frames[0].shape[:2]
    step = max(1, int(np.ceil(max(h, w) / ANALYSIS_MAX_SIDE)))
    return np.stack([f[::step, ::step] for f in frames])


@task(name="analyse-shot", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE, task_run_name="analyse-shot{shot}")
def analyse_shot(record: IngestRecord, recipe: Recipe, shot: int, start: int, end: int) -> dict[int, dict]:
    """{stage index: statistics} for the recipe's shot-analysis stages, from the frames each asks for
    (sampled across the shot, or a run of consecutive frames)."""
    stages = {i: s for i, s in enumerate(recipe.build()) if s.shot_analysis}
    if not stages:
        return {}
    color = ColorInfo(**{**record.color, "bit_depth": record.color.get("bit_depth", record.bit_depth)})
    out = {}
    with tempfile.TemporaryDirectory(prefix="reel-analyse-") as tmp:
        reader = MezzanineReader(current_store(), record, Path(tmp))
        for i, stage in stages.items():
            idx = stage.analysis_frames(start, end, SAMPLES_PER_SHOT)
            clip = Clip.from_uint(_read_frames(reader, idx), Fraction(record.fps), first_frame=idx[0], color=color)
            out[i] = stage.analyse(clip)
    return out


@task(name="learn-grades", cache_policy=NO_CACHE)
def learn_grades(recipe: Recipe) -> list[dict[str, Any]]:
    """Every grade the recipe names: learned from its reference pairs, or read from the grade stage's
    .cube. Each: {label, shots (None = every other shot), lut, digest, cube (text), report}."""
    out = []
    stage = next((s for s in recipe.stages if s.name == "grade"), None)
    if recipe.grade is not None:
        store = current_store()
        settings = load_settings()
        for label, ref in recipe.grade.labelled():
            pairs = read_pairs(check_reference_path(ref.originals, settings, "grade originals"),
                               check_reference_path(ref.graded, settings, "grade stills"))
            lut, report = _learned(store, pairs, recipe.grade.size)
            out.append({"label": label, "shots": ref.shots, "lut": lut, "digest": bound_digest({"lut": lut}),
                        "report": report, "cube": write_cube(lut, f"Reel {label}", [
                            f"learned by Reel from {len(pairs)} graded frame(s): {', '.join(report['frames'])}",
                            f"leave-one-out mean dE2000: {report.get('cv_delta_e00', 'n/a')}"])})
    elif stage is not None and stage.params.get("cube"):
        path = check_reference_path(stage.params["cube"], load_settings(), "grade cube")
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"grade cube {path}: {e.strerror or e}") from None
        lut = read_cube(text)
        label = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.")[:64] or "grade"
        out.append({"label": label, "shots": None, "lut": lut, "digest": bound_digest({"lut": lut}),
                    "report": {"cube": path.name}, "cube": text})
    return out


GRADE_LEARNER = "1"  # bump when learn_grade's output changes: cached grades are then relearned


def _learned(store: Any, pairs: list[tuple[str, np.ndarray, np.ndarray]], size: int) -> tuple[np.ndarray, dict]:
    """learn_grade on the pairs, cached in the store by the pairs' pixels: a rerun does not relearn."""
    h = hashlib.sha256(f"{GRADE_LEARNER}|{size}".encode())
    for name, o, g in pairs:
        h.update(name.encode() + b"\0" + o.tobytes() + g.tobytes())
    key = layout.learned_grade_key(h.hexdigest()[:24])
    if store.exists(f"{key}.json"):
        report = json.loads(store.get_bytes(f"{key}.json"))
        return np.load(io.BytesIO(store.get_bytes(f"{key}.npy"))), report
    lut, report = learn_grade([(o, g) for _, o, g in pairs], size=size)
    report["frames"] = [name for name, _, _ in pairs]
    buf = io.BytesIO()
    np.save(buf, lut)
    store.put_bytes(f"{key}.npy", buf.getvalue())
    store.put_bytes(f"{key}.json", json.dumps(report).encode(), content_type="application/json")  # written last
    return lut, report


def shot_bindings(recipe: Recipe, shots: pd.DataFrame, analyses: list[dict[int, dict]],
                  grades: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """{shot: per-stage data to bind}: solved shot-analysis statistics and the shot's grade LUT."""
    stages = recipe.build()
    bound: dict[int, list[dict[str, Any]]] = {int(s): [{} for _ in stages] for s in shots["shot"]}
    shot_ids = [int(s) for s in shots["shot"]]
    for i, stage in enumerate(stages):
        if stage.shot_analysis:
            solved = stage.solve([a[i] for a in analyses])
            for shot, stats in zip(shot_ids, solved, strict=True):
                bound[shot][i] = {"stats": stats}
        elif stage.name == "grade":
            by_label = {g["label"]: g for g in grades}
            for shot in shot_ids:
                label = recipe.grade.label_for_shot(shot) if recipe.grade else (grades[0]["label"] if grades else None)
                bound[shot][i] = ({"lut": by_label[label]["lut"], "label": label} if label is not None
                                  else {"lut": None, "label": "ungraded"})
    return bound


def shot_grade_lut(recipe: Recipe, bound: list[dict[str, Any]] | None) -> np.ndarray | None:
    """The grade LUT bound to a shot (None: the recipe has no grade, or the shot is ungraded)."""
    names = [spec.name for spec in recipe.stages]
    if not bound or "grade" not in names:
        return None
    return bound[names.index("grade")].get("lut")
