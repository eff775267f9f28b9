"""Prefect tasks of this step; the work is pipeline/colour.py."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog.grades import TitleGrade
from catalog.recipe import Recipe
from catalog.records import IngestRecord
from infra.pipeline.colour import analyse_shot as analyse_shot_frames
from infra.pipeline.colour import learn_title_grades
from infra.runtime import process_runtime, retry_transient


@task(name="analyse-shot", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE, task_run_name="analyse-shot{shot}")
def analyse_shot(record: IngestRecord, recipe: Recipe, shot: int, start: int, end: int) -> dict[int, dict]:
    """{stage index: statistics} for the recipe's shot-analysis stages, from the frames each asks for
    (sampled across the shot, or a run of consecutive frames)."""
    return analyse_shot_frames(process_runtime().store, record, recipe, start, end)


@task(name="learn-grades", cache_policy=NO_CACHE)
def learn_grades(recipe: Recipe, record: IngestRecord | None = None) -> list[TitleGrade]:
    """Every grade the recipe names: learned from its reference pairs (folders of stills, or sampled frames
    of a shot an artist graded, from `record`'s source), or read from the grade stage's .cube."""
    rt = process_runtime()
    return learn_title_grades(rt.store, recipe, rt.settings, record)
