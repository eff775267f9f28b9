"""Publish decodes the segments once and feeds every master encoder (pipeline.publish.FanOut)."""

from __future__ import annotations

import threading

import pytest

from infra.pipeline.publish import FanOut


def _read_all(fan: FanOut, n: int) -> list:
    out: list = [None] * n

    def read(i: int) -> None:
        try:
            out[i] = list(fan.reader(i))
        except Exception as e:  # recorded for the assertion
            out[i] = e

    threads = [threading.Thread(target=read, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a reader hung"
    return out


def test_every_reader_gets_every_item_in_order_once_read():
    reads = []

    def source():
        for i in range(200):
            reads.append(i)
            yield i

    assert _read_all(FanOut(source(), 3, depth=4), 3) == [list(range(200))] * 3
    assert reads == list(range(200))  # the source was iterated once


def test_a_decoding_error_reaches_every_reader():
    def source():
        yield 1
        raise ValueError("corrupt segment")

    out = _read_all(FanOut(source(), 2), 2)
    assert all(isinstance(e, ValueError) and "corrupt segment" in str(e) for e in out)


def test_a_failed_reader_stops_the_others_instead_of_hanging():
    fan = FanOut(iter(range(100_000)), 2, depth=2)
    first = fan.reader(0)
    next(first)
    fan.stop()  # what the failing encoder does
    with pytest.raises(RuntimeError, match="another master failed"):
        list(fan.reader(1))
