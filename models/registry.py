"""The stages Reel knows, by name. An explicit table: no import-time registration."""

from __future__ import annotations

from typing import Any

from models.colour import Colour
from models.deflicker import Deflicker
from models.denoise import Denoise
from models.dust import Dust
from models.grade import Grade
from models.interpolate import Interpolate
from models.scratch import Scratch
from models.stabilise import Stabilise
from models.stage import Stage
from models.upscale import Upscale

# in the order restorers apply them; interpolate comes after the defect stages (its flow and its
# in-betweens need frames free of dust, scratches and flicker, which it would otherwise smear into
# new frames) and before colour/grade (per-pixel, so they commute with it) and upscale (cheaper to
# interpolate at the source size)
STAGES: dict[str, type[Stage]] = {
    cls.name: cls for cls in (Stabilise, Deflicker, Dust, Scratch, Denoise, Interpolate, Colour, Grade, Upscale)
}


def make_stage(name: str, params: dict[str, Any] | None = None) -> Stage:
    """Build a stage by name with validated parameters; unknown names/params are ValueErrors."""
    try:
        cls = STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(sorted(STAGES))}") from None
    try:
        return cls(**(params or {}))
    except Exception as e:  # pydantic ValidationError -> one line
        raise ValueError(f"bad parameters for stage {name!r}: {_one_line(e)}") from None


def _one_line(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in errors())
    return str(e).splitlines()[0]


def describe_stages() -> list[dict[str, Any]]:
    """Name, version, description, context frames and parameters (with defaults) of every stage."""
    rows = []
    for name, cls in STAGES.items():
        params = [
            {"name": k, "default": f.default, "description": f.description or ""}
            for k, f in cls.Params.model_fields.items()
        ]
        rows.append({"name": name, "version": cls.version, "description": cls.description,
                     "context_frames": cls().context_frames, "params": params})
    return rows
