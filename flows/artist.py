"""`reel handoff` and `reel takeback`: hand shots of a published version to an artist, and take their work back.

The work is `infra.pipeline.artist`; this module finds what a command means in the configured store (the
version, its source's ingest, its restored pieces) and prints what was done.
"""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any

from catalog.handoff import folder_name
from catalog.ids import validate_title_id

# infra.pipeline.artist (media, QC, torch through models) is imported by the commands that use it: the
# `reel` command starts without it


def handoff_published(title: str, shots: list[int], out_dir: Path, kind: str = "dpx", bits: int | None = None,
                      handles: int = 8, version: str | None = None) -> dict[str, Any]:
    """Hand `shots` of a published version (the newest unless `version`) to an artist; returns the record."""
    from infra.pipeline.artist import load_ingest, published_manifest, published_segments, write_handoff
    from infra.runtime import process_runtime

    title = validate_title_id(title)
    store = process_runtime().store
    manifest = published_manifest(store, title, version)
    record = load_ingest(store, title, manifest["source"]["sha256"], manifest["source"].get("video_stream"))
    recipe = manifest["recipe"]
    recipe_doc = {"name": recipe["name"], "chain_hash": recipe.get("chain_hash"), "stages": manifest["stages"],
                  "masters": recipe.get("masters", ["ffv1"])}
    rows = [{"shot": s["shot"], "start_frame": s["start_frame"], "end_frame": s["end_frame"]} for s in manifest["shots"]]
    tc = (recipe.get("source") or {}).get("start_timecode", "00:00:00:00")
    rec = write_handoff(store, record, recipe_doc, rows, published_segments(store, manifest), shots, out_dir,
                        kind=kind, bits=bits, handles=handles, version=manifest["version"], start_timecode=tc)
    return rec.model_dump()


def cmd_handoff(args: argparse.Namespace) -> int:
    from flows.rerun import parse_shots

    shots = parse_shots(args.shots)
    out = Path(args.output or "reel-handoff")
    rec = handoff_published(args.title, shots, out, kind=args.format, bits=args.bits, handles=args.handles,
                            version=args.version)
    print(f"handed off {rec['title']} {rec['version']} shot(s) {', '.join(map(str, rec['shots']))} as "
          f"{rec['format']['bits']}-bit {rec['format']['kind'].upper()} with {rec['handles']} handles "
          f"(handoff {rec['handoff']})")
    for shot in rec["shots"]:
        sc = rec["sidecars"][str(shot)]
        print(f"  shot {shot}: {out / folder_name(rec['title'], shot)}  frames {sc['first_frame']}-{sc['last_frame'] - 1} "
              f"(shot {sc['start_frame']}-{sc['end_frame'] - 1})")
    print(f"  shot list: {out}/{rec['title']}-handoff-{rec['handoff']}.otio, .edl")
    print(f"take the work back with: reel takeback {rec['title']} --shot N {out / folder_name(rec['title'], 0)[:-4]}NNNN "
          "--by NAME")
    return 0


def cmd_takeback(args: argparse.Namespace) -> int:
    from infra.pipeline.artist import take_back
    from infra.runtime import process_runtime

    rt = process_runtime()  # the settings and the store of this command, read and opened once
    settings, store = rt.settings, rt.store
    title = validate_title_id(args.title)
    by = args.by or getpass.getuser()
    m = take_back(store, title, args.shot, Path(args.dir), by, args.note or "", piece_frames=settings.piece_frames,
                  max_pixels=settings.max_source_pixels, roots=settings.source_roots)
    print(f"took back {title} shot {m.shot}: {len(m.frames)} frames ({m.format}) by {m.by} (takeback {m.takeback}); "
          f"the next `reel restore` of the title or `reel rerun {title}` publishes a version with it")
    return 0


def add_artist_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("handoff", help="hand shots of a published version to an artist: source and restored "
                                       "frames as DPX/TIFF/EXR sequences with handles, a sidecar, OTIO and EDL")
    p.add_argument("title")
    p.add_argument("--shots", required=True, help="shots to hand off, e.g. 3,7")
    p.add_argument("--format", default="dpx", choices=["dpx", "tiff", "exr"],
                   help="frame files (default dpx; exr holds linear light: R'G'B' ** 2.4)")
    p.add_argument("--bits", type=int, help="bits per sample (default 16; dpx 8/10/12/16, tiff 8/16, exr 16 half "
                                            "or 32 float)")
    p.add_argument("--handles", type=int, default=8, help="frames before and after each shot (default 8)")
    p.add_argument("--version", help="the published version (default: the newest)")
    p.add_argument("-o", "--output", help="folder for the shot folders (default ./reel-handoff)")
    p.set_defaults(func=cmd_handoff)

    p = sub.add_parser("takeback", help="take an artist's frames back as a shot's restored result (checked against "
                                        "the handoff's sidecar first)")
    p.add_argument("title")
    p.add_argument("--shot", type=int, required=True, help="the shot the folder holds")
    p.add_argument("dir", metavar="DIR", help="the shot's handoff folder, the artist's frames in restored/")
    p.add_argument("--by", help="who did the work (default: your user name); kept in the manifest")
    p.add_argument("--note", help="what was done; kept in the manifest")
    p.set_defaults(func=cmd_takeback)
