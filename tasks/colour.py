"""Prefect tasks of this step; the work is pipeline/colour.py."""

from __future__ import annotations

import re
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.recipe import Recipe
from catalog.records import IngestRecord
from infra.mezzanine import MezzanineReader
from infra.pipeline.colour import SAMPLES_PER_SHOT, learned_grade, read_analysis_frames, reference_pairs
from infra.runtime import current_store, retry_transient
from infra.settings import load_settings
from infra.sources import check_reference_path
from models.clip import Clip, ColorInfo
from models.grade import read_cube, write_cube
from models.stage import bound_digest


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
            clip = Clip.from_uint(read_analysis_frames(reader, idx), Fraction(record.fps), first_frame=idx[0], color=color)
            out[i] = stage.analyse(clip)
    return out


@task(name="learn-grades", cache_policy=NO_CACHE)
def learn_grades(recipe: Recipe, record: IngestRecord | None = None) -> list[dict[str, Any]]:
    """Every grade the recipe names: learned from its reference pairs (folders of stills, or sampled frames of
    a shot an artist graded, from `record`'s source), or read from the grade stage's .cube.
    Each: {label, shots (None = every other shot), lut, digest, cube (text), report}."""
    out = []
    stage = next((s for s in recipe.stages if s.name == "grade"), None)
    if recipe.grade is not None:
        store = current_store()
        settings = load_settings()
        for label, ref in recipe.grade.labelled():
            pairs = reference_pairs(store, settings, record, label, ref)
            lut, report = learned_grade(store, pairs, recipe.grade.size)
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
