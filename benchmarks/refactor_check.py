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
Exit status 0 when the three comparisons agree, 1 otherwise. About 2-4 minutes on 2 cores.
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

ROOT = Path(__file__).resolve().parents[1]
FILM = dict(width=160, height=120, shots=3, frames_per_shot=12, seed=11)
TITLE = "refactor-check"

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
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reel-refactor-check-"))
    base_tree = work / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base],
                   check=True)
    try:
        film = work / "film.mkv"
        render(film)
        base = run_tree(base_tree, film, work, "base")
        head = run_tree(ROOT, film, work, "head")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    same = sum(base["objects"].get(k) == v for k, v in head["objects"].items())
    problems = compare(base, head)
    print(f"base {args.base}: version {base['version']}; working tree: version {head['version']}")
    print(f"stored keys under work/ and published/: {len(base['objects'])} at base, {len(head['objects'])} now; "
          f"{same} byte-identical")
    print(f"master.mkv sha256: {base['outputs'].get('master.mkv')} (base), {head['outputs'].get('master.mkv')} "
          f"(now); {len(base['outputs'])} published outputs compared")
    for p in problems:
        print("DIFFERENT:", p)
    print("refactor check:", "unchanged" if not problems else "CHANGED")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
