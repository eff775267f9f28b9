"""The `reel` command line. Errors are one line on stderr and a non-zero exit (--debug for tracebacks)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from catalog import layout
from flows.artist import add_artist_parsers
from flows.catalogue_cli import add_catalogue_parser

EXIT_ERROR = 1
EXIT_USAGE = 2


# --- synth -------------------------------------------------------------------------------------
def companion(path: Path, suffix: str) -> Path:
    """film.mkv -> film.clean.mkv / film.truth.json."""
    return path.with_name(path.stem + suffix)


def cmd_synth(args: argparse.Namespace) -> int:
    from infra.media import write_film
    from models.synth import SynthConfig, render_film

    out = Path(args.out)
    if out.suffix.lower() != ".mkv":
        raise ValueError(f"synth writes Matroska: give an OUT.mkv path, got {str(out)!r}")
    w, h = _parse_wxh(args.size)
    cfg = SynthConfig(width=w, height=h, shots=args.shots, frames_per_shot=args.frames_per_shot,
                      fps=Fraction(args.fps), seed=args.seed)
    film = render_film(cfg)
    if getattr(args, "transitions", False):  # first: flashes keep clear of the transitions
        from models.synth_events import add_transitions

        film = add_transitions(film, seed=args.seed)
    if getattr(args, "flashes", False):
        from models.synth_events import add_flashes

        film = add_flashes(film, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    audio = (film.audio, film.audio_sample_rate)
    write_film(out, film.degraded, cfg.fps, audio)
    clean = companion(out, ".clean.mkv")
    write_film(clean, film.clean, cfg.fps, audio)
    truth = companion(out, ".truth.json")
    truth.write_text(json.dumps(film.truth))
    print(f"degraded: {out}\nclean:    {clean}\ntruth:    {truth}")
    print(f"{film.truth['frames']} frames at {film.truth['fps']} fps, cuts {film.truth['cuts']}")
    if film.truth.get("transitions"):
        print("transitions " + ", ".join(f"{t['kind']} [{t['start']}, {t['end']})" for t in film.truth["transitions"]))
    if film.truth.get("flash_frames"):
        print(f"flash frames {film.truth['flash_frames']}")
    return 0


def _parse_wxh(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WxH like 320x240, got {text!r}") from None
    return w, h


# --- shots -------------------------------------------------------------------------------------
def cmd_shots(args: argparse.Namespace) -> int:
    """Cuts and transitions of a media file (`infra.pipeline.file.shots_of_file`); --json prints
    `catalog.shots.DetectedShots.to_json()`."""
    from infra.pipeline.file import shots_of_file
    from infra.runtime import process_runtime

    found = shots_of_file(_existing(args.source), process_runtime().settings)
    if args.json:
        print(json.dumps(found.to_json()))
    else:
        print(" ".join(str(c) for c in found.cuts))
        for t in found.to_json()["transitions"]:
            print(f"{t['kind']} {t['start']} {t['end']}")
    return 0


# --- stages / stage ----------------------------------------------------------------------------
def cmd_stages(args: argparse.Namespace) -> int:
    from models.registry import describe_stages

    for row in describe_stages():
        print(f"{row['name']} (v{row['version']}, context {row['context_frames']} frames): {row['description']}")
        for p in row["params"]:
            print(f"    {p['name']} = {p['default']!r}  {p['description']}")
    return 0


_NEXT_SETTING = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*=)")


def parse_sets(items: list[str]) -> dict[str, Any]:
    """['radius=5', 'target=uhd'] or ['method=realesrgan,scale=2'] -> {'radius': 5, ...} (values parsed as
    YAML scalars; a comma starts a new setting only where `name=` follows, so `frames=[12, 40]` stays whole)."""
    out: dict[str, Any] = {}
    for item in (part for given in items for part in _NEXT_SETTING.split(given)):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def cmd_stage(args: argparse.Namespace) -> int:
    from models.registry import make_stage

    stage = make_stage(args.name, parse_sets(args.set or []))
    return run_stage_on_file(stage, _existing(args.input), Path(args.output), args.name)


def run_stage_on_file(stage: Any, src: Path, out: Path, label: str) -> int:
    """`reel stage` / `reel grade apply`: one stage over a whole file (`infra.pipeline.file.run_stages_on_file`:
    the flow's shot detector, pieces, per-shot preparation and stage loop), with a progress bar."""
    from infra.pipeline.file import run_stages_on_file
    from infra.runtime import process_runtime

    done = run_stages_on_file([stage], src, out, process_runtime().settings,
                              progress=lambda pieces, total: _progress(pieces, total, label))
    print(f"{label}: {done.frames} frames -> {out} ({done.width}x{done.height}, {done.codec}"
          + (f", {done.fps} fps" if done.factor > 1 else "") + ")")
    return 0


def cmd_grade_learn(args: argparse.Namespace) -> int:
    from infra.images import read_pairs
    from models.grade import learn_grade, write_cube

    pairs = read_pairs(args.originals, args.graded)
    lut, report = learn_grade([(o, g) for _, o, g in pairs], size=args.size)
    names = [n for n, _, _ in pairs]
    text = write_cube(lut, Path(args.output).stem, [
        f"learned by Reel from {len(pairs)} graded frame(s): {', '.join(names)}",
        f"leave-one-out mean dE2000: {report.get('cv_delta_e00', 'n/a')}; "
        f"training mean dE2000: {report['train_delta_e00']}"])
    out = Path(args.output)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, out)
    report["frames"] = names
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        cv = report.get("cv_delta_e00")
        print(f"grade: {len(pairs)} pair(s) -> {out} (LUT {args.size}^3); mean dE2000 on the pairs "
              f"{report['train_delta_e00']:.2f}" + (f", on a left-out pair {cv:.2f}" if cv is not None else ""))
    return 0


def cmd_grade_apply(args: argparse.Namespace) -> int:
    from models.grade import Grade, read_cube

    cube = _existing(args.cube)
    lut = read_cube(cube.read_text(errors="replace"))
    stage = Grade(strength=args.strength).bind(lut=lut, label=cube.stem)
    return run_stage_on_file(stage, _existing(args.input), Path(args.output), "grade")


def cmd_grade_frames(args: argparse.Namespace) -> int:
    from infra.images import write_image
    from infra.media import iter_frames
    from infra.pipeline.file import decode_depth, probe_file, video_of
    from infra.runtime import process_runtime

    src = _existing(args.input)
    try:
        wanted = sorted({int(x) for x in args.at.split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"--at takes comma-separated frame numbers, got {args.at!r}") from None
    if not wanted or wanted[0] < 0:
        raise ValueError("--at needs frame numbers >= 0")
    depth = decode_depth(video_of(probe_file(src, process_runtime().settings)))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    found = 0
    for i, frame in enumerate(iter_frames(src, depth=depth)):
        if i in wanted:
            write_image(out / f"{src.stem}-{i:06d}.png", frame.astype(np.float32) / (255.0 if depth == 8 else 65535.0))
            found += 1
        if i >= wanted[-1]:
            break
    if found != len(wanted):
        raise ValueError(f"{src.name} has fewer frames than {wanted[-1] + 1}: wrote {found} of {len(wanted)}")
    print(f"frames: {found} still(s) (16-bit PNG) -> {out}")
    return 0


def _progress(items: Any, total: int, label: str) -> Any:
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        job = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(job)


# --- restore / demo ----------------------------------------------------------------------------
def restore_to_dir(source: Path | str, title: str | None, recipe: Any, out_dir: Path,
                   accept_truncated: bool = False, stream: int | None = None, audio: str | None = None,
                   audio_offset: float | None = None, fps: str | None = None, **params: Any) -> dict[str, Any]:
    """Run restore-title and copy the published version into out_dir; return paths and the manifest.
    accept_truncated / stream / audio / audio_offset / fps: the recipe's source options, set from the
    command line."""
    from catalog.ids import slugify, validate_title_id
    from flows.recipes import resolve_recipe
    from flows.restore_title import run_restore
    from infra.runtime import process_runtime
    from infra.sequence import is_sequence_source

    remote = isinstance(source, str) and "://" in source
    scan = not remote and is_sequence_source(source)
    name = Path(str(source).split("?")[0].rstrip("/")).stem if remote else Path(source).stem
    if scan:  # SCANS/ -> scans; SCANS/reel1.%07d.dpx -> reel1
        text = str(source).rstrip("/")
        name = Path(text).name if Path(text).is_dir() else re.split(r"[._ -]*(%0?\d*d|#+)", Path(text).name)[0] \
            or Path(text).parent.name
    title = validate_title_id(title) if title is not None else slugify(name)
    rt = process_runtime()  # the settings and the store of this command, read and opened once
    rec = resolve_recipe(recipe, rt.settings.recipe_max_bytes)  # fail on a bad recipe before starting anything
    given = {"accept_truncated": accept_truncated or None, "stream": stream, "fps": fps,
             "audio": str(Path(audio).resolve()) if audio else None, "audio_offset": audio_offset}
    if any(v is not None for v in given.values()):
        options = rec.source.model_validate({**rec.source.model_dump(),
                                             **{k: v for k, v in given.items() if v is not None}})
        rec = rec.model_copy(update={"source": options})
    from infra.progress import watching

    with watching():  # frames done, fps and time left: a bar on a terminal, plain lines otherwise
        local = str(Path(source).resolve())
        if scan and not Path(source).is_dir():  # a pattern: its folder made absolute, the name kept
            local = str(Path(source).parent.resolve() / Path(source).name)
        summary = run_restore(str(source) if remote else local, title, rec, **params)
    manifest = summary["manifest"]
    store = rt.store
    prefix = layout.version_prefix(title, manifest["version"])
    out_dir.mkdir(parents=True, exist_ok=True)
    for o in manifest["outputs"]:
        dest = out_dir / o["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(f"{prefix}/{o['path']}", dest)
    store.get_file(f"{prefix}/{layout.MANIFEST}", out_dir / layout.MANIFEST)
    images = [o["path"] for o in manifest["outputs"] if o["kind"] == "qc-image"]
    return {"title": title, "version": manifest["version"], "dir": out_dir,
            "master": out_dir / manifest["outputs"][0]["path"], "manifest": out_dir / "manifest.json",
            "qc": out_dir / "qc.json", "before_after": out_dir / images[0] if images else None,
            "manifest_data": manifest, "summary": summary}


def _print_published(r: dict[str, Any]) -> None:
    s = r["summary"]
    print(f"published {r['title']} {r['version']} ({s['shots']} shots; pieces restored {s['pieces_restored']}, "
          f"reused {s['pieces_reused']})")
    for label in ("master", "manifest", "qc", "before_after"):
        print(f"  {label + ':':14s}{r[label]}")


def cmd_restore(args: argparse.Namespace) -> int:
    from catalog.ids import validate_title_id

    if args.title is not None:  # a hostile title is refused before the source is even looked at
        validate_title_id(args.title)
    from infra.sequence import is_sequence_source

    # s3:// and allow-listed http(s) sources are checked and fetched by the sources policy at ingest; an
    # image sequence (a folder or a pattern such as SCANS/reel1.%07d.dpx) is listed by it
    remote_or_scan = "://" in args.source or is_sequence_source(args.source)
    source: str | Path = args.source if remote_or_scan else _existing(args.source)
    if args.audio is not None:
        _existing(args.audio)
    out = Path(args.out) if args.out else Path("reel-out")
    _print_published(restore_to_dir(source, args.title, args.recipe, out, accept_truncated=args.accept_truncated,
                                    stream=args.stream, audio=args.audio, audio_offset=args.audio_offset,
                                    fps=args.fps))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    base = Path(args.dir)
    film = base / "film.mkv"
    t0 = time.perf_counter()
    synth_args = argparse.Namespace(out=str(film), seed=args.seed, size=args.size, shots=4, frames_per_shot=24,
                                    fps="24")
    cmd_synth(synth_args)
    r = restore_to_dir(film, "demo", args.recipe, base / "published")
    _print_published(r)
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


# --- rerun / serve ------------------------------------------------------------------------------
def cmd_rerun(args: argparse.Namespace) -> int:
    from flows.rerun import parse_shots, rerun_parameters, rerun_target, start_deployment_run
    from infra.runtime import process_runtime

    rt = process_runtime()
    shots = parse_shots(args.shots)
    source, recipe, origin = rerun_target(args.title, rt.settings, rt.store) if not (args.source and args.recipe) else (
        args.source, args.recipe, "command line")
    source, recipe = args.source or source, args.recipe or recipe
    if not source:
        raise ValueError(f"{args.title} was restored from an image sequence, which the store keeps frame by frame: "
                         "give its folder or pattern with --source")
    params = rerun_parameters(args.title, source, recipe, shots, args.set, args.from_step)
    if args.deployment:
        print(f"started flow run {start_deployment_run(params)} (source and recipe from {origin})")
        return 0
    print(f"rerun {args.title}: source and recipe from {origin}")
    r = restore_to_dir(source, args.title, recipe, Path(args.out or "reel-out"),
                       redo_shots=shots, overrides=args.set, from_step=args.from_step)
    _print_published(r)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.serve import run_serve

    run_serve(args.host, args.port, sweep_schedule=not args.no_schedule)
    return 0


# --- verify ------------------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    """Fixity audit of a published TITLE in the configured store, or of a copied version DIR.

    A target with a path separator, or starting with '.' or '~', is a folder; so is an existing
    folder holding manifest.json; anything else must be a title id (checked before any I/O).
    One line per problem plus a summary (or --json); exit 0 when clean, 1 otherwise.
    """
    from catalog.ids import validate_title_id
    from infra.fixity import verify_dir, verify_store

    target = args.target
    looks_like_path = any(sep in target for sep in ("/", os.sep)) or target.startswith((".", "~"))
    if looks_like_path or (Path(target) / "manifest.json").is_file():
        if args.version:
            raise ValueError("--version applies to a TITLE in the store, not to a folder")
        report = verify_dir(target)
    else:
        title = validate_title_id(target)
        from infra.runtime import process_runtime

        report = verify_store(process_runtime().store, title, args.version)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else EXIT_ERROR


# --- plumbing ----------------------------------------------------------------------------------
def _existing(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not p.is_file():
        raise ValueError(f"{path}: not a regular file")
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="reel", description="Restore old films shot by shot.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="render a synthetic degraded film with ground truth")
    p.add_argument("out", help="OUT.mkv (also writes OUT.clean.mkv and OUT.truth.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="320x240", help="WxH")
    p.add_argument("--shots", type=int, default=4)
    p.add_argument("--frames-per-shot", type=int, default=24)
    p.add_argument("--fps", default="24", help="frames per second, e.g. 24 or 24000/1001")
    p.add_argument("--flashes", action="store_true",
                   help="add flashes toward white (gunfire, lightning, partial): not cuts")
    p.add_argument("--transitions", action="store_true",
                   help="replace some cuts by dissolves and fade-out/fade-in pairs (truth: transitions)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("shots", help="detect cuts (0-based first frame of each new shot) and transitions")
    p.add_argument("source")
    p.add_argument("--json", action="store_true",
                   help="print {cuts, cut_seconds, transitions [{start, end (exclusive), kind}], frames, fps}")
    p.set_defaults(func=cmd_shots)

    p = sub.add_parser("stages", help="list stages with parameters and defaults")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("stage", help="run one stage over a clip, no orchestration")
    p.add_argument("name")
    p.add_argument("input")
    p.add_argument("output", help=".mkv (FFV1 16-bit) or .mov (ProRes 422 HQ)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="stage parameter (repeatable)")
    p.set_defaults(func=cmd_stage)

    g = sub.add_parser("grade", help="learn a colourist's grade from graded frames; apply a .cube LUT")
    gsub = g.add_subparsers(dest="grade_command", required=True)
    p = gsub.add_parser("learn", help="learn a 3D LUT (.cube) from original/graded frame pairs")
    p.add_argument("--originals", required=True, help="folder of original frames (PNG/TIFF)")
    p.add_argument("--graded", required=True, help="folder of the same frames graded (same file names)")
    p.add_argument("-o", "--output", required=True, help="GRADE.cube")
    p.add_argument("--size", type=int, default=33, choices=range(9, 66), metavar="N", help="LUT size (9..65)")
    p.add_argument("--json", action="store_true", help="print the fit report as JSON")
    p.set_defaults(func=cmd_grade_learn)
    p = gsub.add_parser("apply", help="apply a .cube 3D LUT to a video")
    p.add_argument("cube")
    p.add_argument("input")
    p.add_argument("output", help=".mkv (FFV1 16-bit) or .mov (ProRes 422 HQ)")
    p.add_argument("--strength", type=float, default=1.0, help="0..1 mix with the input")
    p.set_defaults(func=cmd_grade_apply)
    p = gsub.add_parser("frames", help="export frames as 16-bit PNG stills for a colourist to grade")
    p.add_argument("input")
    p.add_argument("--at", required=True, help="comma-separated frame numbers (0-based)")
    p.add_argument("-o", "--output", required=True, help="folder")
    p.set_defaults(func=cmd_grade_frames)

    p = sub.add_parser("restore", help="restore and publish a title through the restore-title flow")
    p.add_argument("source")
    p.add_argument("--title", help="title id (default: from the file name)")
    p.add_argument("--recipe", default="default", help="identity, defects, default, uhd, or a .yaml/.toml file")
    p.add_argument("--out", help="copy the published version here (default ./reel-out)")
    p.add_argument("--accept-truncated", action="store_true",
                   help="restore a source that stops short of what its container declares (refused by default); "
                        "the manifest records the frames and sound missing")
    p.add_argument("--stream", type=int, metavar="N",
                   help="container index of the video stream to restore (default: the first video stream)")
    p.add_argument("--audio", metavar="WAV", help="separate sound (WAV/BWF) for the picture, e.g. a film scan's; "
                                                  "carried bit-identically into the masters")
    p.add_argument("--audio-offset", type=float, metavar="SECONDS",
                   help="seconds the sound starts after the first frame (negative: before); default: from the "
                        "BWF time reference against the picture's start timecode, else 0")
    p.add_argument("--fps", help="frame rate of an image sequence (16, 18, 24, 24000/1001): overrides its headers")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("demo", help="synthesise a degraded film and restore it end to end")
    p.add_argument("--dir", default="reel-demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="320x240")
    p.add_argument("--recipe", default="default")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("rerun", help="restore a title again: named shots, changed stage parameters, or from a step")
    p.add_argument("title")
    p.add_argument("--shots", help="shots to restore again, e.g. 3,7 (the others reuse their pieces)")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.PARAM=VALUE",
                   help="stage parameter for those shots (every shot when --shots is not given); repeatable")
    p.add_argument("--from", dest="from_step", choices=["ingest", "shots", "restore", "qc"],
                   help="recompute this step and the later ones, ignoring stored results")
    p.add_argument("--source", help="source (default: the catalogue entry, else the stored original)")
    p.add_argument("--recipe", help="recipe (default: the catalogue entry, else the published one)")
    p.add_argument("--out", help="copy the published version here (default ./reel-out)")
    p.add_argument("--deployment", action="store_true",
                   help="start it as a run of the served restore-title/reel deployment (needs `reel serve` "
                        "and PREFECT_API_URL) instead of here")
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("serve", help="serve the restore-title and catalogue-sweep deployments for the Prefect UI")
    p.add_argument("--host", default="127.0.0.1", help="address of the QC picture page (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8470, help="port of the QC picture page (0: any free port)")
    p.add_argument("--no-schedule", action="store_true", help="serve the sweep without its cron schedule")
    p.set_defaults(func=cmd_serve)

    add_catalogue_parser(sub)
    add_artist_parsers(sub)

    p = sub.add_parser("verify", help="fixity audit: re-hash a published title (or a copied version folder) "
                                      "against its manifest")
    p.add_argument("target", metavar="TITLE|DIR",
                   help="a title id (every published version in the store) or a folder with manifest.json")
    p.add_argument("--version", help="only this version of TITLE (e.g. v-0123456789ab)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_verify)
    return ap


def entry() -> int:
    """The `reel` command (a process of its own): `main`, and after a failure nothing more on stderr."""
    return main(quiet_exit=True)


def main(argv: list[str] | None = None, quiet_exit: bool = False) -> int:
    """Run a command; errors are one line on stderr. `quiet_exit` (the command's own process): after a
    failure stderr goes to /dev/null, so shutdown noise cannot follow the line."""
    args = build_parser().parse_args(argv)
    if not args.debug:  # Prefect's console: one line per record, no tracebacks (workers inherit this)
        from infra.logs import PREFECT_LOGGING_YML

        os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(PREFECT_LOGGING_YML))
    # Dask's per-worker INFO lines drown the flow's own progress; warnings still show.
    os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "warning")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    levels = _logger_levels()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("reel: interrupted", file=sys.stderr)
        _quiet_shutdown(args.debug, before=not quiet_exit)
        return 130
    except Exception as e:  # one clear line, unless --debug
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _quiet_shutdown(args.debug, before=True)
        print(f"reel: error: {msg}", file=sys.stderr)
        _quiet_shutdown(args.debug, before=not quiet_exit)
        return EXIT_ERROR
    finally:
        if not quiet_exit:  # called in-process (tests, scripts): the caller's logging is left as it was
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


SHUTDOWN_LOGGERS = ("distributed", "tornado", "asyncio", "prefect", "httpx", "uvicorn", "concurrent")


def _logger_levels() -> dict[str, int]:
    return {name: logging.getLogger(name).level for name in SHUTDOWN_LOGGERS}


def _quiet_shutdown(debug: bool, before: bool = False) -> None:
    """After a failed command, nothing but Reel's line reaches stderr (unless --debug): the loggers of
    Dask, Prefect and their libraries are switched off, and (after the line) stderr itself goes to
    /dev/null, so what daemon threads, atexit hooks and interpreter shutdown write afterwards (a Dask
    heartbeat's CommClosedError on a busy machine) is not shown, whatever the timing."""
    if debug:
        return
    for name in SHUTDOWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    if before:
        return
    sys.stderr.flush()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process's life


if __name__ == "__main__":
    sys.exit(entry())
