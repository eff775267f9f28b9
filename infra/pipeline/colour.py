"""Per-shot preparation of a title's stages: the shot analysis (frames read from the mezzanine), the
grades its recipe names (learned from reference pairs, or read from a .cube), and the per-shot bindings
that the stages' preparation hook makes of them (`catalog.bindings.prepare_shots`)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from catalog import layout
from catalog.bindings import ShotBindings, prepare_shots
from catalog.grades import TitleGrade, shot_look
from catalog.recipe import GradeReference, Recipe
from catalog.records import IngestRecord
from infra.images import read_pairs
from infra.mezzanine import MezzanineReader
from infra.settings import Settings
from infra.sources import check_reference_path
from infra.storage import Store
from models.clip import Clip
from models.grade import learn_grade, read_cube, write_cube
from models.stage import analysis_step, bound_digest


def read_analysis_frames(reader: MezzanineReader, idx: list[int]) -> np.ndarray:
    """Frames `idx` (sorted), consecutive runs read at once, subsampled for the analysis
    (`models.stage.analysis_step`: at most ANALYSIS_MAX_SIDE pixels a side)."""
    frames: list[np.ndarray] = []
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        frames.extend(reader.read(idx[i], idx[j] + 1))
        i = j + 1
    step = analysis_step(*frames[0].shape[:2])
    return np.stack([f[::step, ::step] for f in frames])


def analyse_shot(store: Store, record: IngestRecord, recipe: Recipe, start: int, end: int) -> dict[int, dict]:
    """{stage index: statistics} for the recipe's shot-analysis stages, from the frames of the shot
    [start, end) each asks for (sampled across the shot, or a run of consecutive frames)."""
    stages = {i: s for i, s in enumerate(recipe.build()) if s.shot_analysis}
    out = {}
    if stages:
        with tempfile.TemporaryDirectory(prefix="reel-analyse-") as tmp:
            reader = MezzanineReader(store, record, Path(tmp))
            for i, stage in stages.items():
                idx = stage.analysis_frames(start, end)
                clip = Clip.from_uint(read_analysis_frames(reader, idx), record.fps_fraction, first_frame=idx[0],
                                      color=record.color_info)
                out[i] = stage.analyse(clip)
    return out


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


def learn_title_grades(store: Store, recipe: Recipe, settings: Settings,
                       record: IngestRecord | None = None) -> list[TitleGrade]:
    """Every grade the recipe names: learned from its reference pairs (folders of stills, which the sources
    policy checks, or sampled frames of a shot an artist graded, from `record`'s source), or read from the
    grade stage's .cube."""
    out = []
    if recipe.grade is not None:
        for label, ref in recipe.grade.labelled():
            pairs = reference_pairs(store, settings, record, label, ref)
            lut, report = learned_grade(store, pairs, recipe.grade.size)
            cube = write_cube(lut, f"Reel {label}", [
                f"learned by Reel from {len(pairs)} graded frame(s): {', '.join(report['frames'])}",
                f"leave-one-out mean dE2000: {report.get('cv_delta_e00', 'n/a')}"])
            out.append(TitleGrade(label, ref.shots, lut, bound_digest({"lut": lut}), cube, report))
    elif (cube_file := recipe.grade_cube()) is not None:
        path = check_reference_path(cube_file, settings, "grade cube")
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"grade cube {path}: {e.strerror or e}") from None
        lut = read_cube(text)
        label = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.")[:64] or "grade"
        out.append(TitleGrade(label, None, lut, bound_digest({"lut": lut}), text, {"cube": path.name}))
    return out


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


def shot_bindings(recipe: Recipe, shots: pd.DataFrame, analyses: dict[int, dict[int, dict]],
                  grades: list[TitleGrade]) -> dict[int, ShotBindings]:
    """{shot: what each of the recipe's stages is bound with}: the stages' per-shot preparation over the
    shots' analyses ({shot: {stage index: statistics}}) and the grade the title gives each shot."""
    rows = [(int(r.shot), int(r.start_frame), int(r.end_frame)) for r in shots.itertuples(index=False)]
    looks = {shot: shot_look(recipe, grades, shot) for shot, _, _ in rows}
    return prepare_shots(recipe.build(), rows, analyses, looks)
