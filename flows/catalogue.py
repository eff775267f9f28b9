"""The catalogue: where every title stands, and the sweep that starts the restores that are due.

    gather_facts(settings)      catalogue file + source checksums + published manifests + Prefect runs
    catalogue_status(settings)  one row per title: state, reason, version, latest run (a DataFrame)
    catalogue_sweep()           Prefect flow "catalogue-sweep": status -> artifact -> start what is due

The states and their precedence are `catalog.status.derive_state`'s; which titles a sweep starts is
`catalog.status.pick_titles`'s. A title's restore runs are found by their flow-run name
`restore-<title>` (flow "restore-title"); the sweep names the runs it starts that way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pandas as pd
from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from catalog import layout
from catalog.handoff import HandoffRecord, ManualRecord, open_shots
from catalog.recipe import MAX_RECIPE_BYTES
from catalog.status import (
    ACTIVE_RUN_STATES,
    FAILED_RUN_STATES,
    PublishedVersion,
    RetryPolicy,
    RunFacts,
    TitleFacts,
    current_version,
    derive_state,
    latest_published,
    pick_titles,
    retry_hold,
)
from catalog.titles import Title
from flows.recipes import resolve_recipe
from infra.catalogue_io import SourceChecksums, read_catalogue
from infra.runtime import process_runtime
from infra.settings import Settings
from infra.sources import (
    SourceError,
    SourceNotFound,
    SourceRefused,
    SourceSpec,
    check_source,
    remote_identity,
)
from infra.storage import LocalStore, StorageError, Store, open_store

RESTORE_FLOW = "restore-title"
RESTORE_DEPLOYMENT = "restore-title/reel"
SWEEP_TAG = "catalogue-sweep"
STATUS_ARTIFACT_KEY = "catalogue-status"
REMOTE_SOURCE_NOTE = "remote source: checked at ingest"
STATUS_COLUMNS = ["id", "name", "year", "priority", "recipe", "state", "reason", "version", "published_utc",
                  "run_state", "run_id", "run_start"]

Starter = Callable[[Title], str]  # starts a restore of the title; returns the flow run id


def restore_run_name(title_id: str) -> str:
    return f"restore-{title_id}"


# --------------------------------------------------------------------------- status


def gather_facts(settings: Settings, store: Store | None = None) -> list[tuple[Title, TitleFacts]]:
    """Every catalogue title with what is known about it now, in catalogue order (`store`: the settings'
    store, opened here when not given)."""
    titles = read_catalogue(settings.catalogue, settings.catalogue_max_bytes, settings.catalogue_max_rows)
    store = store or open_store(settings.store_config())
    checksums = SourceChecksums(store)
    recipe_of = functools.cache(lambda recipe: recipe_facts(recipe, settings.recipe_max_bytes))  # shared by titles
    runs = latest_runs([t.id for t in titles])
    published = published_facts_all(store, [t.id for t in titles])  # one listing, not one per title
    source_of = functools.cache(lambda source: source_facts(source, settings, checksums))
    artist_keys = artist_listing(store)  # one listing of artist/ too
    out = []
    for t in titles:
        source = source_of(t.source)
        artist = artist_facts(store, artist_keys.get((t.id, source.get("source_sha256", "")), []))
        out.append((t, TitleFacts(title=t.id, **source, **recipe_of(t.recipe), **published[t.id],
                                  latest_run=runs.get(t.id), **artist)))
    return out


def artist_listing(store: Store) -> dict[tuple[str, str], list[str]]:
    """The keys under `artist/` by (title, source sha256): handoffs and takebacks (the default video stream's)."""
    found: dict[tuple[str, str], list[str]] = {}
    for k in store.list(f"{layout.ARTIST}/"):
        parts = k.split("/")
        if len(parts) >= 4:
            found.setdefault((parts[1], parts[2]), []).append(k)
    return found


def artist_facts(store: Store, keys: list[str]) -> dict[str, Any]:
    """{"with_artist": shots handed off and not taken back, "manual": {shot: digest} of current takebacks}."""
    if not keys:
        return {}
    handoffs = [HandoffRecord.model_validate_json(store.get_bytes(k)) for k in keys if "/handoffs/" in k]
    manual = [ManualRecord.model_validate_json(store.get_bytes(k)) for k in keys if layout.is_manual_key(k)]
    return {"with_artist": sorted(open_shots(handoffs, manual)),
            "manual": {str(m.shot): m.digest for m in manual if m.status == "current"}}


def catalogue_status(settings: Settings) -> pd.DataFrame:
    """One row per title (catalogue order); columns as `status_rows`."""
    return pd.DataFrame(status_rows(gather_facts(settings)), columns=STATUS_COLUMNS)


def status_rows(facts: list[tuple[Title, TitleFacts]]) -> list[dict[str, Any]]:
    """JSON-ready records: version is the current published version (else the newest one), run_* the
    latest restore run."""
    return [_status_row(t, f) for t, f in facts]


def _status_row(title: Title, facts: TitleFacts) -> dict[str, Any]:
    state, reason = derive_state(facts)
    shown = current_version(facts) or latest_published(facts)
    run = facts.latest_run
    return {"id": title.id, "name": title.name, "year": title.year, "priority": title.priority,
            "recipe": title.recipe, "state": state, "reason": reason,
            "version": shown.version if shown else None, "published_utc": shown.created_utc if shown else None,
            "run_state": run.state_type if run else None, "run_id": run.run_id if run else None,
            "run_start": run.start_time.isoformat(timespec="seconds") if run and run.start_time else None}


def source_facts(source: str, settings: Settings, checksums: SourceChecksums) -> dict[str, str]:
    """{"source_sha256"} for a readable local file, or a remote one whose validators (ETag, size, date)
    match an ingest's; {"source_error"} when missing, unreadable or refused by the sources policy;
    {"source_note"} for a remote source that cannot be checked (plus "source_unseen" when it changed)."""
    try:
        spec = check_source(source, settings)
    except SourceError as e:
        return {"source_error": str(e)}
    if spec.kind == "sequence":  # a film scan: the sha256 of its listing, from each frame's (cached) checksum
        from infra.pipeline.scans import sequence_sha256

        try:
            return {"source_sha256": sequence_sha256(source, settings, checksums.sha256)}
        except StorageError:
            raise
        except (OSError, ValueError) as e:
            return {"source_error": f"source {spec.shown}: {e}"}
    if spec.kind != "local" or spec.path is None:
        return _remote_source_facts(spec, settings, checksums)
    try:
        return {"source_sha256": checksums.sha256(spec.path)}
    except StorageError:
        raise  # the checksum cache's store: not the source's fault
    except OSError as e:
        return {"source_error": f"source {spec.shown}: cannot read it ({e.strerror or type(e).__name__})"}


def _remote_source_facts(spec: SourceSpec, settings: Settings, checksums: SourceChecksums) -> dict[str, Any]:
    """A remote source is not fetched here: its validators (S3 stat / HTTP HEAD: ETag, size, date) are
    compared with those recorded when an ingest fetched and hashed it."""
    try:
        identity = remote_identity(spec, settings)
    except (SourceNotFound, SourceRefused) as e:
        return {"source_error": str(e)}
    except SourceError as e:
        return {"source_note": f"{REMOTE_SOURCE_NOTE}; cannot check it now ({e})"}
    if identity is None:
        return {"source_note": f"{REMOTE_SOURCE_NOTE}; its server gives no ETag or date to compare"}
    sha = checksums.remote_sha256(spec.remote_id, identity)
    if sha is not None:
        return {"source_sha256": sha}
    return {"source_note": f"remote source {spec.shown} ({_shown_identity(identity)}) matches no ingest",
            "source_unseen": True}


def _shown_identity(identity: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in identity.items() if v is not None)


def recipe_facts(recipe: str, max_bytes: int = MAX_RECIPE_BYTES) -> dict[str, str]:
    """{"chain_hash"} of a valid recipe (a file of at most `max_bytes`), else {"recipe_error"}."""
    try:
        return {"chain_hash": resolve_recipe(recipe, max_bytes).chain_hash()}
    except (ValueError, OSError) as e:
        return {"recipe_error": " ".join(str(e).split()) or type(e).__name__}


def published_facts(store: Store, title_id: str) -> dict[str, Any]:
    """{"published": [PublishedVersion, ...]} from `published/<title>/<version>/manifest.json`, or
    {"published_error"} when a manifest cannot be read (an outage, StoreUnreachable, is raised)."""
    keys = [k for k in store.list(layout.title_published_prefix(title_id)) if layout.is_manifest_key(k)]
    return _published_from(store, title_id, keys)


def published_facts_all(store: Store, title_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`published_facts` of many titles from one listing of `published/` (one request, not one per title)."""
    keys: dict[str, list[str]] = {tid: [] for tid in title_ids}
    for k in store.list(f"{layout.PUBLISHED}/"):
        if layout.is_manifest_key(k) and (title := k.split("/")[1]) in keys:
            keys[title].append(k)
    return {tid: _published_from(store, tid, found) for tid, found in keys.items()}


def _published_from(store: Store, title_id: str, keys: list[str]) -> dict[str, Any]:
    try:
        return {"published": [_published_version(json.loads(store.get_bytes(k))) for k in keys]}
    except StorageError as e:
        if e.transient:
            raise
        return {"published_error": str(e)}
    except (ValueError, KeyError, TypeError) as e:
        return {"published_error": f"a manifest under {layout.title_published_prefix(title_id)} is malformed ({type(e).__name__})"}


def _published_version(manifest: dict[str, Any]) -> PublishedVersion:
    return PublishedVersion(version=manifest["version"], source_sha256=manifest["source"]["sha256"],
                            chain_hash=manifest["recipe"]["chain_hash"], created_utc=manifest["created_utc"],
                            manual={str(s["shot"]): s["manual"]["digest"] for s in manifest["shots"] if s.get("manual")})


# runs read per title: enough to count failures in a row up to the retry policy's give-up point
RUNS_READ = 16
RUN_NAMES_PER_QUERY = 200  # run names in one filter (the request stays small)
RUNS_PAGE = 200  # the Prefect API's largest page


def latest_runs(title_ids: list[str]) -> dict[str, RunFacts]:
    """The newest (by expected start) restore-title run named `restore-<title>` of each title that has one,
    with how many of the newest runs failed one after another."""
    found = {}
    title_of = {restore_run_name(tid): tid for tid in title_ids}
    names = list(title_of)
    by_title: dict[str, list[FlowRun]] = {}
    with get_client(sync_client=True) as client:
        # Many titles per request (one request per title took minutes for 10,000 titles), pages of runs
        # newest first; each title keeps its RUNS_READ newest.
        for i in range(0, len(names), RUN_NAMES_PER_QUERY):
            batch = names[i:i + RUN_NAMES_PER_QUERY]
            offset = 0
            while True:
                page = client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=[RESTORE_FLOW])),
                    flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=batch)),
                    sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=RUNS_PAGE, offset=offset)
                for run in page:
                    runs = by_title.setdefault(title_of[run.name], [])
                    if len(runs) < RUNS_READ:
                        runs.append(run)
                if len(page) < RUNS_PAGE:
                    break
                offset += len(page)
    for tid, runs in by_title.items():
        found[tid] = _run_facts(runs[0], failures_in_a_row=_failures_in_a_row(runs))
    return found


def _state_type(run: FlowRun) -> str:
    return run.state_type.value if run.state_type else "PENDING"


def _failures_in_a_row(runs: list[FlowRun]) -> int:
    n = 0
    for run in runs:  # newest first
        if _state_type(run) not in FAILED_RUN_STATES:
            break
        n += 1
    return n


def _run_facts(run: FlowRun, failures_in_a_row: int = 0) -> RunFacts:
    return RunFacts(state_type=_state_type(run), run_id=str(run.id),
                    start_time=run.start_time or run.expected_start_time, state_name=run.state_name,
                    end_time=run.end_time, failures_in_a_row=failures_in_a_row)


# --------------------------------------------------------------------------- sweep


@flow(name="catalogue-sweep", log_prints=True)
def catalogue_sweep(catalogue: str | None = None, max_concurrent: int | None = None,
                    deployment: str = RESTORE_DEPLOYMENT, dry_run: bool = False) -> dict[str, Any]:
    """Start restores of the titles that need work (pending, stale, failed), highest priority first,
    keeping at most `max_concurrent` (default REEL_SWEEP_MAX_CONCURRENT) restore-title runs active.

    Publishes the status table as the "catalogue-status" artifact. Returns
    {"started": [...], "skipped": [...], "active": n, "max_concurrent": m}.
    """
    rt = process_runtime()  # settings read and the store opened once for the sweep
    settings = rt.settings
    if catalogue is not None:
        settings = settings.model_copy(update={"catalogue": catalogue})
    starter = None if dry_run else functools.partial(start_restore, deployment=deployment)
    result = run_sweep(settings, starter, max_concurrent=max_concurrent, store=rt.store)
    create_table_artifact(result.pop("status"), key=STATUS_ARTIFACT_KEY,
                          description=f"catalogue {settings.catalogue}: state of every title")
    if not dry_run:
        for path in remove_stale_temp(settings, rt.store):
            print(f"removed {path}, left by an interrupted write")
    for s in result["started"]:
        run = "(dry run: not started)" if dry_run else f"as run {s['run_id']}"
        print(f"start {s['title']} ({s['state']}: {s['reason']}) {run}")
    for h in result["held"]:
        print(f"hold {h['title']}: {h['waiting']}")
    print(f"{len(result['started'])} {'to start' if dry_run else 'started'}, {len(result['skipped'])} waiting for a slot, "
          f"{result['active']} were active (at most {result['max_concurrent']})")
    return result


def run_sweep(settings: Settings, starter: Starter | None, *, active: int | None = None,
              max_concurrent: int | None = None, store: Store | None = None) -> dict[str, Any]:
    """The sweep without the flow around it: status, free slots, start the due titles with `starter`
    (None: start nothing, a dry run). Also returns the status rows under "status"."""
    facts = gather_facts(settings, store)
    rows = status_rows(facts)
    state_of = {r["id"]: r for r in rows}
    active = count_active_restores() if active is None else active
    limit = max_concurrent or settings.sweep_max_concurrent
    policy = RetryPolicy(base_s=settings.sweep_retry_base_s, give_up_after=settings.sweep_give_up_after)
    now = datetime.now(UTC)
    held = {t.id: why for t, f in facts if state_of[t.id]["state"] == "failed"
            and (why := retry_hold(f.latest_run, now, policy)) is not None}
    start, skip = pick_titles([(t, state_of[t.id]["state"]) for t, _ in facts], active, limit, held)
    started = [_entry(t, state_of, run_id=starter(t) if starter else None) for t in start]
    skipped = [_entry(t, state_of, waiting=f"no free slot ({active} of {limit} restore runs active)")
               for t in skip]
    held_rows = [_entry(t, state_of, waiting=held[t.id]) for t, _ in facts if t.id in held]
    return {"started": started, "skipped": skipped, "held": held_rows, "active": active,
            "max_concurrent": limit, "status": rows}


def remove_stale_temp(settings: Settings, store: Store | None = None) -> list[str]:
    """Temp files of interrupted writes in a local store, older than REEL_TEMP_MAX_AGE_S, deleted (an S3
    server drops incomplete multipart uploads by its own lifecycle rule: see docs/operations.md)."""
    store = store or open_store(settings.store_config())
    return store.remove_stale_temp(settings.temp_max_age_s) if isinstance(store, LocalStore) else []


def _entry(title: Title, state_of: dict[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    row = state_of[title.id]
    return {"title": title.id, "priority": title.priority, "state": row["state"], "reason": row["reason"], **extra}


def count_active_restores() -> int:
    """restore-title runs holding a slot: scheduled, pending, running, cancelling or paused for review."""
    with get_client(sync_client=True) as client:
        return client.count_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[RESTORE_FLOW])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType(s) for s in sorted(ACTIVE_RUN_STATES)]))))


def start_restore(title: Title, deployment: str = RESTORE_DEPLOYMENT) -> str:
    """Create a restore-title run of the title on the deployment and return at once (its id).

    Not a subflow: a restore may wait days for a review, long after this sweep has finished.
    """
    from prefect.deployments import run_deployment

    recipe: Any = title.recipe
    if title.audio:  # a film scan's separate sound travels in the recipe's source section
        from flows.recipes import resolve_recipe

        rec = resolve_recipe(title.recipe)
        recipe = rec.model_copy(update={"source": rec.source.model_copy(update={"audio": title.audio})}
                                ).model_dump(mode="json")
    run = run_deployment(name=deployment, timeout=0, as_subflow=False, tags=[SWEEP_TAG],
                         flow_run_name=restore_run_name(title.id),
                         parameters={"source": title.source, "title": title.id, "recipe": recipe})
    return str(cast(FlowRun, run).id)  # called synchronously: the run, not a coroutine


__all__ = [
    "RESTORE_DEPLOYMENT",
    "STATUS_COLUMNS",
    "catalogue_status",
    "catalogue_sweep",
    "count_active_restores",
    "gather_facts",
    "latest_runs",
    "published_facts",
    "recipe_facts",
    "restore_run_name",
    "run_sweep",
    "source_facts",
    "start_restore",
    "status_rows",
]
