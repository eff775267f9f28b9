"""`reel rerun TITLE`: what to rerun a title from, and how (here, or as a run of the served deployment).

The source and recipe come from the catalogue entry of the title; a title that is not in the
catalogue is rerun from its newest published version (its stored original and its recipe).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from catalog import layout
from catalog.ids import validate_title_id
from catalog.recipe import Recipe
from catalog.review import RerunPlan
from infra.catalogue_io import read_catalogue
from infra.settings import Settings
from infra.storage import Store

RESTORE_DEPLOYMENT = "restore-title/reel"


def rerun_target(title: str, settings: Settings, store: Store) -> tuple[str, str | Recipe, str]:
    """(source, recipe, where it came from) for a title: its catalogue entry, else its newest manifest. The
    source is "" for a title restored from an image sequence that the catalogue does not list: give its
    folder (`--source`)."""
    title = validate_title_id(title)
    if Path(settings.catalogue).is_file():
        for t in read_catalogue(settings.catalogue, settings.catalogue_max_bytes, settings.catalogue_max_rows):
            if t.id == title:
                return t.source, t.recipe, f"catalogue {settings.catalogue}"
    manifests = [k for k in store.list(layout.title_published_prefix(title)) if k.endswith(f"/{layout.MANIFEST}")]
    if not manifests:
        raise ValueError(f"{title}: not in the catalogue ({settings.catalogue}) and never published: "
                         "give --source and --recipe")
    newest = max((json.loads(store.get_bytes(k)) for k in manifests), key=lambda m: m["created_utc"])
    recipe = Recipe.model_validate({k: v for k, v in newest["recipe"].items() if k not in ("chain_hash", "grades")})
    if newest["source"].get("sequence"):  # the store keeps a scan's frames, not the folder they came from
        return "", recipe, f"published {newest['version']}"
    return stored_original(settings, newest["source"]["key"]), recipe, f"published {newest['version']}"


def stored_original(settings: Settings, key: str) -> str:
    """A source string for the stored original: its file in a local store, its s3:// URL otherwise."""
    if settings.store.startswith("s3://"):
        return f"{settings.store.rstrip('/')}/{key}"  # s3://bucket[/prefix]/key
    root = Path(settings.store.removeprefix("file://")).resolve()
    return str(root / key)


def rerun_parameters(title: str, source: str, recipe: str | Recipe, shots: list[int], sets: list[str],
                     from_step: str | None) -> dict[str, Any]:
    """The restore-title parameters of a rerun (validated: a bad --set or --from fails here)."""
    RerunPlan.make(shots, sets, from_step)
    return {"source": source, "title": title, "recipe": recipe if isinstance(recipe, str) else recipe.model_dump(),
            "redo_shots": shots, "overrides": sets, "from_step": from_step}


def start_deployment_run(params: dict[str, Any], deployment: str = RESTORE_DEPLOYMENT) -> str:
    """Start the rerun on `reel serve` (it shows in the UI like any run); returns the flow run id."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = run_deployment(name=deployment, parameters=params, timeout=0, as_subflow=False, tags=["rerun"])
    return str(cast(FlowRun, run).id)  # called synchronously: the run, not a coroutine


def parse_shots(text: str | None) -> list[int]:
    """'3,7' -> [3, 7]."""
    if not text:
        return []
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--shots takes shot numbers separated by commas, got {text[:40]!r}") from None
