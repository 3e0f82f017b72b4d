"""The batcher behind the server's log line and metrics: nothing lost, order kept."""

from __future__ import annotations

import threading
import time

import pytest

from connector.server.batches import Batcher


@pytest.mark.parametrize("end", ["flush", "close", "thread"])
def test_every_item_is_drained_once_in_order(end):
    drained: list[list[int]] = []
    batcher = Batcher(drained.append, 0.05 if end == "thread" else 3600, "test-batcher")
    adders = [
        threading.Thread(target=lambda k=k: [batcher.add((k, i)) for i in range(500)])
        for k in range(4)
    ]
    for t in adders:
        t.start()
    for t in adders:
        t.join()
    if end == "thread":
        deadline = time.monotonic() + 5
        while sum(map(len, drained)) < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        getattr(batcher, end)()
    items = [item for batch in drained for item in batch]
    assert sorted(items) == [(k, i) for k in range(4) for i in range(500)]
    for k in range(4):  # each thread's items in the order it added them
        assert [i for kk, i in items if kk == k] == list(range(500))
    assert all(drained)  # no empty batch is passed on
    batcher.close()


def test_close_stops_the_thread():
    batcher = Batcher(lambda batch: None, 0.01, "test-batcher")
    batcher.close()
    assert not batcher._thread.is_alive()
    assert not any(t.name == "test-batcher" and t is batcher._thread for t in threading.enumerate())
