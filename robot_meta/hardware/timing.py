"""Precise waiting for real-time loops on a general-purpose Linux kernel.

Linux delays every timed sleep of a thread by up to its *timer slack* (50 us by default), and
a sleep can overshoot by a scheduler tick under load. :func:`sleep_until` sleeps to within
``spin_s`` of the deadline, then spins on the clock; :func:`set_timer_slack` shrinks the slack
of the calling thread (Linux only; a no-op elsewhere).

Two machine-wide settings a real-time control computer makes, for the duration of a block of
work (both need root, and are undone after): :func:`cpu_latency_limit` keeps idle CPUs from
halting, :func:`boost_tty_workers` puts the kernel threads that carry serial bytes above the
control loop. ``robot-meta bench bus`` uses both; BENCHMARKS.md shows what each is worth.
:func:`steal_ms` reads what a virtual machine's host took meanwhile, to attribute what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import struct
import sys
import time
from collections.abc import Iterator

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


def boost_tty_workers(priority: int = 90) -> list[tuple[int, int, int]]:
    """Give the kernel's unbound-workqueue threads (``kworker/u*``) SCHED_FIFO ``priority``.

    Bytes written to a tty (a pty, or a USB serial adapter's driver) reach the reader through
    ``flush_to_ldisc``, run by one of these threads, an ordinary SCHED_OTHER task. Woken onto a
    CPU busy with another ordinary task it waits for that task's time slice: traced on this VM,
    1.1 ms behind a nice -10 agent thread, 3 ms behind ``kdamond``, either of which misses a
    500 Hz deadline. Real-time Linux setups raise such kernel threads above the control loop
    for the same reason. Needs CAP_SYS_NICE; threads it may not change are left as they are.

    Returns ``[(pid, policy, priority)]`` as they were, for :func:`restore_scheduling`.
    Threads the kernel starts later are not covered, and a process killed before restoring
    leaves the threads raised (harmless, until they exit or the machine reboots).
    """
    if not sys.platform.startswith("linux"):
        return []
    changed: list[tuple[int, int, int]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("kworker/u"):
                    continue
            old = (pid, os.sched_getscheduler(pid), os.sched_getparam(pid).sched_priority)
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
        except OSError:  # gone meanwhile, or not permitted
            continue
        changed.append(old)
    return changed


def restore_scheduling(saved: list[tuple[int, int, int]]) -> None:
    """Undo :func:`boost_tty_workers` (threads that exited meanwhile are skipped)."""
    for pid, policy, priority in saved:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(pid, policy, os.sched_param(priority))


@contextlib.contextmanager
def cpu_latency_limit(us: int = 0) -> Iterator[bool]:
    """Hold a PM QoS CPU latency limit of ``us`` microseconds while the block runs (Linux
    ``/dev/cpu_dma_latency``; the limit lasts as long as the descriptor is open).

    With 0 the idle CPUs poll instead of halting, so a wake-up (a timer, a byte arriving) is
    served at once. On a VM a halted vCPU is descheduled by the host and woken late: traced
    here, an emulator's 0.5 ms sleep ended 2.5 ms late and a worker woke 0.5 ms late on an idle
    vCPU. cyclictest holds the same limit by default. Costs power (or host CPU) while held.
    Yields whether the limit was granted (it needs root).
    """
    fd = None
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(fd, struct.pack("i", int(us)))
    except OSError:
        if fd is not None:
            os.close(fd)
        fd = None
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def steal_ms() -> float:
    """CPU time the hypervisor gave to others while this VM wanted it, summed over the CPUs
    (the ``steal`` column of /proc/stat, in clock ticks; 0 on bare metal or elsewhere)."""
    try:
        with open("/proc/stat") as f:
            cpu = f.readline().split()
        tick_ms = 1e3 / os.sysconf("SC_CLK_TCK")
        return tick_ms * int(cpu[8]) if cpu[0] == "cpu" and len(cpu) > 8 else 0.0
    except (OSError, ValueError):
        return 0.0
