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
    """First `frames` frames of the real old film, Lanczos-scaled to `size`, as 10-bit ProRes 422 HQ."""
    w, h = size
    run_process([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(OLDFILM),
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
    result: dict[str, Any] = {"frames": n, "size": f"{w}x{h}", "phases": phases, "prores": prores}
    if upscale_frames > 0:
        from models.upscale import Upscale

        up = Upscale(target="uhd")
        few = restored.slice(0, min(upscale_frames, n))
        (big, _), t = timed(lambda: up.process(few))
        result["upscale_uhd"] = {**t, "frames": few.num_frames, "out_size": f"{big.width}x{big.height}",
                                 "per_frame_wall_s": round(t["wall_s"] / few.num_frames, 3),
                                 "per_frame_cpu_s": round(t["cpu_s"] / few.num_frames, 3)}
        print(f"  upscale uhd: {result['upscale_uhd']}", flush=True)
    return result


# --- (c) whole reel restore processes ---------------------------------------------------------


def reel_restore(src: Path, recipe: str, tmp: Path, tag: str) -> dict[str, float]:
    reel = Path(sys.executable).parent / "reel"
    env = {**os.environ, "REEL_STORE": str(tmp / f"store-{tag}")}
    out = tmp / f"out-{tag}"
    cmd = [str(reel), "restore", str(src), "--recipe", recipe, "--out", str(out)]
    r = run_process(cmd, env)
    shutil.rmtree(tmp / f"store-{tag}", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return r


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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1920x1080", help="WxH of the test clip")
    ap.add_argument("--frames", type=int, default=48, help="frames for the in-process per-phase profile")
    ap.add_argument("--frames-short", type=int, default=48, help="short length of the whole-process runs")
    ap.add_argument("--frames-long", type=int, default=96, help="long length of the whole-process runs")
    ap.add_argument("--recipe", default="defects", help="built-in recipe profiled against the ffmpeg chain")
    ap.add_argument("--upscale-frames", type=int, default=2, help="frames through Upscale(target=uhd); 0 skips")
    ap.add_argument("--skip", default="", help="comma-separated: phases,restore")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.lower().split("x"))
    if not args.frames_short < args.frames_long:
        raise SystemExit("--frames-short must be less than --frames-long")
    skip = set(filter(None, args.skip.split(",")))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ffmpeg = ensure_ffmpeg()
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "size": f"{w}x{h}", "recipe": args.recipe, "frames_phases": args.frames,
        "frames_short": args.frames_short, "frames_long": args.frames_long, "cores": cores,
        "machine": platform.platform(), "load_average_at_start": os.getloadavg(),
        "ffmpeg": subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0],
        "source": f"{OLDFILM.name}, first frames, Lanczos to {w}x{h}, ProRes 422 HQ 10-bit (prores_aw)",
        "ffmpeg_jobs": FFMPEG_JOBS}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reel-bench-throughput-") as tmp_s:
        tmp = Path(tmp_s)
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
            raise SystemExit(f"the source film has only {got} frames; ask for fewer")
        print(f"sources: {w}x{h} ProRes 422 HQ, {', '.join(map(str, lengths))} frames at {fps} fps", flush=True)

        # (a) ffmpeg jobs, both lengths
        ff: dict[str, dict[str, Any]] = {}
        for name, vf in FFMPEG_JOBS.items():
            ff[name] = {str(n): ffmpeg_job(ffmpeg, srcs[n], tmp / f"ff-{name}.mkv", vf)
                        for n in (args.frames_short, args.frames_long)}
            print(f"ffmpeg {name}: {ff[name]}", flush=True)
        report["ffmpeg_runs"] = ff

        # (c) whole reel restore processes, both lengths
        if "restore" not in skip:
            runs: dict[str, dict[str, Any]] = {}
            for recipe in ("identity", args.recipe):
                runs[recipe] = {}
                for n in (args.frames_short, args.frames_long):
                    runs[recipe][str(n)] = reel_restore(srcs[n], recipe, tmp, f"{recipe}-{n}")
                    print(f"reel restore --recipe {recipe}, {n} frames: {runs[recipe][str(n)]}", flush=True)
            report["reel_restore_runs"] = runs

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
        pairs = {"identity": "ffv1_copy", args.recipe: "ffmpeg_defects_chain"}
        rows = {}
        for recipe, base in pairs.items():
            r = runs[recipe]
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
                            if fit["per_frame_s"] > 0 else None}
        summary["reel_vs_ffmpeg"] = rows
        d = rows[args.recipe]
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
        summary["prores_reel_uses"] = "prores_aw (infra.media._MASTER_CODECS), SLICE threads, thread_count 0"
        if "upscale_uhd" in ip and runs:
            u = ip["upscale_uhd"]
            d = summary["reel_vs_ffmpeg"][args.recipe]
            # uhd = the recipe's per-frame cost + the upscale's (the `colour` stage of `uhd` is not measured)
            summary["feature_estimate"]["uhd (defects + upscale; colour not measured)"] = estimate(
                d["per_frame_s"] + u["per_frame_wall_s"], d["cpu_per_frame_s"] + u["per_frame_cpu_s"],
                d["fixed_s"], report["cores"])
    summary["assumption"] = (f"64-core figures assume throughput scales linearly per core from the {report['cores']}"
                             "-core measurement (wall x cores here / 64); not measured")
    report["summary"] = summary


def print_table(report: dict[str, Any]) -> None:
    s = report["summary"]
    print(f"\n== throughput at {report['size']}, recipe {report['recipe']}, {report['cores']} cores ==")
    if "reel_vs_ffmpeg" in s:
        print(f"{'job':<34}{'reel fps':>10}{'ffmpeg fps':>12}{'ratio':>8}{'ratio/frame':>13}"
              f"{'fixed s':>9}{'s/frame':>9}{'cores busy':>11}")
        for recipe, r in s["reel_vs_ffmpeg"].items():
            print(f"{'reel restore --recipe ' + recipe:<34}{r['reel_fps_long']:>10.3f}{r['ffmpeg_fps_long']:>12.2f}"
                  f"{r['ratio_whole_process']:>8.3f}{r['ratio_per_frame_cost'] or 0:>13.3f}{r['fixed_s']:>9.1f}"
                  f"{r['per_frame_s']:>9.3f}{r['cores_busy_per_frame'] or 0:>11.2f}")
        print("  (fixed + per-frame solved from two lengths: noise on a shared machine moves both; 'cores busy'"
              " is CPU per frame / wall per frame, noisier still. ratio/frame compares the per-frame costs only)")
    if "phase_share" in s:
        ip = report["in_process"]
        print(f"\nin-process phases ({ip['frames']} frames, {s['in_process_fps']} fps overall):")
        for k, share in s["phase_share"].items():
            print(f"  {k:<52}{ip['phases'][k]['wall_s']:>8.2f} s{share * 100:>7.1f} %"
                  f"{s['phase_fps'].get(k, 0):>9.2f} fps")
        print(f"  slowest: {s['slowest_phase']} (an encode: {s['an_encode_is_slowest']})")
        print("ProRes delivery encodes (yuv frames prepared; fps):")
        for k, v in s["prores_fps"].items():
            print(f"  {k:<52}{v:>8.2f}")
        print(f"  Reel uses: {s['prores_reel_uses']}")
        if "upscale_uhd" in ip:
            print(f"upscale to UHD: {ip['upscale_uhd']['per_frame_wall_s']} s/frame wall, "
                  f"{ip['upscale_uhd']['per_frame_cpu_s']} s/frame CPU")
    if "feature_estimate" in s:
        print(f"\n100-minute feature ({FEATURE_FRAMES} frames) at {report['size']}:")
        for k, v in s["feature_estimate"].items():
            print(f"  {k}: {v}")
        print(f"  ({s['assumption']})")


if __name__ == "__main__":
    main()
