"""Editing and camera events on a synthetic film, with exact truth: flashes, fades and dissolves.

`models.synth.render_film` makes films whose shots are joined by hard cuts. The
functions here post-process such a `SynthFilm` (its clean and degraded frames
and its truth) and return a new one; the input is never modified, and the same
film, seed and arguments always give byte-identical output.

- `add_transitions` replaces some hard cuts by a dissolve (a cross-fade of N
  frames) or by a fade-out / fade-in pair through black (or white). The cut
  leaves truth["cuts"] and its transition records go to truth["transitions"].
- `add_flashes` blends single frames (gunfire), two-frame pairs (lightning)
  or part of a frame (a muzzle flash) toward white. Flashes are not cuts;
  they are listed in truth["flashes"].

Transition ranges follow the shot detector's convention (`models.shots`):
`{"start", "end", "kind"}` with `end` exclusive, kind "dissolve", "fade_out"
or "fade_in".

- dissolve at cut c over N frames: frames [c - N//2, c - N//2 + N), frame
  s + i = (1 - a) A + a B with a = (i + 1) / (N + 1). Both shots keep their
  camera motion through it: past its last frame the outgoing shot is that
  frame carried on along the shot's pan and zoom (truth["shots"]), and the
  incoming shot before its first frame likewise backwards (the picture is
  held, the camera moves; borders reflected).
- fade pair at cut c: the outgoing shot ramps to the fade colour over `out`
  frames, then `hold` frames are fully black (white); the incoming shot ramps
  back from it over `in` frames. fade_out = [c - out - hold, c) (the held
  black frames belong to the fade-out), fade_in = [c, c + in). Ramp gains
  are 1 - (i + 1) / (out + 1) and (i + 1) / (in + 1). In the degraded film the
  fade colour is the print's black (white) level under that frame's flicker,
  with fresh grain, and a held frame may carry a dust speck.

Both the clean and the degraded frames receive the event (a flash lights the
scene; a dissolve is made in the printer), so per-pixel defect truth no longer
describes the changed frames: blotch records on frames a transition rewrote
are dropped, and every frame changed by an event is listed in
truth["edited_frames"]. (Scratch and moving-object records are left as they
were; inside those frames they are approximate.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from models.synth import SynthFilm

__all__ = ["add_flashes", "add_transitions", "MIN_PURE_FRAMES"]

MIN_PURE_FRAMES = 4  # frames of every shot left untouched by transitions (detectors need a steady picture)
_S_TRANSITIONS, _S_FLASHES = 101, 102  # random streams, apart from models.synth's


def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, *more])


def _copy(film: SynthFilm) -> tuple[np.ndarray, np.ndarray, dict]:
    import copy

    return film.clean.copy(), film.degraded.copy(), copy.deepcopy(film.truth)


def _as_float(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32) / np.float32(255)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _shot_bounds(truth: dict) -> list[tuple[int, int]]:
    return [(int(s["start"]), int(s["end"])) for s in truth["shots"]]


def _mark_edited(truth: dict, frames: list[int]) -> None:
    truth["edited_frames"] = sorted(set(truth.get("edited_frames", [])) | {int(f) for f in frames})


# --------------------------------------------------------------------------------------------------
# Transitions
# --------------------------------------------------------------------------------------------------


def _span(spec: dict) -> tuple[int, int]:
    """Frames before and after the cut a transition spec occupies."""
    if spec["kind"] == "dissolve":
        n = int(spec["frames"])
        return n // 2, n - n // 2
    return int(spec["out"]) + int(spec.get("hold", 0)), int(spec["in"])


def _check_spec(spec: dict) -> dict:
    kind = spec.get("kind")
    if kind == "dissolve":
        n = int(spec.get("frames", 0))
        if n < 2:
            raise ValueError(f"a dissolve needs frames >= 2, got {spec}")
        return {"cut": int(spec["cut"]), "kind": "dissolve", "frames": n}
    if kind == "fade":
        out, inn, hold = int(spec.get("out", 0)), int(spec.get("in", 0)), int(spec.get("hold", 0))
        colour = spec.get("colour", "black")
        if out < 1 or inn < 1 or hold < 0 or colour not in ("black", "white"):
            raise ValueError(f"a fade needs out >= 1, in >= 1, hold >= 0, colour black|white, got {spec}")
        return {"cut": int(spec["cut"]), "kind": "fade", "out": out, "in": inn, "hold": hold, "colour": colour}
    raise ValueError(f"transition kind must be 'dissolve' or 'fade', got {kind!r}")


def _random_plan(truth: dict, seed: int, probability: float, dissolve_frames: tuple[int, int],
                 fade_frames: tuple[int, int], white: float) -> list[dict]:
    rng = _rng(seed, _S_TRANSITIONS)
    bounds = _shot_bounds(truth)
    plan: list[dict] = []
    used_after_prev = 0  # frames of the current shot's start taken by the previous transition
    for k, cut in enumerate(int(c) for c in truth["cuts"]):
        a0, _ = bounds[k]
        _, b1 = bounds[k + 1]
        draw = rng.random(6)  # fixed number of draws per cut: one choice does not shift the others
        room_before = cut - a0 - MIN_PURE_FRAMES - used_after_prev
        room_after = (b1 - cut) // 2 - MIN_PURE_FRAMES // 2  # leave half the next shot to the next cut
        if k == len(truth["cuts"]) - 1:
            room_after = b1 - cut - MIN_PURE_FRAMES
        used_after_prev = 0
        if draw[0] >= probability:
            continue
        if draw[1] < 0.5:
            lo, hi = dissolve_frames
            n = int(round(lo + draw[2] * (hi - lo)))
            n = min(n, 2 * room_before, 2 * room_after - 1 if room_after > 0 else 0)
            if n < max(lo, 2):
                continue
            spec = {"cut": cut, "kind": "dissolve", "frames": n}
        else:
            lo, hi = fade_frames
            out = int(round(lo + draw[2] * (hi - lo)))
            inn = int(round(lo + draw[3] * (hi - lo)))
            hold = int(draw[4] * 4)
            out = min(out, room_before - hold)
            inn = min(inn, room_after)
            if out < max(lo // 2, 2) or inn < max(lo // 2, 2):
                continue
            spec = {"cut": cut, "kind": "fade", "out": out, "in": inn, "hold": hold,
                    "colour": "white" if draw[5] < white else "black"}
        plan.append(spec)
        used_after_prev = _span(spec)[1]
    return plan


def _continued(frame: np.ndarray, shot: dict, k: int, j: int) -> np.ndarray:
    """Frame k of a shot (local index) moved on by j frames of its camera motion (j < 0: back in time).

    The synthetic camera pans `pan` canvas px/frame and magnifies by exp(zoom_rate) per frame; the
    picture is held (objects, grain and dirt frozen), the camera keeps moving (reflected borders).
    """
    if j == 0:
        return _as_float(frame)
    H, W = frame.shape[:2]
    pan = np.asarray(shot.get("pan", [0.0, 0.0]), dtype=np.float64)
    zr = float(shot.get("zoom_rate", 0.0))
    scale = math.exp(zr * j)
    shift = -pan * j * math.exp(zr * (k + j))
    c0 = np.array([(W - 1) / 2, (H - 1) / 2])
    m = np.array([[scale, 0.0, (1 - scale) * c0[0] + shift[0]],
                  [0.0, scale, (1 - scale) * c0[1] + shift[1]]])
    out = cv2.warpAffine(_as_float(frame), m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def _dissolve(clean: np.ndarray, degraded: np.ndarray, truth: dict, cut: int, n: int) -> tuple[int, int]:
    """Cross-fade over frames [cut - n//2, cut - n//2 + n).

    Both shots run at full speed through the dissolve: the outgoing shot beyond its last frame (and
    the incoming one before its first) is that frame carried on along the shot's camera motion.
    """
    s = cut - n // 2
    e = s + n
    shots = truth.get("shots", [])
    k_b = next((i for i, sh in enumerate(shots) if int(sh["start"]) == cut), None)
    shot_a = shots[k_b - 1] if k_b else {}
    shot_b = shots[k_b] if k_b is not None else {}
    a0 = int(shot_a.get("start", 0))
    orig = {name: arr[s:e].copy() for name, arr in (("clean", clean), ("degraded", degraded))}
    for i in range(n):
        t = s + i
        a = np.float32((i + 1) / (n + 1))
        for name, arr in (("clean", clean), ("degraded", degraded)):
            src = orig[name]
            if t < cut:
                pa = _as_float(src[i])
                pb = _continued(src[cut - s], shot_b, 0, t - cut)
            else:
                pa = _continued(src[cut - 1 - s], shot_a, cut - 1 - a0, t - cut + 1)
                pb = _as_float(src[i])
            arr[t] = _to_u8((1 - a) * pa + a * pb)
    return s, e


def _grain(rng: np.random.Generator, h: int, w: int, sigma: float, blur: float) -> np.ndarray:
    n = rng.standard_normal((h, w), dtype=np.float32)
    if blur > 0.3:
        n = cv2.GaussianBlur(n, (0, 0), blur)
        n *= np.float32(1.0 / max(float(n.std()), 1e-6))
    return n * np.float32(sigma)


def _fade(clean: np.ndarray, degraded: np.ndarray, truth: dict, spec: dict, rng: np.random.Generator
          ) -> list[dict]:
    cut, out, inn, hold = spec["cut"], spec["out"], spec["in"], spec["hold"]
    white = spec["colour"] == "white"
    _, H, W, _ = clean.shape
    fade_t = truth.get("fade", {})
    if white:
        level = float(fade_t.get("white", 1.0)) if fade_t.get("enabled") else 1.0
    else:
        level = float(fade_t.get("black", 0.0)) if fade_t.get("enabled") else 0.0
    flick = truth.get("flicker", {})
    g_t, o_t = flick.get("gain"), flick.get("offset")
    grain_t = truth.get("grain", {})
    sigma = float(grain_t.get("sigma", 0.0)) if grain_t.get("enabled") else 0.0
    blur = float(grain_t.get("blur_sigma", 0.0))
    clean_level = np.float32(1.0 if white else 0.0)
    start = cut - out - hold
    gains = [1 - (i + 1) / (out + 1) for i in range(out)] + [0.0] * hold + [(i + 1) / (inn + 1) for i in range(inn)]
    specks = []
    for i, g in enumerate(gains):
        t = start + i
        g32 = np.float32(g)
        clean[t] = _to_u8(g32 * _as_float(clean[t]) + (1 - g32) * clean_level)
        lv = level
        if g_t is not None and o_t is not None and _enabled(flick):
            lv = level * float(g_t[t]) + float(o_t[t])
        x = g32 * _as_float(degraded[t]) + (1 - g32) * np.float32(lv)
        if sigma > 0 and g < 1:
            amp = 0.4 + 2.4 * lv * (1 - lv)  # the synthetic grain's luminance dependence
            x += (1 - g32) * _grain(rng, H, W, sigma * amp, blur)[..., None]
        if g == 0.0 and rng.random() < 0.35:  # dust on a held frame
            s = float(truth.get("scale", 1.0))
            r = max(rng.uniform(2.0, 7.0) * s, 1.0)
            cx, cy = rng.uniform(r, W - r), rng.uniform(r, H - r)
            m = np.zeros((H, W), np.float32)
            cv2.circle(m, (int(cx * 16), int(cy * 16)), int(r * 16), 1.0, -1, cv2.LINE_AA, 4)
            tone = rng.uniform(0.6, 0.9) if not white else rng.uniform(0.05, 0.3)
            x = x * (1 - m[..., None]) + np.float32(tone) * m[..., None]
            specks.append({"frame": int(t), "center": [float(cx), float(cy)], "radius": float(r)})
        degraded[t] = _to_u8(x)
    colour = spec["colour"]
    return [
        {"start": start, "end": cut, "kind": "fade_out", "cut": cut, "colour": colour, "frames": out,
         "hold": hold, "specks": specks},
        {"start": cut, "end": cut + inn, "kind": "fade_in", "cut": cut, "colour": colour, "frames": inn},
    ]


def _enabled(d: dict) -> bool:
    return bool(d.get("enabled", False))


def add_transitions(film: SynthFilm, seed: int = 0, plan: list[dict] | None = None, *,
                    probability: float = 0.5, dissolve_frames: tuple[int, int] = (8, 40),
                    fade_frames: tuple[int, int] = (8, 24), white: float = 0.2) -> SynthFilm:
    """Replace hard cuts by dissolves and fade pairs; return the new film (the input is untouched).

    plan: explicit transitions, each {"cut": c, "kind": "dissolve", "frames": N} or
          {"cut": c, "kind": "fade", "out": n1, "in": n2, "hold": n3 (default 0), "colour": "black"|"white"};
          c must be one of truth["cuts"]. Raises ValueError when a transition does not fit in its
          shots with MIN_PURE_FRAMES untouched frames of each shot.
    Without a plan, each cut becomes a transition with `probability` (half dissolves of
    `dissolve_frames` frames, half fades of `fade_frames` frames per ramp, a fraction `white`
    of them through white), shortened or skipped where the shots are too short; drawn from `seed`.

    Truth: transitions moved out of "cuts" into "transitions" (sorted by start; see the module doc
    for the ranges), "edited_frames" extended, blotch records on rewritten frames dropped,
    "events" records the plan.
    """
    clean, degraded, truth = _copy(film)
    cuts = [int(c) for c in truth["cuts"]]
    if plan is None:
        plan = _random_plan(truth, seed, probability, dissolve_frames, fade_frames, white)
    plan = sorted((_check_spec(p) for p in plan), key=lambda p: p["cut"])
    bounds = _shot_bounds(truth)
    occupied: list[tuple[int, int]] = []
    for p in plan:
        if p["cut"] not in cuts:
            raise ValueError(f"transition at {p['cut']}: not a hard cut of this film (cuts {cuts})")
        k = cuts.index(p["cut"])
        before, after = _span(p)
        lo, hi = p["cut"] - before, p["cut"] + after
        a0, b1 = bounds[k][0], bounds[k + 1][1]
        taken = [(a, b) for a, b in occupied]
        free_lo = max([a0] + [b for _, b in taken if b <= p["cut"]])
        if lo - free_lo < MIN_PURE_FRAMES or b1 - hi < MIN_PURE_FRAMES:
            raise ValueError(f"transition {p} does not fit: shots [{a0}, {p['cut']}) and [{p['cut']}, {b1}) "
                             f"need {MIN_PURE_FRAMES} untouched frames each")
        occupied.append((lo, hi))
    rng = _rng(seed, _S_TRANSITIONS, 1)
    records: list[dict] = list(truth.get("transitions", []))
    edited: list[int] = []
    for p in plan:
        if p["kind"] == "dissolve":
            s, e = _dissolve(clean, degraded, truth, p["cut"], p["frames"])
            records.append({"start": s, "end": e, "kind": "dissolve", "cut": p["cut"], "frames": p["frames"]})
        else:
            recs = _fade(clean, degraded, truth, p, rng)
            records.extend(recs)
            s, e = recs[0]["start"], recs[1]["end"]
        edited.extend(range(s, e))
    gone = set(edited)
    truth["cuts"] = [c for c in cuts if c not in {p["cut"] for p in plan}]
    truth["transitions"] = sorted(records, key=lambda r: (r["start"], r["end"]))
    truth["blotches"] = [b for b in truth.get("blotches", []) if int(b["frame"]) not in gone]
    _mark_edited(truth, edited)
    truth.setdefault("events", {})["transitions"] = {"seed": int(seed), "plan": plan}
    return dataclasses.replace(film, clean=clean, degraded=degraded, truth=truth)


# --------------------------------------------------------------------------------------------------
# Flashes
# --------------------------------------------------------------------------------------------------


def _flash_mask(kind: str, H: int, W: int, cx: float, cy: float, radius: float) -> np.ndarray:
    if kind == "full":
        return np.ones((H, W), np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / np.float32(radius * radius)
    return np.exp(-d2).astype(np.float32)  # a glow: full strength at the centre, soft edge


def add_flashes(film: SynthFilm, seed: int = 0, count: int | None = None, *,
                plan: list[dict] | None = None) -> SynthFilm:
    """Blend some frames toward white (gunfire, lightning, muzzle flashes); return the new film.

    plan: explicit flashes, each {"frame": t, "strength": [a0, a1, ...] (one per frame, 0..1),
          "kind": "full"|"partial", and for "partial" "center": [x, y], "radius": r (px)}.
          A frame x becomes x + a m (1 - x), m the flash mask (1 everywhere for "full").
    Without a plan, `count` flashes (default: one per 24 frames, at least one) are drawn from
    `seed`: 55% single full-frame (gunfire), 25% two-frame lightning (a strong frame then a weaker
    one), 20% partial (a soft glow over part of the frame), placed at least 3 frames from cuts,
    from transitions and from each other.
    """
    clean, degraded, truth = _copy(film)
    T, H, W, _ = clean.shape
    if plan is None:
        rng = _rng(seed, _S_FLASHES)
        count = max(1, T // 24) if count is None else int(count)
        blocked = np.zeros(T, bool)
        for c in truth["cuts"]:
            blocked[max(0, c - 3):c + 3] = True
        for tr in truth.get("transitions", []):
            blocked[max(0, tr["start"] - 3):tr["end"] + 3] = True
        blocked[:2] = True
        blocked[-3:] = True
        plan = []
        for _ in range(count):
            u = rng.random(5)
            kind = "full" if u[0] < 0.8 else "partial"
            length = 2 if 0.55 <= u[0] < 0.8 else 1
            if kind == "partial":
                strength = [float(0.8 + 0.2 * u[1])]
            elif length == 2:
                a = 0.7 + 0.25 * u[1]
                strength = [float(a), float(a * (0.35 + 0.3 * u[2]))]
            else:
                strength = [float(0.5 + 0.45 * u[1])]
            free = np.flatnonzero(~blocked[: T - length + 1] & ~np.roll(blocked, -(length - 1))[: T - length + 1])
            if free.size == 0:
                break
            t = int(free[int(u[3] * free.size) % free.size])
            spec: dict[str, Any] = {"frame": t, "kind": kind, "strength": strength}
            if kind == "partial":
                spec["center"] = [float(rng.uniform(0.15, 0.85) * W), float(rng.uniform(0.15, 0.85) * H)]
                spec["radius"] = float(rng.uniform(0.15, 0.35) * max(W, H))
            plan.append(spec)
            blocked[max(0, t - 3):t + length + 3] = True
    records = list(truth.get("flashes", []))
    edited = []
    for p in sorted(plan, key=lambda p: p["frame"]):
        kind = p.get("kind", "full")
        strength = [float(a) for a in p["strength"]]
        frames = list(range(int(p["frame"]), int(p["frame"]) + len(strength)))
        if frames[0] < 0 or frames[-1] >= T:
            raise ValueError(f"flash {p} falls outside the film's {T} frames")
        cx, cy = p.get("center", [W / 2, H / 2])
        m = _flash_mask(kind, H, W, float(cx), float(cy), float(p.get("radius", max(W, H))))[..., None]
        for t, a in zip(frames, strength, strict=True):
            am = np.float32(a) * m
            for arr in (clean, degraded):
                x = _as_float(arr[t])
                arr[t] = _to_u8(x + am * (1 - x))
        rec = {"frames": frames, "kind": kind, "strength": strength}
        if kind == "partial":
            rec.update(center=[float(cx), float(cy)], radius=float(p["radius"]))
        records.append(rec)
        edited.extend(frames)
    truth["flashes"] = sorted(records, key=lambda r: r["frames"][0])
    truth["flash_frames"] = sorted({f for r in truth["flashes"] for f in r["frames"]})
    _mark_edited(truth, edited)
    truth.setdefault("events", {})["flashes"] = {"seed": int(seed), "plan": plan}
    return dataclasses.replace(film, clean=clean, degraded=degraded, truth=truth)
