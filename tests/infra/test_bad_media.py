"""Bad, odd and hostile media: nothing crashes, hangs, opens other files, or silently loses frames.

Every case of the corpus (made in code by tests/infra/bad_media.py) has one stated outcome:

  ok N <check>        probe describes it and iter_frames decodes N frames that match what was
                      written: exact (lossless, 8 or 16 bits), or close (lossy codecs: every
                      frame within a few code values, in order)
  refused "<text>"    probe raises MediaError, one line, "cannot read media '<path>': ..." with <text>
  decode refused      probe describes it, decoding it raises MediaError with <text> (frames lost)

`+decode` marks the hostile cases that the in-process decoding path (iter_frames) must refuse as
well, without opening what they point to. A few cases then run the real CLI in a child process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from infra.media import MediaError, MediaInfo, iter_frames, probe
from tests.infra import bad_media as bm

REPO = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Ok:
    frames: int
    check: str  # "exact" (8-bit), "exact16" (16-bit), "close" (lossy), "tail" (frame 0 damaged, others exact)

    def __str__(self) -> str:
        return f"ok {self.frames} {self.check}"


@dataclass(frozen=True)
class Refused:
    text: str

    def __str__(self) -> str:
        return f"refused {self.text!r}"


@dataclass(frozen=True)
class DecodeRefused:
    text: str

    def __str__(self) -> str:
        return f"probe ok, decode refused {self.text!r}"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], Path]
    expect: Ok | Refused | DecodeRefused
    decode_too: bool = False  # hostile: iter_frames must refuse it as well
    probe_kwargs: dict = field(default_factory=dict)


NOT_ACCEPTED = "is not accepted (Reel reads"
C = Case
# fmt: off
CASES = [
    # name                              maker                           expected outcome
    # -- not media at all
    C("empty",                          bm.empty,                       Refused("file is empty")),
    C("random_garbage",                 bm.garbage,                     Refused("FFmpeg cannot open it")),
    C("zero_bytes_named_mov",           bm.zeros,                       Refused("moov atom not found")),
    C("text_named_txt",                 bm.text_txt,                    Refused("not a media file")),
    C("text_named_mkv",                 bm.text_mkv,                    Refused("FFmpeg cannot open it")),
    # -- valid film, wrong or no extension, odd names and links
    C("mkv_named_mp4",                  bm.renamed(".mp4"),             Ok(12, "exact")),
    C("mkv_named_txt",                  bm.renamed(".txt"),             Ok(12, "exact")),
    C("mkv_named_avi",                  bm.renamed(".avi"),             Ok(12, "exact")),
    C("mkv_without_extension",          bm.renamed(""),                 Ok(12, "exact")),
    C("non_utf8_file_name",             bm.non_utf8_name,               Ok(12, "exact")),
    C("name_like_concat_protocol",      bm.protocol_like_name,          Ok(12, "exact")),
    C("symlink_to_film",                bm.symlink_to_film,             Ok(12, "exact")),
    # -- not a file
    C("missing",                        bm.missing,                     Refused("no such file")),
    C("directory",                      bm.directory,                   Refused("is a directory")),
    C("symlink_loop",                   bm.symlink_loop,                Refused("Too many levels of symbolic links")),
    C("fifo",                           bm.fifo_input,                  Refused("is not a regular file")),
    C("no_read_permission",             bm.unreadable,                  Refused("permission denied")),
    # -- cut short or damaged
    C("truncated_in_header",            bm.truncated_header,            Refused("FFmpeg cannot open it")),
    C("truncated_in_first_frame",       bm.truncated_first_frame,       Refused("no decodable frame")),
    C("truncated_in_middle",            bm.truncated_middle,            DecodeRefused("truncated or damaged")),
    C("mp4_truncated_in_first_frame",   bm.truncated_mp4_first_frame,   Refused("cannot decode the first video frame")),
    C("mp4_index_cut_off",              bm.truncated_mp4_index_at_end,  Refused("no video stream")),
    C("avi_truncated_in_middle",        bm.truncated_avi_middle,        Refused("cannot decode the first video frame")),
    # FFmpeg conceals FFV1 slice CRC errors without any error or corrupt flag: frame 0 comes out damaged.
    C("ffv1_first_frame_corrupted",     bm.corrupt_first_frame,         Ok(12, "tail")),
    # -- streams
    C("audio_only",                     bm.audio_only,                  Refused("no video stream (1 audio stream)")),
    C("subtitles_only_srt",             bm.srt_subtitles,               Refused(f"'srt' {NOT_ACCEPTED}")),
    C("video_stream_without_packets",   bm.zero_length_video,           Refused("no decodable frame")),
    C("eight_audio_streams",            bm.eight_audio_streams,         Ok(12, "exact")),
    # -- timing
    C("variable_frame_rate",            bm.variable_frame_rate,         Ok(12, "exact")),
    C("mpeg2_elementary_no_timestamps", bm.raw_mpeg2_elementary,        Ok(12, "close")),
    C("y4m_no_timestamps",              bm.y4m,                         Ok(12, "close")),
    # -- pictures
    C("odd_size_641x479",               bm.odd_dimensions,              Ok(12, "exact")),
    C("ffv1_gbrp16le",                  bm.sixteen_bit,                 Ok(12, "exact16")),
    C("rawvideo_rgb48le_in_nut",        bm.rgb48_raw_nut,               Ok(12, "exact16")),
    C("prores_422_10_bit",              bm.prores_10_bit,               Ok(12, "close")),
    # Rotation metadata is not applied: frames come out as stored (64x48).
    C("display_matrix_rotation_90",     bm.rotated,                     Ok(12, "close")),
    C("rotate_tag_90",                  bm.rotate_tag,                  Ok(12, "exact")),
    # Interlacing is not undone: frames come out as coded (both fields woven).
    C("interlaced_mpeg2_tff",           bm.interlaced,                  Ok(12, "close")),
    C("field_order_tag_tff",            bm.field_order_tag,             Ok(12, "exact")),
    # -- declared sizes and decompression bombs
    C("y4m_declares_16000x16000",       bm.huge_y4m,                    Refused("declares 16000x16000 pixels, more than the limit")),
    C("y4m_declares_30000x30000",       bm.giant_y4m,                   Refused("Picture size 30000x30000 is invalid")),
    C("mkv_declares_12000x12000",       bm.declares_12000_square,       Refused("declares 12000x12000 pixels, more than the limit")),
    C("flat_4k_frame_16_mb_limit",      bm.flat_4k,                     Refused("ran out of memory"),
      probe_kwargs={"max_memory_mb": 16}),
    C("flat_4k_frame_default_limits",   bm.flat_4k,                     Ok(1, "flat")),
    # -- references to other files, URLs and ports
    C("hls_playlist_fifo_segment",      bm.hls_playlist,                Refused(f"'hls' {NOT_ACCEPTED}"), True),
    C("hls_playlist_to_local_film",     bm.hls_playlist_to_film,        Refused(f"'hls' {NOT_ACCEPTED}"), True),
    C("hls_playlist_http_segment",      bm.hls_network,                 Refused(f"'hls' {NOT_ACCEPTED}"), True),
    C("hls_playlist_named_avi",         bm.hls_in_avi,                  Refused("FFmpeg cannot open it"), True),
    C("hls_playlist_named_mkv",         bm.hls_in_mkv,                  Refused("FFmpeg cannot open it"), True),
    C("ffconcat_script_fifo",           bm.concat_script,               Refused(f"'concat' {NOT_ACCEPTED}"), True),
    C("ffconcat_script_named_mkv",      bm.concat_in_mkv,               Refused(f"'concat' {NOT_ACCEPTED}"), True),
    C("sdp_rtp_session",                bm.sdp_session,                 Refused(f"'sdp' {NOT_ACCEPTED}"), True),
    C("png_still_image",                bm.png_image,                   Refused(f"'png_pipe' {NOT_ACCEPTED}"), True),
]
# fmt: on


def _assert_one_line(message: str, path: Path | str, text: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(f"cannot read media {str(path)!r}: "), message
    assert text in message, message


def _check_frames(frames: list[np.ndarray], expect: Ok) -> None:
    assert len(frames) == expect.frames
    for i, frame in enumerate(frames):
        height, width = frame.shape[:2]
        if expect.check == "exact16":
            assert frame.dtype == np.uint16 and np.array_equal(frame, bm.deep(i)), f"frame {i}"
        elif expect.check == "flat":
            assert frame.shape == (2160, 4096, 3) and np.all(frame == 90)
        elif expect.check == "close":
            ref = bm.painted(i, width, height).astype(np.int16)
            diff = np.abs(frame.astype(np.int16) - ref)
            assert diff.mean() < 3 and abs(float(frame[..., 0].mean()) - 10 * i) < 3, f"frame {i}"
        elif expect.check == "tail" and i == 0:
            continue  # the damaged frame: concealed by FFmpeg (see CASES)
        else:
            assert frame.dtype == np.uint8 and np.array_equal(frame, bm.painted(i, width, height)), f"frame {i}"


def _in_thread(fn: Callable[[], object], timeout_s: float) -> BaseException | None:
    """Run fn in a daemon thread; the exception it raised, or a failure if it is still running."""
    box: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box[0] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        pytest.fail(f"still running after {timeout_s} s: it opened something that blocks (a FIFO?)")
    return box[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_media(case: Case, tmp_path: Path) -> None:
    if case.make is bm.unreadable and os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop reading")
    path = case.make(tmp_path)
    started = time.monotonic()
    if isinstance(case.expect, Refused):
        with pytest.raises(MediaError) as excinfo:
            probe(path, timeout_s=PROBE_TIMEOUT_S, **case.probe_kwargs)
        _assert_one_line(str(excinfo.value), path, case.expect.text)
    else:
        info = probe(path, timeout_s=PROBE_TIMEOUT_S, **case.probe_kwargs)
        assert isinstance(info, MediaInfo) and info.video is not None
        depth = 16 if isinstance(case.expect, Ok) and case.expect.check == "exact16" else 8
        if isinstance(case.expect, DecodeRefused):
            with pytest.raises(MediaError) as excinfo:
                list(iter_frames(path, depth=depth))
            _assert_one_line(str(excinfo.value), path, case.expect.text)
        else:
            _check_frames(list(iter_frames(path, depth=depth)), case.expect)
    assert time.monotonic() - started < PROBE_TIMEOUT_S / 2, "took so long that something blocked"
    if case.decode_too:  # the decoding paths are confined too, and name no other file
        from infra.luma import DecodedTimes, picture_features  # `reel shots` / `reel stage`'s shot detection
        from models.shots import SHOT_DETECTOR

        for read in (lambda: next(iter_frames(path)), lambda: next(picture_features(path, SHOT_DETECTOR,
                                                                                    DecodedTimes()))):
            error = _in_thread(read, 10.0)
            assert isinstance(error, MediaError), repr(error)
            assert "\n" not in str(error) and str(error).startswith(f"cannot read media {str(path)!r}: ")


def test_the_table_is_big_enough():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)


def test_probe_describes_odd_cases_truthfully(tmp_path):
    eight = probe(bm.eight_audio_streams(tmp_path))
    assert [a.channels for a in eight.audio] == list(range(1, 9))
    deep = probe(bm.sixteen_bit(tmp_path)).video
    assert (deep.pix_fmt, deep.bit_depth, deep.color.bit_depth) == ("gbrp16le", 16, 16)
    odd = probe(bm.odd_dimensions(tmp_path)).video
    assert (odd.width, odd.height) == bm.ODD
    rotated = probe(bm.rotated(tmp_path)).video
    assert (rotated.width, rotated.height) == (bm.W, bm.H)  # stored size; the rotation is not applied


def test_probe_limits_are_parameters(tmp_path):
    film = bm.base_film(tmp_path)
    with pytest.raises(MediaError) as excinfo:
        probe(film, max_pixels=bm.W * bm.H - 1)
    _assert_one_line(str(excinfo.value), film, f"declares {bm.W}x{bm.H} pixels, more than the limit of")
    assert probe(film, max_pixels=bm.W * bm.H).video.width == bm.W
    big = bm.huge_y4m(tmp_path)
    with pytest.raises(MediaError, match="no decodable frame"):  # allowed now: the 4 KB of data decode to nothing
        probe(big, max_pixels=16000 * 16000)
    with pytest.raises(ValueError, match="max_pixels"):
        probe(film, max_pixels=0)


def test_hls_playlist_was_never_followed(tmp_path):
    """Refused before its header is read: the FIFO it names would block whoever opened it."""
    path = bm.hls_playlist(tmp_path)
    started = time.monotonic()
    with pytest.raises(MediaError, match=re.escape(f"'hls' {NOT_ACCEPTED}")):
        probe(path, timeout_s=5)
    assert time.monotonic() - started < 5


# --- the real command line --------------------------------------------------------------------


def _cli_env(tmp: Path) -> dict[str, str]:
    """The user's environment without Reel/Prefect settings, plus a fresh store and Prefect home.

    No PREFECT_API_URL: the CLI starts its own temporary API, as for a user without a server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REEL_", "PREFECT_"))}
    env.update(REEL_STORE=str(tmp / "store"), REEL_CHUNK_FRAMES="16", REEL_PIECE_FRAMES="8",
               PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    return env


def _restore(source: Path, tmp: Path, recipe: str = "identity") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "restore", str(source), "--title", "bad-x",
                           "--recipe", recipe, "--out", str(tmp / "out")],
                          capture_output=True, text=True, env=_cli_env(tmp), cwd=tmp, timeout=300)


def _published(tmp: Path) -> list[Path]:
    root = tmp / "store" / "published"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _assert_cli_refused(run: subprocess.CompletedProcess, tmp: Path, text: str) -> None:
    assert run.returncode == 1, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("reel: error: ") and text in last, run.stderr[-3000:]
    assert _published(tmp) == [] and not (tmp / "out").exists()


@pytest.fixture(scope="module")
def hls_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    tmp = tmp_path_factory.mktemp("cli-hls")
    return _restore(bm.hls_playlist_to_film(tmp), tmp), tmp


def test_cli_refuses_an_hls_playlist(hls_run):
    """Before the allow-list this restored and published the film the playlist pointed to."""
    run, tmp = hls_run
    _assert_cli_refused(run, tmp, f"'hls' {NOT_ACCEPTED}")


def test_cli_error_has_no_traceback(hls_run):
    """Prefect's progress lines may come first; the refusal is one line and nothing prints a traceback."""
    run, _ = hls_run
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("reel: error: ") and sum(x.startswith("reel: error") for x in lines) == 1
    assert "Traceback" not in run.stderr and not any(x.startswith("  File ") for x in lines), run.stderr


@pytest.mark.slow  # a whole CLI/flow run; the default run keeps the faster checks of the same promise
def test_cli_refuses_a_film_truncated_in_the_middle(tmp_path):
    run = _restore(bm.truncated_middle(tmp_path), tmp_path)
    _assert_cli_refused(run, tmp_path, "truncated or damaged")


@pytest.mark.slow  # a long end-to-end run: `make test-all`
def test_cli_restores_odd_641x479_with_an_ffv1_master(tmp_path):
    source = bm.odd_dimensions(tmp_path)
    recipe = tmp_path / "odd.yaml"
    recipe.write_text("name: odd-ffv1\nstages: []\nmasters: [ffv1]\n")
    run = _restore(source, tmp_path, str(recipe))
    assert run.returncode == 0, run.stderr[-3000:]
    master = tmp_path / "out" / "master.mkv"
    info = probe(master)
    assert (info.video.width, info.video.height, info.video.frames) == (*bm.ODD, bm.FRAMES)
    _check_frames(list(iter_frames(master, depth=8)), Ok(bm.FRAMES, "exact"))


@pytest.mark.slow
def test_cli_odd_641x479_with_default_masters(tmp_path):
    """ProRes 4:2:2 needs an even width: the delivery master is padded by repeating the last column,
    the archival master keeps the exact size."""
    run = _restore(bm.odd_dimensions(tmp_path), tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    exact, delivery = probe(tmp_path / "out" / "master.mkv"), probe(tmp_path / "out" / "master-prores.mov")
    assert (exact.video.width, exact.video.height) == bm.ODD
    assert (delivery.video.width, delivery.video.height) == (bm.ODD[0] + 1, bm.ODD[1])
    a = next(iter_frames(tmp_path / "out" / "master-prores.mov", depth=16)).astype(np.float64)
    assert np.abs(a[:, -1] - a[:, -2]).mean() < 0.02 * 65535  # the padding repeats the edge


@pytest.mark.slow
def test_cli_refuses_garbage(tmp_path):
    _assert_cli_refused(_restore(bm.garbage(tmp_path), tmp_path), tmp_path, "FFmpeg cannot open it")


# --- fuzzing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_film(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("fuzz-seed")
    return bm.base_film(folder).read_bytes()


_DECODE_IN_CHILD = """
import sys
from infra.media import MediaError, iter_frames
try:
    n = sum(1 for _ in iter_frames(sys.argv[1]))
except MediaError as exc:
    assert "\\n" not in str(exc)
    print("refused", exc)
else:
    print("decoded", n)
"""


@pytest.mark.slow
def test_fuzzed_films_are_described_or_refused(small_film):
    """Flipped, cut and inserted bytes: probe returns a MediaInfo or raises MediaError, within its time
    limit; a file it accepts then decodes (in a child process, in case it crashes) or is refused."""
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    size = len(small_film)
    edit = st.one_of(
        st.tuples(st.just("flip"), st.integers(0, size - 1), st.integers(1, 255)),
        st.tuples(st.just("cut"), st.integers(0, size - 1), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, size - 1), st.integers(0, 255)),
        st.tuples(st.just("zero_run"), st.integers(0, size - 1), st.integers(1, 4096)),
    )

    @hypothesis.settings(max_examples=50, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.lists(edit, min_size=1, max_size=6))
    def check(edits):
        data = bytearray(small_film)
        for kind, pos, value in edits:
            pos = min(pos, max(len(data) - 1, 0))
            if kind == "flip" and data:
                data[pos] ^= value
            elif kind == "cut":
                del data[pos:]
            elif kind == "insert":
                data[pos:pos] = bytes([value]) * 7
            elif kind == "zero_run":
                data[pos:pos + value] = bytes(len(data[pos:pos + value]))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "fuzzed.mkv"
            path.write_bytes(bytes(data))
            started = time.monotonic()
            try:
                info = probe(path, timeout_s=10)
            except MediaError as exc:
                assert "\n" not in str(exc)
                return
            finally:
                assert time.monotonic() - started < 15
            assert isinstance(info, MediaInfo)
            run = subprocess.run([sys.executable, "-c", _DECODE_IN_CHILD, str(path)], capture_output=True,
                                 text=True, timeout=60, cwd=REPO)
            assert run.returncode == 0, f"decoding a probed file failed: rc {run.returncode}: {run.stderr[-2000:]}"

    check()


# --- issue 20: nothing lost, nothing hidden ------------------------------------------------------


@pytest.fixture(scope="module")
def synth_film(tmp_path_factory) -> Path:
    """`reel synth base.mkv --size 160x120 --shots 2 --frames-per-shot 12`: 24 frames and FLAC sound."""
    from flows.cli import main

    folder = tmp_path_factory.mktemp("synth")
    assert main(["synth", str(folder / "base.mkv"), "--size", "160x120", "--shots", "2",
                 "--frames-per-shot", "12"]) == 0
    return folder / "base.mkv"


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.98, 0.999])
def test_a_cut_anywhere_is_refused(synth_film, tmp_path, fraction):
    """0.8.0 allowed max(2 frames, 0.5 %): the 98 % cut (one frame lost) and the 99.9 % cut (the last audio
    packet lost) decoded as complete films."""
    data = synth_film.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:int(len(data) * fraction)])
    try:
        probe(cut, timeout_s=PROBE_TIMEOUT_S)
    except MediaError as exc:  # cut in the header or the first frame: refused at probe
        _assert_one_line(str(exc), cut, "")
        return
    with pytest.raises(MediaError) as excinfo:
        list(iter_frames(cut))
    _assert_one_line(str(excinfo.value), cut, "truncated or damaged")
    seen = []
    frames = list(iter_frames(cut, on_truncated=seen.append))  # accepted explicitly: the shortfall is told
    assert len(seen) == 1 and seen[0].frames_missing == 24 - len(frames)
    assert seen[0].frames_missing or seen[0].audio_seconds_missing > 0


def test_the_complete_synthetic_film_is_accepted(synth_film):
    assert sum(1 for _ in iter_frames(synth_film)) == 24


def _two_video_streams(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="matroska") as c:
        streams = []
        for w, h in ((64, 48), (32, 32)):
            s = c.add_stream("ffv1", rate=24)
            s.width, s.height, s.pix_fmt = w, h, "bgr0"
            streams.append(s)
        for i in range(6):
            for n, s in enumerate(streams):
                img = np.full((s.height, s.width, 3), 40 * n + i, np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="bgr0")
                frame.pts = i
                c.mux(s.encode(frame))
        for s in streams:
            c.mux(s.encode(None))
    return path


def test_every_stream_is_listed_and_one_can_be_chosen(tmp_path):
    path = _two_video_streams(tmp_path / "two.mkv")
    info = probe(path)
    assert [s["type"] for s in info.streams] == ["video", "video"] and info.video_index == 0
    assert info.other_video_streams == [1] and (info.video.width, info.video.height) == (64, 48)
    second = probe(path, stream=1)
    assert second.video_index == 1 and (second.video.width, second.video.height) == (32, 32)
    frames = list(iter_frames(path, stream=1))
    assert len(frames) == 6 and frames[0].shape == (32, 32, 3) and int(frames[0][0, 0, 0]) == 40
    with pytest.raises(MediaError, match="stream 5 is not a video stream"):
        probe(path, stream=5)


def test_a_picture_too_small_for_the_stages_is_refused_at_probe(tmp_path):
    from infra.media import MIN_SIZE, write_film

    path = tmp_path / "one.mkv"
    write_film(path, (np.full((1, 1, 3), 9 * i, np.uint8) for i in range(4)), bm.FPS)
    with pytest.raises(MediaError) as excinfo:
        probe(path)
    _assert_one_line(str(excinfo.value), path, f"1x1 pixels, smaller than the {MIN_SIZE[0]}x{MIN_SIZE[1]}")


def test_cli_stderr_is_one_line_whatever_shutdown_prints(tmp_path):
    """Deterministic stand-in for a busy machine: the failing command leaves a Dask logger and a daemon
    thread that print a traceback during shutdown (as a heartbeat's CommClosedError did); stderr still
    carries only Reel's line."""
    script = tmp_path / "noisy.py"
    script.write_text(
        "import atexit, logging, sys, threading, time\n"
        "import flows.cli as cli\n"
        "log = logging.getLogger('distributed.core')\n"
        "log.addHandler(logging.StreamHandler(sys.stderr))\n"
        "def noisy(args):\n"
        "    def heartbeat():\n"
        "        time.sleep(0.3)\n"
        "        try:\n"
        "            raise OSError('Stream is closed')\n"
        "        except OSError:\n"
        "            log.exception('CommClosedError in heartbeat')\n"
        "            sys.stderr.write('Traceback (most recent call last):\\n')\n"
        "    threading.Thread(target=heartbeat, daemon=False).start()\n"
        "    atexit.register(lambda: sys.stderr.write('Traceback (most recent call last): atexit\\n'))\n"
        "    raise ValueError('the source is refused')\n"
        "parser = cli.build_parser\n"
        "def build():\n"
        "    ap = parser()\n"
        "    ap._subparsers._group_actions[0].choices['stages'].set_defaults(func=noisy)\n"
        "    return ap\n"
        "cli.build_parser = build\n"
        "sys.exit(cli.main(['stages'], quiet_exit=True))\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 1
    assert run.stderr.splitlines() == ["reel: error: the source is refused"], run.stderr
