"""The restore-title flow: ingest -> grades -> shots -> shot analysis -> restore per piece -> QC ->
review -> publish.

Reruns and reviews use the same parameters: `redo_shots` are restored again (every other shot reuses
its stored pieces), `overrides` change stage parameters for them, `from_step` recomputes a pipeline
step and what follows. With `review_gate` on, a run whose QC asks for it pauses for a person's decision.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pandas as pd
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner

from catalog.bindings import ShotBindings
from catalog.grades import TitleGrade
from catalog.handoff import HandoffRecord, ManualRecord, folder_name
from catalog.harm import harm_findings, offending_stages
from catalog.ids import validate_title_id
from catalog.recipe import Recipe, format_overrides
from catalog.records import IngestRecord, SegmentRecord
from catalog.review import RerunPlan, merge_overrides, overrides_doc
from catalog.shots import plan_pieces
from flows.recipes import resolve_recipe
from infra import progress
from infra.cluster import ClusterTaskRunner, RunsCluster, start_workers
from infra.pipeline.colour import shot_bindings
from infra.pipeline.qc import piece_qc_valid
from infra.prefect_api import shared_prefect_api
from infra.progress import describe
from infra.runtime import check_worker_store, process_runtime
from infra.settings import Settings
from infra.sources import check_source
from tasks.artist import hand_off, manual_pieces, manual_work, retire_manual_work
from tasks.colour import analyse_shot, learn_grades
from tasks.ingest import ingest
from tasks.publish import find_published, publish
from tasks.qc import qc_report, qc_shot
from tasks.restore import restore_piece
from tasks.review import ask_for_review
from tasks.shots import chunk_scores, load_shots, save_shots

AUTO_REVIEW = {"decision": "auto-approved", "by": "qc-thresholds"}

Overrides = dict[int, dict[str, dict[str, Any]]]  # {shot: {stage: {param: value}}}
Restored = dict[int, tuple[list[SegmentRecord], dict[str, Any]]]  # {shot: (its segments, its QC record)}


# Served runs (`reel serve`) load this module in a fresh process: the decorator's runner makes the
# settings' cluster when the flow starts it (there: the serve process's, whose address it exports), in
# the background while the flow ingests. `run_restore` gives the run a cluster it started alongside the
# Prefect API.
@flow(name="restore-title", flow_run_name="restore-{title}", log_prints=True,
      task_runner=cast(TaskRunner[Any], ClusterTaskRunner()))  # a DaskTaskRunner (prefect's types: invariant)
def restore_title(source: str, title: str, recipe: str | Recipe = "default", review_gate: bool = False,
                  redo_shots: list[int] | None = None, overrides: list[str] | None = None,
                  from_step: str | None = None) -> dict[str, Any]:
    """Restore one title and publish it.

    source: the film (path or URI); title: its id; recipe: a builtin name or a recipe file.
    review_gate: pause for a person when QC fails (or always, as the recipe says).
    redo_shots: shots to restore again; overrides: stage.param=value for them (for every shot when
    none is named); from_step: ingest | shots | restore | qc, recomputed ignoring stored results.

    Returns {"manifest", "shots", "pieces_restored", "pieces_reused", "review"}: a rerun with
    nothing changed restores nothing.
    """
    rt = process_runtime()  # this process's settings and store, read once (the tasks run here use them too)
    settings = rt.settings
    title, rec, plan = check_request(source, title, recipe, redo_shots, overrides, from_step, settings)
    run = FlowRunContext.get()
    start_workers(run.task_runner if run else None, settings)  # they start while the source is ingested
    if settings.dask_address:  # an external cluster's workers have their own settings
        check_worker_store(rt.store.url)

    record = ingest(source, title, force=plan.forces("ingest"), accept_truncated=rec.source.accept_truncated,
                    stream=rec.source.stream, options=rec.source)
    grades = learn_grades(rec, record)
    artist = ArtistWork(manual_work(record), plan.redo_shots)  # shots taken back from an artist
    if plan.is_plain and (done := find_published(record, rec, AUTO_REVIEW, grades, artist.doc())) is not None:
        print(f"{title}: already published as {done['version']}")
        return {"manifest": done, "shots": len(done["shots"]), "pieces_restored": 0,
                "pieces_reused": sum(len(s["segments"]) for s in done["shots"]), "review": done["review"]}

    shots = detect_shots(record, force=plan.forces("shots"))
    shot_ids = [int(s) for s in shots["shot"]]
    plan.check(rec, shot_ids)
    print(f"{title}: {record.frames} frames, {len(shots)} shots")
    bound = bind_shots(record, rec, shots, grades)
    artist.fit(shots)
    machine = [s for s in shot_ids if s not in artist.kept]  # an artist's work is never restored over by machine

    per_shot = plan.shot_overrides(machine)
    forced = (set(shot_ids) if plan.forces("restore") else set(plan.redo_shots)) - set(artist.kept)
    results = restore_shots(record, rec, shots, bound, per_shot, machine, forced, settings,
                            force_qc=plan.forces("qc"))
    results = guard_harm(record, rec, shots, bound, per_shot, results, settings)
    results.update(take_in(record, rec, shots, artist.kept, force_qc=plan.forces("qc")))
    report = qc_report(record, rec, [qc for _, qc in results.values()])

    rounds: list[dict[str, Any]] = []
    came_back = False  # an artist's work came back during this run: a person looks at it before it is published
    while review_gate and (needs_review(rec, report) or came_back):
        came_back = False
        decision, asked, at = ask_for_review(title, rec, report, len(rounds) + 1, shot_ids, settings.review_timeout_s,
                                             settings.review_poll_s, rounds, artist.describe())
        rounds.append({"round": len(rounds) + 1, "at": at, "by": decision.reviewer, "decision": decision.decision,
                       "redo_shots": decision.redo_shots, "overrides": decision.overrides, "note": decision.note,
                       "shots_below_threshold": report["summary"]["review"]})
        if decision.decision == "approve":
            break
        if decision.decision == "send to artist":
            rounds[-1]["artist_shots"] = decision.artist_shots
            handoff = send_to_artist(record, rec, shots, results, decision.artist_shots, settings)
            rounds[-1]["handoff"] = {"id": handoff.handoff, "folder": handoff.folder, "while_away": rec.artist.while_away}
            if rec.artist.while_away == "publish":  # the other shots' work now; the artist's in a later version
                break
            back = wait_for_artist(record, handoff, settings)
            artist.take(back)
            results.update(take_in(record, rec, shots, back))
            report = qc_report(record, rec, [qc for _, qc in results.values()])
            came_back = True
            continue
        artist.machine_again(asked.redo_shots)
        per_shot = merge_overrides(per_shot, asked.shot_overrides(shot_ids))
        results.update(guard_harm(record, rec, shots, bound, per_shot,
                                  restore_shots(record, rec, shots, bound, per_shot, asked.redo_shots,
                                                set(asked.redo_shots), settings), settings))
        report = qc_report(record, rec, [qc for _, qc in results.values()])

    review = review_record(rounds, report, per_shot, plan)
    segments = [seg for segs, _ in results.values() for seg in segs]
    manifest = publish(record, rec, shots, segments, report, review, grades, artist.doc())
    if artist.replaced:  # published: from now on the machine's restoration of these shots is the current one
        retire_manual_work(record, sorted(artist.replaced), {"at": manifest["created_utc"], "version": manifest["version"],
                                                             "run": _run_id()})
    reused = sum(s.reused for s in segments)
    print(f"{title}: published {manifest['version']}; {len(segments) - reused} pieces restored, {reused} reused; "
          f"review: {review['decision']} by {review['by']}")
    return {"manifest": manifest, "shots": len(shots), "pieces_restored": len(segments) - reused,
            "pieces_reused": reused, "review": manifest["review"]}


class ArtistWork:
    """The shots of this run that are an artist's work (taken back), and those whose manual work the machine
    replaces (named for a redo by the rerun or a review)."""

    def __init__(self, manual: dict[int, ManualRecord], redo_shots: list[int]) -> None:
        self.kept = {s: m for s, m in manual.items() if s not in redo_shots}
        self.replaced = {s: m for s, m in manual.items() if s in redo_shots}
        self.sent: dict[int, str] = {}  # shots sent to an artist in this run -> handoff folder

    def fit(self, shots: pd.DataFrame) -> None:
        """Keep only manual work whose frames are the shot's frames in this shot table."""
        rows = {int(r.shot): (int(r.start_frame), int(r.end_frame)) for r in shots.itertuples(index=False)}
        for shot, m in list(self.kept.items()):
            if rows.get(shot) != (m.start_frame, m.end_frame):
                print(f"{m.title}: the manual work of shot {shot} (frames {m.start_frame}-{m.end_frame - 1}) does not "
                      "match this shot table; the shot is restored by machine")
                del self.kept[shot]

    def take(self, back: dict[int, ManualRecord]) -> None:
        for shot, m in back.items():
            self.kept[shot] = m
            self.replaced.pop(shot, None)

    def machine_again(self, shots: list[int]) -> None:
        for shot in shots:
            if shot in self.kept:
                self.replaced[shot] = self.kept.pop(shot)

    def doc(self) -> dict[str, Any]:
        """What publish and the version id take: {"used": {shot: doc}, "replaced": {shot: doc}}."""
        return {"used": {s: m.manifest_doc() for s, m in sorted(self.kept.items())},
                "replaced": {s: m.manifest_doc() for s, m in sorted(self.replaced.items())}}

    def describe(self) -> list[str]:
        """Lines for the review form: the shots that are an artist's work."""
        return [f"shot {s} is {m.by}'s work (taken back {m.at}{': ' + m.note if m.note else ''})"
                for s, m in sorted(self.kept.items())]


def take_in(record: IngestRecord, rec: Recipe, shots: pd.DataFrame, manual: dict[int, ManualRecord],
            force_qc: bool = False) -> dict[int, tuple[list[Any], dict[str, Any]]]:
    """The artist's shots as results: their stored pieces (with every master's parts) and QC measured like
    any other shot's."""
    out: dict[int, tuple[list[Any], dict[str, Any]]] = {}
    for shot, m in sorted(manual.items()):
        segs = manual_pieces(record, m, rec.masters)
        out[shot] = (segs, qc_shot(record, rec, shot, m.start_frame, m.end_frame, segs, force=force_qc))
    return out


def send_to_artist(record: IngestRecord, rec: Recipe, shots: pd.DataFrame,
                   results: dict[int, tuple[list[Any], dict[str, Any]]], which: list[int], settings: Settings
                   ) -> HandoffRecord:
    """Hand `which` to an artist from this run's restored pieces (into REEL_HANDOFF_DIR/<title>/<run>/) and say
    where, in the log and as a Prefect markdown artifact."""
    segments = [seg for segs, _ in results.values() for seg in segs]
    rows = [{"shot": int(r.shot), "start_frame": int(r.start_frame), "end_frame": int(r.end_frame)}
            for r in shots.itertuples(index=False)]
    recipe_doc = {"name": rec.name, "chain_hash": rec.chain_hash(), "stages": rec.chain(), "masters": rec.masters}
    run = _run_id()
    out = Path(settings.handoff_dir).resolve() / record.title / (run or time.strftime("%Y%m%dT%H%M%S"))
    handoff = hand_off(record, recipe_doc, rows, segments, which, str(out), rec.artist.model_dump(), run,
                       rec.source.start_timecode)
    lines = [f"# {record.title}: shots {', '.join(map(str, which))} with an artist", "",
             f"Handoff `{handoff.handoff}`: {handoff.format['bits']}-bit {handoff.format['kind'].upper()}, "
             f"{handoff.handles} handles, in `{out}`.", "",
             "When the artist's frames are back (in each shot folder's `restored/`), take each shot back:", ""]
    lines += [f"    reel takeback {record.title} --shot {s} {out / folder_name(record.title, s)} --by NAME" for s in which]
    lines += ["", "This run waits for them, then asks for a review." if rec.artist.while_away == "wait" else
              "This run publishes the other shots' work now; the next restore of the title publishes the artist's."]
    create_markdown_artifact(key=f"artist-{record.title}", markdown="\n".join(lines),
                             description=f"shots with an artist: {which}")
    print(f"{record.title}: shots {which} handed to an artist in {out} (handoff {handoff.handoff})")
    return handoff


class ArtistTimeout(RuntimeError):
    """The shots sent to an artist did not come back in time: the run fails, nothing is published."""


def wait_for_artist(record: IngestRecord, handoff: HandoffRecord, settings: Settings) -> dict[int, ManualRecord]:
    """Wait (polling the store every REEL_REVIEW_POLL_S) until every shot of the handoff is taken back; at most
    REEL_REVIEW_TIMEOUT_S. Returns {shot: its manual work}."""
    deadline = time.monotonic() + settings.review_timeout_s
    while True:
        current = manual_work.fn(record)  # a plain call: one check every few seconds needs no task run each
        back = {s: m for s, m in current.items() if s in handoff.shots and m.handoff == handoff.handoff}
        if len(back) == len(handoff.shots):
            print(f"{record.title}: shots {handoff.shots} are back from the artist")
            return back
        if time.monotonic() > deadline:
            raise ArtistTimeout(f"{record.title}: shots {handoff.shots} were not taken back within "
                                f"{settings.review_timeout_s} s; nothing was published. The handoff stays open: "
                                "take them back, then restore the title again.")
        time.sleep(settings.review_poll_s)


def _run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None


def detect_shots(record: IngestRecord, force: bool = False) -> pd.DataFrame:
    """The shot table: stored, or detected now from per-chunk scores computed in parallel."""
    shots = None if force else load_shots(record)
    if shots is None:
        scores = [chunk_scores.submit(record, i) for i in range(len(record.chunks))]
        shots = save_shots(record, [s.result() for s in scores])
    return shots


def bind_shots(record: IngestRecord, rec: Recipe, shots: pd.DataFrame,
               grades: list[TitleGrade]) -> dict[int, ShotBindings]:
    """What each stage is bound with per shot: the stages' per-shot preparation (`Stage.prepare`) over
    the shots' statistics (analysed in parallel) and the grade the title gives each shot."""
    rows = [(int(r.shot), int(r.start_frame), int(r.end_frame)) for r in shots.itertuples(index=False)]
    analysing = {shot: analyse_shot.submit(record, rec, shot, start, end)
                 for shot, start, end in rows} if any(s.shot_analysis for s in rec.build()) else {}
    return shot_bindings(rec, shots, {shot: a.result() for shot, a in analysing.items()}, grades)


def restore_shots(record: IngestRecord, rec: Recipe, shots: pd.DataFrame, bound: dict[int, ShotBindings],
                  per_shot: Overrides, which: list[int], forced: set[int], settings: Settings,
                  force_qc: bool = False, dropped: dict[int, list[str]] | None = None) -> Restored:
    """Restore the pieces of the shots in `which` (those in `forced` even if stored) and QC each shot as
    soon as its pieces are back; `dropped`: stages left out per shot (the harm guard's fallback).
    Returns {shot: (its segments, its QC record)}."""
    bounds: dict[int, tuple[int, int]] = {}
    of_shot: dict[int, list[Any]] = {}
    frames_of: dict[int, int] = {}  # id(piece future) -> the frames it restores
    for row in shots[shots["shot"].isin(which)].itertuples(index=False):
        shot = int(row.shot)
        bounds[shot] = (int(row.start_frame), int(row.end_frame))
        drop = set((dropped or {}).get(shot, []))
        shot_rec = rec.without(sorted(drop)).with_overrides(
            {k: v for k, v in per_shot.get(shot, {}).items() if k not in drop})
        shot_bound = bound[shot].without(drop)
        one = shots[shots["shot"] == shot]
        pieces = plan_pieces(one, settings.piece_frames, shot_rec.context_frames())
        of_shot[shot] = [restore_piece.submit(record, p, shot_rec, shot_bound, force=shot in forced,
                                              shot_frames=bounds[shot]) for p in pieces]
        frames_of.update({id(f): p.end - p.start for f, p in zip(of_shot[shot], pieces, strict=True)})
    checks: dict[int, Any] = {}
    failed: list[BaseException] = []
    for shot, futures in pieces_by_shot(record.title, of_shot, frames_of):
        try:
            segs = [f.result() for f in futures]
        except Exception as exc:  # the other shots still finish (a rerun reuses them); raised below
            failed.append(exc)
            continue
        start, end = bounds[shot]
        lut = bound[shot].lut
        if not force_qc and all(piece_qc_valid(seg, start, end) for seg in segs):
            # the pieces measured their QC: joining it is light, so it runs here and the workers go on
            checks[shot] = qc_shot(record, rec, shot, start, end, segs, force=force_qc, grade_lut=lut,
                                   wait_for=futures)
        else:  # measured from storage (older pieces, from_step=qc): a worker's job
            checks[shot] = qc_shot.submit(record, rec, shot, start, end, segs, force=force_qc, grade_lut=lut,
                                          wait_for=futures, return_state=False)
    results = {shot: ([f.result() for f in of_shot[shot]], qc if isinstance(qc, dict) else qc.result())
               for shot, qc in checks.items()}
    if failed:
        raise failed[0]
    return results


def guard_harm(record: IngestRecord, rec: Recipe, shots: pd.DataFrame, bound: dict[int, ShotBindings],
               per_shot: Overrides, results: Restored, settings: Settings) -> Restored:
    """Never publish a shot silently worse than its source: a shot whose restoration moved away from
    the source more than restoration justifies (`rec.harm`) is restored again without the stage that
    did it (on_harm=fallback), or marked for review (on_harm=review, or when the fallback did not clear
    it). The shot's QC record carries what was found and done (`harm`), and the manifest keeps it."""
    if rec.on_harm == "off":
        return results
    names = [s.name for s in rec.stages]

    def findings(segs: list[Any], qc: dict[str, Any]) -> list[dict[str, Any]]:
        return harm_findings(qc, [r for seg in segs for r in seg.reports], record.width, rec.harm)

    harmed = {shot: f for shot, (segs, qc) in results.items() if (f := findings(segs, qc))}
    if not harmed:
        return results
    drop = {shot: offending_stages(f, names) for shot, f in harmed.items()} if rec.on_harm == "fallback" else {}
    drop = {shot: d for shot, d in drop.items() if d}
    again = restore_shots(record, rec, shots, bound, per_shot, sorted(drop), set(), settings, dropped=drop) \
        if drop else {}
    out = dict(results)
    for shot, found in harmed.items():
        entry: dict[str, Any] = {"policy": rec.on_harm, "findings": found, "dropped": drop.get(shot, []),
                                 "resolved": False}
        segs, qc = results[shot]
        if shot in again:
            segs, qc = again[shot]
            entry["remaining"] = findings(segs, qc)
            entry["resolved"] = not entry["remaining"]
        print(f"{record.title}: shot {shot} harmed ({'; '.join(f['reason'] for f in found)}): "
              + (f"restored again without {', '.join(entry['dropped'])}"
                 + ("" if entry["resolved"] else ", still harmed: review") if entry["dropped"] else "review"))
        out[shot] = (segs, {**qc, "harm": entry})
    return out


def needs_review(rec: Recipe, report: dict[str, Any]) -> bool:
    return rec.review == "always" or bool(report["summary"]["review"])


def review_record(rounds: list[dict[str, Any]], report: dict[str, Any], per_shot: Overrides,
                  plan: RerunPlan) -> dict[str, Any]:
    """The decision as the manifest keeps it: who, what and when (or the QC thresholds' automatic one)."""
    review: dict[str, Any] = dict(AUTO_REVIEW)
    if rounds:
        last = rounds[-1]
        review = {"decision": "approved", "by": last["by"], "at": last["at"], "note": last["note"],
                  "rounds": rounds}
    review["shots_below_threshold"] = report["summary"]["review"]
    if not plan.is_plain:
        review["rerun"] = {"redo_shots": plan.redo_shots, "overrides": format_overrides(plan.overrides),
                           "from_step": plan.from_step}
    if per_shot:
        review["overrides"] = overrides_doc(per_shot)
    harm = [{"shot": r["shot"], "dropped": r["harm"]["dropped"], "resolved": r["harm"]["resolved"],
             "reasons": [f["reason"] for f in r["harm"]["findings"]]} for r in report["shots"] if r.get("harm")]
    if harm:  # part of the version's identity: a fallback is a different restoration
        review["harm"] = harm
    return review


def pieces_by_shot(title: str, of_shot: dict[int, list[Any]],
                   frames_of: dict[int, int]) -> Iterator[tuple[int, list[Any]]]:
    """Yield (shot, its piece futures) as the last piece of each shot comes back; keep a Prefect progress
    artifact and the terminal display (`infra.progress`, where the process installed one) moving as
    pieces come back: frames restored of the total, frames per second, time left."""
    futures_all = [f for futures in of_shot.values() for f in futures]
    if not futures_all:
        return
    total = sum(frames_of[id(f)] for f in futures_all)
    waiting = {shot: len(futures) for shot, futures in of_shot.items()}
    shot_of = {id(f): shot for shot, futures in of_shot.items() for f in futures}
    artifact = cast(UUID, create_progress_artifact(0.0, key=f"{title}-restore-progress",  # sync call: an id
                                                   description=describe(title, 0, total, 0.0)))
    progress.report(title, 0, total)
    t0, done = time.monotonic(), 0
    for future in as_completed(futures_all):
        done += frames_of[id(future)]
        update_progress_artifact(artifact, 100.0 * done / total,
                                 description=describe(title, done, total, time.monotonic() - t0))
        progress.report(title, done, total)
        shot = shot_of[id(future)]
        waiting[shot] -= 1
        if not waiting[shot]:
            yield shot, of_shot[shot]


def check_request(source: str, title: str, recipe: str | Recipe, redo_shots: list[int] | None,
                  overrides: list[str] | None, from_step: str | None,
                  settings: Settings) -> tuple[str, Recipe, RerunPlan]:
    """What can be refused before any work: the title id, the sources policy (before any store I/O, so a
    refused source creates nothing), the recipe, and the rerun request (its overrides validated against
    the recipe's stages). Returns (title, recipe, plan)."""
    title = validate_title_id(title)
    check_source(source, settings)
    rec = resolve_recipe(recipe, settings.recipe_max_bytes)
    plan = RerunPlan.make(redo_shots, overrides, from_step)
    rec.with_overrides(plan.overrides)  # a bad override fails here, before any work
    return title, rec, plan


def run_restore(source: str, title: str, recipe: str | Recipe = "default", **params: Any) -> dict[str, Any]:
    """Run the flow on the cluster the settings describe (a LocalCluster by default, started while the
    Prefect API starts); returns its summary. A request refused by `check_request` fails before the
    cluster or the API starts.
    `params`: the flow's other parameters (review_gate, redo_shots, overrides, from_step)."""
    settings = process_runtime().settings
    check_request(source, title, recipe, params.get("redo_shots"), params.get("overrides"), params.get("from_step"),
                  settings)
    cluster = RunsCluster(settings)
    try:  # the API server and the cluster start side by side; the cluster closes first, while its workers' API is up
        with shared_prefect_api(on_launch=cluster.start), cluster:
            runner = cast(TaskRunner[Any], cluster.task_runner())
            return restore_title.with_options(task_runner=runner)(source=source, title=title, recipe=recipe,
                                                                  **params)
    finally:
        cluster.close()  # when the API did not start
