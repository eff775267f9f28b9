"""Issue 23: a shot handed to an artist and taken back, through the command line.

The artist is played by another library: tifffile reads Reel's restored TIFFs and writes the edited frames
back (OpenImageIO is what Reel itself reads and writes them with). Tiny films (64x48, 4 shots of 8 frames)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flows.cli import main
from infra.hashing import sha256_file
from infra.media import read_frames, write_film
from models.synth import SynthConfig, render_film

TITLE = "artist-film"
SHOT = 3
FPS = 8  # frames per shot


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("artist")
    cfg = SynthConfig(width=64, height=48, shots=4, frames_per_shot=FPS, seed=5)
    f = render_film(cfg)
    path = d / "artist-film.mkv"
    write_film(path, f.degraded, Fraction(cfg.fps), (f.audio, f.audio_sample_rate))
    recipe = d / "defects-ffv1.yaml"
    recipe.write_text("name: defects-ffv1\nstages: [deflicker, dust, denoise]\nmasters: [ffv1]\n")
    return {"dir": d, "path": path, "recipe": recipe, "truth": f.truth, "frames": len(f.degraded)}


@pytest.fixture
def store_env(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "store"
    monkeypatch.setenv("REEL_STORE", str(root))
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "16")
    monkeypatch.setenv("REEL_PIECE_FRAMES", "6")  # shots of 8 frames: two pieces each
    monkeypatch.setenv("REEL_CATALOGUE", str(tmp_path / "no-catalogue.csv"))
    return root


def _master(dir_: Path, frames: int) -> np.ndarray:
    return read_frames(dir_ / "master.mkv", 0, frames, depth=16)


def _manifest(dir_: Path) -> dict:
    return json.loads((dir_ / "manifest.json").read_text())


def _shot_range(manifest: dict, shot: int) -> tuple[int, int]:
    s = next(s for s in manifest["shots"] if s["shot"] == shot)
    return s["start_frame"], s["end_frame"]


def _artist_edits(restored: Path) -> dict[int, np.ndarray]:
    """What the artist does, with tifffile: paints a block out (a dirt fix) and warms the picture (a grade).
    Returns {frame number: the frame written}."""
    done = {}
    for path in sorted(restored.glob("*.tif")):
        px = tifffile.imread(path)
        assert px.dtype == np.uint16 and px.ndim == 3 and px.shape[2] == 3
        edited = px.astype(np.int64)
        edited[10:20, 20:34] = [30000, 28000, 26000]  # painted out
        edited[..., 0] = edited[..., 0] * 11 // 10
        edited = np.clip(edited, 0, 65535).astype(np.uint16)
        tifffile.imwrite(path, edited, photometric="rgb")
        done[int(path.name.split(".")[-2])] = edited
    return done


def _round_trip(film: dict, store_env: Path, tmp_path: Path, capsys) -> dict:
    """restore -> handoff (TIFF) -> the refusals -> the artist edits with tifffile -> takeback -> rerun -> verify:
    shot 3 of the new master is the artist's frames exactly, every other frame as before."""
    src, n = str(film["path"]), film["frames"]
    v1_dir, hand = tmp_path / "v1", tmp_path / "handoff"
    assert main(["restore", src, "--title", TITLE, "--recipe", str(film["recipe"]), "--out", str(v1_dir)]) == 0
    v1 = _manifest(v1_dir)
    start, end = _shot_range(v1, SHOT)
    assert (start, end) == (SHOT * FPS, (SHOT + 1) * FPS)

    assert main(["handoff", TITLE, "--shots", str(SHOT), "--format", "tiff", "--handles", "2", "-o", str(hand)]) == 0
    out = capsys.readouterr().out
    assert f"shot(s) {SHOT} as 16-bit TIFF with 2 handles" in out
    folder = hand / f"{TITLE}-shot{SHOT:04d}"
    sidecar = json.loads((folder / "reel-handoff.json").read_text())
    assert (sidecar["title"], sidecar["version"], sidecar["shot"]) == (TITLE, v1["version"], SHOT)
    assert (sidecar["first_frame"], sidecar["start_frame"], sidecar["end_frame"], sidecar["last_frame"]) == (
        start - 2, start, end, min(n, end + 2))
    assert sidecar["source"]["sha256"] == v1["source"]["sha256"] and sidecar["recipe"]["name"] == "defects-ffv1"
    restored = sorted((folder / "restored").glob("*.tif"))
    assert [p.name for p in restored] == [f"{TITLE}-shot{SHOT:04d}.{i:07d}.tif" for i in range(start - 2, end)]
    # Reel's restored frames, as handed off, are the published master's frames exactly (16-bit)
    master1 = _master(v1_dir, n)
    for p in restored:
        assert np.array_equal(tifffile.imread(p), master1[int(p.name.split(".")[-2])])
    assert len(list((folder / "source").glob("*.tif"))) == end - (start - 2)
    otio_files = list(hand.glob(f"{TITLE}-handoff-*.otio"))
    assert len(otio_files) == 1 and otio_files[0].with_suffix(".edl").is_file()

    _refusals(folder, store_env, tmp_path, capsys, start)

    edited = _artist_edits(folder / "restored")
    assert main(["takeback", TITLE, "--shot", str(SHOT), str(folder), "--by", "Ada Artist",
                 "--note", "painted out the blotch, warmer"]) == 0
    assert "took back" in capsys.readouterr().out

    v2_dir = tmp_path / "v2"
    assert main(["rerun", TITLE, "--out", str(v2_dir)]) == 0
    v2 = _manifest(v2_dir)
    assert v2["version"] != v1["version"]
    master2 = _master(v2_dir, n)
    for f in range(start, end):  # shot 3 in the FFV1 master is the artist's frames, exactly
        assert np.array_equal(master2[f], edited[f]), f
    others = [f for f in range(n) if not start <= f < end]
    assert np.array_equal(master2[others], master1[others])  # every other shot untouched
    shot = next(s for s in v2["shots"] if s["shot"] == SHOT)
    manual = shot["manual"]
    assert manual["by"] == "Ada Artist" and manual["note"] == "painted out the blotch, warmer" and manual["at"]
    assert [f["number"] for f in manual["frames"]] == list(range(start, end))
    files = {int(p.name.split(".")[-2]): p for p in restored}
    assert [f["sha256"] for f in manual["frames"]] == [sha256_file(files[f])[0] for f in range(start, end)]
    assert manual["over"]["version"] == v1["version"]
    assert all(s.get("manual") is None for s in v2["shots"] if s["shot"] != SHOT)
    qc = json.loads((v2_dir / "qc.json").read_text())
    assert [r["shot"] for r in qc["shots"]] == [0, 1, 2, 3]  # QC measured the artist's shot like any other
    assert main(["verify", TITLE]) == 0

    # a rerun keeps it: nothing changed, so the same version (with the manual shot) again
    assert main(["rerun", TITLE, "--out", str(tmp_path / "v2b")]) == 0
    assert _manifest(tmp_path / "v2b")["version"] == v2["version"]
    capsys.readouterr()
    return {"v1": v1, "v2": v2, "master1": master1, "master2": master2, "start": start, "end": end,
            "manual": manual}


def test_handoff_takeback_publish_round_trip(film, store_env, tmp_path, capsys):
    _round_trip(film, store_env, tmp_path, capsys)


@pytest.mark.slow  # two more whole restores: `make test-all`
def test_reruns_keep_the_manual_shot_unless_asked_for_the_machine(film, store_env, tmp_path, capsys):
    r = _round_trip(film, store_env, tmp_path, capsys)
    n, start, end = film["frames"], r["start"], r["end"]
    # a rerun changing every shot's parameters keeps shot 3: a manual fix is never restored over
    v3_dir = tmp_path / "v3"
    assert main(["rerun", TITLE, "--set", "dust.threshold=6", "--out", str(v3_dir)]) == 0
    v3 = _manifest(v3_dir)
    assert v3["version"] not in (r["v1"]["version"], r["v2"]["version"])
    assert np.array_equal(_master(v3_dir, n)[start:end], r["master2"][start:end])
    s3 = {s["shot"]: s for s in v3["shots"]}
    assert s3[SHOT]["manual"]["digest"] == r["manual"]["digest"] and s3[SHOT]["overrides"] == []
    assert all(s3[s]["overrides"] == ["dust.threshold=6"] for s in (0, 1, 2))

    # the machine again for shot 3: its manual work is replaced, and the manifest says so
    v4_dir = tmp_path / "v4"
    assert main(["rerun", TITLE, "--shots", str(SHOT), "--out", str(v4_dir)]) == 0
    v4 = _manifest(v4_dir)
    s4 = next(s for s in v4["shots"] if s["shot"] == SHOT)
    assert s4.get("manual") is None and s4["manual_replaced"]["by"] == "Ada Artist"
    assert np.array_equal(_master(v4_dir, n)[start:end], r["master1"][start:end])  # the machine's shot again
    assert main(["verify", TITLE]) == 0
    # and it stays the machine's: a plain rerun does not bring the manual work back
    assert main(["rerun", TITLE, "--out", str(tmp_path / "v5")]) == 0
    v5 = _manifest(tmp_path / "v5")
    assert all(s.get("manual") is None for s in v5["shots"])


def _refusals(folder: Path, store_env: Path, tmp_path: Path, capsys, start: int) -> None:
    """Returned folders that do not match the handoff: one clear line each, nothing stored."""
    import shutil

    capsys.readouterr()

    def attempt(change, expect: str) -> None:
        work = tmp_path / f"try-{len(list(tmp_path.glob('try-*')))}"
        shutil.copytree(folder, work)
        change(work)
        assert main(["takeback", TITLE, "--shot", str(SHOT), str(work), "--by", "X"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expect in err, err
        assert not list((store_env / "artist").rglob("manual/*"))  # nothing stored
        assert not list((store_env / "work").rglob("manual/*"))

    frames = lambda w: sorted((w / "restored").glob("*.tif"))  # noqa: E731
    attempt(lambda w: frames(w)[3].unlink(), f"missing frames {start + 1}")
    attempt(lambda w: [tifffile.imwrite(p, tifffile.imread(p)[:40], photometric="rgb") for p in frames(w)],
            "64x40 instead of 64x48")
    attempt(lambda w: tifffile.imwrite(frames(w)[2], (tifffile.imread(frames(w)[2]) >> 8).astype(np.uint8),
                                       photometric="rgb"), "8-bit uint8 instead of 16-bit uint16")
    attempt(lambda w: shutil.copy(frames(w)[0], w / "restored" / f"{TITLE}-shot{SHOT:04d}.0000090.tif"), "outside")

    def edit_sidecar(w: Path) -> None:
        doc = json.loads((w / "reel-handoff.json").read_text())
        doc["end_frame"] -= 1
        (w / "reel-handoff.json").write_text(json.dumps(doc))
    attempt(edit_sidecar, "does not match Reel's record")
    attempt(lambda w: tifffile.imwrite(sorted((w / "source").glob("*.tif"))[0],
                                       np.zeros((48, 64, 3), np.uint16), photometric="rgb"), "was changed")
    assert main(["takeback", TITLE, "--shot", "2", str(folder), "--by", "X"]) == 1
    assert f"not {TITLE} shot 2" in capsys.readouterr().err
