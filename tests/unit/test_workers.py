"""Forked replay workers (monitor.workers): they keep the memory they free."""

from __future__ import annotations

import os
import platform
import resource
import threading
from typing import Any

import pytest

from monitor import workers
from monitor.workers import _FRAME_LENGTH, read_frame, write_frame

ROUNDS = 5
BLOCKS = 16  # of 1 MiB: freed together, the heap's top is 16 MiB of free memory


def _churn(conn: Any) -> None:
    """Build and drop a batch of 1 MiB buffers a few times, as the store's writer does
    with each message of rows; send back the page faults of all rounds but the first."""
    faults = 0
    for i in range(ROUNDS):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [bytearray(1 << 20) for _ in range(BLOCKS)]  # zero-filled: every page
        del blocks
        if i:
            faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    conn.send(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_a_worker_reuses_the_memory_it_freed() -> None:
    started = workers.start(_churn, name="test-churn")
    assert started is not None
    proc, conn = started
    faults = conn.recv()
    proc.join()
    # Given back to the kernel after each round (glibc's default), each later round
    # faulted its 4,096 pages in again (~16,000 faults over the 4 rounds); kept, none.
    assert faults < BLOCKS * 256 // 4, faults


def test_a_frame_larger_than_the_pipe_arrives_whole_and_a_cut_one_is_eof() -> None:
    read_end, write_end = os.pipe()
    payload = bytes(range(256)) * 12_000  # ~3 MB: many reads of a 64 KiB pipe
    writer = threading.Thread(target=write_frame, args=(write_end, payload))
    writer.start()
    assert read_frame(read_end) == payload
    writer.join()
    os.write(write_end, _FRAME_LENGTH.pack(10) + b"cut")
    os.close(write_end)
    with pytest.raises(EOFError):
        read_frame(read_end)
    os.close(read_end)
