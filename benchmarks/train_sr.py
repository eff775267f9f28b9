"""Train Reel's default x2 super-resolution model (`models/weights/reel-sr-x2.safetensors`).

    python -m benchmarks.train_sr --out models/weights/reel-sr-x2.safetensors [--steps N] [--minutes M]
        [--seed S] [--film ../shared/data/oldfilm/four_films.mkv] [--threads 2]
        [--init CHECKPOINT --num-conv N --lr LR]   (experiments: warm start / deepen; not used for the shipped file)

What it learns: the `upscale` stage's evaluation target, clean video downscaled by area. Each example is
an HR crop (96x96 px, random flips/90-degree turns, 40 % of crops first shrunk by area by a random factor
in [0.4, 1) so detail comes at several scales), its LR twin made with cv2.INTER_AREA at 1/2 size, and
with 50 % probability the LR quantised to 8 bits as in an 8-bit transfer. 14 % of examples get a
film-like degradation for robustness: a mild Gaussian blur (sigma 0.3-1.0 HR px) before the downscale
(7 %), or grain-like noise on the LR (sigma 0.003-0.015, 7 %); the target stays the clean HR crop.
Sources are drawn 65 % natural images, 10 % synthetic frames, 25 % film frames (renormalised when
there is no film), images within a source in proportion to the square root of their area.

Data (no network needed), with held-out parts that training never sees (`benchmarks.upscale` and the
tests evaluate on them):
- natural images bundled with scikit-image that load offline: TRAIN_IMAGES; held out: HELDOUT_IMAGES
  (and "cat", which is the same photograph as "chelsea");
- clean (undegraded) frames rendered by `models.synth` with seeds SYNTH_TRAIN_SEEDS; the benchmark uses
  other seeds (SYNTH_HELDOUT_SEEDS);
- optionally real old film (`--film`, decoded with PyAV): every 3rd frame outside FILM_HELDOUT, the
  frame range of one whole film (The Great Train Robbery in `four_films.mkv`) kept for evaluation.

Network: SRVGGNetCompact (num_feat=32, num_conv=6, x2, PReLU), L1 loss, Adam (lr 1e-3, cosine to 2 %),
batch 16, weights averaged (EMA 0.995) and the average saved. Seeded (numpy and torch): the example
stream is identical from run to run; CPU float reductions may still make the last bits of the weights
differ between machines or thread counts.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.sr_net import SRVGGNetCompact, save_compact

TRAIN_IMAGES = ("astronaut", "coffee", "camera", "hubble_deep_field", "immunohistochemistry", "retina", "moon",
                "page", "text", "brick", "grass", "gravel", "clock", "colorwheel", "motorcycle_left")
HELDOUT_IMAGES = ("chelsea", "rocket", "coins")  # never used for training ("cat" is chelsea too)
SYNTH_TRAIN_SEEDS = tuple(range(100, 108))
SYNTH_HELDOUT_SEEDS = (1, 2, 3)
FILM_HELDOUT = (109, 157)  # decoded-frame range [start, end) of The Great Train Robbery in four_films.mkv
DEFAULT_FILM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oldfilm" / "four_films.mkv"

HR_PATCH = 96
NUM_FEAT, NUM_CONV = 32, 6


def skimage_rgb(name: str) -> np.ndarray:
    """An image bundled with scikit-image as (H, W, 3) float32 RGB in [0, 1]."""
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "motorcycle_left":  # left view of skimage.data.stereo_motorcycle()
            img = np.asarray(skimage.data.stereo_motorcycle()[0])
        else:
            img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def synth_clean_frames(seed: int, width: int = 480, height: int = 360, shots: int = 3,
                       frames_per_shot: int = 4) -> np.ndarray:
    """Clean frames of a synthetic film, (T, H, W, 3) float32 in [0, 1]."""
    from models.synth import SynthConfig, render_film

    off = dict(blotches=False, scratches=False, flicker=False, grain=False, fade=False, weave=False)
    film = render_film(SynthConfig(width=width, height=height, shots=shots, frames_per_shot=frames_per_shot,
                                   seed=seed, **off))
    return film.clean.astype(np.float32) / 255.0


def film_frames(path: Path, keep: Any = None) -> list[tuple[int, np.ndarray]]:
    """(index, (H, W, 3) float32 RGB) for decoded frames of `path` whose index passes `keep(index)`."""
    import av

    out = []
    with av.open(str(path)) as c:
        for i, fr in enumerate(c.decode(video=0)):
            if keep is None or keep(i):
                out.append((i, fr.to_ndarray(format="rgb24").astype(np.float32) / 255.0))
    return out


def area_down(hr: np.ndarray, factor: int = 2) -> np.ndarray:
    h, w = hr.shape[:2]
    return cv2.resize(hr, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def training_sources(film: Path | None) -> tuple[list[np.ndarray], list[str]]:
    images, names = [], []
    for n in TRAIN_IMAGES:
        images.append(skimage_rgb(n))
        names.append(f"skimage:{n}")
    for s in SYNTH_TRAIN_SEEDS:
        for t, f in enumerate(synth_clean_frames(s)):
            images.append(f)
            names.append(f"synth:{s}:{t}")
    if film is not None and film.is_file():
        a, b = FILM_HELDOUT
        for i, f in film_frames(film, lambda i: i % 3 == 0 and not a <= i < b):
            images.append(f)
            names.append(f"film:{i}")
    return images, names


class Sampler:
    """Seeded stream of (LR, HR) batches as (N, 3, h, w) float32 tensors."""

    def __init__(self, images: list[np.ndarray], names: list[str], seed: int) -> None:
        self.images = images
        self.rng = np.random.default_rng(seed)
        # sample groups evenly: natural images, synthetic frames, film frames
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n.split(":")[0], []).append(i)
        share = {"skimage": 0.65, "synth": 0.10, "film": 0.25}
        keys = sorted(groups)
        p = np.array([share.get(k, 0.2) for k in keys])
        self.groups = [groups[k] for k in keys]
        self.group_p = p / p.sum()
        # within a group, proportional to sqrt(area): bigger images hold more distinct crops, but the two
        # big, mostly flat ones (retina, hubble) must not crowd out the photographs
        self.item_p = [np.sqrt([images[i].shape[0] * images[i].shape[1] for i in g]) for g in self.groups]
        self.item_p = [q / q.sum() for q in self.item_p]

    def example(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.rng
        g = int(r.choice(len(self.groups), p=self.group_p))
        img = self.images[int(r.choice(self.groups[g], p=self.item_p[g]))]
        h, w = img.shape[:2]
        shrink = r.random() < 0.4
        f = r.uniform(0.4, 1.0) if shrink else 1.0
        c = min(int(round(HR_PATCH / f)), h, w)
        y, x = int(r.integers(0, h - c + 1)), int(r.integers(0, w - c + 1))
        hr = img[y:y + c, x:x + c]
        if c != HR_PATCH:
            hr = cv2.resize(hr, (HR_PATCH, HR_PATCH), interpolation=cv2.INTER_AREA if c > HR_PATCH else
                            cv2.INTER_CUBIC)
        k = int(r.integers(0, 8))
        hr = np.rot90(hr, k % 4)
        if k >= 4:
            hr = hr[:, ::-1]
        hr = np.ascontiguousarray(hr, dtype=np.float32)
        src = hr
        kind = r.random()
        if kind < 0.07:
            src = cv2.GaussianBlur(hr, (0, 0), float(r.uniform(0.3, 1.0)))
        lr = area_down(src)
        if 0.07 <= kind < 0.14:
            sigma = float(r.uniform(0.003, 0.015))
            noise = r.normal(0.0, sigma, lr.shape[:2] + (1,)).astype(np.float32)
            lr = lr + noise + r.normal(0.0, sigma * 0.3, lr.shape).astype(np.float32)
        if r.random() < 0.5:
            lr = np.round(lr * 255.0) / 255.0
        return np.clip(lr, 0.0, 1.0).astype(np.float32), np.clip(hr, 0.0, 1.0)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        ex = [self.example() for _ in range(n)]
        lr = torch.from_numpy(np.stack([e[0] for e in ex]).transpose(0, 3, 1, 2).copy())
        hr = torch.from_numpy(np.stack([e[1] for e in ex]).transpose(0, 3, 1, 2).copy())
        return lr, hr


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


def _lanczos(lr: torch.Tensor) -> torch.Tensor:
    arr = lr.numpy().transpose(0, 2, 3, 1)
    up = [cv2.resize(a, (a.shape[1] * 2, a.shape[0] * 2), interpolation=cv2.INTER_LANCZOS4) for a in arr]
    return torch.from_numpy(np.stack(up).transpose(0, 3, 1, 2).copy())


def warm_start(path: Path, num_conv: int) -> SRVGGNetCompact:
    """A Compact net initialised from checkpoint `path`, deepened to `num_conv` body convolutions by
    identity layers (3x3 Dirac convolution, zero bias, PReLU slope 1) inserted before the output
    convolution: the deepened net computes exactly the same function as the checkpoint at step 0."""
    from models.sr_net import _read_state_dict

    sd, _ = _read_state_dict(path)
    nf = int(sd["body.0.weight"].shape[0])
    old = (max(int(k.split(".")[1]) for k in sd if k.startswith("body.")) - 2) // 2
    if num_conv < old:
        raise ValueError(f"cannot make {path} ({old} convs) shallower ({num_conv})")
    net = SRVGGNetCompact(nf, num_conv, 2)
    new = net.state_dict()
    for k, v in sd.items():
        i = int(k.split(".")[1])
        if i == 2 * old + 2:  # output conv moves to the end
            new[f"body.{2 * num_conv + 2}.{k.split('.')[2]}"] = v
        else:
            new[k] = v
    for j in range(old, num_conv):
        c, a = 2 + 2 * j, 3 + 2 * j
        w = torch.zeros(nf, nf, 3, 3)
        torch.nn.init.dirac_(w)
        new[f"body.{c}.weight"], new[f"body.{c}.bias"] = w, torch.zeros(nf)
        new[f"body.{a}.weight"] = torch.ones(nf)
    net.load_state_dict(new)
    return net


def train(out: Path, steps: int, minutes: float | None, seed: int, film: Path | None, batch: int = 16,
          log_every: int = 100, init: Path | None = None, num_conv: int = NUM_CONV,
          lr: float = 1e-3) -> dict[str, Any]:
    t0 = time.time()
    torch.manual_seed(seed)
    images, names = training_sources(film)
    sampler = Sampler(images, names, seed)
    # a fixed monitor batch from the training sources (progress only; held-out figures: benchmarks.upscale)
    mon_lr, mon_hr = Sampler(images, names, seed + 1).batch(64)
    mon_lanczos = _psnr(_lanczos(mon_lr), mon_hr)
    if init is not None:
        net = warm_start(init, num_conv)
    else:
        net = SRVGGNetCompact(NUM_FEAT, num_conv, 2)
        with torch.no_grad():  # start close to "nearest + small correction"
            net.body[-1].weight.mul_(0.1)
            net.body[-1].bias.zero_()
    ema = SRVGGNetCompact(net.num_feat, num_conv, 2)
    ema.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.99))
    lr_min = 0.02
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: lr_min + (1 - lr_min) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    decay = 0.995
    print(f"data: {len(images)} images ({sum(n.startswith('film') for n in names)} film frames); "
          f"monitor lanczos {mon_lanczos:.2f} dB; setup {time.time() - t0:.1f} s", flush=True)
    log: list[dict[str, float]] = []
    t_train = time.time()
    done = 0
    for step in range(1, steps + 1):
        lr_b, hr_b = sampler.batch(batch)
        loss = (net(lr_b) - hr_b).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(decay, (1 + step) / (10 + step))
            for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                pe.mul_(d).add_(pn, alpha=1 - d)
        done = step
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                m = _psnr(ema(mon_lr), mon_hr)
            el = time.time() - t_train
            log.append({"step": step, "seconds": round(el, 1), "loss": round(loss.item(), 5),
                        "monitor_psnr_gain_db": round(m - mon_lanczos, 3)})
            print(f"step {step}/{steps} {el:.0f}s loss {loss.item():.4f} monitor +{m - mon_lanczos:.2f} dB vs lanczos",
                  flush=True)
        if minutes is not None and time.time() - t_train > minutes * 60:
            print(f"time budget of {minutes} min reached at step {step}", flush=True)
            break
    wall = time.time() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"name": "reel-sr-x2", "trained_steps": str(done), "seed": str(seed),
            "trainer": "benchmarks/train_sr.py", "target": "clean video downscaled by area (cv2.INTER_AREA)"}
    save_compact(ema.eval(), out, meta)
    out.chmod(0o644)  # package data (safetensors writes 0600)
    report = {"steps": done, "steps_planned": steps, "batch": batch, "hr_patch": HR_PATCH, "seed": seed,
              "wall_seconds": round(wall, 1), "train_seconds": round(time.time() - t_train, 1),
              "threads": torch.get_num_threads(), "num_feat": net.num_feat, "num_conv": num_conv,
              "init": str(init) if init is not None else None, "lr": lr,
              "params": sum(p.numel() for p in ema.parameters()),
              "data": {"skimage": list(TRAIN_IMAGES), "synth_seeds": list(SYNTH_TRAIN_SEEDS),
                       "film": str(film) if film is not None and film.is_file() else None,
                       "film_frames": "every 3rd frame outside " + str(list(FILM_HELDOUT)),
                       "num_images": len(images)},
            "held_out": {"skimage": list(HELDOUT_IMAGES) + ["cat (= chelsea)"],
                         "synth_seeds": list(SYNTH_HELDOUT_SEEDS), "film_frames": list(FILM_HELDOUT)},
            "log": log}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models/weights/reel-sr-x2.safetensors"))
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--minutes", type=float, default=None, help="stop early after this much training time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--film", type=Path, default=DEFAULT_FILM, help="old film to train on (its held-out range skipped)")
    ap.add_argument("--no-film", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", type=Path, default=None,
                    help="warm start from this Compact checkpoint (deepened to --num-conv by identity layers)")
    ap.add_argument("--num-conv", type=int, default=NUM_CONV)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine to 2 %% of it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    film = None if args.no_film else args.film
    rep = train(args.out, args.steps, args.minutes, args.seed, film, init=args.init, num_conv=args.num_conv,
                lr=args.lr)
    rep["command"] = ("python -m benchmarks.train_sr --out " + str(args.out) + f" --steps {args.steps} --seed {args.seed}"
                      + (f" --minutes {args.minutes}" if args.minutes else "") + (" --no-film" if args.no_film else "")
                      + (f" --init {args.init} --num-conv {args.num_conv}" if args.init else "")
                      + (f" --lr {args.lr}" if args.lr != 1e-3 else ""))
    card = args.out.with_suffix(".json")
    card.write_text(json.dumps({"model": "reel-sr-x2", "architecture": "SRVGGNetCompact (PReLU), x2",
                                "training": rep}, indent=2) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) and {card}; {rep['wall_seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
