"""Film-scan ingest benchmark (#22): a 2K 10-bit DPX sequence ingested by Reel vs a plain read of the same
files with the same library, side by side in one run; memory against the number of frames; 4K frames.

    .venv/bin/python -m benchmarks.scans [--frames 48] [--size 2048x1556] [--rounds 3]
                                         [--transfer log|display] [--out bench-out]

1. speed: FRAMES 10-bit DPX frames (printing density by default) written here. The files are read once
   first, so both sides read from the page cache; then, ROUNDS times, interleaved:
   - plain: a loop that opens each file with OpenImageIO and reads its pixels as uint16
     (`ImageInput.open(path).read_image(format="uint16")`), nothing else;
   - ingest: `infra.pipeline.scans.ingest_sequence` into a fresh local store: list the sequence, check
     every frame's header against the first (and a DPX's sizes/offsets against the file), read its
     pixels with OpenImageIO, convert them to the working space (OCIO, log scans), score them for the
     shot detector, hash every file and store it untouched, write the chunk lists, the listing, the
     shot table and the ingest record.
   ratio = plain seconds / ingest seconds (medians). Goal >= 0.8. Also each side's CPU seconds per frame and
   how many cores the ingest kept busy: the plain read is one thread; the ingest does more work (it also
   copies and hashes every file) on two threads, so its ratio depends on a second core being free.
2. memory: peak RSS (VmHWM of a child process doing only the ingest) for N and 4N frames of the same
   size (--mem-size, default 1024x778, to keep the disk use small). Goal: 4N / N <= 1.10.
3. 4K: the same child for N frames of 4096x3112: its peak RSS minus the 2K child's peak RSS, against
   what four times the frame size predicts for the frames held at once (the decoder's prefetch).
Writes OUT/scans.json and prints a table. Times on a shared 2-core machine are noisy: only the ratio of
runs made side by side means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_scan(folder: Path, frames: int, width: int, height: int, transfer: str) -> list[Path]:
    """FRAMES 10-bit DPX frames: a smooth picture with grain, moving, different in every frame."""
    from infra.sequence import FrameFormat, SequenceWriter, uint16_from_codes

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fmt = FrameFormat("dpx", 10, transfer="Printing density" if transfer == "log" else "ITU-R 709-4",
                      fps=Fraction(24))
    writer = SequenceWriter(folder, "reel1", fmt, start=86400)
    grain = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    for i in range(frames):
        base = 300 + 250 * np.sin((x + 9 * i) / 97.0) * np.cos(y / 53.0)
        codes = np.clip(base[..., None] + np.roll(grain, i * 7, axis=1) + [0, 20, 40], 0, 1023)
        writer.write(uint16_from_codes(codes.astype(np.uint16), 10))
    return writer.paths


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def plain_read(paths: list[Path]) -> float:
    import OpenImageIO as oiio

    t0 = time.perf_counter()
    for p in paths:
        inp = oiio.ImageInput.open(str(p))
        pixels = inp.read_image(format="uint16")
        inp.close()
        assert pixels is not None
    return time.perf_counter() - t0


def ingest_once(folder: Path, store: Path) -> float:
    from infra.pipeline.scans import ingest_sequence
    from infra.settings import Settings

    shutil.rmtree(store, ignore_errors=True)
    os.environ["REEL_STORE"] = str(store)
    t0 = time.perf_counter()
    record = ingest_sequence(str(folder), "bench", Settings())
    seconds = time.perf_counter() - t0
    assert record.frames == len(list(folder.glob("*.dpx")))
    return seconds


def child_peak(folder: Path, store: Path) -> dict:
    """Ingest in a fresh interpreter; its peak RSS (MiB) and seconds."""
    # VmHWM (this process image's peak), not ru_maxrss: Linux keeps ru_maxrss across execve, so a child
    # would report the parent's peak (the frames it rendered) when that is higher
    code = ("import json, sys\n"
            "from pathlib import Path\n"
            "from benchmarks.scans import ingest_once\n"
            "s = ingest_once(Path(sys.argv[1]), Path(sys.argv[2]))\n"
            "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
            "print(json.dumps({'seconds': s, 'peak_mib': hwm / 1024}))")
    out = subprocess.run([sys.executable, "-c", code, str(folder), str(store)], check=True, capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="2048x1556")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--transfer", choices=["log", "display"], default="log")
    ap.add_argument("--mem-frames", type=int, default=24)
    ap.add_argument("--mem-size", default="1024x778")
    ap.add_argument("--k4-frames", type=int, default=8)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    os.environ.setdefault("REEL_CHUNK_FRAMES", "48")
    result: dict = {"frames": args.frames, "size": args.size, "transfer": args.transfer,
                    "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="reel-bench-scans-") as tmp:
        tmpdir = Path(tmp)
        folder = tmpdir / "scan"
        paths = make_scan(folder, args.frames, width, height, args.transfer)
        for p in paths:  # into the page cache: both sides read from memory
            p.read_bytes()
        ingest_once(folder, tmpdir / "store")  # imports and first-call costs out of the timed rounds
        plain, ingest, plain_cpu, ingest_cpu = [], [], [], []
        for _ in range(args.rounds):
            c0 = cpu_seconds()
            plain.append(plain_read(paths))
            c1 = cpu_seconds()
            ingest.append(ingest_once(folder, tmpdir / "store"))
            c2 = cpu_seconds()
            plain_cpu.append(c1 - c0)
            ingest_cpu.append(c2 - c1)
        p_s, i_s = statistics.median(plain), statistics.median(ingest)
        result.update(plain_s=plain, ingest_s=ingest, plain_fps=args.frames / p_s, ingest_fps=args.frames / i_s,
                      ratio=p_s / i_s, ratio_per_round=[a / b for a, b in zip(plain, ingest, strict=True)],
                      plain_cpu_ms_per_frame=1000 * statistics.median(plain_cpu) / args.frames,
                      ingest_cpu_ms_per_frame=1000 * statistics.median(ingest_cpu) / args.frames,
                      ingest_threads_busy=statistics.median(ingest_cpu) / i_s)
        shutil.rmtree(tmpdir / "store", ignore_errors=True)
        shutil.rmtree(folder)
        if not args.skip_memory:
            mw, mh = (int(v) for v in args.mem_size.split("x"))
            peaks = {}
            for n in (args.mem_frames, 4 * args.mem_frames):
                f = tmpdir / f"mem{n}"
                make_scan(f, n, mw, mh, args.transfer)
                peaks[n] = child_peak(f, tmpdir / "store")
                shutil.rmtree(f)
                shutil.rmtree(tmpdir / "store", ignore_errors=True)
            small, big = peaks[args.mem_frames], peaks[4 * args.mem_frames]
            result["memory"] = {"size": args.mem_size, "frames": list(peaks), "peak_mib": [p["peak_mib"] for p in
                                                                                          peaks.values()],
                                "ratio": big["peak_mib"] / small["peak_mib"]}
            k = {}
            for label, (w, h) in (("2k", (2048, 1556)), ("4k", (4096, 3112))):
                f = tmpdir / f"k{label}"
                make_scan(f, args.k4_frames, w, h, args.transfer)
                k[label] = child_peak(f, tmpdir / "store")
                shutil.rmtree(f)
                shutil.rmtree(tmpdir / "store", ignore_errors=True)
            frame_mib = 4096 * 3112 * 3 * 2 / 2**20 - 2048 * 1556 * 3 * 2 / 2**20  # one more uint16 frame, 4K vs 2K
            result["k4"] = {"frames": args.k4_frames, "peak_2k_mib": k["2k"]["peak_mib"],
                            "peak_4k_mib": k["4k"]["peak_mib"], "extra_mib": k["4k"]["peak_mib"] - k["2k"]["peak_mib"],
                            "extra_frames_held": (k["4k"]["peak_mib"] - k["2k"]["peak_mib"]) / frame_mib,
                            "seconds_4k": k["4k"]["seconds"]}
    result["load_after"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scans.json").write_text(json.dumps(result, indent=2))
    print(f"{args.frames} frames {args.size} 10-bit DPX ({args.transfer}), medians of {args.rounds} rounds")
    print(f"  plain OpenImageIO read  {result['plain_fps']:6.1f} fps")
    print(f"  reel ingest             {result['ingest_fps']:6.1f} fps")
    print(f"  ratio (goal >= 0.8)     {result['ratio']:6.2f}   per round {[round(r, 2) for r in result['ratio_per_round']]}")
    print(f"  CPU per frame: plain {result['plain_cpu_ms_per_frame']:.1f} ms, ingest "
          f"{result['ingest_cpu_ms_per_frame']:.1f} ms (copy + sha256 + checks + shot scores); the ingest kept "
          f"{result['ingest_threads_busy']:.2f} cores busy")
    if "memory" in result:
        m = result["memory"]
        print(f"  peak RSS {m['size']}: {m['frames'][0]} frames {m['peak_mib'][0]:.0f} MiB, {m['frames'][1]} frames "
              f"{m['peak_mib'][1]:.0f} MiB: ratio {m['ratio']:.2f} (goal <= 1.10)")
        k = result["k4"]
        print(f"  peak RSS {k['frames']} frames: 2K {k['peak_2k_mib']:.0f} MiB, 4K {k['peak_4k_mib']:.0f} MiB "
              f"(+{k['extra_mib']:.0f} MiB = {k['extra_frames_held']:.1f} frames' worth); 4K ingest "
              f"{k['frames'] / k['seconds_4k']:.1f} fps")
    print(f"  load average before {result['load_before'][0]:.2f}, after {result['load_after'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
