"""A fixed-rate control loop with deadline monitoring.

Cycle k is released at ``t0 + k T`` (T = the bundle's control_dt). Its work (read the joints,
infer, write the command) must finish before the next release ``t0 + (k + 1) T``: that is its
deadline. On an overrun the loop does not catch up with a burst of back-to-back cycles (which
would feed the policy a different control rate): like ros2_control, it skips the missed
releases and waits for the next future one, so the next cycle starts at ``t0 + m T`` with
``m = floor((now - t0) / T) + 1``. The command written last simply stays active meanwhile (the
servos hold the goal current; the bus watchdog bounds how long).

    loop = ControlLoop(0.02)
    loop.start()
    for k in range(n):
        ...                      # one cycle of work
        loop.wait()              # record the deadline, sleep until the next release
    print(loop.stats.as_dict())  # {"cycles", "met", "missed", "skipped", "fraction_met", ...}
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from robot_meta.hardware.timing import set_timer_slack, sleep_until


@dataclass
class DeadlineStats:
    """Deadline bookkeeping of one loop (or the sum of several)."""

    period_s: float
    cycles: int = 0  # cycles whose work completed
    met: int = 0  # ... before their deadline
    skipped: int = 0  # releases skipped after overruns (no cycle ran in them)
    worst_work_s: float = 0.0  # the longest cycle work (read + infer + write)
    worst_late_s: float = 0.0  # the largest lateness of a completion past its deadline
    work_s: list[float] = field(default_factory=list, repr=False)

    @property
    def missed(self) -> int:
        return self.cycles - self.met

    @property
    def fraction_met(self) -> float:
        """met / cycles (1.0 before the first cycle)."""
        return self.met / self.cycles if self.cycles else 1.0

    def add(self, other: DeadlineStats) -> None:
        """Accumulate another loop's counts into this one."""
        self.cycles += other.cycles
        self.met += other.met
        self.skipped += other.skipped
        self.worst_work_s = max(self.worst_work_s, other.worst_work_s)
        self.worst_late_s = max(self.worst_late_s, other.worst_late_s)
        self.work_s.extend(other.work_s)

    def as_dict(self) -> dict[str, Any]:
        work = sorted(self.work_s)
        p99 = work[min(len(work) - 1, int(0.99 * len(work)))] if work else 0.0
        return {"period_ms": 1e3 * self.period_s, "cycles": self.cycles, "met": self.met,
                "missed": self.missed, "skipped": self.skipped,
                "fraction_met": self.fraction_met, "work_p99_ms": 1e3 * p99,
                "worst_work_ms": 1e3 * self.worst_work_s, "worst_late_ms": 1e3 * self.worst_late_s}


class ControlLoop:
    """Releases cycles every ``period_s`` seconds and monitors their deadlines.

    Args:
        period_s: the control period T.
        spin_s: how long before a release to stop sleeping and spin on the clock.
    """

    def __init__(self, period_s: float, spin_s: float = 0.0003):
        if not period_s > 0.0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self.period_s = period_s
        self.spin_s = spin_s
        self.stats = DeadlineStats(period_s)
        self.t0 = 0.0
        self.k = 0  # the index of the current release
        self.release = 0.0  # the time the current cycle was released
        self._started = False

    def start(self) -> float:
        """Release cycle 0 now; returns its release time."""
        set_timer_slack(1000)
        self.t0 = self.release = time.perf_counter()
        self.k = 0
        self._started = True
        return self.t0

    def wait(self) -> int:
        """End the current cycle: record whether it met its deadline, then sleep until the next
        release. Returns how many releases were skipped (0 when the deadline was met)."""
        if not self._started:
            raise RuntimeError("ControlLoop.wait() before start()")
        now = time.perf_counter()
        T = self.period_s
        deadline = self.t0 + (self.k + 1) * T
        work = now - self.release
        s = self.stats
        s.cycles += 1
        s.work_s.append(work)
        s.worst_work_s = max(s.worst_work_s, work)
        skipped = 0
        if now <= deadline:
            s.met += 1
            nxt = self.k + 1
        else:
            s.worst_late_s = max(s.worst_late_s, now - deadline)
            # skip the releases that already passed: m = floor((now - t0) / T) + 1
            nxt = math.floor((now - self.t0) / T) + 1
            skipped = nxt - (self.k + 1)
            s.skipped += skipped
        self.k = nxt
        self.release = self.t0 + nxt * T
        sleep_until(self.release, self.spin_s)
        return skipped
