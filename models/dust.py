"""Dust and dirt: single-frame blotches found as motion-compensated temporal outliers.

After Kokaram's spike detection index (SDI, "Motion Picture Restoration",
1998): a pixel is dirt when it differs from BOTH motion-compensated
neighbours, with the same sign, while those neighbours agree with each other.
Occlusions fail the "neighbours agree" test (one neighbour sees what the other
cannot). Flow is unreliable on small fast objects: both warped neighbours then
show background and agree, which would look like dirt, so every candidate
region is verified by searching for it in the raw neighbours (template
matching within a motion radius): a real object is found displaced; a blotch,
which exists in one frame only, is not.

Detection uses hysteresis (strong seeds grown through a weaker threshold) to
cover the soft edges of blotches. Long thin vertical regions are left alone:
they are line scratches, which persist over frames and belong to their own
stage. Detected pixels are filled from the mean of the two warped neighbours
with a feathered edge.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pydantic import Field

from models.clip import Clip, luma
from models.flow import FlowEstimator, warp
from models.stage import Stage, StageParams

_REF_WIDTH = 320.0  # pixel-sized parameters are stated at this width and scaled
_RELATIVE_DOUBT = 0.1  # forward/backward flow error accepted per pixel of motion between the neighbours
_MOTION_RATIO = 0.25  # a displaced match this much better than the flow's prediction means motion


class DustParams(StageParams):
    threshold: float = Field(4.0, gt=0, description="seed threshold, in robust sigmas of the temporal difference")
    min_contrast: float = Field(0.05, gt=0, le=1, description="smallest luma difference (0-1) that seeds dirt")
    min_area: int = Field(3, ge=1, description="smallest region in pixels (at 320 px width)")
    dilate: int = Field(1, ge=0, le=8, description="grow the fill mask by this many pixels (soft edges)")
    search: int = Field(24, ge=0, le=200, description="motion radius for the real-object check, pixels at 320 px width (0: off)")
    flow_preset: str = Field("medium", description="DIS preset: ultrafast, fast, medium, fine")
    motion_check: float = Field(1.0, ge=0, le=20, description="a region where the flow between the two "
                                "neighbours is inconsistent forward/backward by more than this (px at 320 px "
                                "width) is an object in motion or an occlusion, not dirt (0: off)")


def _references(t: int, n: int) -> tuple[int, int] | None:
    """The two frames a frame is compared with: its neighbours, or two on one side at clip ends."""
    if n < 3:
        return None
    if t == 0:
        return 1, 2
    if t == n - 1:
        return n - 2, n - 3
    return t - 1, t + 1


class Dust(Stage):
    name = "dust"
    version = "5"
    description = "Single-frame dust/dirt blotch detection (motion-compensated SDI) and temporal fill"
    Params = DustParams

    @property
    def context_frames(self) -> int:
        return 2

    def process(self, clip: Clip) -> tuple[Clip, dict[str, Any]]:
        masks, fills = self.detect(clip)
        out = clip.frames.copy()
        for t in np.flatnonzero(masks.reshape(masks.shape[0], -1).any(axis=1)):
            alpha = self._alpha(masks[t])
            out[t] = clip.frames[t] * (1.0 - alpha[..., None]) + fills[t] * alpha[..., None]
        per_frame = masks.reshape(masks.shape[0], -1).sum(axis=1)
        report = {
            "dust_pixels": [int(c) for c in per_frame],
            "frames_with_dust": int((per_frame > 0).sum()),
        }
        return clip.with_frames(out), report

    def _alpha(self, mask: np.ndarray) -> np.ndarray:
        d = self.params.dilate
        m = mask.astype(np.uint8)
        if d:
            m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1)))
        soft = cv2.GaussianBlur(m.astype(np.float32), (3, 3), 0)
        return np.maximum(soft, m.astype(np.float32))

    def detect(self, clip: Clip) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Per-frame dirt masks (T, H, W) bool and, for frames with dirt, the fill image (H, W, 3)."""
        p = self.params
        frames = clip.frames
        n, h, w, _ = frames.shape
        scale = w / _REF_WIDTH
        min_area = max(1, round(p.min_area * scale * scale))
        search = round(p.search * scale)
        flow = FlowEstimator(p.flow_preset, global_init=True)
        ys = [luma(f) for f in frames]
        masks = np.zeros((n, h, w), dtype=bool)
        fills: dict[int, np.ndarray] = {}
        for t in range(n):
            refs = _references(t, n)
            if refs is None:
                continue
            pair, fill_pair, doubt = self._aligned_neighbours(frames, t, refs, flow, p.motion_check > 0)
            warped, raw, offsets = [], [], []
            for r, wr in zip(refs, pair, strict=True):
                offset = np.float32(np.median(ys[t] - luma(wr)))  # residual flicker between frames
                offsets.append(offset)
                warped.append(wr + offset)
                raw.append(ys[r] + offset)
            mask = self._frame_mask(ys[t], raw, warped, min_area, search, max(1, round(scale)),
                                    doubt, p.motion_check * scale)
            if mask.any():
                masks[t] = mask
                fills[t] = np.clip(0.5 * (fill_pair[0] + offsets[0] + fill_pair[1] + offsets[1]), 0.0, 1.0)
        return masks, fills

    @staticmethod
    def _aligned_neighbours(frames: np.ndarray, t: int, refs: tuple[int, int], flow: FlowEstimator,
                            check_motion: bool = False
                            ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """The two reference frames warped onto frame t: for detection, and for filling.

        Flow from t itself is garbage inside a large blotch (it matches the blotch to whatever
        looks alike), which would hide the blotch. When t has a neighbour on each side, a second
        candidate comes from the flow between the neighbours, which never sees t, halved (constant
        velocity over two frames). Per pixel we keep the candidate under which the two warped
        neighbours agree better: right at a blotch that is the interpolated one, and wherever
        motion changes speed it is the direct one. The fill is only ever used inside what is found
        to be dirt, where the frame's own flow describes the dirt, not the picture under it: the
        fill always takes the interpolated pair. (The two direct flows can agree there by chance,
        both matching a dark blotch to the same dark patch: in a fast hand-held pan that filled a
        blotch with the wrong part of the scene.)

        The third value (with `check_motion`) is the forward/backward inconsistency of the flow
        between the two neighbours, in pixels: it never sees frame t, so dirt on t cannot disturb
        it, while an object that moves fast, turns or blurs (a racket, a ball, a running leg) or
        uncovers background makes it inconsistent. Kokaram's detector is fooled exactly there.
        """
        direct = [warp(frames[r], flow(frames[t], frames[r])) for r in refs]
        a, b = refs
        if a != t - 1 or b != t + 1:
            return direct, direct, None
        across = flow(frames[a], frames[b])  # on a's grid ~ t's grid, for smooth motion
        doubt = None
        if check_motion:
            back = warp(flow(frames[b], frames[a]), across, interpolation=cv2.INTER_LINEAR)
            doubt = np.hypot(*np.moveaxis(across + back, -1, 0))
            h, w = doubt.shape
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            gone = ((xs + across[..., 0] < 0) | (xs + across[..., 0] > w - 1) | (ys + across[..., 1] < 0)
                    | (ys + across[..., 1] > h - 1))
            doubt[gone] = 0.0  # content leaving the frame: no flow to check, no evidence of motion
            # flow is a few % off forward/backward over what DIS had to find itself, without anything
            # moving: the motion beyond the global translation its search started from
            g = flow.global_motion(frames[a], frames[b])
            doubt = np.maximum(doubt - _RELATIVE_DOUBT * np.hypot(across[..., 0] - g[0], across[..., 1] - g[1]), 0.0)
        interp = [warp(frames[a], -0.5 * across), warp(frames[b], 0.5 * across)]
        def disagreement(pair: list[np.ndarray]) -> np.ndarray:
            return cv2.blur(np.abs(luma(pair[0]) - luma(pair[1])), (5, 5))
        d_direct = disagreement(direct)
        # ties go to the direct flow (it follows objects that change speed); the interpolated one
        # must be clearly better, by more than the typical disagreement (grain, sub-pixel error)
        margin = 1.0 * float(np.median(d_direct))
        d_interp = disagreement(interp)
        use = (d_interp + margin < d_direct)[..., None]
        return [np.where(use, i, d) for i, d in zip(interp, direct, strict=True)], interp, doubt

    def _frame_mask(self, y: np.ndarray, ref_y: list[np.ndarray], warped: list[np.ndarray],
                    min_area: int, search: int, radius: int, doubt: np.ndarray | None = None,
                    max_doubt: float = 0.0) -> np.ndarray:
        p = self.params
        ya, yb = luma(warped[0]), luma(warped[1])
        # Rank-ordered test (after Kokaram's ROD): compare with the local range of each warped
        # neighbour, so sub-pixel misregistration of fine detail is not mistaken for a spike.
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
        lo = np.minimum(cv2.erode(ya, k), cv2.erode(yb, k))
        hi = np.maximum(cv2.dilate(ya, k), cv2.dilate(yb, k))
        mag = np.maximum(lo - y, y - hi)  # > 0 only outside both neighbours' local ranges
        spread = np.abs(ya - yb)
        sigma = 1.4826 * float(np.median(np.abs(y - 0.5 * (ya + yb))))
        strong_t = max(p.min_contrast, p.threshold * sigma)
        weak_t = 0.5 * strong_t
        agree = spread < np.maximum(0.5 * mag, weak_t)  # neighbours agree: not an occlusion
        weak = agree & (mag > weak_t)
        strong = agree & (mag > strong_t)
        if not strong.any():
            return np.zeros_like(strong)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
        keep = np.zeros(count, dtype=bool)
        h, w = y.shape
        core = max(2, round(2 * w / _REF_WIDTH))
        for lab in np.unique(labels[strong]):
            if lab == 0:
                continue
            x0, y0, bw, bh, area = stats[lab]
            if area < min_area:
                continue
            if bh >= h / 4 and bh >= 8 * bw:  # a line scratch, not dust
                continue
            if not self._has_core(labels[y0:y0 + bh, x0:x0 + bw] == lab, core):
                continue  # threads one pixel thin: aliasing of fine periodic detail, not a blotch
            if doubt is not None and max_doubt > 0 and self._in_motion(labels == lab, (x0, y0, bw, bh), doubt,
                                                                       max_doubt):
                continue
            if search and self._found_in_neighbours(y, ref_y, warped, labels == lab, (x0, y0, bw, bh), search):
                continue
            keep[lab] = True
        return keep[labels]

    @staticmethod
    def _in_motion(region: np.ndarray, box: tuple[int, int, int, int], doubt: np.ndarray, limit: float) -> bool:
        """True when the neighbours' flow is inconsistent over the region and a ring around it."""
        h, w = region.shape
        x0, y0, bw, bh = box
        m = 3
        sl = (slice(max(0, y0 - m), min(h, y0 + bh + m)), slice(max(0, x0 - m), min(w, x0 + bw + m)))
        grown = cv2.dilate(region[sl].astype(np.uint8), np.ones((2 * m + 1, 2 * m + 1), np.uint8)).astype(bool)
        return float(np.median(doubt[sl][grown])) > limit

    @staticmethod
    def _has_core(region: np.ndarray, size: int) -> bool:
        """True when a size x size square fits inside the region somewhere."""
        if region.shape[0] < size or region.shape[1] < size:
            return False
        return bool(cv2.erode(region.astype(np.uint8), np.ones((size, size), np.uint8),
                              borderType=cv2.BORDER_CONSTANT, borderValue=0).any())

    @staticmethod
    def _found_in_neighbours(y: np.ndarray, ref_y: list[np.ndarray], warped: list[np.ndarray],
                             region: np.ndarray, box: tuple[int, int, int, int], search: int) -> bool:
        """True when the flagged region (with a thin ring of its surroundings) appears displaced
        in a raw neighbour much better than where the flow predicted it: real motion, not dirt."""
        h, w = y.shape
        x0, y0, bw, bh = box
        m = 2
        tx0, ty0, tx1, ty1 = max(0, x0 - m), max(0, y0 - m), min(w, x0 + bw + m), min(h, y0 + bh + m)
        tpl = np.ascontiguousarray(y[ty0:ty1, tx0:tx1])
        ring = cv2.dilate(region[ty0:ty1, tx0:tx1].astype(np.uint8), np.ones((2 * m + 1, 2 * m + 1), np.uint8))
        weight = ring.astype(np.float32)
        area = float(weight.sum())
        sx0, sy0 = max(0, tx0 - search), max(0, ty0 - search)
        sx1, sy1 = min(w, tx1 + search), min(h, ty1 + search)
        for ry, wr in zip(ref_y, warped, strict=True):
            search_area = np.ascontiguousarray(ry[sy0:sy1, sx0:sx1])
            if search_area.shape[0] < tpl.shape[0] or search_area.shape[1] < tpl.shape[1]:
                continue
            best = float(cv2.matchTemplate(search_area, tpl, cv2.TM_SQDIFF, mask=weight).min()) / area
            predicted = float(np.sum(weight * (tpl - luma(wr[ty0:ty1, tx0:tx1])) ** 2)) / area
            if best < _MOTION_RATIO * predicted:
                return True
        return False
