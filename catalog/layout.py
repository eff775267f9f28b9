"""Every storage key Reel writes or reads, built in one place (one bucket or one local folder).

```
originals/<title>/<sha256>.<ext>                                  the untouched source, write-once (an image
                                                                  sequence: its listing, .json)
originals/<title>/frames/<sha256>.<ext>                           an image sequence's frames, by content
work/<title>/<source-sha>[-s<stream>]/                            one source's work (`work_prefix`)
    ingest.json                                                   the ingest record (written last)
    mezzanine/<chunk:05d>.mkv                                     frame-exact chunks (.json: frame keys)
    shots-v<detector>.parquet                                     the shot table
    <chain-hash>/shot<shot:04d>-p<part:02d>-<hash>.mkv            a restored piece (segment) ...
    <chain-hash>/shot....json / -qc-v<qc>.npz / -<codec>.mkv|.mov  ... its record, QC pictures, master parts
    <chain-hash>/qc-v<qc>/shot<shot:04d>-<tag>.json|-<name>.png   per-shot QC and pictures
    <chain-hash>/qc-v<qc>/qc.json                                 the title's QC report
    manual/shot<shot:04d>-<takeback>-p<part:02d>.mkv|.json        an artist's frames taken back: pieces, records
artist/<title>/<source-sha>[-s<stream>]/                          an artist's work on a source (`artist_prefix`)
    handoffs/<handoff>.json                                       shots handed to an artist (catalog.handoff)
    manual/shot<shot:04d>.json                                    the shot's current manual work (written last)
    manual/shot<shot:04d>-<takeback>.json                         each takeback's record, as written
grades/learned/<hash>.npy|.json                                   learned grade LUTs (cached by pixels)
catalogue/checksums/<hash>.json                                   sources' checksums (catalogue status)
published/<title>/<version>/                                      a published version (`version_prefix`)
    master.mkv, master-prores.mov, qc.json, qc/..., grades/<label>.cube, shots.otio, shots.edl,
    master-dpx/<stem>.<frame:07d>.dpx (also -tiff, -exr), sound.<ext>, manifest.json (written last)
```

Pure string functions: no I/O, no imports from the outer rings. A key changed here changes every stored
object's address, so stored keys must stay byte-identical across refactors (benchmarks/refactor_check.py).
"""

from __future__ import annotations

import re

ORIGINALS = "originals"
WORK = "work"
ARTIST = "artist"
PUBLISHED = "published"
GRADES_LEARNED = "grades/learned"
CHECKSUMS_PREFIX = "catalogue/checksums"
STAGING_DIR = ".staging"  # a local store's temps of writes under way (never inside a version folder)
META_DIR = ".meta"  # a local store's sidecars (sha256 of each object)

MANIFEST = "manifest.json"  # in a published version, written last: its presence means "published"
QC_JSON = "qc.json"
REPORT_HTML = "qc/report.html"  # the HTML QC report in a published version
SHOTS_OTIO = "shots.otio"  # the shot list as an OpenTimelineIO timeline (catalog/editorial.py)
SHOTS_EDL = "shots.edl"  # the shot list as a CMX 3600 EDL
MASTER_FILES = {"ffv1": ("master.mkv", "master"), "prores": ("master-prores.mov", "delivery")}
SEQUENCE_MASTERS = {"dpx": "dpx", "tiff": "tif", "exr": "exr"}  # masters published as frame sequences: extension


# --- originals and a source's work -------------------------------------------------------------------


def original_key(title: str, source_sha256: str, ext: str) -> str:
    return f"{ORIGINALS}/{title}/{source_sha256}.{ext}"


def original_frames_prefix(title: str) -> str:
    """Where an image-sequence source's frames are stored (`original_frame_key`)."""
    return f"{ORIGINALS}/{title}/frames"


def original_frame_key(title: str, frame_sha256: str, ext: str) -> str:
    """One frame of an image-sequence source, addressed by its content (a repeated frame is stored once)."""
    return f"{original_frames_prefix(title)}/{frame_sha256}.{ext}"


def sequence_candidate_key(title: str, digest: str) -> str:
    """Which listing a sequence with these names and sizes had when last ingested (a hint, checked by hashing)."""
    return f"{WORK}/{title}/sequences/{digest}.json"


def work_prefix(title: str, source_sha256: str, stream: int | None = None) -> str:
    """Where a source's work lives; a named video stream other than the default gets its own folder."""
    return f"{WORK}/{title}/{source_sha256}" + ("" if stream is None else f"-s{stream}")


def ingest_record_key(prefix: str) -> str:
    return f"{prefix}/ingest.json"


def mezzanine_key(prefix: str, chunk: int) -> str:
    return f"{prefix}/mezzanine/{chunk:05d}.mkv"


def sequence_chunk_key(prefix: str, chunk: int) -> str:
    """An image sequence's mezzanine chunk: the JSON list of its frames' original keys."""
    return f"{prefix}/mezzanine/{chunk:05d}.json"


def shots_key(prefix: str, detector_version: str) -> str:
    return f"{prefix}/shots-v{detector_version}.parquet"


# --- restored pieces -----------------------------------------------------------------------------------


def segment_key(prefix: str, chain_hash: str, shot: int, part: int, digest: str) -> str:
    """A restored piece: `digest` is the hash of its inputs, stage versions, parameters and bound data."""
    return f"{prefix}/{chain_hash}/shot{shot:04d}-p{part:02d}-{digest}.mkv"


def segment_record_key(segment: str) -> str:
    """The piece's record (written after the segment: its presence means the segment is complete)."""
    return segment.removesuffix(".mkv") + ".json"


def piece_qc_key(segment: str, qc_version: str) -> str:
    """The piece's QC pictures (.npz), measured while its frames were in memory."""
    return segment.removesuffix(".mkv") + f"-qc-v{qc_version}.npz"


def master_part_key(segment: str, codec: str) -> str:
    """The piece's frames encoded for one master (every master but FFV1, whose part is the segment)."""
    return f"{segment.removesuffix('.mkv')}-{codec}{'.mov' if codec == 'prores' else '.mkv'}"


# --- an artist's work (catalog/handoff.py) ---------------------------------------------------------------


def artist_prefix(prefix: str) -> str:
    """`artist/<title>/<source-sha>[-s<stream>]` for a source's work prefix: the small records of handoffs and
    takebacks, outside work/ so that one listing of `artist/` finds them for a whole catalogue."""
    if not prefix.startswith(f"{WORK}/"):
        raise ValueError(f"not a work prefix: {prefix!r}")
    return ARTIST + prefix[len(WORK):]


def handoffs_prefix(prefix: str) -> str:
    """Every handoff of a source (a listing prefix, with its slash); `prefix`: the source's work prefix."""
    return f"{artist_prefix(prefix)}/handoffs/"


def handoff_key(prefix: str, handoff: str) -> str:
    return f"{handoffs_prefix(prefix)}{handoff}.json"


def manual_prefix(prefix: str) -> str:
    """Every takeback record of a source (a listing prefix, with its slash)."""
    return f"{artist_prefix(prefix)}/manual/"


def manual_key(prefix: str, shot: int) -> str:
    """The shot's current manual work (written last by a takeback: its presence means the work is stored)."""
    return f"{manual_prefix(prefix)}shot{shot:04d}.json"


def is_manual_key(key: str) -> bool:
    """`artist/<title>/<source>/manual/shotNNNN.json` (a shot's current manual work, not a takeback's record)."""
    return re.fullmatch(rf"{ARTIST}/[^/]+/[^/]+/manual/shot\d{{4}}\.json", key) is not None


def takeback_key(prefix: str, shot: int, takeback: str) -> str:
    """One takeback's record, kept as it was written (history)."""
    return f"{manual_prefix(prefix)}shot{shot:04d}-{takeback}.json"


def manual_segment_key(prefix: str, shot: int, takeback: str, part: int) -> str:
    """A piece of a taken-back shot: the artist's frames as a lossless 16-bit segment."""
    return f"{prefix}/manual/shot{shot:04d}-{takeback}-p{part:02d}.mkv"


# --- QC --------------------------------------------------------------------------------------------------


def qc_prefix(prefix: str, chain_hash: str, qc_version: str) -> str:
    return f"{prefix}/{chain_hash}/qc-v{qc_version}"


def qc_shot_key(qc_dir: str, shot: int, tag: str) -> str:
    return f"{qc_dir}/shot{shot:04d}-{tag}.json"


def qc_picture_key(qc_dir: str, shot: int, tag: str, name: str) -> str:
    return f"{qc_dir}/shot{shot:04d}-{tag}-{name}.png"


def qc_report_key(qc_dir: str) -> str:
    return f"{qc_dir}/{QC_JSON}"


# --- caches outside a title --------------------------------------------------------------------------------


def learned_grade_key(digest: str) -> str:
    """Stem of a learned grade (`.npy` LUT, `.json` report written last)."""
    return f"{GRADES_LEARNED}/{digest}"


def checksum_key(digest: str) -> str:
    return f"{CHECKSUMS_PREFIX}/{digest}.json"


# --- published versions ------------------------------------------------------------------------------------


def title_published_prefix(title: str) -> str:
    """`published/<title>/`: every version of a title (a listing prefix, with its slash)."""
    return f"{PUBLISHED}/{title}/"


def version_prefix(title: str, version: str) -> str:
    """`published/<title>/<version>`: one version's folder (no trailing slash)."""
    return f"{PUBLISHED}/{title}/{version}"


def published_key(title: str, version: str, path: str) -> str:
    """The key of `path` (relative, e.g. "master.mkv", "qc/report.html") in a published version."""
    return f"{version_prefix(title, version)}/{path}"


def manifest_key(title: str, version: str) -> str:
    return published_key(title, version, MANIFEST)


def is_manifest_key(key: str) -> bool:
    """`published/<title>/<version>/manifest.json` exactly (not a file deeper in a version)."""
    parts = key.split("/")
    return len(parts) == 4 and parts[0] == PUBLISHED and parts[3] == MANIFEST


def published_qc_paths(shot: int) -> dict[str, str]:
    """Where a shot's pictures go in a published version (relative to its folder)."""
    return {"image": f"qc/shot{shot:04d}-before-after.png", "contact_sheet": f"qc/shot{shot:04d}-contact-sheet.png"}


# The keys `reel serve`'s picture page may serve: the per-run QC folder in work/, and the qc/ folder and
# report of a published version (never masters, originals or anything else).
QC_SERVED = re.compile(r"(work/[a-z0-9-]+/[0-9a-f]{64}/[0-9a-f]{16}/qc-v\d+/[A-Za-z0-9._-]+\.(png|json)"
                       r"|published/[a-z0-9-]+/v-[0-9a-f]+/(qc/[A-Za-z0-9._/-]+\.(png|html)|qc\.json))")


def sequence_master_path(codec: str, stem: str, number: int) -> str:
    """One frame of a sequence master in a published version (relative to its folder)."""
    return f"master-{codec}/{stem}.{number:07d}.{SEQUENCE_MASTERS[codec]}"


def sound_path(ext: str) -> str:
    """The separate sound, published untouched beside the sequence masters."""
    return f"sound.{ext}"


def grade_path(label: str) -> str:
    """A grade's .cube in a published version (relative to its folder)."""
    return f"grades/{label}.cube"
