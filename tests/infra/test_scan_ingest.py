"""infra/pipeline/scans.py without a flow: an image sequence ingested into a local store, its frames stored
untouched, the shot detector's rows equal to what the shot-score tasks compute from the stored frames, a
re-ingest reusing the record, and what scans get wrong refused with the file named."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from catalog.recipe import SourceOptions
from infra.media import MediaError
from infra.mezzanine import MezzanineReader
from infra.pipeline.scans import ingest_sequence
from infra.runtime import current_store
from infra.sequence import FrameFormat, SequenceError, SequenceWriter, uint16_from_codes
from infra.settings import Settings
from models.shots import decide, frame_features, score_rows
from tests.flows.test_scans import scan_codes


@pytest.fixture
def store_env(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("REEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("REEL_CHUNK_FRAMES", "5")
    return tmp_path / "store"


def make(folder: Path, transfer: str = "Printing density") -> list[Path]:
    writer = SequenceWriter(folder, "r", FrameFormat("dpx", 10, transfer=transfer, fps=Fraction(18)), start=1)
    return writer.write_all(uint16_from_codes(c, 10) for c in scan_codes())


def test_ingest_stores_frames_untouched_and_scores_as_the_shot_tasks_do(store_env, tmp_path):
    paths = make(tmp_path / "scan")
    (tmp_path / "scan" / "r.0000004.dpx").unlink()
    record = ingest_sequence(str(tmp_path / "scan"), "scan", Settings())
    assert (record.frames, record.fps, record.mezzanine, record.bit_depth) == (12, "18/1", "sequence", 16)
    assert len(record.chunks) == 3 and record.sequence["missing"] == [{"frame": 3, "number": 4}]
    store = current_store()
    for p in paths[:3]:  # each file stored as it is, by its content
        import hashlib

        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        assert store.get_bytes(f"originals/scan/frames/{sha}.dpx") == p.read_bytes()
    reader = MezzanineReader(store, record, tmp_path / "cache")
    frames = reader.read_for_shots(0, record.frames)
    rows = score_rows([frame_features(f) for f in frames], 0, record.frames)
    import io

    import pandas as pd

    table = pd.read_parquet(io.BytesIO(store.get_bytes(f"{record.work_prefix}/shots-v{_detector()}.parquet")))
    assert [int(s) for s in table["start_frame"]] == [0, *decide(rows).cuts]
    # the held frame is the one before it; the working frames of a log scan are display-referred
    full = reader.read(0, record.frames)
    assert np.array_equal(full[3], full[2]) and full.dtype == np.uint16
    # a re-ingest finds the record by hashing the frames (nothing decoded or stored again)
    before = sorted(store.list(""))
    assert ingest_sequence(str(tmp_path / "scan"), "scan", Settings()) == record
    assert sorted(store.list("")) == before


def _detector() -> str:
    from models.shots import DETECTOR_VERSION

    return DETECTOR_VERSION


def test_what_scans_get_wrong_is_named(store_env, tmp_path):
    paths = make(tmp_path / "gap")
    paths[4].unlink()
    with pytest.raises(MediaError, match="1 frame number.s. missing, e.g. 5 .the recipe's source.gaps is refuse"):
        ingest_sequence(str(tmp_path / "gap"), "gap", Settings(), SourceOptions(gaps="refuse"))
    paths = make(tmp_path / "cut")
    data = paths[7].read_bytes()
    paths[7].write_bytes(data[: len(data) // 2])
    with pytest.raises(SequenceError, match=r"r\.0000008\.dpx.*truncated"):
        ingest_sequence(str(tmp_path / "cut"), "cut", Settings())
    paths = make(tmp_path / "odd")
    SequenceWriter(tmp_path / "odd", "r", FrameFormat("dpx", 12), start=9).write(np.zeros((48, 64, 3), np.uint16))
    with pytest.raises(SequenceError, match=r"r\.0000009\.dpx' is 64x48 12-bit RGB but the sequence is 64x48 10-bit"):
        ingest_sequence(str(tmp_path / "odd"), "odd", Settings())
    with pytest.raises(MediaError, match="headers give no frame rate"):
        SequenceWriter(tmp_path / "norate", "r", FrameFormat("tiff", 16)).write(np.zeros((48, 64, 3), np.uint16))
        ingest_sequence(str(tmp_path / "norate"), "norate", Settings())
    assert not current_store().list("work/cut") and not current_store().list("work/odd")  # nothing recorded


def test_catalogue_status_knows_a_sequence_by_its_listing(store_env, tmp_path):
    import pandas as pd

    from catalog.titles import parse_titles
    from flows.catalogue import source_facts
    from infra.catalogue_io import SourceChecksums, anchor_title

    make(tmp_path / "scan")
    record = ingest_sequence(str(tmp_path / "scan"), "scan", Settings())
    facts = source_facts(str(tmp_path / "scan"), Settings(), SourceChecksums(current_store()))
    assert facts == {"source_sha256": record.source_sha256}
    (title,) = parse_titles(pd.DataFrame([{"id": "scan", "source": "scan/r.%07d.dpx", "audio": "scan/r.wav"}]))
    anchored = anchor_title(title, tmp_path)
    assert anchored.audio == str(tmp_path / "scan" / "r.wav") and anchored.source.endswith("scan/r.%07d.dpx")
