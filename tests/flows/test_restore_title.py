"""restore-title end to end on a tiny synthetic film: local store and a real S3 server on loopback."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction

import numpy as np
import opentimelineio as otio
import pytest

from flows.restore_title import run_restore
from infra.media import audio_packet_digests, iter_frames, probe
from infra.runtime import current_store
from models.metrics import psnr, resize_to


def _check_published(summary: dict, film: dict, tmp_path) -> np.ndarray:
    """Fetch every output, verify checksums and the master's frames/fps/audio; return master frames."""
    manifest = summary["manifest"]
    store = current_store()
    prefix = f"published/{manifest['title']}/{manifest['version']}"
    stored = json.loads(store.get_bytes(f"{prefix}/manifest.json"))
    assert stored["version"] == manifest["version"]
    assert stored["outputs"][0]["kind"] == "master" and stored["outputs"][0]["path"] == "master.mkv"
    paths = {}
    for o in stored["outputs"]:
        dest = tmp_path / o["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(f"{prefix}/{o['path']}", dest)
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == o["sha256"]
        paths[o["path"]] = dest
    src = probe(film["path"])
    for name in ("master.mkv", "master-prores.mov"):
        info = probe(paths[name])
        assert info.video.fps == src.video.fps == Fraction(24)
        assert len(info.audio) == len(src.audio) == 1
    assert audio_packet_digests(paths["master.mkv"]) == audio_packet_digests(film["path"])
    master = np.stack(list(iter_frames(paths["master.mkv"], depth=16)))
    assert master.shape[0] == film["truth"]["frames"]
    prores_frames = sum(1 for _ in iter_frames(paths["master-prores.mov"]))
    assert prores_frames == film["truth"]["frames"]
    assert stored["source"]["sha256"] == hashlib.sha256(film["path"].read_bytes()).hexdigest()
    assert [s["start_frame"] for s in stored["shots"]][1:] == film["truth"]["cuts"]
    assert {s["kind"] for s in stored["shots"]} == {"shot"}  # hard cuts only in this film
    assert [s["name"] for s in stored["stages"]] == [s["name"] for s in stored["recipe"]["stages"]]
    qc = json.loads(paths["qc.json"].read_text())
    assert len(qc["shots"]) == len(film["truth"]["cuts"]) + 1
    # the repeated frame is found (on this tiny 160x120 film, slow weaving shots also give
    # candidates: the detector compares each pair with its neighbours' pairs, see CHANGELOG)
    assert set(film["truth"]["repeated_frames"]) <= set(qc["summary"]["duplicate_frames"])
    assert all(isinstance(s["scratch_pixels_filled"], int) for s in qc["shots"])
    # the shot list for grading suites (#22): OTIO and CMX 3600, listed (and so checked) like any output
    kinds = {o["path"]: o["kind"] for o in stored["outputs"]}
    assert kinds["shots.otio"] == "shot-list-otio" and kinds["shots.edl"] == "shot-list-edl"
    cuts = [(s["start_frame"], s["end_frame"] - s["start_frame"]) for s in stored["shots"]]
    timeline = otio.adapters.read_from_file(str(paths["shots.otio"]))
    clips = list(timeline.find_clips())
    assert [c.name for c in clips] == [f"shot{s['shot']:04d}" for s in stored["shots"]]
    assert [(c.source_range.start_time.value, c.source_range.duration.value) for c in clips] == cuts
    assert {c.media_reference.target_url for c in clips} == {stored["source"]["name"]}
    edl = otio.adapters.read_from_string(paths["shots.edl"].read_text(), "cmx_3600", rate=24)
    assert [(c.source_range.start_time.value, c.source_range.duration.value) for c in edl.find_clips()] == cuts
    return master.astype(np.float32) / 65535


def test_restore_on_local_store_improves_the_film_and_rerun_does_no_work(tiny_film, local_store_env, tmp_path):
    import io

    from infra.progress import watching

    lines = io.StringIO()
    with watching(terminal=io.StringIO(), plain=lines):  # not a terminal: plain progress lines
        first = run_restore(str(tiny_film["path"]), "tiny", "defects")
    assert first["pieces_restored"] > first["shots"] >= 3  # long shots were split into pieces
    n = len(tiny_film["degraded"])
    assert f"tiny: {n:,} of {n:,} frames restored" in lines.getvalue()
    master = _check_published(first, tiny_film, tmp_path / "out1")
    clean = tiny_film["clean_frames"].astype(np.float32) / 255
    degraded = tiny_film["degraded"].astype(np.float32) / 255
    assert psnr(master, clean) > psnr(degraded, clean) + 0.5

    before = sorted(current_store().list(""))
    again = run_restore(str(tiny_film["path"]), "tiny", "defects")
    assert again["pieces_restored"] == 0 and again["pieces_reused"] == first["pieces_restored"]
    assert again["manifest"]["version"] == first["manifest"]["version"]
    assert again["manifest"]["created_utc"] == first["manifest"]["created_utc"]  # not published twice
    assert sorted(current_store().list("")) == before  # nothing new written


def test_original_is_kept_untouched(tiny_film, local_store_env):
    digest = hashlib.sha256(tiny_film["path"].read_bytes()).hexdigest()
    summary = run_restore(str(tiny_film["path"]), "tiny-identity", "identity")
    assert hashlib.sha256(tiny_film["path"].read_bytes()).hexdigest() == digest
    key = summary["manifest"]["source"]["key"]
    assert key == f"originals/tiny-identity/{digest}.mkv"
    assert current_store().sha256(key) == digest


def test_identity_recipe_is_lossless(tiny_film, local_store_env, tmp_path):
    summary = run_restore(str(tiny_film["path"]), "tiny-identity", "identity")
    master = _check_published(summary, tiny_film, tmp_path)
    src = tiny_film["degraded"].astype(np.float32) / 255
    assert np.abs(master - src).max() < 1 / 255 / 2

    # the progress artifact people watch in the UI ended at 100 %
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["tiny-identity-restore-progress"])))
    assert arts and arts[0].type == "progress" and float(arts[0].data) == 100.0
    n = len(tiny_film["degraded"])  # the same numbers as the terminal display: frames, rate
    assert arts[0].description.startswith(f"tiny-identity: {n} of {n} frames restored, ")
    assert arts[0].description.endswith(" fps")


def test_restore_on_s3_server(tiny_film, s3_store_env, tmp_path):
    summary = run_restore(str(tiny_film["path"]), "tiny-s3", "default")
    master = _check_published(summary, tiny_film, tmp_path)
    assert master.shape[1:3] == (240, 320)  # default recipe upscales 2x
    clean = tiny_film["clean_frames"].astype(np.float32) / 255
    degraded = tiny_film["degraded"].astype(np.float32) / 255
    assert psnr(resize_to(master, 160, 120), clean) > psnr(degraded, clean)


def test_bad_source_fails_cleanly_and_publishes_nothing(tmp_path, local_store_env):
    bad = tmp_path / "broken.mkv"
    bad.write_bytes(b"\x1aE\xdf\xa3" + b"\x00garbage" * 200)
    with pytest.raises(ValueError):
        run_restore(str(bad), "broken", "identity")
    store = current_store()
    assert store.list("published/") == [] and store.list("work/") == []


@pytest.mark.slow  # a whole CLI/flow run; the default run keeps the faster checks of the same promise
def test_a_title_recipe_rebuilds_a_damaged_frame_and_keeps_the_rest(tiny_film, local_store_env, tmp_path):
    """interpolate with factor 1 in a title: the named frame is rebuilt from its neighbours (across the
    piece boundaries the flow cuts), every other frame passes through untouched."""
    from fractions import Fraction as F

    from models.clip import Clip
    from models.interpolate import Interpolate

    recipe = tmp_path / "rebuild.yaml"
    recipe.write_text("name: rebuild\nstages: [{name: interpolate, params: {factor: 1, rebuild_frames: [5]}}]\n")
    summary = run_restore(str(tiny_film["path"]), "tiny-rebuild", str(recipe))
    master = _check_published(summary, tiny_film, tmp_path)
    src = tiny_film["degraded"].astype(np.float32) / 255
    others = [i for i in range(len(src)) if i != 5]
    assert np.abs(master[others] - src[others]).max() < 1 / 255 / 2
    shot = Clip(frames=src[:12], fps=F(24))  # frame 5 lies in the first shot (12 frames)
    expected = Interpolate(factor=1, rebuild_frames=[5])(shot).frames[5]
    assert np.abs(master[5] - expected).max() < 1 / 255  # 16-bit segments, 8-bit source
    assert np.abs(master[5] - src[5]).mean() > 1e-3  # it was replaced
    stage = summary["manifest"]["shots"][0]["stage_reports"]
    assert any(r.get("stage") == "interpolate" and r.get("frames_rebuilt") == 1 for r in stage), stage


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_masters_are_joined_from_the_pieces_parts_and_older_pieces_get_theirs(tiny_film, local_store_env, tmp_path):
    """Workers encode each piece for every master (FFV1: the segment itself) and publish joins the
    parts by copying packets; they measure each piece's QC too. A store from before master parts and
    piece QC (records without them, no part objects, no QC cache) gets the parts made on reuse and
    the QC measured from the stored segments: the masters come out bit-identical, the QC the same.
    Publish's own encode (for parts that do not join) gives the same packets too."""
    import re

    import av

    from catalog.recipe import BUILTIN_RECIPES
    from catalog.records import IngestRecord, SegmentRecord
    from infra.pipeline.publish import _masters
    from models.qc import QC_VERSION

    first = run_restore(str(tiny_film["path"]), "tiny-parts", "identity")
    store = current_store()
    prefix = f"published/tiny-parts/{first['manifest']['version']}"
    masters = {o["path"]: o["sha256"] for o in first["manifest"]["outputs"] if o["kind"] in ("master", "delivery")}
    assert set(masters) == {"master.mkv", "master-prores.mov"}
    records = [k for k in store.list("work/tiny-parts/") if re.search(r"/shot\d{4}-p\d{2}-[0-9a-f]{16}\.json$", k)]
    segs = [SegmentRecord.model_validate_json(store.get_bytes(k)) for k in records]
    assert len(segs) == first["pieces_restored"]
    assert all(set(s.master_parts) == {"prores"} and store.exists(s.master_parts["prores"]) for s in segs)
    assert all(s.qc and s.qc["version"] == QC_VERSION and store.exists(s.qc_key) for s in segs)
    assert all(set(s.timing_s) == {"read", "chain", "segment", "store", "parts", "qc"} for s in segs)
    qc_first = json.loads(store.get_bytes(f"{prefix}/qc.json"))["shots"]

    for key, seg in zip(records, segs, strict=True):  # as an older Reel left it: no parts, nothing published
        store.delete(seg.master_parts["prores"])
        store.delete(seg.qc_key)
        store.put_bytes(key, seg.model_copy(update={"master_parts": {}, "qc": None, "qc_key": None})
                        .model_dump_json().encode())
    for key in store.list(prefix + "/") + [k for k in store.list("work/tiny-parts/") if f"/qc-v{QC_VERSION}/" in k]:
        store.delete(key)
    again = run_restore(str(tiny_film["path"]), "tiny-parts", "identity")
    assert again["pieces_restored"] == 0 and again["manifest"]["version"] == first["manifest"]["version"]
    assert {o["path"]: o["sha256"] for o in again["manifest"]["outputs"] if o["path"] in masters} == masters
    assert all(set(SegmentRecord.model_validate_json(store.get_bytes(k)).master_parts) == {"prores"}
               for k in records)
    assert json.loads(store.get_bytes(f"{prefix}/qc.json"))["shots"] == qc_first  # measured from storage now

    # publish's fallback: no parts -> both masters encoded from the decoded segments, same packets
    record = IngestRecord.model_validate_json(store.get_bytes(
        next(k for k in store.list("work/tiny-parts/") if k.endswith("/ingest.json"))))
    original = tmp_path / "original.mkv"
    store.get_file(record.original_key, original)
    encoded = _masters(store, record, BUILTIN_RECIPES["identity"], sorted(segs, key=lambda s: s.start),
                       tmp_path, original, record.width, record.height, join=False)

    def packets(path):
        with av.open(str(path)) as c:
            return [(p.stream.type, p.pts, bytes(p)) for p in c.demux() if p.size]

    for codec, name in (("ffv1", "master.mkv"), ("prores", "master-prores.mov")):
        joined = tmp_path / f"joined-{name}"
        store.get_file(f"{prefix}/{name}", joined)
        assert packets(encoded[codec]) == packets(joined), codec


def test_the_ingest_detects_the_shots_from_its_own_decode(tiny_film, local_store_env):
    """The ingest stores the shot table scored from the frames it decodes; it equals the table the
    chunk tasks make from the mezzanine (run when the table is missing or `from_step="shots"`)."""
    import io

    import pandas as pd

    from catalog.records import IngestRecord
    from infra.pipeline.shots import shots_key, store_shot_table
    from tasks.ingest import ingest
    from tasks.shots import chunk_scores

    record: IngestRecord = ingest.fn(str(tiny_film["path"]), "tiny-shots")
    store = current_store()
    from_ingest = pd.read_parquet(io.BytesIO(store.get_bytes(shots_key(record))))
    assert [int(c) for c in from_ingest["start_frame"]][1:] == tiny_film["truth"]["cuts"]
    rows = np.concatenate([chunk_scores.fn(record, i) for i in range(len(record.chunks))])
    pd.testing.assert_frame_equal(store_shot_table(store, record, rows), from_ingest)
    with pytest.raises(RuntimeError, match="rows for"):
        store_shot_table(store, record, rows[:-1])
