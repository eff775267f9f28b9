"""Smoke test of benchmarks/throughput.py (#24): a tiny clip through the ffmpeg jobs and Reel's phases
(no `reel restore` processes, no upscale), a few seconds; the report has every figure the table prints."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import throughput


def test_fit_fixed_solves_two_points():
    assert throughput.fit_fixed((10, 12.0), (30, 22.0)) == {"fixed_s": 7.0, "per_frame_s": 0.5}


@pytest.mark.skipif(shutil.which("ffmpeg") is None or not throughput.OLDFILM.exists(),
                    reason="needs Debian's ffmpeg and ../shared/data/oldfilm")
def test_throughput_smoke(tmp_path, capsys):
    report = throughput.main(["--size", "64x48", "--frames", "5", "--frames-short", "3", "--frames-long", "5",
                              "--skip", "restore", "--upscale-frames", "0", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "throughput.json").read_text())
    s = saved["summary"]
    assert set(saved["ffmpeg_runs"]) == {"ffv1_copy", "ffmpeg_defects_chain"}
    phases = saved["in_process"]["phases"]
    for name in ("decode_16bit", "to_float", "stabilise", "deflicker", "dust", "scratch", "denoise",
                 "to_uint16", "encode_ffv1_16bit_segment"):
        assert name in phases
    assert abs(sum(s["phase_share"].values()) - 1) < 1e-3
    assert any(k.startswith("prores_ks") for k in s["prores_fps"])
    assert report["summary"]["slowest_phase"] in phases
    assert "in-process phases" in capsys.readouterr().out
