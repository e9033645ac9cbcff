"""Real-time helpers: precise sleeping, tty worker priority and the CPU latency limit."""

from __future__ import annotations

import os
import sys
import time

import pytest

from robot_meta.hardware.timing import (
    boost_tty_workers,
    cpu_latency_limit,
    restore_scheduling,
    sleep_until,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def test_sleep_until_never_returns_early() -> None:
    for delay in (0.0, 0.0005, 0.002):
        deadline = time.perf_counter() + delay
        woke = sleep_until(deadline, spin_s=0.0)
        assert woke >= deadline
        assert time.perf_counter() - deadline < 0.05


@linux_only
def test_boost_tty_workers_is_undone_by_restore() -> None:
    saved = boost_tty_workers(priority=3)
    try:
        if not saved:
            pytest.skip("no kworker/u* thread could be changed here (needs CAP_SYS_NICE)")
        boosted = []
        for pid, _, _ in saved:
            try:
                boosted.append((os.sched_getscheduler(pid), os.sched_getparam(pid).sched_priority))
            except OSError:  # the kernel retired that worker meanwhile
                continue
        assert boosted and all(b == (os.SCHED_FIFO, 3) for b in boosted)
    finally:
        restore_scheduling(saved)
    for pid, policy, prio in saved:
        try:
            now = (os.sched_getscheduler(pid), os.sched_getparam(pid).sched_priority)
        except OSError:
            continue
        assert now == (policy, prio)


def _open_qos_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "/dev/cpu_dma_latency":
                n += 1
        except OSError:
            continue
    return n


@linux_only
def test_cpu_latency_limit_is_held_only_inside_the_block() -> None:
    before = _open_qos_fds()
    with cpu_latency_limit(0) as granted:
        inside = _open_qos_fds()
    assert _open_qos_fds() == before
    if not granted:
        pytest.skip("/dev/cpu_dma_latency is not writable here")
    assert inside == before + 1
