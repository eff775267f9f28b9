"""Resolve a recipe argument: a built-in name, or a YAML/TOML file."""

from __future__ import annotations

from pathlib import Path

from catalog.recipe import BUILTIN_RECIPES, Recipe, parse_recipe
from infra.settings import Settings


def resolve_recipe(value: str | Recipe) -> Recipe:
    if isinstance(value, Recipe):
        return value
    if value in BUILTIN_RECIPES:
        return BUILTIN_RECIPES[value]
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml", ".toml"):
        if not path.is_file():
            raise ValueError(f"recipe file {value!r} not found")
        limit = Settings().recipe_max_bytes
        size = path.stat().st_size
        if size > limit:  # checked before reading: parsing tens of MB of YAML takes minutes
            raise ValueError(f"recipe file {value!r} is {size} bytes, more than the limit of {limit} "
                             "(REEL_RECIPE_MAX_BYTES)")
        rec = parse_recipe(path.read_text(), "toml" if path.suffix.lower() == ".toml" else "yaml", limit)
        return anchor_paths(rec, path.resolve().parent)
    raise ValueError(f"unknown recipe {value!r}: use one of {', '.join(BUILTIN_RECIPES)} or a .yaml/.toml file")


def anchor_paths(rec: Recipe, base: Path) -> Recipe:
    """Make the recipe's file references (grade folders, .cube files) absolute, relative ones
    taken from the recipe file's folder, so a run does not depend on where it was started."""

    def fix(p: str) -> str:
        return str(p if Path(p).is_absolute() else (base / p).resolve())

    data = rec.model_dump(mode="json")
    for st in data["stages"]:
        if st["name"] == "grade" and st["params"].get("cube"):
            st["params"]["cube"] = fix(st["params"]["cube"])
    if data.get("grade"):
        for ref in data["grade"]["references"]:
            if ref.get("originals") is not None:  # folders (else the pairs come from a shot's manual work)
                ref["originals"], ref["graded"] = fix(ref["originals"]), fix(ref["graded"])
    return Recipe.model_validate(data)
