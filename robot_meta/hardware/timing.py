"""Precise waiting for real-time loops on a general-purpose Linux kernel.

Linux delays every timed sleep of a thread by up to its *timer slack* (50 us by default), and
a sleep can overshoot by a scheduler tick under load. :func:`sleep_until` sleeps to within
``spin_s`` of the deadline, then spins on the clock; :func:`set_timer_slack` shrinks the slack
of the calling thread (Linux only; a no-op elsewhere).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time

PR_SET_TIMERSLACK = 29  # linux/prctl.h


def set_timer_slack(ns: int = 1000) -> bool:
    """Set the calling thread's timer slack to ``ns`` nanoseconds. Returns True on success."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def sleep_until(deadline: float, spin_s: float = 0.0003) -> float:
    """Wait until ``time.perf_counter() >= deadline``: sleep until ``spin_s`` before it, then
    spin. Returns the wake-up time."""
    while True:
        now = time.perf_counter()
        remaining = deadline - now
        if remaining <= 0.0:
            return now
        if remaining > spin_s:
            time.sleep(remaining - spin_s)
