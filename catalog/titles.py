"""The titles catalogue: which films to restore, from where, with which recipe, in which order.

One row per title. Columns (lower case, in any order; no others are accepted):

| column   | required | meaning |
|----------|----------|---------|
| id       | yes      | title id (`catalog.ids.validate_title_id`): part of every storage key |
| source   | yes      | a local path (relative ones are taken from the catalogue file's folder), an image sequence (a folder or `reel1.%07d.dpx`), or s3:// / http(s):// URL |
| name     | no       | display name (default: the id) |
| year     | no       | release year, 1880..2100 |
| recipe   | no       | a built-in recipe name or a .yaml/.toml recipe file (default "default") |
| priority | no       | integer, higher is restored first (default 0) |
| notes    | no       | free text for people (a grade is part of the recipe, not a column) |
| audio    | no       | separate sound (WAV/BWF) for a film scan's picture (relative: from the catalogue's folder) |

Parsing only: reading the file is `infra.catalogue_io`'s job (this ring does no I/O).
An empty cell means "not given" (the default applies).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from catalog.ids import validate_title_id
from catalog.recipe import BUILTIN_RECIPES

COLUMNS = ("id", "name", "year", "source", "recipe", "priority", "notes", "audio")
REQUIRED_COLUMNS = ("id", "source")
RECIPE_FILE_SUFFIXES = (".yaml", ".yml", ".toml")
MAX_PROBLEMS_SHOWN = 20

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")  # controls and bidi overrides


def _plain_text(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains control characters (newline, tab, NUL, bidi override)")
    if value != value.strip():
        raise ValueError(f"{what} has leading or trailing spaces")
    return value


class Title(BaseModel):
    """One catalogue row, validated. `source` and `recipe` are as written (see `infra.catalogue_io`
    for anchoring relative paths to the catalogue's folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(description="title id: 1-64 lowercase letters, digits and inner hyphens")
    name: str = Field("", max_length=300, description="display name (default: the id)")
    year: int | None = Field(None, ge=1880, le=2100, description="release year")
    source: str = Field(min_length=1, max_length=4096, description="local path or s3:// / http(s):// URL")
    recipe: str = Field("default", min_length=1, max_length=4096,
                        description="built-in recipe name or .yaml/.toml recipe file")
    priority: int = Field(0, ge=-1_000_000, le=1_000_000, description="higher is restored first")
    notes: str | None = Field(None, max_length=2000, description="free text")
    audio: str | None = Field(None, min_length=1, max_length=4096,
                              description="separate sound (WAV/BWF) for the picture: a local path")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return validate_title_id(value)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _plain_text(value, "source")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _plain_text(value, "name")

    @field_validator("audio")
    @classmethod
    def _audio(cls, value: str | None) -> str | None:
        return None if value is None else _plain_text(value, "audio")

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, value: str) -> str:
        _plain_text(value, "recipe")
        if value not in BUILTIN_RECIPES and not value.lower().endswith(RECIPE_FILE_SUFFIXES):
            raise ValueError(f"unknown recipe {value!r}: use one of {', '.join(BUILTIN_RECIPES)} "
                             "or a .yaml/.toml file")
        return value

    @model_validator(mode="after")
    def _default_name(self) -> Title:
        if not self.name:
            object.__setattr__(self, "name", self.id)  # frozen model: set once, while validating
        return self


def parse_titles(df: pd.DataFrame, first_row: int = 1) -> list[Title]:
    """Validate every row of a catalogue table; return the titles in table order.

    Raises one ValueError (one line) listing every problem: unknown or missing columns, and per row
    (numbered from `first_row`: pass 2 for a CSV file, whose header is row 1 as in a spreadsheet)
    each invalid cell and every id used more than once.
    """
    columns = [str(c) for c in df.columns]
    problems = _column_problems(columns)
    if problems:
        raise ValueError(_summary(problems))

    titles: list[Title] = []
    rows_of: dict[Any, list[int]] = {}
    for i, record in enumerate(df.to_dict(orient="records")):
        row = first_row + i
        if not _blank(record["id"]):
            rows_of.setdefault(record["id"], []).append(row)
        try:
            titles.append(Title.model_validate({k: v for k, v in record.items() if not _blank(v)}))
        except ValidationError as e:
            problems.extend(f"row {row}: {msg}" for msg in _messages(e, record))
    problems.extend(f"rows {', '.join(map(str, rows))}: duplicate id {_shown(tid)}"
                    for tid, rows in rows_of.items() if len(rows) > 1)
    if problems:
        raise ValueError(_summary(problems))
    return titles


def _column_problems(columns: list[str]) -> list[str]:
    problems = []
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(COLUMNS)})")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        problems.append(f"repeated column(s) {', '.join(map(repr, repeated))}")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    return problems


def _blank(value: Any) -> bool:
    """An empty cell: None, NaN/NA (Parquet nulls, or numbers read with gaps) or an empty string."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value == ""


def _messages(error: ValidationError, record: dict[str, Any]) -> list[str]:
    out = []
    for e in error.errors():
        field = ".".join(str(p) for p in e["loc"]) or "row"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "required, but empty"
        elif field in record and _shown(record[field]) not in msg:
            msg = f"{msg} (got {_shown(record[field])})"
        out.append(f"{field}: {msg}")
    return out


def _shown(value: Any) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 60 else text[:60] + "..."


def _summary(problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    more = len(problems) - len(shown)
    tail = f"; ... and {more} more" if more else ""
    return f"invalid catalogue ({len(problems)} problem{'s' if len(problems) != 1 else ''}): " + "; ".join(shown) + tail
