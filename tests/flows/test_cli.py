"""The `reel` command line contract: names, outputs and one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from flows.cli import main


def test_synth_then_shots_gives_the_true_cuts(tmp_path, capsys):
    film = tmp_path / "f.mkv"
    assert main(["synth", str(film), "--size", "320x240", "--shots", "4", "--frames-per-shot", "12",
                 "--seed", "3"]) == 0
    truth = json.loads((tmp_path / "f.truth.json").read_text())
    assert (tmp_path / "f.clean.mkv").is_file() and truth["fps"] == "24/1" and truth["frames"] == 48
    capsys.readouterr()
    assert main(["shots", str(film), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cuts"] == truth["cuts"] and out["frames"] == 48 and out["fps"] == "24/1"
    assert main(["shots", str(film)]) == 0
    assert capsys.readouterr().out.split() == [str(c) for c in truth["cuts"]]


def test_errors_are_one_line_with_nonzero_exit(tmp_path, capsys):
    bad = tmp_path / "bad.mkv"
    bad.write_text("not a film")
    for argv in (["shots", str(bad)], ["shots", str(tmp_path / "missing.mkv")],
                 ["stage", "sharpen", str(bad), str(tmp_path / "o.mkv")],
                 ["stage", "dust", str(bad), str(tmp_path / "o.mkv"), "--set", "threshold"],
                 ["restore", str(bad), "--title", "../../etc"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("reel: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o.mkv").exists()


def test_stages_lists_parameters(capsys):
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    for name in ("deflicker", "dust", "denoise", "upscale"):
        assert out.count(f"{name} (v") == 1
    assert "radius = 7" in out and "grain = 'remove'" in out


def test_stage_runs_one_tool_on_a_clip(tiny_film, tmp_path, capsys):
    out = tmp_path / "up.mkv"
    assert main(["stage", "upscale", str(tiny_film["path"]), str(out), "--set", "scale=2"]) == 0
    from infra.media import probe

    info = probe(out)
    assert (info.video.width, info.video.height) == (320, 240) and len(info.audio) == 1


def test_restore_copies_the_published_version(tiny_film, local_store_env, tmp_path):
    """As a user runs it: the installed entry point in a child process, against the session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    out = tmp_path / "pub"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    run = subprocess.run([sys.executable, "-m", "flows.cli", "restore", str(tiny_film["path"]), "--title",
                          "cli-tiny", "--recipe", "identity", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"][0]["path"] == "master.mkv"
    for o in manifest["outputs"]:
        assert hashlib.sha256((out / o["path"]).read_bytes()).hexdigest() == o["sha256"]
    assert (out / "qc.json").is_file() and list((out / "qc").glob("*.png"))
    assert str(out / "master.mkv") in run.stdout and str(out / "manifest.json") in run.stdout


def test_an_in_process_error_leaves_the_callers_logging_as_it_was(capsys):
    """main() called in-process (tests, scripts) silences Dask/Prefect only for its own error line: a
    later run in the same process still reports its logs to Prefect (the canary test reads them)."""
    import logging

    from flows.cli import SHUTDOWN_LOGGERS, main

    before = {n: logging.getLogger(n).level for n in SHUTDOWN_LOGGERS}
    assert main(["shots", "/nonexistent/film.mkv"]) == 1
    assert capsys.readouterr().err.startswith("reel: error: ")
    assert {n: logging.getLogger(n).level for n in SHUTDOWN_LOGGERS} == before


def test_set_takes_several_settings_separated_by_commas():
    from flows.cli import parse_sets

    assert parse_sets(["method=realesrgan,scale=2"]) == {"method": "realesrgan", "scale": 2}
    assert parse_sets(["rebuild_frames=[12, 40],factor=1", "seed=3"]) == {"rebuild_frames": [12, 40], "factor": 1,
                                                                            "seed": 3}
    with pytest.raises(ValueError, match="key=value"):
        parse_sets(["scale"])


def test_a_one_file_command_opens_no_store(tiny_film, tmp_path, monkeypatch):
    """`reel stage` needs no store: none is created in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REEL_STORE", raising=False)
    assert main(["stage", "deflicker", str(tiny_film["path"]), str(tmp_path / "out.mkv")]) == 0
    assert (tmp_path / "out.mkv").is_file() and not (tmp_path / "reel-data").exists()


def test_reel_stage_plans_a_file_as_the_flow_plans_a_title(tmp_path):
    """The one-file pipeline cuts pieces from the flow's shot table: a dissolve is a row of its own, so a
    temporal stage never reads across it (before, `reel stage` ended pieces at hard cuts only); spatial
    stages need no shots at all."""
    from infra.pipeline.file import needs_shots, plan_file, probe_file
    from infra.settings import Settings
    from models.registry import make_stage

    film = tmp_path / "ev.mkv"
    assert main(["synth", str(film), "--seed", "3", "--shots", "3", "--frames-per-shot", "30", "--transitions",
                 "--size", "160x120"]) == 0
    truth = json.loads((tmp_path / "ev.truth.json").read_text())
    settings = Settings(store=str(tmp_path / "unused"), piece_frames=16)
    info = probe_file(film, settings)
    denoise, upscale = make_stage("denoise"), make_stage("upscale", {"method": "lanczos"})
    assert needs_shots([denoise]) and not needs_shots([upscale])
    plan = plan_file([denoise], film, info, settings)
    kinds = list(plan.shots["kind"])
    assert any(k != "shot" for k in kinds) and len(truth["transitions"]) > 0
    for row in plan.shots.itertuples(index=False):
        inside = [p for p in plan.pieces if p.shot == row.shot]
        assert inside and all(row.start_frame <= p.read_start and p.read_end <= row.end_frame for p in inside)
    assert len(plan_file([upscale], film, info, settings).shots) == 1
