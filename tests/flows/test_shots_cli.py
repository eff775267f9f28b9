"""`reel synth --flashes --transitions` and `reel shots --json`: cuts, transitions, timestamps (VFR too)."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np

from flows.cli import main
from infra.media import frame_times
from infra.pipeline.file import shots_of_file
from infra.settings import Settings


def test_synth_with_events_then_shots_json(tmp_path, capsys):
    film = tmp_path / "ev.mkv"
    assert main(["synth", str(film), "--seed", "1", "--shots", "4", "--frames-per-shot", "40", "--flashes",
                 "--transitions"]) == 0
    truth = json.loads((tmp_path / "ev.truth.json").read_text())
    printed = capsys.readouterr().out
    assert "transitions fade_out [24, 40), fade_in [40, 52), dissolve [104, 136)" in printed
    assert "flash frames" in printed and truth["flash_frames"]
    assert truth["cuts"] == [80] and len(truth["transitions"]) == 3

    assert main(["shots", str(film), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"cuts", "cut_seconds", "transitions", "frames", "fps"}
    assert out["cuts"] == truth["cuts"] and out["frames"] == 160
    assert out["cut_seconds"] == [round(80 / 24, 3)]  # Matroska keeps milliseconds
    assert len(out["transitions"]) == len(truth["transitions"])
    times = frame_times(film)  # Matroska keeps milliseconds: 40 / 24 s is stored as 1.667 s
    for found, true in zip(out["transitions"], truth["transitions"], strict=True):
        assert found["kind"] == true["kind"] and found["start"] < true["end"] and true["start"] < found["end"]
        assert found["start_seconds"] == round(times[found["start"]], 6)
        assert abs(found["end_seconds"] - found["end"] / 24) < 0.001

    assert main(["shots", str(film)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "80" and [ln.split()[0] for ln in lines[1:]] == [t["kind"] for t in out["transitions"]]


def _write_vfr(path, pts_ms: list[int], cut: int) -> None:
    """An FFV1 Matroska file whose frames sit at irregular times (ms): two textures, a hard cut at `cut`."""
    rng = np.random.default_rng(3)
    textures = [cv2.GaussianBlur(rng.random((200, 260)).astype(np.float32), (0, 0), 4) for _ in range(2)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            tex = textures[int(i >= cut)]
            tex = (tex - tex.min()) / (tex.max() - tex.min())
            y = tex[i * 2:i * 2 + 120, i * 3:i * 3 + 160]  # a slow pan
            rgb = np.repeat((y[..., None] * 220 + 20).astype(np.uint8), 3, axis=2)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_cut_seconds_come_from_the_frames_own_timestamps(tmp_path):
    pts = [0, 40, 90, 120, 200, 230, 300, 310, 390, 460, 500, 540, 610, 650, 700, 790, 820, 900, 960, 1000]
    path = tmp_path / "vfr.mkv"
    _write_vfr(path, pts, cut=11)
    assert frame_times(path) == [p / 1000 for p in pts]
    result = shots_of_file(path, Settings()).to_json()
    assert result["cuts"] == [11] and result["frames"] == len(pts)
    assert result["cut_seconds"] == [0.54]  # not 11 / fps
    assert result["transitions"] == []
