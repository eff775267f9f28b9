"""A title's grades, typed: the 3D LUTs its recipe names (learned from a colourist's reference pairs, or
read from a .cube), which shots each is for, and what the version id and the manifest keep of them.
No I/O (`infra.pipeline.colour.learn_title_grades` reads the references and learns the LUTs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from models.stage import Look

if TYPE_CHECKING:
    from catalog.recipe import Recipe

UNGRADED = "ungraded"


@dataclass(frozen=True)
class TitleGrade:
    """One grade of a title.

    label: its name (the published file is grades/<label>.cube); shots: the shots it is for (None: every
    shot no other grade names); lut: (N, N, N, 3) float32; digest: `models.stage.bound_digest({"lut": lut})`,
    part of the version id (a re-graded still makes a new version); cube: the .cube text published with
    the version; report: the fit report of a learned grade, or {"cube": file name}."""

    label: str
    shots: list[int] | None
    lut: np.ndarray
    digest: str
    cube: str
    report: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> list[str]:
        """What the version id keeps of the grade: [label, digest]."""
        return [self.label, self.digest]

    def manifest_entry(self, path: str) -> dict[str, Any]:
        """The manifest's record of the grade, published at `path`."""
        return {"label": self.label, "shots": self.shots, "digest": self.digest, "path": path,
                "report": self.report}


def shot_look(recipe: Recipe, grades: list[TitleGrade], shot: int) -> Look:
    """The grade the title gives `shot`: the recipe's grade section says which (a shot none names is
    ungraded); a recipe graded by one .cube gives it to every shot."""
    label = recipe.grade.label_for_shot(shot) if recipe.grade else (grades[0].label if grades else None)
    if label is None:
        return Look(UNGRADED, None)
    by_label = {g.label: g for g in grades}
    return Look(label, by_label[label].lut)
