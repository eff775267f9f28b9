"""Throughput at archive resolution: where Reel's time goes, side by side with the plain ffmpeg jobs (#24).

    make bench-throughput      # or: python -m benchmarks.throughput [--size 1920x1080] [--frames 48]
                               #       [--frames-short 48] [--frames-long 96] [--recipe defects] [--out bench-out]

Bigger runs (the issue's own check, hours on 2 cores):
    python -m benchmarks.throughput --size 1920x1080 --frames 240 --frames-short 48 --frames-long 240
    python -m benchmarks.throughput --size 2048x1556 ...   # 2K full aperture

The source is real old film (../shared/data/oldfilm/four_films.mkv) scaled up with Lanczos to --size and
written as 10-bit ProRes 422 HQ (yuv422p10le) by Debian's ffmpeg, as an archive's scan would arrive.
Everything is measured in one run, because times on a shared machine vary up to 2x run to run: the
headline figures are ratios (Reel fps / ffmpeg fps) and shares of Reel's time, not absolute seconds.

(a) plain jobs a user could run instead (whole ffmpeg processes, FFV1 rgb48le output):
    copy into FFV1, and deflicker,removegrain=2,hqdn3d into FFV1;
(b) Reel in-process, per phase, on a --frames clip: decode (iter_frames, 16 bit), conversion to float
    (Clip.from_uint), each stage of --recipe (stage.process, shot analysis timed apart), back to uint16,
    the FFV1 16-bit segment encode (FFV1Writer), the ProRes delivery encode as Reel does it
    (encode_master, prores_aw) and prores_aw / prores_ks at 1 thread and at automatic slice / frame threads;
    optionally the UHD upscale (models.upscale.Upscale(target="uhd")) on --upscale-frames frames;
(c) whole `reel restore --recipe identity` and `--recipe <recipe>` processes at two lengths, solved for
    time = fixed + per_frame x frames (the fixed cost reported on its own).
Then the estimate for a 100-minute feature (144,000 frames): core-hours and wall time here and on a
64-core node, assuming linear scaling per core (an assumption, not measured).
Writes <out>/throughput.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.defects import ensure_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
OLDFILM = ROOT.parent / "shared" / "data" / "oldfilm" / "four_films.mkv"
FEATURE_FRAMES = 144_000  # 100 minutes at 24 fps
NODE_CORES = 64
FFMPEG_JOBS = {
    "ffv1_copy": None,
    "ffmpeg_defects_chain": "deflicker,removegrain=2,hqdn3d",
}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run a whole process; wall seconds and CPU seconds (user + system, all its threads)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def timed(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run fn in this process; its result, wall seconds and this process's CPU seconds."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, {"wall_s": round(time.perf_counter() - t0, 4), "cpu_s": round(time.process_time() - c0, 4)}


def make_source(ffmpeg: str, dst: Path, size: tuple[int, int], frames: int) -> None:
    """First `frames` frames of the real old film, Lanczos-scaled to `size`, as 10-bit ProRes 422 HQ. The film
    has 205 frames: a longer clip plays it again from the start (a cut at frame 205, as a reel change)."""
    w, h = size
    run_process([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(OLDFILM),
                 "-frames:v", str(frames), "-an", "-vf", f"scale={w}:{h}:flags=lanczos,setsar=1",
                 "-c:v", "prores_aw", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
                 "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", str(dst)])


def ffmpeg_job(ffmpeg: str, src: Path, dst: Path, vf: str | None) -> dict[str, float]:
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-an"]
    cmd += ["-vf", vf] if vf else []
    cmd += ["-c:v", "ffv1", "-pix_fmt", "rgb48le", str(dst)]
    return run_process(cmd)


def fit_fixed(short: tuple[int, float], long: tuple[int, float]) -> dict[str, float]:
    """time = fixed + per_frame x frames through two points."""
    (n1, t1), (n2, t2) = short, long
    per = (t2 - t1) / (n2 - n1)
    return {"fixed_s": round(t1 - per * n1, 2), "per_frame_s": round(per, 4)}


# --- (b) Reel in-process, per phase ----------------------------------------------------------


def prores_encode(frames: list[Any], dst: Path, encoder: str, fps: Fraction, threads: str) -> None:
    """Encode prepared yuv422p10le VideoFrames with `encoder` (ProRes 422 HQ); threads: '1', 'slice', 'frame'."""
    import av

    with av.open(str(dst), "w", format="mov") as out:
        st = out.add_stream(encoder, rate=fps)
        ctx = st.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = frames[0].width, frames[0].height, "yuv422p10le"
        ctx.time_base = 1 / fps
        ctx.profile = "HQ"
        if threads == "1":
            ctx.thread_count = 1
        else:
            ctx.thread_type, ctx.thread_count = threads.upper(), 0
        for i, f in enumerate(frames):
            f.pts = i
            out.mux(st.encode(f))
        out.mux(st.encode(None))


def in_process(src: Path, recipe_name: str, fps: Fraction, tmp: Path, upscale_frames: int) -> dict[str, Any]:
    import av

    from catalog.recipe import BUILTIN_RECIPES
    from infra.media import FFV1Writer, _rgb_to_ycbcr_frame, encode_master, iter_frames
    from models.clip import Clip

    phases: dict[str, dict[str, float]] = {}
    # contiguous, as the flow hands stages their frames (a transposed array from a Y'CbCr source breaks
    # cv2.warpAffine in stabilise)
    frames, phases["decode_16bit"] = timed(lambda: np.ascontiguousarray(np.stack(list(iter_frames(src, depth=16)))))
    n, (h, w) = len(frames), frames.shape[1:3]
    clip, phases["to_float"] = timed(lambda frames=frames: Clip.from_uint(frames, fps))
    del frames
    for stage in BUILTIN_RECIPES[recipe_name].build():
        if stage.shot_analysis:  # one shot: the flow's analyse-shot task, then solve and bind
            idx = stage.analysis_frames(0, n, 12)

            def analyse(stage: Any = stage, idx: list[int] = idx, clip: Any = clip) -> Any:
                sample = clip.with_frames(clip.frames[idx])
                return stage.bind(stats=stage.solve([stage.analyse(sample)])[0])

            stage, phases[f"{stage.name}.analyse"] = timed(analyse)
        (clip, _report), phases[stage.name] = timed(lambda stage=stage, clip=clip: stage.process(clip))
        print(f"  {stage.name}: {phases[stage.name]['wall_s']:.1f} s", flush=True)
    restored = clip
    out16, phases["to_uint16"] = timed(lambda: restored.to_uint(np.uint16))

    def ffv1() -> None:
        with FFV1Writer(tmp / "seg.mkv", w, h, fps, depth=16) as wr:
            for f in out16:
                wr.write(f)

    _, phases["encode_ffv1_16bit_segment"] = timed(ffv1)
    _, phases["encode_prores_master (encode_master, prores_aw)"] = timed(
        lambda: encode_master(iter(out16), tmp / "master.mov", width=w, height=h, fps=fps, codec="prores"))
    yuv, conv = timed(lambda: [_rgb_to_ycbcr_frame(f, "yuv422p10le") for f in out16])
    prores: dict[str, dict[str, float]] = {"rgb16_to_yuv422p10 (numpy, in encode_master)": conv}
    for enc in ("prores_aw", "prores_ks"):
        for threads in ("1", "slice", "frame"):
            try:
                _, prores[f"{enc} threads={threads}"] = timed(
                    lambda enc=enc, threads=threads, yuv=yuv: prores_encode(yuv, tmp / f"{enc}.mov", enc, fps, threads))
            except (av.FFmpegError, ValueError) as e:  # a threads mode the encoder refuses
                prores[f"{enc} threads={threads}"] = {"error": str(e)}
            print(f"  {enc} threads={threads}: {prores[f'{enc} threads={threads}']}", flush=True)
    del yuv
    result: dict[str, Any] = {"frames": n, "size": f"{w}x{h}", "phases": phases, "prores": prores,
                              "prores_in_encode_master": prores_in_reel(out16, w, h, fps, tmp)}
    if upscale_frames > 0:
        from models.upscale import Upscale

        few = restored.slice(0, min(upscale_frames, n))
        result["upscale_uhd"] = {}
        for runtime in ("torch", "auto"):  # PyTorch eager vs the runtime `auto` picks (models/sr_runtime.py)
            up = Upscale(target="uhd", runtime=runtime)
            up.process(few.slice(0, 1))  # loads, exports and compiles once: not a per-frame cost
            (big, rep), t = timed(lambda up=up: up.process(few))
            result["upscale_uhd"][runtime] = {
                **t, "frames": few.num_frames, "out_size": f"{big.width}x{big.height}", "ran": rep.get("runtime"),
                "per_frame_wall_s": round(t["wall_s"] / few.num_frames, 3),
                "per_frame_cpu_s": round(t["cpu_s"] / few.num_frames, 3)}
            print(f"  upscale uhd, runtime={runtime}: {result['upscale_uhd'][runtime]}", flush=True)
    return result


def prores_in_reel(out16: Any, w: int, h: int, fps: Fraction, tmp: Path) -> dict[str, Any]:
    """The ProRes delivery master as Reel encodes it (infra.media.encode_master: numpy RGB -> 10-bit
    4:2:2, then the encoder), with each encoder and thread type in turn: fps, and whether the bytes equal
    those of Reel's choice (`_MASTER_CODECS["prores"]`)."""
    import dataclasses
    import hashlib

    from infra import media

    chosen = media._MASTER_CODECS["prores"]
    res: dict[str, Any] = {"reel_uses": f"{chosen.encoder}, {chosen.threads} threads"}
    digests = {}
    try:
        for enc in ("prores_aw", "prores_ks"):
            for threads in ("SLICE", "FRAME"):
                media._MASTER_CODECS["prores"] = dataclasses.replace(chosen, encoder=enc, threads=threads)
                dst = tmp / f"master-{enc}-{threads}.mov"
                _, t = timed(lambda dst=dst: media.encode_master(iter(out16), dst, width=w, height=h, fps=fps,
                                                                  codec="prores"))
                digests[(enc, threads)] = hashlib.sha256(dst.read_bytes()).hexdigest()
                dst.unlink()
                res[f"{enc} {threads}"] = {**t, "fps": round(len(out16) / t["wall_s"], 2)}
                print(f"  encode_master {enc} {threads}: {res[f'{enc} {threads}']}", flush=True)
    finally:
        media._MASTER_CODECS["prores"] = chosen
    ref = digests[(chosen.encoder, chosen.threads)]
    for (enc, threads), d in digests.items():
        res[f"{enc} {threads}"]["same_bytes_as_reels_choice"] = d == ref
    return res


# --- (c) whole reel restore processes ---------------------------------------------------------


# The run's log lines that mark its phases (Prefect's console format: HH:MM:SS.mmm | LEVEL | message)
_MARKS = (("api_start", "first", r"Starting temporary server"),
          ("flow_start", "first", r"Beginning flow run"),
          ("ingest_end", "first", r"Task run 'ingest-[^']*' - Finished"),
          ("restore_start", "first", r" 0 of \d+ frames restored"),
          ("restore_end", "last", r"frames restored"),
          ("publish_end", "first", r"Task run 'publish-[^']*' - Finished"),
          ("flow_end", "first", r"Flow run '[^']*' - Finished in state"),
          ("api_stop", "first", r"Stopping temporary server"))
# phase -> (from mark, to mark)
PHASES = {"start-up (imports, Prefect API, Dask cluster)": ("start", "flow_start"),
          "ingest (probe, hash, mezzanine, shot scores)": ("flow_start", "ingest_end"),
          "shot table, bindings": ("ingest_end", "restore_start"),
          "restore pieces + QC (workers)": ("restore_start", "restore_end"),
          "QC report + publish": ("restore_end", "publish_end"),
          "flow end": ("publish_end", "flow_end"),
          "shut-down (cluster, API), copy to --out, exit": ("flow_end", "exit")}


def timeline(output: str, t0: float) -> dict[str, float]:
    """Seconds from the process start to each mark found in a run's console output."""
    import datetime as dt
    import re

    day = dt.datetime.fromtimestamp(t0).date()
    events = []
    for line in output.splitlines():
        m = re.match(r"(\d\d):(\d\d):(\d\d(?:\.\d+)?) \| \w+\s*\| (.*)", line)
        if m:
            at = dt.datetime.combine(day, dt.time(int(m[1]), int(m[2]))).timestamp() + float(m[3])
            if at < t0 - 43200:  # past midnight
                at += 86400
            events.append((at - t0, m[4]))
    marks: dict[str, float] = {}
    for name, which, pattern in _MARKS:
        found = [t for t, msg in events if re.search(pattern, msg)]
        if found:
            marks[name] = round(found[0] if which == "first" else found[-1], 2)
    return marks


def process_kind(cmdline: str, root: bool) -> str:
    if root:
        return "reel (flow process)"
    if "uvicorn" in cmdline:
        return "Prefect API server"
    if "spawn_main" in cmdline:
        return "Dask workers"
    if "_probe" in cmdline:
        return "media probe"
    return "other"


class TreeCPU:
    """CPU seconds of a process and its descendants, by kind, from /proc (sampled every 0.1 s; Linux)."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid, self.last = pid, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            try:
                children: dict[int, list[int]] = {}
                for d in os.listdir("/proc"):
                    if d.isdigit():
                        try:
                            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                        except (OSError, IndexError, ValueError):
                            continue
                        children.setdefault(ppid, []).append(int(d))
                todo = [self.pid]
                while todo:
                    p = todo.pop()
                    todo += children.get(p, [])
                    try:
                        f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                        cmd = self.last.get(p, (0.0, ""))[1] or Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ")
                        self.last[p] = ((int(f[11]) + int(f[12])) / tick, cmd)
                    except (OSError, IndexError, ValueError):
                        continue
            except OSError:
                return
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        kinds: dict[str, float] = {}
        for p, (cpu, cmd) in self.last.items():
            k = process_kind(cmd, p == self.pid)
            kinds[k] = round(kinds.get(k, 0.0) + cpu, 2)
        return kinds


def reel_restore(src: Path, recipe: str, tmp: Path, tag: str, tree: Path | None = None) -> dict[str, Any]:
    """One whole `reel restore` process (of the working tree, or of `tree`, a checkout of another revision):
    wall and CPU seconds, the phases of its timeline, CPU by process kind, and the pieces' worker laps."""
    env = {**os.environ, "REEL_STORE": str(tmp / f"store-{tag}")}
    env.pop("PREFECT_API_URL", None)
    out = tmp / f"out-{tag}"
    root = tree or ROOT
    env["PYTHONPATH"] = str(root)
    cmd = [sys.executable, "-m", "flows.cli", "restore", str(src), "--recipe", recipe, "--out", str(out)]
    c0, t0, wall0 = _children_cpu(), time.time(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeCPU(proc.pid) if Path("/proc/self/stat").exists() else None
    output, _ = proc.communicate()
    wall, cpu = time.perf_counter() - wall0, _children_cpu() - c0
    by_kind = sampler.stop() if sampler else {}
    if proc.returncode != 0:
        raise SystemExit(f"reel restore ({tag}) failed ({proc.returncode}):\n{output[-3000:]}")
    marks = {"start": 0.0, **timeline(output, t0), "exit": round(wall, 2)}
    phases = {name: round(marks[b] - marks[a], 2) for name, (a, b) in PHASES.items() if a in marks and b in marks}
    laps: dict[str, float] = {}
    for rec in (tmp / f"store-{tag}" / "work").rglob("shot*-p*.json"):
        for k, v in json.loads(rec.read_text()).get("timing_s", {}).items():
            laps[k] = round(laps.get(k, 0.0) + v, 2)
    shutil.rmtree(tmp / f"store-{tag}", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "marks": marks, "phases": phases,
            "cpu_by_process": by_kind, "piece_laps_s": laps}


# --- report -----------------------------------------------------------------------------------


def estimate(per_frame_wall: float, per_frame_cpu: float, fixed: float, cores_here: int) -> dict[str, Any]:
    """A 144,000-frame feature: core-hours from the measured CPU per frame (and from wall x cores here,
    the upper bound when cores sit idle), wall hours here, and on a 64-core node assuming linear scaling."""
    core_s = max(per_frame_cpu, 1e-9) * FEATURE_FRAMES
    core_s_wall = per_frame_wall * cores_here * FEATURE_FRAMES
    return {"core_hours_cpu_time": round(core_s / 3600, 1),
            "core_hours_wall_x_cores": round(core_s_wall / 3600, 1),
            f"wall_hours_this_machine_{cores_here}_cores": round((fixed + per_frame_wall * FEATURE_FRAMES) / 3600, 1),
            f"wall_hours_{NODE_CORES}_core_node_linear_assumed":
                round(core_s_wall / NODE_CORES / 3600, 2),
            f"days_{NODE_CORES}_core_node_linear_assumed": round(core_s_wall / NODE_CORES / 86400, 2)}


def checkout(rev: str, dst: Path) -> Path:
    """A detached worktree of `rev` at dst (imported with this virtual environment, as refactor_check does)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(dst), rev], check=True)
    return dst


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1920x1080", help="WxH of the test clip")
    ap.add_argument("--frames", type=int, default=48, help="frames for the in-process per-phase profile")
    ap.add_argument("--frames-short", type=int, default=48, help="short length of the whole-process runs")
    ap.add_argument("--frames-long", type=int, default=240, help="long length of the whole-process runs")
    ap.add_argument("--recipe", default="defects", help="built-in recipe profiled against the ffmpeg chain")
    ap.add_argument("--restore-recipes", default=None,
                    help="comma-separated recipes run as whole processes (default: identity and --recipe)")
    ap.add_argument("--base", default=None, help="git revision whose `reel restore` runs side by side with the "
                                                 "working tree's (same sources, interleaved): before/after")
    ap.add_argument("--upscale-frames", type=int, default=2, help="frames through Upscale(target=uhd); 0 skips")
    ap.add_argument("--skip", default="", help="comma-separated: phases,restore")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.lower().split("x"))
    if not args.frames_short < args.frames_long:
        raise SystemExit("--frames-short must be less than --frames-long")
    skip = set(filter(None, args.skip.split(",")))
    recipes = args.restore_recipes.split(",") if args.restore_recipes else ["identity", args.recipe]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ffmpeg = ensure_ffmpeg()
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "size": f"{w}x{h}", "recipe": args.recipe, "frames_phases": args.frames,
        "frames_short": args.frames_short, "frames_long": args.frames_long, "cores": cores,
        "machine": platform.platform(), "load_average_at_start": os.getloadavg(),
        "ffmpeg": subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0],
        "source": f"{OLDFILM.name} (205 frames, played again from the start for longer clips), Lanczos to "
                  f"{w}x{h}, ProRes 422 HQ 10-bit (prores_aw)",
        "ffmpeg_jobs": FFMPEG_JOBS, "restore_recipes": recipes, "base": args.base}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reel-bench-throughput-") as tmp_s:
        tmp = Path(tmp_s)
        base_tree = checkout(args.base, tmp / "base") if args.base and "restore" not in skip else None
        try:
            lengths = sorted({args.frames_short, args.frames_long, args.frames})
            srcs = {}
            for n in lengths:
                srcs[n] = tmp / f"src-{n}.mov"
                make_source(ffmpeg, srcs[n], (w, h), n)
            import av

            with av.open(str(srcs[lengths[-1]])) as c:
                fps = Fraction(c.streams.video[0].average_rate)
                got = sum(1 for _ in c.demux(c.streams.video[0]) if _.size)
            if got < lengths[-1]:
                raise SystemExit(f"the source clip has only {got} frames of {lengths[-1]}")
            print(f"sources: {w}x{h} ProRes 422 HQ, {', '.join(map(str, lengths))} frames at {fps} fps", flush=True)

            # (a) ffmpeg jobs, both lengths
            ff: dict[str, dict[str, Any]] = {}
            for name, vf in FFMPEG_JOBS.items():
                ff[name] = {str(n): ffmpeg_job(ffmpeg, srcs[n], tmp / f"ff-{name}.mkv", vf)
                            for n in (args.frames_short, args.frames_long)}
                print(f"ffmpeg {name}: {ff[name]}", flush=True)
            report["ffmpeg_runs"] = ff

            # (c) whole reel restore processes, both lengths (with --base: the base revision's run, then ours)
            if "restore" not in skip:
                trees: dict[str, Path | None] = {"reel_restore_runs": None}
                if base_tree is not None:
                    trees = {"reel_restore_runs_base": base_tree, **trees}
                for key in trees:
                    report[key] = {r: {} for r in recipes}
                for recipe in recipes:
                    for n in (args.frames_short, args.frames_long):
                        for key, tree in trees.items():
                            tag = f"{recipe}-{n}-{'base' if tree else 'head'}"
                            run = reel_restore(srcs[n], recipe, tmp, tag, tree)
                            report[key][recipe][str(n)] = run
                            print(f"reel restore --recipe {recipe}, {n} frames ({'base ' + args.base if tree else 'this tree'}): "
                                  f"{run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU; phases {run['phases']}; "
                                  f"CPU by process {run['cpu_by_process']}", flush=True)
        finally:
            if base_tree is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)

        # (b) in-process per phase
        if "phases" not in skip:
            print(f"in-process phases, {args.frames} frames, recipe {args.recipe} ...", flush=True)
            report["in_process"] = in_process(srcs[args.frames], args.recipe, fps, tmp, args.upscale_frames)
    report["bench_wall_s"] = round(time.perf_counter() - t_start, 1)
    summarise(report, args)
    (out_dir / "throughput.json").write_text(json.dumps(report, indent=1))
    print_table(report)
    print(f"\nwrote {out_dir / 'throughput.json'}")
    return report


BASELINES = {"identity": "ffv1_copy"}  # recipe -> its plain ffmpeg job (any other recipe: the defects chain)


def restore_rows(runs: dict[str, Any], summary: dict[str, Any], ff_fit: dict[str, Any],
                 args: argparse.Namespace) -> dict[str, Any]:
    """Per recipe: Reel's fps at the long length against its ffmpeg job's, the fixed + per-frame fit, the
    phases of the long run and its CPU by process kind."""
    s, lg = str(args.frames_short), str(args.frames_long)
    rows = {}
    for recipe, r in runs.items():
        base = BASELINES.get(recipe, "ffmpeg_defects_chain")
        fit = fit_fixed((args.frames_short, r[s]["wall_s"]), (args.frames_long, r[lg]["wall_s"]))
        cpu_fit = fit_fixed((args.frames_short, r[s]["cpu_s"]), (args.frames_long, r[lg]["cpu_s"]))
        fps = args.frames_long / r[lg]["wall_s"]
        ff_fps = summary["ffmpeg_fps_long"][base]
        per_frame_ratio = ff_fit[base]["per_frame_s"] / fit["per_frame_s"] if fit["per_frame_s"] > 0 else None
        rows[recipe] = {"vs": base, "reel_fps_long": round(fps, 3), "ffmpeg_fps_long": ff_fps,
                        "ratio_whole_process": round(fps / ff_fps, 4),
                        "ratio_per_frame_cost": round(per_frame_ratio, 4) if per_frame_ratio else None,
                        "fixed_s": fit["fixed_s"], "per_frame_s": fit["per_frame_s"],
                        "cpu_fixed_s": cpu_fit["fixed_s"], "cpu_per_frame_s": cpu_fit["per_frame_s"],
                        "cores_busy_per_frame": round(cpu_fit["per_frame_s"] / fit["per_frame_s"], 2)
                        if fit["per_frame_s"] > 0 else None,
                        "phases_long": r[lg].get("phases", {}), "phases_short": r[s].get("phases", {}),
                        "cpu_by_process_long": r[lg].get("cpu_by_process", {}),
                        "cpu_by_process_short": r[s].get("cpu_by_process", {}),
                        "piece_laps_long_s": r[lg].get("piece_laps_s", {})}
    return rows


def summarise(report: dict[str, Any], args: argparse.Namespace) -> None:
    s, lg = str(args.frames_short), str(args.frames_long)
    ff = report["ffmpeg_runs"]
    summary: dict[str, Any] = {}
    ff_fit = {k: fit_fixed((args.frames_short, v[s]["wall_s"]), (args.frames_long, v[lg]["wall_s"]))
              for k, v in ff.items()}
    summary["ffmpeg_fps_long"] = {k: round(args.frames_long / v[lg]["wall_s"], 2) for k, v in ff.items()}
    summary["ffmpeg_fit"] = ff_fit
    runs = report.get("reel_restore_runs")
    if runs:
        summary["reel_vs_ffmpeg"] = restore_rows(runs, summary, ff_fit, args)
        if report.get("reel_restore_runs_base"):
            summary["reel_vs_ffmpeg_base"] = restore_rows(report["reel_restore_runs_base"], summary, ff_fit, args)
        if args.recipe in summary["reel_vs_ffmpeg"]:
            d = summary["reel_vs_ffmpeg"][args.recipe]
            summary["feature_estimate"] = {
                args.recipe: estimate(d["per_frame_s"], d["cpu_per_frame_s"], d["fixed_s"], report["cores"])}
    ip = report.get("in_process")
    if ip:
        total = sum(v["wall_s"] for v in ip["phases"].values())
        summary["in_process_total_wall_s"] = round(total, 2)
        summary["in_process_fps"] = round(ip["frames"] / total, 3)
        summary["phase_share"] = {k: round(v["wall_s"] / total, 4) for k, v in
                                  sorted(ip["phases"].items(), key=lambda kv: -kv[1]["wall_s"])}
        summary["phase_fps"] = {k: round(ip["frames"] / v["wall_s"], 2) for k, v in ip["phases"].items()
                                if v["wall_s"] > 0}
        summary["slowest_phase"] = next(iter(summary["phase_share"]))
        enc = [k for k in ip["phases"] if k.startswith("encode")]
        summary["an_encode_is_slowest"] = summary["slowest_phase"] in enc
        summary["prores_fps"] = {k: round(ip["frames"] / v["wall_s"], 2) for k, v in ip["prores"].items()
                                 if "wall_s" in v}
        summary["prores_in_encode_master"] = ip["prores_in_encode_master"]
        summary["prores_reel_uses"] = ip["prores_in_encode_master"]["reel_uses"]
        if ip.get("upscale_uhd"):
            u = ip["upscale_uhd"]
            summary["upscale_uhd_s_per_frame"] = {rt: v["per_frame_wall_s"] for rt, v in u.items()}
            if "torch" in u and "auto" in u and u["auto"]["per_frame_wall_s"] > 0:
                summary["upscale_uhd_speedup_auto_vs_torch"] = round(
                    u["torch"]["per_frame_wall_s"] / u["auto"]["per_frame_wall_s"], 2)
            if "feature_estimate" in summary:
                d = summary["reel_vs_ffmpeg"][args.recipe]
                best = u.get("auto", next(iter(u.values())))
                # uhd = the recipe's per-frame cost + the upscale's (the `colour` stage of `uhd` is not measured)
                summary["feature_estimate"]["uhd (defects + upscale; colour not measured)"] = estimate(
                    d["per_frame_s"] + best["per_frame_wall_s"], d["cpu_per_frame_s"] + best["per_frame_cpu_s"],
                    d["fixed_s"], report["cores"])
    summary["assumption"] = (f"64-core figures assume throughput scales linearly per core from the {report['cores']}"
                             "-core measurement (wall x cores here / 64); not measured")
    report["summary"] = summary


def print_table(report: dict[str, Any]) -> None:
    s = report["summary"]
    lg = report["frames_long"]
    print(f"\n== throughput at {report['size']}, {report['cores']} cores; load average at start "
          f"{', '.join(f'{x:.1f}' for x in report['load_average_at_start'])} ==")
    if "reel_vs_ffmpeg" in s:
        print(f"{'job':<44}{'reel fps':>10}{'ffmpeg fps':>12}{'ratio':>8}{'ratio/frame':>13}"
              f"{'fixed s':>9}{'s/frame':>9}{'cores busy':>11}")
        tables = [("", s["reel_vs_ffmpeg"])]
        if "reel_vs_ffmpeg_base" in s:
            tables = [(f" (base {report['base']})", s["reel_vs_ffmpeg_base"]), (" (this tree)", s["reel_vs_ffmpeg"])]
        for recipe in report["restore_recipes"]:
            for label, rows in tables:
                r = rows[recipe]
                print(f"{'reel restore --recipe ' + recipe + label:<44}{r['reel_fps_long']:>10.3f}"
                      f"{r['ffmpeg_fps_long']:>12.2f}{r['ratio_whole_process']:>8.3f}"
                      f"{r['ratio_per_frame_cost'] or 0:>13.3f}{r['fixed_s']:>9.1f}{r['per_frame_s']:>9.3f}"
                      f"{r['cores_busy_per_frame'] or 0:>11.2f}")
        print(f"  (fps and ratio at {lg} frames; fixed + per-frame solved from two lengths: noise on a shared machine "
              "moves both; 'cores busy' is CPU per frame / wall per frame, noisier still)")
        print(f"\nwhere a whole run's time goes ({lg} frames; seconds of wall time per phase of its log, CPU seconds "
              "per process kind):")
        for recipe in report["restore_recipes"]:
            for label, rows in tables:
                r = rows[recipe]
                print(f"  {recipe}{label}: " + "; ".join(f"{k} {v:.1f}" for k, v in r["phases_long"].items()))
                print("    CPU: " + "; ".join(f"{k} {v:.1f}" for k, v in r["cpu_by_process_long"].items())
                      + "; pieces (worker wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["piece_laps_long_s"].items()))
    if "phase_share" in s:
        ip = report["in_process"]
        print(f"\nin-process phases ({ip['frames']} frames, {s['in_process_fps']} fps overall):")
        for k, share in s["phase_share"].items():
            print(f"  {k:<52}{ip['phases'][k]['wall_s']:>8.2f} s{share * 100:>7.1f} %"
                  f"{s['phase_fps'].get(k, 0):>9.2f} fps")
        print(f"  slowest: {s['slowest_phase']} (an encode: {s['an_encode_is_slowest']})")
        print("ProRes encoders on prepared yuv frames (fps):")
        for k, v in s["prores_fps"].items():
            print(f"  {k:<52}{v:>8.2f}")
        print("ProRes master as Reel encodes it (encode_master: RGB -> 10-bit 4:2:2 in numpy, then the encoder; fps):")
        for k, v in s["prores_in_encode_master"].items():
            if isinstance(v, dict):
                print(f"  {k:<52}{v['fps']:>8.2f}   same bytes as Reel's choice: {v['same_bytes_as_reels_choice']}")
        print(f"  Reel uses: {s['prores_reel_uses']}")
        if "upscale_uhd_s_per_frame" in s:
            print("upscale to UHD (own model): " + ", ".join(
                f"runtime={rt} ({ip['upscale_uhd'][rt]['ran']}) {v} s/frame" for rt, v in s["upscale_uhd_s_per_frame"].items())
                  + (f"; auto is {s['upscale_uhd_speedup_auto_vs_torch']}x PyTorch eager"
                     if "upscale_uhd_speedup_auto_vs_torch" in s else ""))
    if "feature_estimate" in s:
        print(f"\n100-minute feature ({FEATURE_FRAMES} frames) at {report['size']}:")
        for k, v in s["feature_estimate"].items():
            print(f"  {k}: {v}")
        print(f"  ({s['assumption']})")


if __name__ == "__main__":
    main()
