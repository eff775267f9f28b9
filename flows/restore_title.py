"""The restore-title flow: ingest -> grades -> shots -> shot analysis -> restore per piece -> QC -> publish."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed

from catalog.ids import validate_title_id
from catalog.recipe import Recipe
from catalog.shots import plan_pieces
from flows.recipes import resolve_recipe
from infra.cluster import make_task_runner
from infra.prefect_api import shared_prefect_api
from infra.settings import load_settings
from infra.sources import check_source
from tasks.colour import analyse_shot, learn_grades, shot_bindings
from tasks.ingest import ingest
from tasks.publish import find_published, publish
from tasks.qc import qc_report, qc_shot
from tasks.restore import restore_piece
from tasks.shots import chunk_scores, load_shots, save_shots

AUTO_REVIEW = {"decision": "auto-approved", "by": "qc-thresholds", "redo": []}


@flow(name="restore-title", log_prints=True)
def restore_title(source: str, title: str, recipe: str | Recipe = "default") -> dict[str, Any]:
    """Restore one title and publish it.

    Returns {"manifest": the published manifest (made now or earlier), "pieces_restored": n,
    "pieces_reused": m, "shots": k}: a rerun with nothing changed restores nothing.
    """
    title = validate_title_id(title)
    settings = load_settings()
    check_source(source, settings)  # sources policy before any store I/O: a refused source creates nothing
    rec = resolve_recipe(recipe)

    record = ingest(source, title)
    grades = learn_grades(rec)
    done = find_published(record, rec, AUTO_REVIEW, grades)
    if done is not None:  # this source with these stages is already published: nothing to do
        print(f"{title}: already published as {done['version']}")
        return {"manifest": done, "shots": len(done["shots"]), "pieces_restored": 0,
                "pieces_reused": sum(len(s["segments"]) for s in done["shots"])}

    shots = load_shots(record)
    if shots is None:
        scores = [chunk_scores.submit(record, i) for i in range(len(record.chunks))]
        shots = save_shots(record, [s.result() for s in scores])
    print(f"{title}: {record.frames} frames, {len(shots)} shots")

    rows = list(shots.itertuples(index=False))
    analyses = [analyse_shot.submit(record, rec, int(r.shot), int(r.start_frame), int(r.end_frame))
                for r in rows] if any(s.shot_analysis for s in rec.build()) else []
    bound = shot_bindings(rec, shots, [a.result() for a in analyses], grades)

    pieces = plan_pieces(shots, settings.piece_frames, rec.context_frames())
    restored = {p: restore_piece.submit(record, p, rec, bound[p.shot]) for p in pieces}

    checks = [
        qc_shot.submit(record, rec, int(row.shot), int(row.start_frame), int(row.end_frame),
                       [f for p, f in restored.items() if p.shot == row.shot])
        for row in rows
    ]
    track_progress(title, list(restored.values()))
    report = qc_report(record, rec, [c.result() for c in checks])
    segments = [f.result() for f in restored.values()]
    reused = sum(s.reused for s in segments)
    print(f"{title}: {len(segments) - reused} pieces restored, {reused} reused; review: {report['summary']['review']}")

    review = {**AUTO_REVIEW, "shots_below_threshold": report["summary"]["review"]}
    manifest = publish(record, rec, shots, segments, report, review, grades)
    return {"manifest": manifest, "shots": len(shots), "pieces_restored": len(segments) - reused,
            "pieces_reused": reused}


def track_progress(title: str, futures: list) -> None:
    """A Prefect progress artifact (0-100 %) that moves as restored pieces come back."""
    done, total = 0, len(futures)
    artifact = create_progress_artifact(0.0, key=f"{title}-restore-progress",
                                        description=f"{title}: pieces restored")
    for _ in as_completed(futures):
        done += 1
        update_progress_artifact(artifact, 100.0 * done / total,
                                 description=f"{title}: {done} of {total} pieces restored")


def run_restore(source: str, title: str, recipe: str | Recipe = "default") -> dict[str, Any]:
    """Run the flow on the task runner the settings describe (LocalCluster by default); returns its summary."""
    with shared_prefect_api():
        runner = make_task_runner(load_settings())
        return restore_title.with_options(task_runner=runner)(source=source, title=title, recipe=recipe)
