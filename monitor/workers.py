"""Forked helper processes of a replay, which otherwise leaves the second core idle.

The feed reader (``monitor.feedstream``) and the analyst report (``monitor.replay``) each run
in one. Forked, not spawned: the child starts with the config (and, for the report, the
imports) already in memory, at no start-up cost. Where ``fork`` is unavailable or fails,
``start`` returns None and the caller does the work in-process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import socket
import struct
import weakref
from collections.abc import Callable
from typing import Any

_parent_ends: weakref.WeakSet[Any] = weakref.WeakSet()
"""This process's ends of its workers' pipes: a worker forked later closes its copies,
or a worker waiting for EOF on its pipe (the report's) would never see it while a
sibling (the store's writer) kept the parent's end open, and the replay would hang
on a failure."""


def start(target: Callable[..., None], *args: Any, name: str,
          duplex: bool = True) -> tuple[Any, Any] | None:
    """Run ``target(conn, *args)`` in a forked process; return ``(process, conn)``, the
    other end of its pipe (one-way, child to parent, unless ``duplex``), or None.

    The child sees EOF on ``conn`` (or a broken pipe) once the parent closes its end or
    dies, and ends on it.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    ctx = multiprocessing.get_context("fork")
    try:
        parent, child = ctx.Pipe(duplex=duplex)
        _widen(parent, child, duplex)
        proc = ctx.Process(target=_enter, args=(target, child, parent, args), name=name,
                           daemon=True)
        proc.start()
    except OSError:
        return None  # no process to spare
    child.close()
    _parent_ends.add(parent)
    return proc, parent


def one_way_pipe() -> tuple[Any, Any]:
    """A pipe from this process to a worker about to be started: ``(its end, this end)``
    (widened as the workers' own). Workers forked from now on close their copy of this
    end, so the worker reading the pipe sees EOF once this process closes it or dies.
    Pass the worker its end, and close that here once it is started."""
    ctx = multiprocessing.get_context("fork") if "fork" in \
        multiprocessing.get_all_start_methods() else multiprocessing.get_context()
    theirs, ours = ctx.Pipe(duplex=False)
    _widen(theirs, ours, False)
    _parent_ends.add(ours)
    return theirs, ours


PIPE_BYTES = 1 << 20
"""Kernel buffer asked for each worker pipe (capped by the system's limits). The default
64 KiB makes a megabyte message cross in 16 reads and writes, each waking the other side
(the feed reader sends the replay ~100 MB, the replay its store's writer ~170 MB): with
a megabyte, the receiving side spent about a third of the CPU time on it."""
_F_SETPIPE_SZ = 1031  # linux/fcntl.h (Python's ``fcntl.F_SETPIPE_SZ`` from 3.10, Linux)


def _widen(parent: Any, child: Any, duplex: bool) -> None:
    """Ask for ``PIPE_BYTES`` of buffer on a worker's pipe (a socket pair if ``duplex``);
    where the system refuses, the pipe stays as it is."""
    try:
        if duplex:
            for conn in (parent, child):
                sock = socket.socket(fileno=os.dup(conn.fileno()))
                with sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIPE_BYTES)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PIPE_BYTES)
        else:
            import fcntl

            fcntl.fcntl(child.fileno(), getattr(fcntl, "F_SETPIPE_SZ", _F_SETPIPE_SZ),
                        PIPE_BYTES)
    except (OSError, ImportError, ValueError):
        pass  # not Linux, or over the user's pipe allowance: the default buffer


def _enter(target: Callable[..., None], conn: Any, parent_end: Any,
           args: tuple[Any, ...]) -> None:
    parent_end.close()  # so that the parent's end (or death) reads as EOF here
    for other in list(_parent_ends):  # likewise for the parent's other workers
        other.close()
    # Signals are the parent's to handle: Ctrl-C reaches the whole process group, and the
    # worker ends when the parent closes the pipe. An inherited asyncio wakeup fd would
    # pass this process's signals to the parent's event loop.
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass  # not the main thread: nothing of the parent's was installed here
    keep_freed_memory()
    target(conn, *args)


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_BYTES = 32 << 20
"""Blocks below this size come from a worker's heap, not fresh pages of their own (the
largest value glibc documents on 64-bit systems)."""
TRIM_BYTES = 256 << 20
"""Freed memory a worker's heap keeps at its top instead of handing it back."""


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory in this process instead of handing it
    back to the kernel; False where there is no glibc (the defaults stay).

    A worker lives as long as one replay and its heap only churns: the store's writer
    decodes a megabyte message of rows at a time, the feed reader builds and drops a
    chunk's events. By default glibc gives large freed blocks back to the kernel (and
    trims the heap's top) and takes fresh, zeroed pages for the next, so each message
    faulted its pages in again: on the mention-heavy day the writer took ~97,000 page
    faults, ~30,000 with this; the reader ~57,000, ~37,000. Only for forked workers: a
    long-lived process (the daemon) should give memory back."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (macOS, musl without mallopt): nothing to tune
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))


_FRAME_LENGTH = struct.Struct("!Q")
"""A message on a worker's pipe: its length, then its bytes (``write_frame``)."""


def write_frame(fd: int, payload: bytes) -> None:
    """Put ``payload`` on the pipe ``fd``, after its length (``read_frame`` takes it off)."""
    for part in (_FRAME_LENGTH.pack(len(payload)), payload):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


def read_frame(fd: int) -> bytearray:
    """The next payload ``write_frame`` put on the pipe ``fd`` (EOFError: none came)."""
    (size,) = _FRAME_LENGTH.unpack(_read_exactly(fd, _FRAME_LENGTH.size))
    return _read_exactly(fd, size)


def _read_exactly(fd: int, size: int) -> bytearray:
    # Read straight into one buffer of the payload's size: ``Connection.recv_bytes``
    # allocated a buffer for the whole rest at each read (a pipe holds a megabyte at a
    # time), then copied the pieces together: ~0.2 s of the store writer's CPU, mostly in
    # the kernel, for the heavy day's 173 MB, ~0.05 s this way.
    buf = bytearray(size)
    view = memoryview(buf)
    while view:
        n = os.readv(fd, [view])
        if n == 0:
            raise EOFError
        view = view[n:]
    return buf
