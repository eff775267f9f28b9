"""Resolve a recipe argument: a built-in name, or a YAML/TOML file."""

from __future__ import annotations

from pathlib import Path

from catalog.recipe import BUILTIN_RECIPES, MAX_RECIPE_BYTES, Recipe, parse_recipe


def resolve_recipe(value: str | Recipe, max_bytes: int = MAX_RECIPE_BYTES) -> Recipe:
    """A built-in recipe by name, or a YAML/TOML recipe file (at most `max_bytes`: the settings'
    recipe_max_bytes) with its file references made absolute from the file's folder."""
    if isinstance(value, Recipe):
        return value
    if value in BUILTIN_RECIPES:
        return BUILTIN_RECIPES[value]
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml", ".toml"):
        if not path.is_file():
            raise ValueError(f"recipe file {value!r} not found")
        limit = max_bytes
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

    return rec.with_paths(fix)
