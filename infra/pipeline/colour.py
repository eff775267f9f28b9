"""Colour tasks: per-shot statistics for shot-analysis stages, and grades learned from reference pairs."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import pandas as pd

from catalog import layout
from catalog.recipe import GradeReference, Recipe
from catalog.records import IngestRecord
from infra.images import read_pairs
from infra.mezzanine import MezzanineReader
from infra.sources import check_reference_path
from models.grade import learn_grade

SAMPLES_PER_SHOT = 12


ANALYSIS_MAX_SIDE = 640


def read_analysis_frames(reader: MezzanineReader, idx: list[int]) -> np.ndarray:
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


GRADE_LEARNER = "1"  # bump when learn_grade's output changes: cached grades are then relearned


def learned_grade(store: Any, pairs: list[tuple[str, np.ndarray, np.ndarray]], size: int) -> tuple[np.ndarray, dict]:
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


def reference_pairs(store: Any, settings: Any, record: IngestRecord | None, label: str,
                    ref: GradeReference) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """A grade reference's (name, original, graded) pairs: stills from its two folders, or sampled (source,
    returned) frames of the current manual work of the shot an artist graded (`ref.manual_shot`)."""
    if ref.manual_shot is None:
        return read_pairs(check_reference_path(ref.originals, settings, "grade originals"),  # type: ignore[arg-type]
                          check_reference_path(ref.graded, settings, "grade stills"))  # type: ignore[arg-type]
    return artist_pairs(store, record, label, ref.manual_shot)


def artist_pairs(store: Any, record: IngestRecord | None, label: str, shot: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Grade pairs from a shot an artist graded: sampled (source, returned) frames of its current manual work."""
    from infra.pipeline.artist import manual_for, manual_pairs  # it imports this module (restore -> colour)

    manual = manual_for(store, record).get(shot) if record is not None else None
    if manual is None:
        raise ValueError(f"grade {label!r} learns from shot {shot}'s manual work, but this source has none for shot "
                         f"{shot}: hand it to an artist and take it back first (reel handoff, reel takeback)")
    return manual_pairs(store, record, manual)  # type: ignore[arg-type]


def shot_bindings(recipe: Recipe, shots: pd.DataFrame, analyses: list[dict[int, dict]],
                  grades: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """{shot: per-stage data to bind}: solved shot-analysis statistics and the shot's grade LUT."""
    stages = recipe.build()
    bound: dict[int, list[dict[str, Any]]] = {int(s): [{} for _ in stages] for s in shots["shot"]}
    shot_ids = [int(s) for s in shots["shot"]]
    for i, stage in enumerate(stages):
        if stage.shot_analysis:
            solved = stage.solve([a[i] for a in analyses])  # type: ignore[attr-defined]  # shot-analysis stages have solve
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
