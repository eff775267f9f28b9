"""Train the `interpolate` stage's learned refinement (`models/weights/reel-interp.safetensors`).

    python -m benchmarks.train_interp [--out models/weights/reel-interp.safetensors] [--steps N]
        [--minutes M] [--threads 2] [--seed S]

What it learns: the flow method warps both neighbours to time t (models.interpolate, DIS `fine`,
Super SloMo intermediate flow); a small CNN (models.interpolate.make_refiner, ~19k parameters) sees the
two warped frames, their disagreement, the plain cross-fade and t, and predicts a per-pixel blending
weight and an RGB residual. Its last layer starts at zero, so training starts from the flow method.

Data (no network needed): clean renders of models.synth, seeds TRAIN_SEEDS (the benchmark and the
tests use other seeds), 3 shots of 25 frames at 320x240; examples are (frame i, frame i+k, the true
frame in between) for k = 2 (t = 1/2) and k = 3 (t = 1/3, 2/3), never across a cut, cut into random
64x64 crops with random flips. The real films in ../shared/data/oldfilm are not used (held out).
L1 loss, Adam (lr 2e-3, cosine to 5 %), batch 16, seeded.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from models.interpolate import WEIGHTS, Interpolator, features, make_refiner, refine_torch
from models.synth import SynthConfig, render_film

TRAIN_SEEDS = list(range(200, 216))
CLEAN = dict(blotches=False, scratches=False, flicker=False, grain=False, fade=False, weave=False)
CROP = 64


def examples(seeds: list[int], crops_per: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(features, g0, g1, t, target) crops as float16 arrays (N, C, CROP, CROP) / (N,)."""
    feats, g0s, g1s, ts, tgts = [], [], [], [], []
    it = Interpolator("flow", "fine")
    for seed in seeds:
        f = render_film(SynthConfig(shots=3, frames_per_shot=25, seed=seed, **CLEAN))
        x = f.clean.astype(np.float32) / 255
        bounds = [0, *f.truth["cuts"], x.shape[0]]
        for a0, b0 in zip(bounds, bounds[1:], strict=False):
            for i in range(a0, b0 - 3, 2):
                k = 2 if rng.random() < 0.6 else 3
                pr = it.pair(x[i], x[i + k])
                for j in range(1, k):
                    t = j / k
                    g0, g1, _, _ = pr.warped(t)
                    ft = features(x[i], x[i + k], g0, g1, t)
                    h, w = ft.shape[:2]
                    for _ in range(crops_per):
                        y, xx = rng.integers(0, h - CROP), rng.integers(0, w - CROP)
                        sl = (slice(y, y + CROP), slice(xx, xx + CROP))
                        flip = rng.random() < 0.5

                        def cut(a: np.ndarray, sl: tuple = sl, flip: bool = flip) -> np.ndarray:
                            c = a[sl]
                            return (c[:, ::-1] if flip else c).transpose(2, 0, 1).astype(np.float16)

                        feats.append(cut(ft))
                        g0s.append(cut(g0))
                        g1s.append(cut(g1))
                        tgts.append(cut(x[i + j]))
                        ts.append(t)
        print(f"seed {seed}: {len(ts)} crops", flush=True)
    return np.stack(feats), np.stack(g0s), np.stack(g1s), np.asarray(ts, np.float32), np.stack(tgts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(WEIGHTS))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--minutes", type=float, default=12.0, help="stop after this long")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=len(TRAIN_SEEDS), help="how many training seeds to render")
    ap.add_argument("--width", type=int, default=24)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    F, G0, G1, T, Y = examples(TRAIN_SEEDS[:args.seeds], 3, rng)
    print(f"{len(T)} crops in {time.time() - t0:.0f} s", flush=True)
    net = make_refiner(args.width)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    t1 = time.time()
    losses = []
    step = 0
    for step in range(args.steps):
        idx = rng.integers(0, len(T), 16)
        f, g0, g1, y = (torch.from_numpy(a[idx].astype(np.float32)) for a in (F, G0, G1, Y))
        t = torch.from_numpy(T[idx]).view(-1, 1, 1, 1)
        loss = (refine_torch(net, f, g0, g1, t) - y).abs().mean()
        base = ((1 - t) * g0 + t * g1 - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append((loss.item(), base.item()))
        if step % 200 == 0:
            m = np.mean(losses[-200:], axis=0)
            print(f"step {step}: L1 {m[0]:.5f} (flow {m[1]:.5f}), {time.time() - t1:.0f} s", flush=True)
        if time.time() - t1 > args.minutes * 60:
            break
    from safetensors.torch import save_file

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out))
    m = np.mean(losses[-200:], axis=0)
    meta = {"steps": step + 1, "crops": int(len(T)), "seeds": TRAIN_SEEDS[:args.seeds], "width": args.width,
            "final_l1": round(float(m[0]), 5), "flow_l1": round(float(m[1]), 5),
            "params": sum(p.numel() for p in net.parameters()), "seconds": round(time.time() - t0)}
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
