"""`reel verify`: publish the tiny film once, then inject corruptions and check that every one is found,
in store mode (TITLE, local store and S3) and in directory mode (a `reel restore --out DIR` copy)."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from pathlib import Path

import pytest
from minio import Minio

from flows.cli import main
from infra.fixity import verify_dir, verify_store
from infra.storage import LocalStore, S3Store

TITLE = "tiny-verify"


@pytest.fixture(scope="module")
def published(tiny_film, tmp_path_factory) -> dict:
    """The tiny film restored (identity recipe) into a local store, and copied out as `reel restore --out` does."""
    from flows.cli import restore_to_dir

    base = tmp_path_factory.mktemp("verify")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REEL_STORE", str(base / "store"))
        mp.setenv("REEL_CHUNK_FRAMES", "16")
        mp.setenv("REEL_PIECE_FRAMES", "12")
        r = restore_to_dir(tiny_film["path"], TITLE, "identity", base / "out")
    manifest = r["manifest_data"]
    return {"store": base / "store", "out": base / "out", "version": manifest["version"], "manifest": manifest,
            "prefix": f"published/{TITLE}/{manifest['version']}"}


@pytest.fixture
def store_copy(published, tmp_path, monkeypatch) -> LocalStore:
    """A private copy of the published store, set as REEL_STORE, free to corrupt."""
    root = tmp_path / "store"
    shutil.copytree(published["store"], root)
    monkeypatch.setenv("REEL_STORE", str(root))
    return LocalStore(root)


@pytest.fixture
def dir_copy(published, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(published["out"], out)
    return out


def _run(argv: list[str], capsys) -> tuple[int, list[str], str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def _found(lines: list[str]) -> set[tuple[str, str]]:
    """(KIND, path) of every problem line (the summary line starts with 'verify ')."""
    return {tuple(line.split()[:2]) for line in lines if not line.startswith("verify ")}


def _flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _qc_image(manifest: dict) -> str:
    return next(o["path"] for o in manifest["outputs"] if o["kind"] == "qc-image")


def _report_found(injected: set, found: set, label: str, capsys=None) -> None:
    hit = injected & found
    if capsys is not None:
        with capsys.disabled():
            print(f"\n{label}: found {len(hit)} of {len(injected)} injected")
    else:
        print(f"{label}: found {len(hit)} of {len(injected)} injected")
    assert hit == injected, f"missed: {sorted(injected - found)}"
    assert found == injected, f"unexpected: {sorted(found - injected)}"


# --------------------------------------------------------------------------- clean


def test_clean_version_verifies_in_both_modes(published, store_copy, dir_copy, capsys):
    code, lines, err = _run(["verify", TITLE], capsys)
    assert code == 0 and not err, (lines, err)
    assert lines == [lines[-1]] and lines[-1].startswith(f"verify {TITLE}: OK: 1 version(s)")
    n_outputs = len(published["manifest"]["outputs"])
    assert f"{n_outputs} output(s) re-hashed" in lines[-1]

    code, lines, _ = _run(["verify", TITLE, "--json"], capsys)
    doc = json.loads("\n".join(lines))
    assert code == 0 and doc["ok"] and doc["problems"] == [] and doc["versions"][0]["checked"] == n_outputs
    assert doc["versions"][0]["version"] == published["version"]

    code, lines, _ = _run(["verify", str(dir_copy)], capsys)
    assert code == 0 and len(lines) == 1 and ": OK: " in lines[0], lines
    code, lines, _ = _run(["verify", TITLE, "--version", published["version"]], capsys)
    assert code == 0, lines


# --------------------------------------------------------------------------- store mode


def test_store_mode_finds_every_injected_corruption(published, store_copy, capsys):
    prefix, root, manifest = published["prefix"], store_copy.root, published["manifest"]
    png = _qc_image(manifest)
    _flip_byte(root / prefix / "master.mkv")  # 1. one byte of the master, behind the store's back
    _truncate(root / prefix / png)  # 2. a QC image cut short
    (root / prefix / "qc.json").unlink()  # 3. the QC report gone
    store_copy.put_bytes(f"{prefix}/notes.txt", b"who put this here?")  # 4. an unlisted object ...
    (root / prefix / "qc" / "stray.png").write_bytes(b"\x89PNG")  # 5. ... and a file with no sidecar
    mpath = root / prefix / "manifest.json"  # 6. the manifest edited (still valid JSON)
    mpath.write_text(mpath.read_text().replace('"decision": "auto-approved"', '"decision": "approved-by-me"'))
    injected = {
        ("MODIFIED", f"{prefix}/master.mkv"),
        ("SIZE", f"{prefix}/{png}"),
        ("MISSING", f"{prefix}/qc.json"),
        ("UNLISTED", f"{prefix}/notes.txt"),
        ("UNLISTED", f"{prefix}/qc/stray.png"),
        ("MODIFIED", f"{prefix}/manifest.json"),
    }
    code, lines, err = _run(["verify", TITLE], capsys)
    assert code == 1 and not err
    assert lines[-1].startswith(f"verify {TITLE}: FAILED:") and "6 problem(s)" in lines[-1], lines[-1]
    _report_found(injected, _found(lines), "store mode (local)", capsys)

    code, out, _ = _run(["verify", TITLE, "--json"], capsys)
    doc = json.loads("\n".join(out))
    assert code == 1 and not doc["ok"]
    assert {(p["kind"], p["path"]) for p in doc["problems"]} == injected
    assert doc["counts"] == {"MODIFIED": 2, "SIZE": 1, "MISSING": 1, "UNLISTED": 2, "UNREADABLE": 0}


def test_store_mode_on_s3_finds_every_injected_corruption(published, s3_server):
    """The same audit through S3Store: the version copied into moto, corrupted by raw minio writes."""
    prefix, manifest = published["prefix"], published["manifest"]
    run = f"v{uuid.uuid4().hex[:10]}"
    s3 = S3Store(s3_server, "reel-test", "reel-test-secret", "reel", prefix=run)
    src = published["store"] / prefix
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        s3.put_file(f"{prefix}/{f.relative_to(src).as_posix()}", f)
    assert verify_store(s3, TITLE).ok

    raw = Minio(s3_server, access_key="reel-test", secret_key="reel-test-secret", secure=False)

    def raw_put(key: str, data: bytes, sha: str | None) -> None:
        raw.put_object("reel", f"{run}/{key}", io.BytesIO(data), len(data),
                       metadata={"sha256": sha} if sha else None)

    png = _qc_image(manifest)
    master = bytearray((src / "master.mkv").read_bytes())
    master[len(master) // 2] ^= 0xFF
    raw_put(f"{prefix}/master.mkv", bytes(master), s3.sha256(f"{prefix}/master.mkv"))  # stale checksum kept
    data = (src / png).read_bytes()
    raw_put(f"{prefix}/{png}", data[: len(data) // 2], s3.sha256(f"{prefix}/{png}"))
    s3.delete(f"{prefix}/qc.json")
    raw_put(f"{prefix}/extra.bin", b"extra", None)
    edited = (src / "manifest.json").read_text().replace('"auto-approved"', '"approved-by-me"').encode()
    raw_put(f"{prefix}/manifest.json", edited, s3.sha256(f"{prefix}/manifest.json"))
    injected = {("MODIFIED", f"{prefix}/master.mkv"), ("SIZE", f"{prefix}/{png}"), ("MISSING", f"{prefix}/qc.json"),
                ("UNLISTED", f"{prefix}/extra.bin"), ("MODIFIED", f"{prefix}/manifest.json")}
    report = verify_store(s3, TITLE)
    assert not report.ok
    _report_found(injected, {(p.kind, p.path) for p in report.problems}, "store mode (S3)")
    assert "reel-test-secret" not in json.dumps(report.to_dict())


# --------------------------------------------------------------------------- directory mode


def test_dir_mode_finds_every_injected_corruption(published, dir_copy, capsys):
    manifest = published["manifest"]
    png = _qc_image(manifest)
    _flip_byte(dir_copy / "master.mkv")  # 1
    _truncate(dir_copy / png)  # 2
    (dir_copy / "qc.json").unlink()  # 3
    (dir_copy / "notes.txt").write_text("unlisted")  # 4
    doc = json.loads((dir_copy / "manifest.json").read_text())  # 5. the manifest edited: a listed checksum
    prores = next(o for o in doc["outputs"] if o["path"] == "master-prores.mov")
    prores["sha256"] = "0" * 64
    (dir_copy / "manifest.json").write_text(json.dumps(doc, indent=2))
    injected = {("MODIFIED", "master.mkv"), ("SIZE", png), ("MISSING", "qc.json"), ("UNLISTED", "notes.txt"),
                ("MODIFIED", "master-prores.mov")}
    code, lines, err = _run(["verify", str(dir_copy)], capsys)
    assert code == 1 and not err and ": FAILED: " in lines[-1]
    _report_found(injected, _found(lines), "directory mode", capsys)

    code, out, _ = _run(["verify", str(dir_copy), "--json"], capsys)
    assert code == 1 and {(p["kind"], p["path"]) for p in json.loads("\n".join(out))["problems"]} == injected


# --------------------------------------------------------------------------- manifests


def test_unparseable_or_missing_manifest(published, store_copy, dir_copy, capsys):
    prefix = published["prefix"]
    (dir_copy / "manifest.json").write_text('{"outputs": [')  # cut short
    report = verify_dir(dir_copy)
    outputs = {o["path"] for o in published["manifest"]["outputs"]}
    assert ("UNREADABLE", "manifest.json") in {(p.kind, p.path) for p in report.problems}
    assert {p.path for p in report.problems if p.kind == "UNLISTED"} == outputs  # nothing vouches for them

    (store_copy.root / prefix / "manifest.json").write_text("not json")
    found = _found(_run(["verify", TITLE], capsys)[1])
    assert {("MODIFIED", f"{prefix}/manifest.json"), ("UNREADABLE", f"{prefix}/manifest.json")} <= found

    doc = dict(published["manifest"])
    doc["outputs"] = [{"path": "../../etc/passwd", "sha256": "0" * 64, "size_bytes": 1}]
    (dir_copy / "manifest.json").write_text(json.dumps(doc))
    report = verify_dir(dir_copy)
    assert any(p.kind == "UNREADABLE" and "../../etc/passwd" in p.detail for p in report.problems)
    assert report.versions[0].checked == 0  # never read outside the folder

    (dir_copy / "manifest.json").unlink()
    code, lines, _ = _run(["verify", str(dir_copy)], capsys)
    assert code == 1 and ("MISSING", "manifest.json") in _found(lines)


def test_bad_titles_fail_before_any_io(monkeypatch, capsys):
    import infra.runtime

    def tripwire():
        raise AssertionError("settings read or store opened before the title was validated")

    monkeypatch.setattr(infra.runtime, "process_runtime", tripwire)
    for bad in ("Bad Title", "UPPER", "a" * 65, "tiny\x00"):
        code, lines, err = _run(["verify", bad], capsys)
        assert code == 1 and err.startswith("reel: error: invalid title id") and err.count("\n") == 1, err
    code, _, err = _run(["verify", "../../no/such/dir"], capsys)
    assert code == 1 and "not a folder" in err


def test_unknown_title_is_a_one_line_error(store_copy, capsys):
    code, lines, err = _run(["verify", "never-published"], capsys)
    assert code == 1 and err.startswith("reel: error: no published version of 'never-published'"), err
    code, lines, err = _run(["verify", TITLE, "--version", "v-000000000000"], capsys)
    assert code == 1 and "no version 'v-000000000000'" in err, err
