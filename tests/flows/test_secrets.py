"""Secrets canary: run restore-title against a real S3 server (moto, loopback) with a random secret key,
then search everything the run wrote for it. It must appear nowhere.

Searched: every object in the bucket (bytes and metadata), the flow's result, the Prefect
database (the harness's sqlite files and everything under PREFECT_HOME), Prefect artifacts,
flow-run parameters, task runs, states and logs read back through the Prefect client, captured
logs and output (caplog, capfd, including the Dask worker processes), and files written under
the temp folder during the run. Also a failing run (missing bucket), whose error goes through
Prefect's failure path, and the settings objects' repr/str/JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from minio import Minio

from flows.restore_title import run_restore

ACCESS = "reel-test"


def _needles(canary: str) -> list[bytes]:
    """The canary as bytes, plus its base64 forms at every alignment (a JSON/b64 blob would hide it)."""
    raw = canary.encode()
    found = [raw, canary.encode("utf-16-le")]
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + raw)
        found.append(enc[4 if pad else 0 : -4])  # drop the chunks touched by padding
    return [n for n in found if len(n) >= 12]


def _hits(data: bytes, needles: list[bytes]) -> bool:
    return any(n in data for n in needles)


def _scan_tree(root: Path, needles: list[bytes], since: float | None = None, limit: int = 512 << 20) -> tuple[int, list]:
    """(files read, files holding a needle) under root; optionally only files modified since `since`."""
    read, leaks = 0, []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            try:
                st = path.stat()
                if not path.is_file() or st.st_size > limit or (since is not None and st.st_mtime < since):
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            read += 1
            if _hits(data, needles):
                leaks.append(str(path))
    return read, leaks


def _prefect_db_dir() -> Path:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    assert url and url.startswith("sqlite"), url
    return Path(unquote(urlparse(url.replace("sqlite+aiosqlite", "sqlite")).path)).parent


def _failed_task_runs(title: str) -> list:
    """Failed task runs of the flow run started for `title`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.parameters.get("title") == title]
        assert len(runs) == 1, runs
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
    return [t for t in tasks if t.state is not None and t.state.is_failed()]


def _prefect_records() -> dict[str, str]:
    """Everything the Prefect API holds about the runs, as JSON text per kind."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import LogSort

    def every(read, **kw):  # the API pages at 200 records: read them all, not the first page
        out, offset = [], 0
        while page := read(limit=200, offset=offset, **kw):
            out += page
            offset += len(page)
        return out

    with get_client(sync_client=True) as client:
        flow_runs = every(client.read_flow_runs)
        out = {
            "artifacts": [a.model_dump(mode="json") for a in every(client.read_artifacts)],
            "flow_runs": [r.model_dump(mode="json") for r in flow_runs],
            "flow_run_parameters": [r.parameters for r in flow_runs],
            "task_runs": [r.model_dump(mode="json") for r in every(client.read_task_runs)],
            "states": [s.model_dump(mode="json") for r in flow_runs for s in client.read_flow_run_states(r.id)],
            "logs": [log.model_dump(mode="json") for log in every(client.read_logs, sort=LogSort.TIMESTAMP_DESC)],
            "variables": [v.model_dump(mode="json") for v in client.read_variables()],
        }
    return {k: json.dumps(v, default=str) for k, v in out.items()}


def test_the_search_would_find_a_leak(tmp_path):
    """Positive control for the scan below: plain, base64 (any alignment) and UTF-16 copies are found."""
    canary = "CANARY-" + secrets.token_hex(16)
    needles = _needles(canary)
    for i, blob in enumerate((f"x={canary};".encode(), base64.b64encode(b"k" + canary.encode() + b"!"),
                              base64.b64encode(b"ab" + canary.encode()), base64.b64encode(canary.encode()),
                              f"'{canary}'".encode("utf-16-le"))):
        (tmp_path / f"f{i}").write_bytes(b"\0head" + blob + b"tail")
    (tmp_path / "clean").write_bytes(b"CANARY-" + secrets.token_hex(16).encode())
    read, leaks = _scan_tree(tmp_path, needles)
    assert read == 6 and sorted(Path(p).name for p in leaks) == [f"f{i}" for i in range(5)]


@pytest.fixture
def canary_env(s3_server, monkeypatch) -> dict:
    canary = "CANARY-" + secrets.token_hex(16)
    prefix = f"canary-{secrets.token_hex(4)}"
    monkeypatch.setenv("REEL_STORE", f"s3://reel/{prefix}")
    monkeypatch.setenv("REEL_S3_ENDPOINT", s3_server)
    monkeypatch.setenv("REEL_S3_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("REEL_S3_SECRET_KEY", canary)  # moto accepts any secret
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "16")
    monkeypatch.setenv("REEL_PIECE_FRAMES", "12")
    return {"canary": canary, "needles": _needles(canary), "endpoint": s3_server, "prefix": prefix}


def test_settings_never_show_the_secret(canary_env):
    from infra.settings import load_settings
    from infra.storage import open_store

    canary = canary_env["canary"]
    settings = load_settings()
    config = settings.store_config()
    assert config.s3_secret_key.get_secret_value() == canary  # it is really there ...
    for obj in (settings, config):  # ... and never shown
        for text in (repr(obj), str(obj), obj.model_dump_json(), json.dumps(obj.model_dump(mode="json"))):
            assert canary not in text
    store = open_store(config)
    assert canary not in repr(store) and canary not in store.url and canary not in str(vars(store).get("url"))


def test_s3_secret_from_a_prefect_secret_block(canary_env, monkeypatch):
    """The secret can live in a Prefect Secret block instead of the environment."""
    from prefect.blocks.system import Secret

    from infra import settings as settings_mod
    from infra.storage import open_store

    block = f"reel-s3-secret-{secrets.token_hex(3)}"
    Secret(value=canary_env["canary"]).save(block)
    monkeypatch.delenv("REEL_S3_SECRET_KEY")
    monkeypatch.setenv("REEL_S3_SECRET_KEY_BLOCK", block)
    settings_mod._secret_block.cache_clear()
    settings = settings_mod.load_settings()
    assert settings.s3_secret_key.get_secret_value() == canary_env["canary"]
    assert canary_env["canary"] not in repr(settings) + settings.model_dump_json()
    store = open_store(settings.store_config())
    store.put_bytes("block-check.txt", b"ok")
    assert store.get_bytes("block-check.txt") == b"ok"

    monkeypatch.setenv("REEL_S3_SECRET_KEY_BLOCK", "no-such-block")
    with pytest.raises(ValueError, match="cannot load the Prefect Secret block 'no-such-block'"):
        settings_mod.load_settings()


def test_canary_secret_appears_nowhere(tiny_film, canary_env, caplog, capfd):
    canary, needles = canary_env["canary"], canary_env["needles"]
    caplog.set_level(logging.DEBUG)
    tmp_root = Path(tempfile.gettempdir())
    started = time.time() - 1

    summary = run_restore(str(tiny_film["path"]), "tiny-canary", "identity")
    assert summary["manifest"]["outputs"]

    # A failing run too: the same secret, a bucket that is not there (permanent: not retried).
    os.environ["REEL_STORE"] = f"s3://no-such-bucket-{secrets.token_hex(3)}/x"  # restored by monkeypatch
    with pytest.raises(Exception) as failed:
        run_restore(str(tiny_film["path"]), "tiny-canary-fail", "identity")
    assert "does not exist" in str(failed.value) and canary not in str(failed.value) + repr(failed.value)
    failed_tasks = _failed_task_runs("tiny-canary-fail")
    assert failed_tasks and all(t.run_count == 1 for t in failed_tasks), [  # permanent: no retry
        (t.name, t.run_count) for t in failed_tasks]

    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    leaks: dict[str, object] = {}
    searched: dict[str, int] = {}

    # the flow's result
    result_text = json.dumps(summary, default=str) + repr(summary)
    searched["result"] = 1
    if _hits(result_text.encode(), needles):
        leaks["result"] = True

    # every object in the bucket: bytes and metadata
    raw = Minio(canary_env["endpoint"], access_key=ACCESS, secret_key="not-the-canary", secure=False)
    objects = list(raw.list_objects("reel", recursive=True))
    assert any(o.object_name.startswith(canary_env["prefix"] + "/published/") for o in objects)
    for obj in objects:
        response = raw.get_object("reel", obj.object_name)
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        meta = json.dumps(dict(raw.stat_object("reel", obj.object_name).metadata)).encode()
        if _hits(data, needles) or _hits(meta, needles) or _hits(obj.object_name.encode(), needles):
            leaks.setdefault("objects", []).append(obj.object_name)
    searched["objects"] = len(objects)

    # the Prefect database and home (sqlite + WAL, result storage, anything else)
    for label, root in (("prefect_db", _prefect_db_dir()), ("prefect_home", Path(os.environ["PREFECT_HOME"]))):
        n, bad = _scan_tree(root, needles)
        searched[label] = n
        if bad:
            leaks[label] = bad
    assert searched["prefect_db"] >= 1

    # what the API serves: artifacts, flow runs and their parameters, task runs, states, logs
    records = _prefect_records()
    for kind, text in records.items():
        searched[f"api_{kind}"] = len(text)
        if _hits(text.encode(), needles):
            leaks[f"api_{kind}"] = True
    assert "tiny-canary" in records["flow_run_parameters"] and "does not exist" in records["logs"]

    # captured logs and output, this process and the Dask workers (fd-level capture)
    out, err = capfd.readouterr()
    for label, text in (("caplog", caplog.text), ("stdout", out), ("stderr", err)):
        searched[label] = len(text)
        if _hits(text.encode(), needles):
            leaks[label] = True

    # temp files written during the run (scratch folders, Dask spill, pytest's tmp)
    n, bad = _scan_tree(tmp_root, needles, since=started)
    searched["temp_files"] = n
    if bad:
        leaks["temp_files"] = bad

    print(f"canary searched in: {searched}")
    assert not leaks, f"the secret key leaked into: {leaks}"
