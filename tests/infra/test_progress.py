"""The progress a person watches: frames done of the total, frames per second, time left."""

from __future__ import annotations

import io

from infra import progress
from infra.progress import TerminalProgress, describe, watching


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_says_frames_rate_and_time_left():
    assert describe("film", 0, 1536, 0.0) == "film: 0 of 1,536 frames restored"
    assert describe("film", 480, 1536, 200.0) == "film: 480 of 1,536 frames restored, 2.40 fps, about 7 min left"
    assert describe("film", 1536, 1536, 640.0) == "film: 1,536 of 1,536 frames restored, 2.40 fps"
    assert describe("feature", 1000, 144000, 400.0).endswith("about 15.9 h left")


def test_plain_lines_when_not_a_terminal_at_most_every_few_seconds_and_at_the_end():
    out = io.StringIO()
    bar = TerminalProgress(terminal=io.StringIO(), plain=out, plain_every_s=3600)
    for done in range(0, 101, 10):
        bar.update("film", done, 100)
    lines = out.getvalue().splitlines()
    assert lines[0] == "film: 0 of 100 frames restored" and lines[-1].startswith("film: 100 of 100 frames")
    assert len(lines) == 2  # the first, then nothing until the end


def test_a_bar_on_a_terminal_and_nothing_on_stdout():
    tty, out = _Tty(), io.StringIO()
    bar = TerminalProgress(terminal=tty, plain=out)
    bar.update("film", 5, 10)
    bar.update("film", 10, 10)
    bar.close()
    assert out.getvalue() == "" and "film" in tty.getvalue()


def test_reports_go_nowhere_unless_a_display_is_installed():
    progress.report("film", 1, 2)  # no display: nothing happens
    out = io.StringIO()
    with watching(terminal=io.StringIO(), plain=out):
        progress.report("film", 2, 2)
    progress.report("film", 2, 2)
    assert out.getvalue().count("film: 2 of 2") == 1
