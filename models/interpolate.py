"""Frame interpolation: more frames per second, and rebuilt missing, damaged or repeated frames.

Output timing (the frame-count contract, `Stage.frame_factor`): with `factor` = k a clip of N
frames becomes exactly k*N frames; output frame k*i is input frame i unchanged and output
frames k*i + j (j = 1 .. k-1) are in-betweens of frames i and i+1 at time t = j/k. The last
frame of a clip has no successor (the orchestrator never hands a stage frames across a cut, and
a piece that ends inside a shot is read with a halo frame after it), so its in-betweens are
holds: copies of it. Nothing is ever interpolated across a cut.

Methods:

- `blend`: cross-fade (1-t) I0 + t I1 (the baseline; ghosts anything that moves).
- `flow`: bidirectional DIS flow (models.flow) F01 (I0 -> I1) and F10; the flow at the
  intermediate time is approximated as in Super SloMo (Jiang et al., CVPR 2018, eq. 4):
  F_t0 = -(1-t) t F01 + t^2 F10,  F_t1 = (1-t)^2 F01 - t (1-t) F10;
  both neighbours are warped to t (bicubic) and cross-faded with weights (1-t) and t. DIS preset
  `fine` (medium + finest scale 0) by measurement: +0.7-1.4 dB over `medium` on synthetic clips at
  2.5x the time (benchmarks/interpolate.py). Occlusion (`occlusion=true`): a pixel of I0 whose
  forward-backward flow does not come back (|F01(p) + F10(p + F01(p))| large) is not visible in
  I1, and vice versa; the visibility maps are carried to time t with the same flows and the warped
  frames blended with weights (1-t) V0 and t V1 (Super SloMo eq. 5), so where a pixel is occluded
  in one neighbour it is taken from the other. Off by default because it measured worse on every
  clip set, the occlusion clips included (-0.1 to -1.9 dB): the approximated intermediate flow is
  wrong exactly at motion boundaries, so the carried visibility picks the wrong side there, while
  an even blend of two wrong guesses errs less. (Forward splatting of the flow or of the pixels to
  time t, tried instead, won up to 1 dB at occlusions but lost 0.5-3 dB on textured synthetic
  shots.) The masks still give the report's `occluded_share`.
- `learned`: a small CNN (`make_refiner`, trained by benchmarks/train_interp.py) refining the flow
  result. Not shipped: a first training run on synthetic clips did not beat `flow` (equal L1
  after ~700 steps), so asking for it without `models/weights/reel-interp.safetensors` is a
  ValueError.

Rebuilding (any factor, also 1): `rebuild_frames` (absolute frame numbers, as `Clip.first_frame`
counts) are treated as damaged and re-synthesised from their nearest undamaged neighbours at
their time position: in a run P x1 .. xr N of r damaged frames, x_j is the in-between of P and N at
t = j / (r + 1). `replace_duplicates` finds frames that repeat the previous picture
(models.duplicates, with a stricter `duplicate_ratio` of 0.15 than the detector's 0.4: on the real
clips in ../shared/data/oldfilm the pairs it flags fall in two groups, ratio <= 0.14 with distances
<= 0.09 (6 in Market Street and 10 in Within Our Gates, where the README counts 6 and 9) and
ratio >= 0.18 with distances >= 0.26, moments of little motion in The Great Train Robbery and
Within Our Gates, which replacing would blur) and rebuilds them the same way: a repeat stands in for a frame that was lost
(a capture drop, a frame doubled at a splice), so A A' B becomes A, (A..B at 1/2), B. For a
regular print-twice cadence (16 fps material at 24 fps) this removes the stutter of the copy but
is not a full retiming (the distinct frames stay where they are), which is a different job.
A damaged or repeated frame with no undamaged neighbour on one side in the clip (at a shot's
ends) is held from the other side. Runs longer than `MAX_RUN` frames are left alone (an
in-between over that long a gap is worse than the repeat).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from models.clip import Clip
from models.flow import FlowEstimator, warp
from models.stage import Stage, StageParams

MAX_RUN = 3  # longest run of damaged/repeated frames that is rebuilt
_DUP_WINDOW = 4  # DuplicateDetector window (pairs each side)


class InterpolateParams(StageParams):
    factor: int = Field(2, ge=1, le=8, description="frame-rate multiplier: output frames per input frame "
                                                  "(in-betweens at t = j/factor)")
    method: Literal["flow", "blend", "learned"] = Field(
        "flow", description="flow (bidirectional optical flow, both neighbours warped to t), blend (cross-fade), "
                            "learned (not shipped yet)")
    preset: Literal["ultrafast", "fast", "medium", "fine"] = Field(
        "fine", description="DIS flow preset for the flow method")
    occlusion: bool = Field(False, description="occlusion-aware blending from forward-backward flow checks "
                                               "(measured worse here, see benchmarks/interpolate.py)")
    replace_duplicates: bool = Field(False, description="rebuild frames that repeat the previous picture")
    duplicate_ratio: float = Field(0.15, gt=0, lt=1, description="a frame is a repeat when its distance to the "
                                   "previous one is below this share of its neighbourhood's (models.duplicates)")
    rebuild_frames: tuple[int, ...] = Field((), description="frame numbers (source numbering) of damaged "
                                                            "frames to rebuild from their neighbours")

    @field_validator("rebuild_frames", mode="before")
    @classmethod
    def _frames(cls, v: Any) -> Any:
        if isinstance(v, str):  # `--set rebuild_frames=12,40`
            v = [x for x in v.replace(" ", "").split(",") if x]
        if isinstance(v, int):
            v = [v]
        return tuple(sorted({int(x) for x in v}))

    @model_validator(mode="after")
    def _check(self) -> InterpolateParams:
        if self.method == "learned" and not WEIGHTS.is_file():
            raise ValueError("no learned interpolation model shipped yet; use method=flow")
        if any(f < 0 for f in self.rebuild_frames):
            raise ValueError("rebuild_frames must be frame numbers >= 0")
        runs = consecutive_runs(self.rebuild_frames)
        if runs and max(len(r) for r in runs) > MAX_RUN:
            raise ValueError(f"rebuild_frames: at most {MAX_RUN} consecutive frames can be rebuilt")
        return self


def consecutive_runs(frames: tuple[int, ...] | list[int]) -> list[list[int]]:
    """Consecutive runs of sorted frame numbers."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


class Interpolator:
    """In-betweens of pairs of frames: `pair(a, b).at(t)`; holds the flow estimator (and, for
    `learned`, the refinement network) and collects each pair's occluded share."""

    def __init__(self, method: str = "flow", preset: str = "fine", occlusion: bool = False) -> None:
        self.method, self.occlusion = method, occlusion
        self._est = FlowEstimator(preset) if method in ("flow", "learned") else None
        self.net = load_refiner() if method == "learned" else None
        self.occluded: list[float] = []  # share of occluded pixels per pair (flow method)

    def pair(self, a: np.ndarray, b: np.ndarray) -> _Pair:
        return _Pair(self, a, b)


class _Pair:
    def __init__(self, owner: Interpolator, a: np.ndarray, b: np.ndarray) -> None:
        self.o, self.a, self.b = owner, a, b
        if owner._est is not None:
            self.f01 = owner._est(a, b)
            self.f10 = owner._est(b, a)
            self.v0 = _visibility(self.f01, self.f10)
            self.v1 = _visibility(self.f10, self.f01)
            owner.occluded.append(float(1 - 0.5 * (self.v0.mean() + self.v1.mean())))

    def warped(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(g0, g1, ft0, ft1): a and b warped to time t, and the intermediate flows used."""
        ft0 = -(1 - t) * t * self.f01 + t * t * self.f10
        ft1 = (1 - t) * (1 - t) * self.f01 - t * (1 - t) * self.f10
        return warp(self.a, ft0), warp(self.b, ft1), ft0, ft1

    def at(self, t: float) -> np.ndarray:
        """The frame at time t in (0, 1) between a (t=0) and b (t=1), (H, W, 3) float32."""
        a, b = self.a, self.b
        if self.o._est is None:
            return ((1 - t) * a + t * b).astype(np.float32)
        g0, g1, ft0, ft1 = self.warped(t)
        if self.o.net is not None:
            return refine(self.o.net, a, b, g0, g1, t)
        if self.o.occlusion:
            w0 = (1 - t) * warp(self.v0, ft0, cv2.INTER_LINEAR)
            w1 = t * warp(self.v1, ft1, cv2.INTER_LINEAR)
            # where neither side is visible (both flows unreliable) fall back to the time weights
            s = w0 + w1
            low = s < 1e-3
            w0 = np.where(low, 1 - t, w0)
            w1 = np.where(low, t, w1)
            s = w0 + w1
            out = (w0[..., None] * g0 + w1[..., None] * g1) / s[..., None]
        else:
            out = (1 - t) * g0 + t * g1
        return np.clip(out, 0, 1).astype(np.float32)


# --- learned refinement ------------------------------------------------------------------------------
WEIGHTS = Path(__file__).resolve().parent / "weights" / "reel-interp.safetensors"
FEATURES = 11  # channels of `features`


def features(a: np.ndarray, b: np.ndarray, g0: np.ndarray, g1: np.ndarray, t: float) -> np.ndarray:
    """(H, W, 11) float32 network input: the two warped frames, their disagreement, the plain
    cross-fade of the neighbours, and t."""
    d = np.abs(g0 - g1).mean(axis=-1, keepdims=True)
    tt = np.full(d.shape, t, np.float32)
    return np.concatenate([g0, g1, d, (1 - t) * a + t * b, tt], axis=-1).astype(np.float32)


def make_refiner(width: int = 24) -> Any:
    """The refinement CNN (torch, ~19k parameters at width 24): features -> 4 channels (a blending
    logit added to logit(1-t), and an RGB residual). The last layer starts at zero, so an untrained
    network gives exactly the flow method's cross-fade of the warped frames."""
    from torch import nn

    layers: list[Any] = []
    ch = FEATURES
    for dil in (1, 2, 4, 1):
        layers += [nn.Conv2d(ch, width, 3, padding=dil, dilation=dil), nn.ReLU()]
        ch = width
    last = nn.Conv2d(width, 4, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def refine_torch(net: Any, feats: Any, g0: Any, g1: Any, t: Any) -> Any:
    """Batched (N, C, H, W) tensors -> refined frames (N, 3, H, W); t: (N, 1, 1, 1) tensor."""
    import torch

    o = net(feats)
    m = torch.sigmoid(o[:, :1] + torch.log((1 - t) / t))
    return m * g0 + (1 - m) * g1 + o[:, 1:]


def refine(net: Any, a: np.ndarray, b: np.ndarray, g0: np.ndarray, g1: np.ndarray, t: float) -> np.ndarray:
    import torch

    def chw(x: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    with torch.no_grad():
        out = refine_torch(net, chw(features(a, b, g0, g1, t)), chw(g0), chw(g1),
                           torch.full((1, 1, 1, 1), float(t)))
    return np.clip(out[0].numpy().transpose(1, 2, 0), 0, 1).astype(np.float32)


def load_refiner(path: Path = WEIGHTS) -> Any:
    """The shipped refinement network (eval mode, float32), or ValueError if there is none."""
    if not path.is_file():
        raise ValueError("no learned interpolation model shipped yet; use method=flow")
    import torch
    from safetensors.torch import load_file

    state = load_file(str(path))
    width = int(state["0.weight"].shape[0])
    net = make_refiner(width)
    net.load_state_dict(state)
    torch.set_grad_enabled(False)
    return net.eval()


def _visibility(f_ab: np.ndarray, f_ba: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 where a pixel of the reference is seen in the other frame.

    Forward-backward check with the usual tolerance (Sundaram et al., ECCV 2010): the round trip
    must come back within 0.01 |f_ab|^2 + |f_ba(p + f_ab)|^2 ... + 0.5 px; soft edge of 1 px.
    """
    back = warp(f_ba, f_ab, cv2.INTER_LINEAR)
    err2 = np.sum((f_ab + back) ** 2, axis=-1)
    tol = 0.01 * (np.sum(f_ab ** 2, axis=-1) + np.sum(back ** 2, axis=-1)) + 0.5
    v = np.clip(1.0 - (np.sqrt(err2) - np.sqrt(tol)), 0.0, 1.0).astype(np.float32)
    return cv2.erode(v, np.ones((3, 3), np.uint8))  # occlusion borders: one pixel wider


class Interpolate(Stage):
    name = "interpolate"
    version = "1"
    description = ("frame interpolation: raise the frame rate (factor), rebuild damaged or repeated frames "
                   "from their neighbours; bidirectional optical flow, never across a cut")
    Params = InterpolateParams

    @property
    def frame_factor(self) -> int:
        return self.params.factor

    @property
    def context_frames(self) -> int:
        p = self.params
        c = 0  # frames a rebuilt frame reads on each side
        if p.rebuild_frames:
            c = max(len(r) for r in consecutive_runs(p.rebuild_frames)) + 1
        if p.replace_duplicates:
            # a frame's verdict reads pair distances within the detector's window (frames t-5 .. t+4);
            # a rebuilt run reaches its nearest distinct frames and its length is checked (MAX_RUN + 1)
            c = max(c, _DUP_WINDOW + 2 + MAX_RUN)
        return c + (1 if p.factor > 1 else 0)  # an in-between reads the (rebuilt) next frame

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        p = self.params
        frames = clip.frames
        n = clip.num_frames
        interp = Interpolator(p.method, p.preset, p.occlusion)

        # 1. frames to rebuild: damaged (given) and repeated (detected), as indices into the clip
        damaged = {f - clip.first_frame for f in p.rebuild_frames if 0 <= f - clip.first_frame < n}
        dups: set[int] = set()
        if p.replace_duplicates:
            from models.duplicates import find_duplicates

            found = find_duplicates(frames, ratio=p.duplicate_ratio, window=_DUP_WINDOW)
            dups = {d["frame"] for d in found}  # indices into frames
        bad = sorted(damaged | dups)
        fixed = frames.copy() if bad else frames
        rebuilt = dup_replaced = 0
        for run in consecutive_runs(bad):
            if len(run) > MAX_RUN:
                continue
            lo, hi = run[0] - 1, run[-1] + 1
            if lo < 0 and hi >= n:
                continue
            if lo < 0 or hi >= n:  # a shot end: hold from the side that exists
                for i in run:
                    fixed[i] = frames[hi if lo < 0 else lo]
            else:
                pr = interp.pair(frames[lo], frames[hi])
                for i in run:
                    fixed[i] = pr.at((i - lo) / (hi - lo))
            rebuilt += sum(1 for i in run if i in damaged)
            dup_replaced += sum(1 for i in run if i in dups and i not in damaged)

        # 2. in-betweens
        k = p.factor
        if k == 1:
            out = fixed
            synthesised = 0
        else:
            out = np.empty((n * k, *frames.shape[1:]), np.float32)
            out[::k] = fixed
            for i in range(n):
                if i + 1 >= n:
                    out[i * k + 1:(i + 1) * k] = fixed[i]  # the last frame: hold
                    continue
                pr = interp.pair(fixed[i], fixed[i + 1])
                for j in range(1, k):
                    out[i * k + j] = pr.at(j / k)
            synthesised = (n - 1) * (k - 1)
        report = {
            "frames_in": n, "frames_out": int(out.shape[0]), "frames_synthesised": synthesised,
            "frames_held": k - 1 if k > 1 else 0, "frames_rebuilt": rebuilt, "duplicates_replaced": dup_replaced,
            "occluded_share": round(float(np.mean(interp.occluded)), 4) if interp.occluded else 0.0,
        }
        if k == 1:
            return clip.with_frames(np.ascontiguousarray(out)), report
        # frame numbers and rate of the output stream: input frame i is output frame k*i
        return Clip(np.ascontiguousarray(out), clip.fps * k, clip.first_frame * k, clip.color), report
