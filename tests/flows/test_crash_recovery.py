"""Crash recovery: a killed `reel restore`, a killed Dask worker, and two runs publishing the same version.

Each scenario ends with the same checks: exactly one manifest for the title, every object it names
present and matching its checksum, every object the store lists matching its sidecar (no
half-written object is visible, whatever a kill left on disk), and a master equal to that of an
uninterrupted run of the same film in another store or under another title: same sha256 in the
manifest and of the file (writers are bit-exact: no random Matroska SegmentUID).

The in-process runs use a LocalCluster of 2 worker processes (as the CLI starts) through
REEL_DASK_ADDRESS, so the test can kill a worker; the CLI runs start their own, as a user's would.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from infra.fixity import verify_store
from infra.media import audio_packet_digests, iter_frames
from infra.storage import LocalStore

REF_TITLE = "crash-reference"
REEL = Path(sys.executable).with_name("reel")
SETTINGS = {"REEL_CHUNK_FRAMES": "16", "REEL_PIECE_FRAMES": "8"}  # tiny film: 36 frames -> 6 pieces of <= 8
PIECES = 6
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}  # as infra.cluster


# --------------------------------------------------------------------------- helpers


def segment_records(root: Path, title: str) -> list[Path]:
    """Complete restored-segment records (object and sidecar): work/<title>/<sha>/<chain>/shot*.json."""
    return [p for p in root.glob(f"work/{title}/*/*/shot*.json")
            if (root / ".meta" / f"{p.relative_to(root).as_posix()}.json").is_file()]


def manifests(root: Path, title: str) -> list[Path]:
    return sorted(root.glob(f"published/{title}/*/manifest.json"))


def wait_for(predicate, timeout: float, what: str, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if not alive():
            raise AssertionError(f"the run ended before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def master_sha(manifest: dict) -> str:
    (master,) = [o for o in manifest["outputs"] if o["kind"] == "master"]
    return master["sha256"]


def check_store(root: Path, title: str, reference: dict) -> dict:
    """The published state is whole, the store shows nothing half-written, and the master has the
    reference's pictures and audio; returns the manifest."""
    store = LocalStore(root)
    found = manifests(root, title)
    assert len(found) == 1, f"expected exactly one manifest, found {found}"
    manifest = json.loads(store.get_bytes(found[0].relative_to(root).as_posix()))
    assert manifest["version"] == reference["version"]
    prefix = f"published/{title}/{manifest['version']}"

    # every segment the manifest names exists, complete (sidecar and record) and unaltered
    segs = [k for s in manifest["shots"] for k in s["segments"]]
    assert len(segs) == len(set(segs)) == PIECES
    for key in segs:
        assert store.exists(key), f"the manifest names a missing segment {key}"
        assert store.digest(key) == (store.sha256(key), store.size(key)), key
        assert store.exists(key.removesuffix(".mkv") + ".json")
    # every output the manifest names matches it (fixity audit: re-hashed, nothing missing or unlisted)
    report = verify_store(store, title)
    master = root / prefix / "master.mkv"
    assert report.ok, report.lines()
    assert hashlib.sha256(master.read_bytes()).hexdigest() == master_sha(manifest) == store.sha256(
        f"{prefix}/master.mkv")

    # whatever a kill left behind (.tmp-* files of interrupted atomic writes, objects without a
    # sidecar) is invisible: every listed key is a complete object whose bytes match its sidecar
    for key in store.list(""):
        assert not Path(key).name.startswith("."), f"a temp file is listed as an object: {key}"
        assert store.exists(key)
        assert store.digest(key) == (store.sha256(key), store.size(key)), f"listed object {key} is partial"

    frames = np.stack(list(iter_frames(master, depth=16)))
    assert np.array_equal(frames, np.stack(list(iter_frames(reference["path"], depth=16))))
    assert audio_packet_digests(master) == audio_packet_digests(reference["path"])
    return manifest


def same_master_bytes(manifest: dict, reference: dict) -> None:
    """The master's sha256 equals the uninterrupted run's: bit-identical."""
    assert master_sha(manifest) == reference["sha256"]


def run_in_thread(fn, *args) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A LocalCluster of 2 worker processes (as the CLI starts) on one store, for the in-process runs.

    Workers read the store from their own environment (infra.runtime.current_store), not from the
    flow, so the store is fixed when the cluster starts (nanny restarts keep it); the in-process runs
    share it and keep apart by title.
    """
    from distributed import Client, LocalCluster

    root = tmp_path_factory.mktemp("shared") / "store"
    env = {"REEL_STORE": str(root), **SETTINGS}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={**WORKER_ENV, **env}) as c, Client(c) as client:
        yield {"root": root, "client": client, "env": {**env, "REEL_DASK_ADDRESS": c.scheduler_address}}


@pytest.fixture
def cluster_env(cluster, monkeypatch) -> dict:
    cluster["client"].wait_for_workers(2, timeout=60)
    for k, v in cluster["env"].items():
        monkeypatch.setenv(k, v)
    return cluster


@pytest.fixture(scope="module")
def reference(cluster, tiny_film) -> dict:
    """The master of an uninterrupted run (title REF_TITLE): its sha256 and path."""
    from flows.restore_title import run_restore

    with pytest.MonkeyPatch.context() as mp:
        for k, v in cluster["env"].items():
            mp.setenv(k, v)
        summary = run_restore(str(tiny_film["path"]), REF_TITLE, "defects")
    assert summary["pieces_restored"] == 6 and summary["pieces_reused"] == 0
    sha = master_sha(summary["manifest"])
    path = cluster["root"] / f"published/{REF_TITLE}/{summary['manifest']['version']}/master.mkv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    return {"sha256": sha, "path": path, "version": summary["manifest"]["version"]}


# --------------------------------------------------------------------------- a. kill the flow process


def _group_alive(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_killed_cli_run_resumes_and_publishes_the_same_master(tiny_film, reference, tmp_path):
    title = "crash-cli"
    root = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REEL_", "PREFECT_API_URL"))}
    env.update(SETTINGS, REEL_STORE=str(root), REEL_DASK_WORKERS="2", PREFECT_HOME=str(tmp_path / "prefect"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")  # its own store and an ephemeral Prefect API
    cmd = [str(REEL), "restore", str(tiny_film["path"]), "--title", title, "--recipe", "defects",
           "--out", str(tmp_path / "out")]

    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: segment_records(root, title) or manifests(root, title), 180,
                     "a restored segment record", alive=lambda: proc.poll() is None)
        finally:  # the CLI, its Dask nanny and workers, the ephemeral Prefect server: one process group
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    wait_for(lambda: not _group_alive(proc.pid), 10, "the killed process group to go")
    done_before = len(segment_records(root, title))
    assert not manifests(root, title), "published before a segment was seen: the kill tested nothing"
    assert 1 <= done_before < PIECES
    store = LocalStore(root)
    for key in store.list(""):  # the killed run's store is as consistent as a finished one
        assert store.digest(key) == (store.sha256(key), store.size(key)), key

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    m = re.search(r"pieces restored (\d+), reused (\d+)\)", again.stdout)
    assert m, again.stdout[-2000:]
    restored, reused = int(m[1]), int(m[2])
    assert reused >= done_before and restored + reused == PIECES, (restored, reused, done_before)

    manifest = check_store(root, title, reference)
    copied = tmp_path / "out" / "master.mkv"  # what --out received is what was published
    assert hashlib.sha256(copied.read_bytes()).hexdigest() == master_sha(manifest)
    same_master_bytes(manifest, reference)


# --------------------------------------------------------------------------- b. kill a Dask worker


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_killed_dask_worker_is_rescheduled_and_master_is_the_same(tiny_film, reference, cluster_env, capsys):
    """Dask reschedules the killed worker's tasks (restore-piece is idempotent) and the run completes."""
    from flows.restore_title import run_restore

    title, root, client = "crash-worker", cluster_env["root"], cluster_env["client"]
    thread, box = run_in_thread(run_restore, str(tiny_film["path"]), title, "defects")
    wait_for(lambda: segment_records(root, title) or manifests(root, title), 180, "a restored segment record",
             alive=thread.is_alive)
    assert not manifests(root, title)
    pids = client.run(os.getpid)  # {worker address: pid}
    busy = [w for w, tasks in client.processing().items() if tasks]  # prefer one running a piece now
    victim = busy[0] if busy else sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(300)
    assert not thread.is_alive(), "the run hung after a worker was killed"

    if "error" in box:  # not what happens today; a rerun must then finish the job
        with capsys.disabled():
            print(f"\nrun failed after the worker kill ({box['error']!r}); rerunning")
        summary = run_restore(str(tiny_film["path"]), title, "defects")
        assert summary["pieces_reused"] > 0
    else:
        summary = box["result"]
    assert summary["pieces_restored"] + summary["pieces_reused"] == PIECES
    manifest = check_store(root, title, reference)
    assert summary["manifest"] == manifest
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    same_master_bytes(manifest, reference)


# --------------------------------------------------------------------------- c. two runs publish at once


def test_two_concurrent_runs_publish_one_manifest(tiny_film, reference, cluster_env, monkeypatch):
    """Two runs of one title+source+recipe at once, in the order that hurts: both write the version's
    outputs, then the one that finished writing them first creates the manifest and the other loses the
    conditional create (a barrier holds both there, so neither sees the other's manifest earlier).
    Exactly one manifest, both runs return it, and the published files match it.
    (tests/infra/test_storage.py covers put_if_absent itself; this is the flow around it.)"""
    from flows.restore_title import run_restore

    title, root = "crash-race", cluster_env["root"]
    import infra.pipeline.publish

    real_put_file, real_put_if_absent = LocalStore.put_file, LocalStore.put_if_absent
    real_write_outputs = infra.pipeline.publish._write_outputs
    barrier = threading.Barrier(2, timeout=180)
    master_writers: list[int] = []  # one entry per put of master.mkv (from publish's own threads)
    output_writers: list[int] = []  # flow threads, in the order they finished writing their outputs
    first_done = threading.Event()
    created: list[bool] = []

    def put_file(self, key, local_path, content_type=None):
        sha = real_put_file(self, key, local_path, content_type)
        if key.endswith("/master.mkv"):
            master_writers.append(threading.get_ident())
        return sha

    def write_outputs(*args, **kwargs):
        done = real_write_outputs(*args, **kwargs)
        output_writers.append(threading.get_ident())
        return done

    def put_if_absent(self, key, data, content_type=None):
        if not key.endswith("/manifest.json"):
            return real_put_if_absent(self, key, data, content_type)
        barrier.wait()
        if threading.get_ident() != output_writers[0]:
            first_done.wait(60)
        ok = real_put_if_absent(self, key, data, content_type)
        created.append(ok)
        first_done.set()
        return ok

    monkeypatch.setattr(LocalStore, "put_file", put_file)  # publish runs in each flow's own thread
    monkeypatch.setattr(LocalStore, "put_if_absent", put_if_absent)
    monkeypatch.setattr(infra.pipeline.publish, "_write_outputs", write_outputs)
    runs = [run_in_thread(run_restore, str(tiny_film["path"]), title, "defects") for _ in range(2)]
    for t, _ in runs:
        t.join(300)
        assert not t.is_alive(), "a concurrent run hung"
    errors = [box["error"] for _, box in runs if "error" in box]
    assert not errors, errors
    # the first to finish won; the loser found the same master already there and did not rewrite it
    # (both may write if they checked at the same instant: identical bytes either way)
    assert created == [True, False] and 1 <= len(master_writers) <= 2
    a, b = (box["result"]["manifest"] for _, box in runs)
    assert a == b
    manifest = check_store(root, title, reference)  # fixity after both runs
    assert manifest == a
    same_master_bytes(manifest, reference)
