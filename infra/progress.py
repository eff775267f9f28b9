"""Progress a person can watch: frames restored of the total, frames per second, time left.

The flow reports (`report(title, done, total)`) after each piece; what happens with it depends on the
process: `reel restore`, `reel rerun` and `reel demo` install a terminal display for the duration of the
run (`watching()`), a rich progress bar on a terminal and a plain line every few seconds otherwise; a
served run, a test or a script has none installed and the report is dropped. The Prefect progress
artifact carries the same numbers (`describe`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

PLAIN_EVERY_S = 10.0  # a plain line at most this often (and at the end)


def describe(title: str, done: int, total: int, seconds: float) -> str:
    """'film: 480 of 1,536 frames restored, 2.4 fps, about 7 min left' (rate and time left once known)."""
    text = f"{title}: {done:,} of {total:,} frames restored"
    if done > 0 and seconds > 0:
        fps = done / seconds
        text += f", {fps:.2f} fps"
        if done < total:
            text += f", about {_duration((total - done) / fps)} left"
    return text


def _duration(s: float) -> str:
    if s < 90:
        return f"{max(1, round(s))} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"


class TerminalProgress:
    """Frames done of total: a rich bar on `terminal` (stderr) when it is a terminal, else plain lines on
    `plain` (stdout, where the run's other lines go; stderr stays for errors)."""

    def __init__(self, terminal: IO[str] | None = None, plain: IO[str] | None = None,
                 plain_every_s: float = PLAIN_EVERY_S) -> None:
        self.terminal = terminal or sys.stderr
        self.plain = plain or sys.stdout
        self.every = plain_every_s
        self._bar: Any = None
        self._task: Any = None
        self._t0: float | None = None
        self._last_line = 0.0

    def update(self, title: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        if self.terminal.isatty():
            self._rich(title, done, total, done / (now - self._t0) if now > self._t0 else 0.0)
        elif done >= total or now - self._last_line >= self.every:
            print(describe(title, done, total, now - self._t0), file=self.plain, flush=True)
            self._last_line = now

    def _rich(self, title: str, done: int, total: int, fps: float) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self._bar is None:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("frames, {task.fields[fps]} fps"), TimeRemainingColumn(),
                                 console=Console(file=self.terminal), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(title, total=total, fps="-")
        self._bar.update(self._task, completed=done, total=total, fps=f"{fps:.2f}" if fps else "-")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


_sink: TerminalProgress | None = None


def report(title: str, done: int, total: int) -> None:
    """The flow's report after each piece: shown where a display is installed, else nothing."""
    if _sink is not None:
        _sink.update(title, done, total)


@contextmanager
def watching(terminal: IO[str] | None = None, plain: IO[str] | None = None) -> Iterator[TerminalProgress]:
    """Show the runs of this process while the block runs (see TerminalProgress)."""
    global _sink
    previous, _sink = _sink, TerminalProgress(terminal, plain)
    try:
        yield _sink
    finally:
        _sink.close()
        _sink = previous
