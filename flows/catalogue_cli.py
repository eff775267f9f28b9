"""`reel catalogue status` and `reel catalogue init`: wired into `flows.cli` by `add_catalogue_parser`."""

from __future__ import annotations

import argparse
import csv
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

# What `init` writes: three small synthetic films (fast to restore) and a titles file naming them.
EXAMPLE_TITLES: list[dict[str, Any]] = [
    {"id": "harbour-lights-1923", "name": "Harbour Lights", "year": 1923, "seed": 3, "recipe": "default",
     "priority": 10, "notes": "nitrate print, heavy dust"},
    {"id": "night-train-1931", "name": "Night Train", "year": 1931, "seed": 5, "recipe": "defects",
     "priority": 5, "notes": "keep the original colour: defects only"},
    {"id": "the-lighthouse-1927", "name": "The Lighthouse", "year": 1927, "seed": 7, "recipe": "colour",
     "priority": 0, "notes": ""},
]
EXAMPLE_FILM = {"width": 160, "height": 120, "shots": 3, "frames_per_shot": 12}
TITLE_COLUMNS = ["id", "name", "year", "source", "recipe", "priority", "notes"]


def add_catalogue_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `catalogue {status,init}` to the `reel` subcommands; returns the `catalogue` parser."""
    cat = sub.add_parser("catalogue", help="the titles catalogue: where each title stands; an example one")
    csub = cat.add_subparsers(dest="catalogue_command", required=True)

    p = csub.add_parser("status", help="state of every title: published, stale, pending, running, "
                                       "needs-review, failed or error, with the reason")
    p.add_argument("--catalogue", metavar="FILE", help="titles file, .csv or .parquet (default REEL_CATALOGUE)")
    p.add_argument("--json", action="store_true", help="print a JSON list of records")
    p.set_defaults(func=cmd_catalogue_status)

    p = csub.add_parser("init", help="write an example catalogue: three small synthetic films and titles.csv")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_catalogue_init)
    return cat


def cmd_catalogue_status(args: argparse.Namespace) -> int:
    from flows.catalogue import STATUS_COLUMNS, gather_facts, status_rows
    from infra.prefect_api import shared_prefect_api
    from infra.settings import load_settings

    settings = load_settings()
    if args.catalogue:
        settings = settings.model_copy(update={"catalogue": args.catalogue})
    with shared_prefect_api():  # the Prefect API holds the runs (an ephemeral one when none is configured)
        rows = status_rows(gather_facts(settings))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, [c for c in STATUS_COLUMNS if c not in ("name", "year", "recipe", "run_start")]))
    return 0


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain fixed-width text table ('-' for empty cells)."""
    cells = [[("-" if r[c] is None or r[c] == "" else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    if not rows:
        lines.append("(the catalogue has no titles)")
    return "\n".join(lines)


def cmd_catalogue_init(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    titles = write_example_catalogue(out)
    print(f"catalogue: {titles}")
    print(f"try: reel catalogue status --catalogue {titles}")
    return 0


def write_example_catalogue(out: Path) -> Path:
    """Render the example films into `out/films/` and write `out/titles.csv` naming them by relative
    path; returns the titles file. Refuses to overwrite an existing titles.csv."""
    from infra.media import write_film
    from models.synth import SynthConfig, render_film

    titles = out / "titles.csv"
    if titles.exists():
        raise FileExistsError(f"{titles} exists: choose another folder or remove it")
    (out / "films").mkdir(parents=True, exist_ok=True)
    rows = []
    for t in EXAMPLE_TITLES:
        cfg = SynthConfig(width=EXAMPLE_FILM["width"], height=EXAMPLE_FILM["height"], shots=EXAMPLE_FILM["shots"],
                          frames_per_shot=EXAMPLE_FILM["frames_per_shot"], seed=t["seed"])
        film = render_film(cfg)
        source = f"films/{t['id']}.mkv"
        write_film(out / source, film.degraded, Fraction(cfg.fps), (film.audio, film.audio_sample_rate))
        rows.append({**{k: t[k] for k in TITLE_COLUMNS if k in t}, "source": source})
    with open(titles, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=TITLE_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return titles
