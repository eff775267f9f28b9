"""Operations benchmark: memory against film length, Dask scaling, orchestration overhead.

    .venv/bin/python -m benchmarks.ops [--out bench-out] [--size 320x240] [--shots 8] [--long-factor 4]
                                       [--frames-per-shot 48] [--reps 5]
                                       [--only-scaling | --only-overhead]

Everything runs the real `reel restore` (the venv's CLI, one subprocess per run, `defects` recipe,
a fresh store per run, default chunk/piece settings, one PREFECT_HOME shared by the runs so its
database is created once) on synthetic films rendered here. Writes OUT/ops.json and prints a table.

1. memory: peak RSS of the whole process tree of `reel restore` (the CLI, its Dask nanny and worker
   processes, the ephemeral Prefect server), sampled from /proc/<pid>/status VmRSS every 50 ms: the
   max over time of the tree's sum, and each process's own max (by role); CPU seconds (user + system)
   per role from /proc/<pid>/stat. Film: SHOTS shots vs SHOTS x LONG_FACTOR shots of the same size and
   shot length. Goal: long / short <= 1.10.
2. scaling: flow wall time with REEL_DASK_WORKERS=2 vs 1 (1 thread each) on the SHOTS film;
   REPS repetitions each, interleaved, medians. Goal: speed-up >= 1.5.
3. overhead: the same work with no Prefect, Dask or store, in a plain loop (its own subprocess,
   timed inside it after imports), through the one-file pipeline `reel stage` runs
   (infra.pipeline.file: the flow's parts): detect shots (the shot detector), analyse the shots of
   the shot-analysis stages and bind their statistics (the per-shot preparation hook), plan pieces
   as the flow does (REEL_PIECE_FRAMES and the recipe's context), decode the source once and run the
   recipe's stages on each piece (models.chain.run_piece), measure QC per piece and join it per shot
   (models.qc.measure_piece and finish_shot: the flow's metrics and PNG pictures, from frames held in
   memory), and encode the recipe's masters (FFV1 16-bit + ProRes, audio copied) with
   infra.media.encode_master. No mezzanine, no store, no intermediate files but
   two raw arrays. Compared with the REEL_DASK_WORKERS=1 runs of (2), interleaved:
   - flow wall: the flow run's own start..end from the Prefect database: ingest, shot detection,
     restore, QC, publish. The API and the Dask cluster are already up: `reel restore` starts its
     LocalCluster while it starts the ephemeral API, as `reel serve` holds one for all its runs;
   - CLI wall: the whole `reel restore` process (adds interpreter start, imports, the ephemeral
     Prefect server and the LocalCluster starting side by side, their stop, copying the version to
     --out), against the plain loop's whole process (interpreter start and imports included);
   - overhead = (flow wall - plain) / plain, of the medians (and per repetition). Goal <= 5 %.
     Also CPU: all CPU seconds of the flow's process tree / the plain loop's.
   Before each timed run everything written so far is synced to disk and the plain loop deletes
   its outputs (as each flow run's store is deleted), so no run pays for another's write-back.
   Task-run durations per task name come from the same database, so the report says where the
   flow's time goes.
Times on a shared 2-core machine are noisy: only ratios of runs made side by side mean anything;
the load average before and after is recorded. The defaults (320x240, 8 vs 32 shots of 48 frames,
i.e. 384 vs 1,536 frames, 5 repetitions) take about 27 minutes on 2 cores; `--only-overhead` (flow
vs plain loop in alternating order, OUT/ops-overhead-<frames>.json) about 11 minutes with --reps 4.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REEL = Path(sys.executable).with_name("reel")
RECIPE = "defects"


# --------------------------------------------------------------------------- process-tree RSS


TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, int, float]]:
    """{pid: (ppid, rss_kib, cpu_s)} of every live process (cpu: user + system time so far)."""
    table = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = rss = 0
        for line in status.splitlines():
            if line.startswith("PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3 of the man page
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
        table[int(d.name)] = (ppid, rss, cpu)
    return table


def _role(pid: int) -> str:
    try:
        cmd = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    except OSError:
        return "gone"
    if "uvicorn" in cmd or "prefect.server" in cmd or "server start" in cmd:
        return "prefect-server"
    if "resource_tracker" in cmd or "forkserver" in cmd:
        return "multiprocessing-helper"
    if "spawn_main" in cmd or "multiprocessing" in cmd:
        return "dask-worker"  # spawned by a nanny
    if "reel" in cmd and "restore" in cmd:
        return "cli"
    return "other: " + cmd[:60]


class TreeSampler:
    """Samples VmRSS of `root_pid` and all its descendants every `interval` seconds in a thread."""

    def __init__(self, root_pid: int, interval: float = 0.05) -> None:
        self.root, self.interval = root_pid, interval
        self.peak_sum_kib = 0
        self.per_pid: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            table = _proc_table()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            tree, todo = [], [self.root]
            while todo:
                pid = todo.pop()
                if pid in table:
                    tree.append(pid)
                    todo.extend(children.get(pid, []))
            total = sum(table[p][1] for p in tree)
            self.peak_sum_kib = max(self.peak_sum_kib, total)
            for p in tree:
                if p not in self.roles:
                    self.roles[p] = _role(p)
                self.per_pid[p] = max(self.per_pid.get(p, 0), table[p][1])
                self.cpu[p] = table[p][2]  # the last sample before it exits (misses its last < 50 ms)
            self.samples += 1
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        by_role: dict[str, list[float]] = {}
        cpu_role: dict[str, float] = {}
        for pid, kib in self.per_pid.items():
            by_role.setdefault(self.roles.get(pid, "other"), []).append(round(kib / 1024, 1))
            cpu_role[self.roles.get(pid, "other")] = cpu_role.get(self.roles.get(pid, "other"), 0.0) + self.cpu[pid]
        return {"cpu_s_by_role": {k: round(v, 2) for k, v in sorted(cpu_role.items())},
                "peak_tree_sum_mib": round(self.peak_sum_kib / 1024, 1),
                "peak_per_process_mib": {k: sorted(v, reverse=True) for k, v in sorted(by_role.items())},
                "largest_process_mib": round(max(self.per_pid.values(), default=0) / 1024, 1),
                "processes": len(self.per_pid), "samples": self.samples}


# --------------------------------------------------------------------------- one `reel restore`


def _flow_times(prefect_home: Path) -> dict[str, Any]:
    """The newest flow run's wall time and its task runs' durations summed per task name."""
    db = sqlite3.connect(prefect_home / "prefect.db")
    try:
        fid, start, end = db.execute(
            "select id, start_time, end_time from flow_run order by created desc limit 1").fetchone()
        rows = db.execute("select name, start_time, end_time from task_run where flow_run_id = ?",
                          (fid,)).fetchall()
    finally:
        db.close()

    def t(s: str) -> float:
        return datetime.fromisoformat(s).timestamp()

    tasks: dict[str, float] = {}
    for name, s, e in rows:
        if s and e:
            kind = re.sub(r"(-\d+)?(-part\d+)?(-[0-9a-f]{3})?$", "", name)  # restore-shot3-part1 -> restore-shot
            kind = re.sub(r"\d+$", "", kind).replace("restore-shot", "restore-piece")
            tasks[kind] = tasks.get(kind, 0.0) + t(e) - t(s)
    spans: dict[str, list[float]] = {}  # per task kind: first start, last end (s after the flow's start)
    for name, s, e in rows:
        if s and e:
            kind = re.sub(r"\d+$", "", re.sub(r"(-\d+)?(-part\d+)?(-[0-9a-f]{3})?$", "", name))
            lo, hi = t(s) - t(start), t(e) - t(start)
            old = spans.get(kind, [lo, hi])
            spans[kind] = [round(min(old[0], lo), 2), round(max(old[1], hi), 2)]
    starts = {name: t(s) for name, s, _ in rows if s}
    first_dask = min((v for k, v in starts.items() if k.startswith(("shot-scores", "restore-shot"))), default=None)
    return {"flow_s": t(end) - t(start), "task_s": {k: round(v, 3) for k, v in sorted(tasks.items())},
            "untracked_s": round(t(end) - t(start) - sum(tasks.values()), 3),
            "flow_start_to_first_dask_task_s": round(first_dask - t(start), 3) if first_dask else None,
            "task_runs": len(rows), "timeline": dict(sorted(spans.items(), key=lambda kv: kv[1]))}


def _piece_phases(store: Path) -> dict[str, float]:
    """restore-piece's own wall seconds by phase (read, chain, segment, parts, qc, store), summed over
    the pieces' records in a local store."""
    total: dict[str, float] = {}
    for path in store.rglob("shot*-p*-*.json"):
        if re.fullmatch(r"shot\d{4}-p\d{2}-[0-9a-f]{16}\.json", path.name):
            for k, v in json.loads(path.read_text()).get("timing_s", {}).items():
                total[k] = round(total.get(k, 0.0) + v, 3)
    return dict(sorted(total.items()))


def run_cli(film: Path, work: Path, name: str, prefect_home: Path, workers: int) -> dict[str, Any]:
    store, out = work / f"store-{name}", work / f"out-{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REEL_", "PREFECT_API_URL"))}
    env.update(REEL_STORE=str(store), REEL_DASK_WORKERS=str(workers), REEL_DASK_THREADS_PER_WORKER="1",
               PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    cmd = [str(REEL), "restore", str(film), "--title", "ops", "--recipe", RECIPE, "--out", str(out)]
    log = work / f"{name}.log"
    os.sync()  # the previous run's writes are on disk: their write-back does not land in this run
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        with TreeSampler(proc.pid) as sampler:
            rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"reel restore failed ({rc}); log: {log}\n{log.read_text()[-2000:]}")
    m = re.search(r"pieces restored (\d+), reused (\d+)", log.read_text())
    result = {"cli_s": wall, "rss": sampler.summary(), **_flow_times(prefect_home),
              "pieces_restored": int(m[1]) if m else None, "piece_phases_s": _piece_phases(store)}
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return result


def run_rerun_pair(film: Path, work: Path, name: str, prefect_home: Path, shot: int) -> dict[str, Any]:
    """A full `reel restore` and then `reel rerun --shots SHOT` of the same title on the same store."""
    store, out = work / f"store-{name}", work / f"out-{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REEL_", "PREFECT_API_URL"))}
    env.update(REEL_STORE=str(store), REEL_DASK_WORKERS="2", REEL_DASK_THREADS_PER_WORKER="1",
               PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    result: dict[str, Any] = {}
    for kind, cmd in (("full", [str(REEL), "restore", str(film), "--title", "ops", "--recipe", RECIPE]),
                      ("rerun", [str(REEL), "rerun", "ops", "--shots", str(shot), "--source", str(film),
                                 "--recipe", RECIPE])):
        log = work / f"{name}-{kind}.log"
        t0 = time.perf_counter()
        with open(log, "wb") as f:
            rc = subprocess.call([*cmd, "--out", str(out)], env=env, stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            raise RuntimeError(f"{kind} failed ({rc}); log: {log}\n{log.read_text()[-2000:]}")
        m = re.search(r"pieces restored (\d+), reused (\d+)", log.read_text())
        result[kind] = {"cli_s": time.perf_counter() - t0, "flow_s": _flow_times(prefect_home)["flow_s"],
                        "pieces_restored": int(m[1]) if m else None, "pieces_reused": int(m[2]) if m else None}
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- the plain loop


def plain_loop(src: Path, work: Path) -> dict[str, float]:
    """Decode -> shots -> shot analysis -> pieces -> stage loop -> QC per shot -> masters, no orchestration;
    seconds after imports, by phase. The pipeline is `infra.pipeline.file`'s (the flow's parts: shot
    detector, pieces, per-shot preparation, `models.chain.run_piece`); only the QC bookkeeping is here."""
    import numpy as np

    from catalog.recipe import BUILTIN_RECIPES
    from infra.media import encode_master
    from infra.pipeline.file import decode_depth, plan_file, probe_file, restore_file_pieces
    from infra.runtime import process_runtime
    from models.qc import finish_shot, measure_piece

    t0 = time.perf_counter()
    settings = process_runtime().settings
    recipe = BUILTIN_RECIPES[RECIPE]
    stages = recipe.build()
    info = probe_file(src, settings)
    plan = plan_file(stages, src, info, settings)  # shots detected, per-shot analysis bound
    v = plan.video
    depth = decode_depth(v)
    frames_total = int(plan.shots["end_frame"].iloc[-1])
    t_cuts = time.perf_counter()
    # the flow keeps source chunks and restored segments on disk too; here two raw arrays
    shape = (frames_total, v.height, v.width, 3)
    source = np.lib.format.open_memmap(work / "plain-source.npy", mode="w+",
                                       dtype=np.uint8 if depth == 8 else np.uint16, shape=shape)
    out = np.lib.format.open_memmap(work / "plain-restored.npy", mode="w+", dtype=np.uint16, shape=shape)
    reports: dict[int, list[dict[str, Any]]] = {}
    measured: dict[int, list[Any]] = {}
    bounds = {int(r.shot): (int(r.start_frame), int(r.end_frame)) for r in plan.shots.itertuples(index=False)}
    t_qc = 0.0
    for piece, frames, done in restore_file_pieces(stages, plan, src):
        a, b = piece.start - piece.read_start, piece.end - piece.read_start
        source[piece.start:piece.end] = frames[a:b]
        out[piece.start:piece.end] = done.frames
        reports.setdefault(piece.shot, []).extend(done.reports)
        t = time.perf_counter()  # QC as the flow measures it: per piece, frames in memory
        s0, s1 = bounds[piece.shot]
        measured.setdefault(piece.shot, []).append(measure_piece(
            frames[a:b], done.frames, shot_start=s0, shot_end=s1, start=piece.start, bit_depth=depth,
            grade_lut=plan.bindings[piece.shot].lut, before=source[piece.start - 1] if piece.start > s0 else None))
        t_qc += time.perf_counter() - t
    t = time.perf_counter()
    for shot, (s0, s1) in bounds.items():
        metrics, pictures = finish_shot(measured[shot], shot=shot, start=s0, end=s1, reports=reports.get(shot, []))
        (work / f"plain-qc-{shot}.json").write_text(json.dumps(metrics))
    t_chain = time.perf_counter()
    t_qc += t_chain - t
    for codec in recipe.masters:
        encode_master(iter(out), work / f"plain-master-{codec}", width=v.width, height=v.height, fps=v.fps,
                      codec=codec, audio_source=str(src) if info.audio else None)
    t_end = time.perf_counter()
    del out, source
    for path in (work / "plain-source.npy", work / "plain-restored.npy", *work.glob("plain-master-*"),
                 *work.glob("plain-qc-*.json")):
        path.unlink()  # as the flow runs' stores are removed: nothing left to write back during the next run
    return {"total_s": t_end - t0, "probe_shots_analysis_s": t_cuts - t0,
            "decode_and_chain_s": t_chain - t_cuts - t_qc, "qc_s": t_qc, "masters_s": t_end - t_chain}


def run_plain(film: Path, work: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OPENCV_FOR_THREADS_NUM="1")  # as a Dask worker
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "benchmarks.ops", "--plain", str(film), "--work", str(work)],
                       env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0  # the whole process: interpreter start and imports too
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # the whole process
    return {**json.loads(r.stdout.strip().splitlines()[-1]), "process_s": wall, "process_cpu_s": cpu}


# --------------------------------------------------------------------------- main


def synth(path: Path, size: str, shots: int, frames_per_shot: int) -> Path:
    subprocess.run([str(REEL), "synth", str(path), "--seed", "7", "--size", size, "--shots", str(shots),
                    "--frames-per-shot", str(frames_per_shot)], check=True, capture_output=True)
    return path


def med(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--long-factor", type=int, default=4)
    ap.add_argument("--frames-per-shot", type=int, default=48)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only-scaling", action="store_true",
                    help="only the 1 vs 2 workers comparison (e.g. on a longer film: --frames-per-shot 48)")
    ap.add_argument("--only-overhead", action="store_true",
                    help="only the flow (1 worker) vs plain loop comparison, in alternating order")
    ap.add_argument("--plain", help=argparse.SUPPRESS)  # internal: run the plain loop on this film
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain:
        print(json.dumps(plain_loop(Path(args.plain), Path(args.work))))
        return
    if args.only_scaling:
        return scaling_only(args)
    if args.only_overhead:
        return overhead_only(args)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    results: dict[str, Any] = {"size": args.size, "recipe": RECIPE, "frames_per_shot": args.frames_per_shot,
                               "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="reel-ops-") as tmp:
        work = Path(tmp)
        home = work / "prefect-home"
        short = synth(work / "short.mkv", args.size, args.shots, args.frames_per_shot)
        long = synth(work / "long.mkv", args.size, args.shots * args.long_factor, args.frames_per_shot)
        run_cli(short, work, "warmup", home, 1)  # creates the Prefect database; caches warm

        # 2 + 3: interleaved repetitions on the short film
        runs: dict[str, list[dict[str, Any]]] = {"w1": [], "w2": []}
        plain_phases: list[dict[str, float]] = []
        for rep in range(args.reps):
            for key, workers in (("w1", 1), ("w2", 2)) if rep % 2 == 0 else (("w2", 2), ("w1", 1)):
                runs[key].append(run_cli(short, work, f"{key}-{rep}", home, workers))
                print(f"rep {rep} {key}: flow {runs[key][-1]['flow_s']:.1f} s, cli {runs[key][-1]['cli_s']:.1f} s",
                      flush=True)
            plain_phases.append(run_plain(short, work))
            print(f"rep {rep} plain: {plain_phases[-1]['total_s']:.1f} s", flush=True)

        # 4: rerun of one named shot vs the full run (2 workers), on the short film
        reruns = [run_rerun_pair(short, work, f"rerun-{rep}", home, shot=min(3, args.shots - 1))
                  for rep in range(args.reps)]
        for r in reruns:
            print(f"rerun 1 of {args.shots} shots: flow {r['rerun']['flow_s']:.1f} s vs full {r['full']['flow_s']:.1f} s",
                  flush=True)

        # 1: memory, short vs long (2 workers, the default)
        mem_long = run_cli(long, work, "long", home, 2)
        print(f"long: flow {mem_long['flow_s']:.1f} s, peak tree {mem_long['rss']['peak_tree_sum_mib']} MiB", flush=True)
        mem_short = runs["w2"][-1]

    w1, w2 = [r["flow_s"] for r in runs["w1"]], [r["flow_s"] for r in runs["w2"]]
    plain = [p["total_s"] for p in plain_phases]
    cpu1 = [sum(r["rss"]["cpu_s_by_role"].values()) for r in runs["w1"]]
    plain_cpu = [p["process_cpu_s"] for p in plain_phases]
    n_short = args.shots * args.frames_per_shot
    results["memory"] = {
        "short_frames": n_short, "long_frames": n_short * args.long_factor,
        "short": mem_short["rss"], "long": mem_long["rss"],
        "short_flow_s": round(mem_short["flow_s"], 2), "long_flow_s": round(mem_long["flow_s"], 2),
        "short_task_s": mem_short["task_s"], "long_task_s": mem_long["task_s"],
        "tree_ratio": round(mem_long["rss"]["peak_tree_sum_mib"] / mem_short["rss"]["peak_tree_sum_mib"], 3),
        "largest_process_ratio": round(mem_long["rss"]["largest_process_mib"]
                                       / mem_short["rss"]["largest_process_mib"], 3),
        "goal_ratio_max": 1.10,
    }
    results["memory"]["meets_goal"] = results["memory"]["tree_ratio"] <= 1.10
    results["scaling"] = {
        "flow_s_1_worker": [round(x, 2) for x in w1], "flow_s_2_workers": [round(x, 2) for x in w2],
        "restore_task_s_1_worker": [r["task_s"].get("restore-piece") for r in runs["w1"]],
        "speedup": round(med(w1) / med(w2), 3), "goal_min": 1.5,
    }
    results["scaling"]["meets_goal"] = results["scaling"]["speedup"] >= 1.5
    cli1 = [r["cli_s"] for r in runs["w1"]]
    results["overhead"] = {
        "plain_s": [round(x, 2) for x in plain], "flow_s": [round(x, 2) for x in w1],
        "plain_phases_s": [{k: round(v, 2) for k, v in p.items()} for p in plain_phases],
        "untracked_s": [r["untracked_s"] for r in runs["w1"]],
        "flow_start_to_first_dask_task_s": [r["flow_start_to_first_dask_task_s"] for r in runs["w1"]],
        "cli_s": [round(x, 2) for x in cli1],
        "cpu_s_flow_tree": [round(x, 2) for x in cpu1], "cpu_s_plain_process": [round(x, 2) for x in plain_cpu],
        "cpu_s_by_role_median_run": runs["w1"][sorted(range(len(w1)), key=w1.__getitem__)[len(w1) // 2]]["rss"][
            "cpu_s_by_role"],
        "timeline_median_run": runs["w1"][sorted(range(len(w1)), key=w1.__getitem__)[len(w1) // 2]]["timeline"],
        "piece_phases_s_median_run": runs["w1"][sorted(range(len(w1)), key=w1.__getitem__)[len(w1) // 2]][
            "piece_phases_s"],
        "task_s_median_run": runs["w1"][sorted(range(len(w1)), key=w1.__getitem__)[len(w1) // 2]]["task_s"],
        "flow_over_plain": round((med(w1) - med(plain)) / med(plain), 3),
        "flow_over_plain_per_rep": [round(f / p - 1, 3) for f, p in zip(w1, plain, strict=True)],
        "cpu_flow_over_plain": round((med(cpu1) - med(plain_cpu)) / med(plain_cpu), 3),
        "plain_process_s": [round(p["process_s"], 2) for p in plain_phases],
        "cli_over_plain_process": round(med(cli1) / med([p["process_s"] for p in plain_phases]) - 1, 3),
        "goal_max": 0.05,
    }
    results["overhead"]["meets_goal"] = results["overhead"]["flow_over_plain"] <= 0.05
    full_f, rerun_f = [r["full"]["flow_s"] for r in reruns], [r["rerun"]["flow_s"] for r in reruns]
    full_c, rerun_c = [r["full"]["cli_s"] for r in reruns], [r["rerun"]["cli_s"] for r in reruns]
    results["rerun"] = {
        "shots": args.shots, "full_flow_s": [round(x, 2) for x in full_f], "rerun_flow_s": [round(x, 2) for x in rerun_f],
        "full_cli_s": [round(x, 2) for x in full_c], "rerun_cli_s": [round(x, 2) for x in rerun_c],
        "pieces": [[r["full"]["pieces_restored"], r["rerun"]["pieces_restored"], r["rerun"]["pieces_reused"]]
                   for r in reruns],
        "flow_ratio": round(med(rerun_f) / med(full_f), 3), "cli_ratio": round(med(rerun_c) / med(full_c), 3),
    }
    results["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    results["benchmark_s"] = round(time.perf_counter() - t_start, 1)

    (out_dir / "ops.json").write_text(json.dumps(results, indent=2))
    m, s, o = results["memory"], results["scaling"], results["overhead"]
    rows = [
        ("peak RSS, process tree (MiB)", f"{m['short']['peak_tree_sum_mib']} ({m['short_frames']} fr)",
         f"{m['long']['peak_tree_sum_mib']} ({m['long_frames']} fr)", f"{m['tree_ratio']}", "<= 1.10", m["meets_goal"]),
        ("peak RSS, largest process (MiB)", f"{m['short']['largest_process_mib']}", f"{m['long']['largest_process_mib']}",
         f"{m['largest_process_ratio']}", "", ""),
        ("flow wall, 1 vs 2 workers (s, median)", f"{med(w1)}", f"{med(w2)}", f"{s['speedup']}", ">= 1.5",
         s["meets_goal"]),
        ("plain loop vs flow, 1 worker (s, median)", f"{med(plain)}", f"{med(w1)}", f"{o['flow_over_plain']:+.1%}",
         "<= +5%", o["meets_goal"]),
        ("  same, CPU s of all processes", f"{med(plain_cpu)}", f"{med(cpu1)}", f"{o['cpu_flow_over_plain']:+.1%}",
         "", ""),
        ("  same, whole processes (CLI vs plain's)", f"{med([p['process_s'] for p in plain_phases]):.1f}",
         f"{med(cli1):.1f}", f"{o['cli_over_plain_process']:+.1%}", "", ""),
        (f"full run vs rerun of 1 of {args.shots} shots (flow s)", f"{med(full_f)}", f"{med(rerun_f)}",
         f"{results['rerun']['flow_ratio']}", "", ""),
        ("  same, whole CLI process (s)", f"{med(full_c)}", f"{med(rerun_c)}", f"{results['rerun']['cli_ratio']}", "", ""),
    ]
    print(f"\n{'what':42s} {'A':>16s} {'B':>16s} {'B/A or ratio':>13s} {'goal':>8s}  ok")
    for r in rows:
        print(f"{r[0]:42s} {r[1]:>16s} {r[2]:>16s} {r[3]:>13s} {r[4]:>8s}  {r[5]}")
    print(f"\nflow (1 worker) over plain loop, each repetition: {o['flow_over_plain_per_rep']}")
    print(f"flow task time by task (median 1-worker run, s): {o['task_s_median_run']}")
    print(f"flow time outside tasks (1 worker, s): {o['untracked_s']}; flow start to first Dask task: "
          f"{o['flow_start_to_first_dask_task_s']}")
    print(f"plain loop by phase (s): {o['plain_phases_s']}")
    print(f"restore-piece by phase, summed over pieces (1 worker, s): {o['piece_phases_s_median_run']}")
    print(f"flow timeline (1 worker, first start and last end per task, s): {o['timeline_median_run']}")
    print(f"long vs short film, task time (s): {m['long_task_s']} vs {m['short_task_s']}")
    print(f"load average before/after: {results['load_average_before_after']}; "
          f"{results['benchmark_s']} s; JSON: {out_dir / 'ops.json'}")


def scaling_only(args: argparse.Namespace) -> None:
    """2 Dask workers vs 1 on one film, interleaved repetitions; JSON in OUT/ops-scaling-<frames>.json."""
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = args.shots * args.frames_per_shot
    with tempfile.TemporaryDirectory(prefix="reel-ops-") as tmp:
        work = Path(tmp)
        home = work / "prefect-home"
        film = synth(work / "film.mkv", args.size, args.shots, args.frames_per_shot)
        run_cli(film, work, "warmup", home, 1)
        runs: dict[str, list[float]] = {"w1": [], "w2": []}
        detail: dict[str, list[dict[str, Any]]] = {"w1": [], "w2": []}
        for rep in range(args.reps):
            for key, workers in (("w1", 1), ("w2", 2)) if rep % 2 == 0 else (("w2", 2), ("w1", 1)):
                r = run_cli(film, work, f"{key}-{rep}", home, workers)
                runs[key].append(r["flow_s"])
                detail[key].append({"task_s": r["task_s"], "cpu_s_by_role": r["rss"]["cpu_s_by_role"],
                                    "cli_s": round(r["cli_s"], 2), "timeline": r["timeline"],
                                    "piece_phases_s": r["piece_phases_s"]})
                print(f"rep {rep} {key}: flow {runs[key][-1]:.1f} s; cpu by process: {r['rss']['cpu_s_by_role']}; "
                      f"task time: {r['task_s']}; first start, last end: {r['timeline']}; restore-piece by phase: "
                      f"{r['piece_phases_s']}", flush=True)
    result = {"size": args.size, "frames": frames, "recipe": RECIPE, "flow_s_1_worker": runs["w1"],
              "flow_s_2_workers": runs["w2"], "speedup": round(med(runs["w1"]) / med(runs["w2"]), 3),
              "goal_min": 1.5, "runs": detail}
    (out_dir / f"ops-scaling-{frames}.json").write_text(json.dumps(result, indent=2))
    print(f"{frames} frames {args.size}, {RECIPE}: 1 worker {med(runs['w1']):.1f} s, 2 workers "
          f"{med(runs['w2']):.1f} s, speed-up {result['speedup']} (goal >= 1.5)")


def overhead_only(args: argparse.Namespace) -> None:
    """The flow with 1 Dask worker vs the plain loop on one film, in alternating order (flow first in
    even repetitions, plain first in odd ones); JSON in OUT/ops-overhead-<frames>.json."""
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = args.shots * args.frames_per_shot
    flows: list[dict[str, Any]] = []
    plains: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="reel-ops-") as tmp:
        work = Path(tmp)
        home = work / "prefect-home"
        film = synth(work / "film.mkv", args.size, args.shots, args.frames_per_shot)
        run_cli(film, work, "warmup", home, 1)
        for rep in range(args.reps):
            for kind in ("flow", "plain") if rep % 2 == 0 else ("plain", "flow"):
                if kind == "flow":
                    flows.append(run_cli(film, work, f"w1-{rep}", home, 1))
                    print(f"rep {rep} flow: {flows[-1]['flow_s']:.1f} s; task time {flows[-1]['task_s']}; "
                          f"restore-piece by phase {flows[-1]['piece_phases_s']}", flush=True)
                else:
                    plains.append(run_plain(film, work))
                    print(f"rep {rep} plain: {plains[-1]['total_s']:.1f} s; {plains[-1]}", flush=True)
    flow_s, plain_s = [r["flow_s"] for r in flows], [p["total_s"] for p in plains]
    pairs = [round(f / p - 1, 3) for f, p in zip(flow_s, plain_s, strict=True)]
    result = {"size": args.size, "frames": frames, "recipe": RECIPE, "flow_s": [round(x, 2) for x in flow_s],
              "plain_s": [round(x, 2) for x in plain_s], "flow_over_plain_per_pair": pairs,
              "flow_over_plain": round(med(flow_s) / med(plain_s) - 1, 3), "goal_max": 0.05,
              "cli_s": [round(r["cli_s"], 2) for r in flows],
              "plain_process_s": [round(p["process_s"], 2) for p in plains],
              "cli_over_plain_process": round(med([r["cli_s"] for r in flows])
                                              / med([p["process_s"] for p in plains]) - 1, 3),
              "flows": [{k: r[k] for k in ("task_s", "timeline", "piece_phases_s", "untracked_s")} | {
                  "cpu_s_by_role": r["rss"]["cpu_s_by_role"]} for r in flows],
              "plains": plains}
    (out_dir / f"ops-overhead-{frames}.json").write_text(json.dumps(result, indent=2))
    print(f"{frames} frames {args.size}, {RECIPE}: flow (1 worker) {med(flow_s):.1f} s vs plain loop "
          f"{med(plain_s):.1f} s: {result['flow_over_plain']:+.1%} (goal <= +5%); per pair {pairs}; whole "
          f"processes: {result['cli_over_plain_process']:+.1%}")


if __name__ == "__main__":
    main()
