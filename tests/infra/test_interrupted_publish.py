"""Issue 20: a write killed at any point leaves nothing inside a published version, the next publish of the
title removes what it left, and `verify` tells an abandoned temp file (0.8.0 left them in the version
folder) from tampering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from infra.fixity import verify_store
from infra.storage import LocalStore

REPO = Path(__file__).resolve().parents[2]
PREFIX = "published/film/v-000000000001"

# A publish's writes in order (a master, the QC report, the manifest last, created once); the child kills
# itself (SIGKILL) at the Nth fsync or in the middle of copying the master's bytes.
_CHILD = """
import hashlib, json, os, signal, sys
import infra.storage as storage
from infra.storage import LocalStore
root, point = sys.argv[1], sys.argv[2]
calls = [0]
real_fsync = os.fsync
def fsync(fd):
    calls[0] += 1
    if point == f"fsync{calls[0]}":
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)
os.fsync = fsync
if point == "mid-copy":
    real_chunks = storage._read_chunks
    def chunks(f):
        for i, c in enumerate(real_chunks(f)):
            if i == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            yield c
    storage._read_chunks = chunks
store = LocalStore(root)
master = os.path.join(root, "..", "master.bin")
prefix = sys.argv[3]
sha = store.put_file(f"{prefix}/master.mkv", master)
qc = b'{"shots": []}'
store.put_bytes(f"{prefix}/qc.json", qc)
outputs = [{"path": "master.mkv", "sha256": sha, "size_bytes": os.path.getsize(master)},
           {"path": "qc.json", "sha256": hashlib.sha256(qc).hexdigest(), "size_bytes": len(qc)}]
manifest = {"title": "film", "version": prefix.rsplit("/", 1)[1], "outputs": outputs}
store.put_if_absent(f"{prefix}/manifest.json", json.dumps(manifest).encode())
"""

POINTS = ["mid-copy", "fsync1", "fsync2", "fsync3", "fsync4", "fsync5"]


def _publish(tmp: Path, point: str = "none") -> int:
    return subprocess.run([sys.executable, "-c", _CHILD, str(tmp / "store"), point, PREFIX], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60).returncode


@pytest.mark.parametrize("point", POINTS)
def test_verify_is_clean_after_a_kill_at_any_point_and_a_rerun(tmp_path, point):
    (tmp_path / "master.bin").write_bytes(os.urandom(9 * 2**20 // 4))  # several read chunks
    assert _publish(tmp_path, point) == -signal.SIGKILL
    store = LocalStore(tmp_path / "store")
    version_dir = store.root / PREFIX
    leftovers = [p.name for p in version_dir.iterdir()] if version_dir.exists() else []
    assert not any(n.startswith(".tmp-") for n in leftovers), leftovers  # temps live in .staging/
    assert store.remove_abandoned_temp("published/film/")  # the next publish's clean-up finds the dead write
    assert _publish(tmp_path) == 0
    report = verify_store(store, "film")
    assert report.ok and not report.notes, report.lines()
    assert not list((store.root / ".staging").rglob(".tmp-*"))


def test_a_temp_file_beside_the_outputs_is_abandoned_not_a_failure(tmp_path):
    (tmp_path / "master.bin").write_bytes(b"frames" * 1000)
    assert _publish(tmp_path) == 0
    store = LocalStore(tmp_path / "store")
    old = store.root / PREFIX / ".tmp-abc123"  # what 0.8.0 left after a kill
    old.write_bytes(b"x" * 100)
    stranger = store.root / PREFIX / "extra.bin"
    report = verify_store(store, "film")
    assert report.ok and [n.kind for n in report.notes] == ["ABANDONED"], report.lines()
    assert "abandoned temp file" in report.summary()
    stranger.write_bytes(b"?")
    report = verify_store(store, "film")
    assert not report.ok and [p.kind for p in report.problems] == ["UNLISTED"]
    os.utime(old, (1, 1))  # old enough: its writer is gone
    assert store.remove_abandoned_temp("published/film/") == [f"{PREFIX}/.tmp-abc123"]


def test_a_running_write_is_not_removed(tmp_path):
    store = LocalStore(tmp_path / "store")
    fd, tmp = store._mkstemp(store.root / PREFIX / "master.mkv")  # this process: alive
    os.close(fd)
    assert store.remove_abandoned_temp("published/film/") == []
    assert Path(tmp).exists() and "/.staging/" in tmp
