"""Proof that a refactor changed no stored key and no output byte (issue #21).

    .venv/bin/python -m benchmarks.refactor_check --base 6e2b156

Renders one small synthetic film (models.synth, with audio), then restores it with the `defects` recipe
through `flows.restore_title.run_restore` twice, each in its own temporary local store and Prefect home:
once with the code of git revision `--base` (checked out with `git worktree add` into a temporary folder
and imported from there, with this same virtual environment) and once with the working tree. It compares

- the published version id,
- every stored key under work/ and published/ (the set of keys),
- the master's sha256 (and the sha256 of every output the manifest lists),

and reports, for information, how many of the other stored objects are byte-identical (records with
wall-clock timings, the manifest's creation time and zip timestamps inside .npz differ from run to run).

It then runs the command line's one-stage path on a second synthetic clip with both trees (`reel stage
NAME` for the stages in STAGE_RUNS, FFV1 and ProRes outputs, `reel grade apply` with a .cube, and
`reel shots --json`) and compares the output files' sha256 (and the printed JSON).

Exit status 0 when every comparison agrees, 1 otherwise. About 4-6 minutes on 2 cores
(`--only-stages`: the second part alone, about 2 minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILM = dict(width=160, height=120, shots=3, frames_per_shot=12, seed=11)
TITLE = "refactor-check"
CLIP = dict(width=128, height=96, shots=3, frames_per_shot=14, seed=5)  # `reel stage` runs on this one
# (output file, reel arguments after the input; {out} is the output path): every kind of stage the CLI
# runs: temporal (pieces end at cuts), shot-analysis (statistics per shot), frame-rate changing, resizing.
STAGE_RUNS = [
    ("denoise.mkv", ["stage", "denoise"]),
    ("dust.mkv", ["stage", "dust"]),
    ("dust.mov", ["stage", "dust"]),
    ("deflicker.mkv", ["stage", "deflicker"]),
    ("colour.mkv", ["stage", "colour"]),
    ("stabilise.mkv", ["stage", "stabilise"]),
    ("interpolate.mkv", ["stage", "interpolate", "--set", "factor=2"]),
    ("upscale.mkv", ["stage", "upscale", "--set", "method=lanczos,scale=2"]),
    ("grade.mkv", ["grade", "apply", "{cube}", "--strength", "0.8"]),
]

# Runs in a child process whose cwd and PYTHONPATH are the tree under test.
_RUNNER = """
import json, sys
import flows.restore_title as rt
summary = rt.run_restore(sys.argv[1], sys.argv[2], "defects")
m = summary["manifest"]
print("REFACTOR-CHECK " + json.dumps({"version": m["version"], "module": rt.__file__,
      "outputs": {o["path"]: o["sha256"] for o in m["outputs"]}}))
"""


def render(path: Path) -> None:
    from infra.media import write_film
    from models.synth import SynthConfig, render_film

    cfg = SynthConfig(**FILM)
    film = render_film(cfg)
    write_film(path, film.degraded, Fraction(cfg.fps), (film.audio, film.audio_sample_rate))


def run_tree(tree: Path, film: Path, work: Path, name: str) -> dict:
    """Restore `film` with the code in `tree`, in a fresh store under `work`; the child's summary."""
    store = work / f"store-{name}"
    env = {**os.environ, "PYTHONPATH": str(tree), "REEL_STORE": str(store), "REEL_CHUNK_FRAMES": "16",
           "REEL_PIECE_FRAMES": "8", "PREFECT_HOME": str(work / f"prefect-{name}")}
    env.pop("REEL_DASK_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", _RUNNER, str(film), TITLE], cwd=tree, env=env,
                         capture_output=True, text=True, timeout=1800)
    line = next((x for x in out.stdout.splitlines() if x.startswith("REFACTOR-CHECK ")), None)
    if out.returncode or line is None:
        sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
        raise SystemExit(f"the {name} run failed (exit {out.returncode})")
    summary = json.loads(line.removeprefix("REFACTOR-CHECK "))
    if not Path(summary["module"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the {name} run imported {summary['module']}, not the code in {tree}")
    summary["objects"] = stored_objects(store)
    return summary


def render_clip(path: Path, cube: Path) -> None:
    from infra.media import write_film
    from models.grade import write_cube
    from models.synth import SynthConfig, render_film

    cfg = SynthConfig(**CLIP)
    film = render_film(cfg)
    write_film(path, film.degraded, Fraction(cfg.fps), (film.audio, film.audio_sample_rate))
    g = np.linspace(0.0, 1.0, 9, dtype=np.float32)
    lut = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1)  # lut[r, g, b] = (r, g, b)
    lut = np.clip(lut ** np.float32(0.8) * np.float32([1.0, 0.95, 0.9]), 0, 1)  # a warm, lifted look
    cube.write_text(write_cube(lut, "refactor-check", ["a fixed look for the check"]))


def run_stages(tree: Path, clip: Path, cube: Path, work: Path, name: str) -> dict[str, str]:
    """{output name: sha256} of every STAGE_RUNS output made with the code in `tree`, plus the
    `reel shots --json` text under "shots.json"."""
    out_dir = work / f"stages-{name}"
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tree), "REEL_PIECE_FRAMES": "8"}
    found = {}
    for out_name, args in [*STAGE_RUNS, ("shots.json", ["shots", "--json"])]:
        cmd = [a.replace("{cube}", str(cube)) for a in args]
        out = out_dir / out_name
        if cmd[0] == "shots":  # reel shots --json CLIP
            full = [*cmd, str(clip)]
        else:  # reel stage NAME CLIP OUT [--set ...], reel grade apply CUBE CLIP OUT [--strength S]
            at = 2 if cmd[0] == "stage" else 3
            full = [*cmd[:at], str(clip), str(out), *cmd[at:]]
        r = subprocess.run([sys.executable, "-m", "flows.cli", *full], cwd=tree, env=env,
                           capture_output=True, text=True, timeout=900)
        if r.returncode:
            sys.stderr.write(r.stdout[-2000:] + r.stderr[-2000:])
            raise SystemExit(f"reel {' '.join(full)} failed with the {name} code (exit {r.returncode})")
        if cmd[0] == "shots":
            found[out_name] = r.stdout.strip()
        else:
            found[out_name] = hashlib.sha256(out.read_bytes()).hexdigest()
    return found


def stored_objects(store: Path) -> dict[str, str]:
    """{key: sha256} of every object under work/ and published/ of a local store (no .meta/.staging)."""
    found = {}
    for top in ("work", "published"):
        for path in sorted((store / top).rglob("*")):
            if path.is_file() and not any(p.startswith(".") for p in path.relative_to(store).parts):
                found[path.relative_to(store).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def compare(base: dict, head: dict) -> list[str]:
    """The differences that matter (empty: behaviour unchanged)."""
    problems = []
    if base["version"] != head["version"]:
        problems.append(f"version id {base['version']} != {head['version']}")
    only_base, only_head = sorted(base["objects"].keys() - head["objects"].keys()), \
        sorted(head["objects"].keys() - base["objects"].keys())
    if only_base or only_head:
        problems.append(f"keys only at base: {only_base[:10]}; only in the working tree: {only_head[:10]}")
    for path, sha in base["outputs"].items():
        if head["outputs"].get(path) != sha:
            problems.append(f"published output {path}: {sha} != {head['outputs'].get(path)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="6e2b156", help="git revision to compare the working tree with")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (stores, worktree)")
    ap.add_argument("--only-stages", action="store_true", help="only the `reel stage`/`reel shots` comparison")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reel-refactor-check-"))
    base_tree = work / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base],
                   check=True)
    problems: list[str] = []
    try:
        if not args.only_stages:
            film = work / "film.mkv"
            render(film)
            base = run_tree(base_tree, film, work, "base")
            head = run_tree(ROOT, film, work, "head")
            same = sum(base["objects"].get(k) == v for k, v in head["objects"].items())
            problems += compare(base, head)
            print(f"base {args.base}: version {base['version']}; working tree: version {head['version']}")
            print(f"stored keys under work/ and published/: {len(base['objects'])} at base, "
                  f"{len(head['objects'])} now; {same} byte-identical")
            print(f"master.mkv sha256: {base['outputs'].get('master.mkv')} (base), "
                  f"{head['outputs'].get('master.mkv')} (now); {len(base['outputs'])} published outputs compared")
        clip, cube = work / "clip.mkv", work / "look.cube"
        render_clip(clip, cube)
        base_stages = run_stages(base_tree, clip, cube, work, "base")
        head_stages = run_stages(ROOT, clip, cube, work, "head")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    for out_name, sha in base_stages.items():
        same_bytes = head_stages.get(out_name) == sha
        shown = "same JSON" if out_name == "shots.json" else f"sha256 {sha[:16]}"
        shown_cmd = " ".join(dict(STAGE_RUNS).get(out_name, ["shots", "--json"])).replace("{cube}", "LOOK.cube")
        print(f"reel {shown_cmd} -> {out_name}: "
              + (shown + " (base and now)" if same_bytes else "DIFFERENT"))
        if not same_bytes:
            problems.append(f"{out_name}: {sha} (base) != {head_stages.get(out_name)} (now)")
    for p in problems:
        print("DIFFERENT:", p)
    print("refactor check:", "unchanged" if not problems else "CHANGED")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
