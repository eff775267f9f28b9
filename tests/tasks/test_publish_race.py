"""The loser of the manifest's conditional create reads the winner's manifest even while the winner
is still recording its checksum (a local store links the object first, then writes the sidecar)."""

from __future__ import annotations

import hashlib
import json
import threading
import time

from infra.pipeline.publish import _published_by_other
from infra.storage import LocalStore


def test_the_loser_waits_for_the_winners_manifest_to_be_complete(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    key = "published/t/v-1/manifest.json"
    data = json.dumps({"version": "v-1"}).encode()
    path = store._path(key)  # as the winner leaves it between os.link and the sidecar
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert not store.exists(key) and not store.put_if_absent(key, b"{}")  # taken, not yet complete
    finish = threading.Timer(0.3, store._write_meta, (key, hashlib.sha256(data).hexdigest(), len(data), None))
    finish.start()
    t0 = time.monotonic()
    assert _published_by_other(store, key) == {"version": "v-1"}
    assert time.monotonic() - t0 >= 0.25  # it waited for the sidecar rather than failing
    finish.join()
