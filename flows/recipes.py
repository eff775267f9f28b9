"""Resolve a recipe argument: a built-in name, or a YAML/TOML file."""

from __future__ import annotations

from pathlib import Path

from catalog.recipe import BUILTIN_RECIPES, Recipe, parse_recipe


def resolve_recipe(value: str | Recipe) -> Recipe:
    if isinstance(value, Recipe):
        return value
    if value in BUILTIN_RECIPES:
        return BUILTIN_RECIPES[value]
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml", ".toml"):
        if not path.is_file():
            raise ValueError(f"recipe file {value!r} not found")
        return parse_recipe(path.read_text(), "toml" if path.suffix.lower() == ".toml" else "yaml")
    raise ValueError(f"unknown recipe {value!r}: use one of {', '.join(BUILTIN_RECIPES)} or a .yaml/.toml file")
