"""Silence C-level stdout chatter of native libraries (PyBullet prints its build time on import
and ``argv[0]=`` on connect, straight to file descriptor 1).

Programs whose stdout is a protocol (``robot-meta emulate`` prints its port on the first line,
``--json`` commands print JSON) must not get that noise, so every PyBullet import and connect
goes through :func:`quiet_stdout`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None)
except OSError:  # pragma: no cover - not a POSIX libc
    _LIBC = None


def _flush_c_stdio() -> None:
    """fflush(NULL): push C stdio buffers out while fd 1 still points at /dev/null."""
    if _LIBC is not None:
        _LIBC.fflush(None)


@contextlib.contextmanager
def quiet_stdout(fds: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Point file descriptors ``fds`` (stdout and stderr) at /dev/null for the duration.
    Python exceptions raised inside still propagate and are reported after restoring."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _flush_c_stdio()
        for fd, s in zip(fds, saved, strict=True):
            os.dup2(s, fd)
            os.close(s)
        os.close(devnull)
