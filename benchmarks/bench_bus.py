"""``robot-meta bench bus --robot arm2 --json``: how fast and how steadily the HAL talks to servos.

In one run:

1. ``pty_floor_ms``: the raw round trip of 32 bytes through a pseudo-terminal to an echo
   process (median): the floor any pty-based emulator adds, independent of our code.
2. ``cycle_ms``: one control cycle's bus traffic, back to back, through the emulator at the
   given baud (1 Mbps): a sync read of present current, velocity and position (10 bytes per
   servo) and a sync write of goal current (median; ``cycle_p99_ms`` alongside). At 1 Mbps the
   wire alone takes (14 + 21 n + 11 + 3 n) bytes * 10 us = 730 us for n = 2 servos.
3. A control loop at ``--rate`` Hz (500) for ``--seconds`` (60) through the emulator, with the
   Robot class (safety clamp, health checks) and a PD law holding the arm:
   ``jitter`` = wake-up time - scheduled time of each cycle; a deadline miss is a cycle whose
   work (read, compute, write) ends after the next cycle's scheduled start.

The emulator runs as a separate process (``python -m robot_meta.hardware.emulator``), as it
would on a robot bench. With ``--realtime`` (default) both processes ask for SCHED_FIFO
priority and separate CPUs, as a robot's control computer would run them; the JSON says whether
the request was granted. Targets: miss rate <= 0.1 %, jitter p99 <= 0.3 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import pty
import select
import subprocess
import sys
import time
import tty
from typing import Any

import numpy as np

from robot_meta.hardware import Robot, load_hardware_map, open_bus
from robot_meta.hardware.timing import set_timer_slack, sleep_until


def _percentiles_ms(x: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(x, dtype=float) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "min": float(a.min())}


def _try_realtime(pid: int, priority: int, cpu: int | None) -> bool:
    """Ask for SCHED_FIFO at ``priority`` (and pin to ``cpu``); False when not permitted."""
    ok = True
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        ok = False
    if cpu is not None:
        with contextlib.suppress(OSError, AttributeError):
            if cpu in os.sched_getaffinity(pid):
                os.sched_setaffinity(pid, {cpu})
    return ok


def pty_floor(n: int = 2000, size: int = 32) -> dict[str, float]:
    """Round trips of ``size`` bytes through a pty to a forked echo process."""
    import serial

    master, slave = pty.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    pid = os.fork()
    if pid == 0:  # child: echo until the parent hangs up
        try:
            while True:
                data = os.read(master, 4096)
                if not data:
                    break
                os.write(master, data)
        except OSError:
            pass
        os._exit(0)
    os.close(master)
    ser = serial.Serial(path, 1_000_000, timeout=0)
    fd = ser.fileno()
    payload = bytes(range(size))
    times = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            ser.write(payload)
            got = 0
            while got < size:
                select.select([fd], [], [], 1.0)
                got += len(ser.read(size - got))
            times.append(time.perf_counter() - t)
    finally:
        ser.close()
        os.close(slave)
        os.kill(pid, 15)
        os.waitpid(pid, 0)
    return _percentiles_ms(times)


def start_emulator(robot: str, baud: int, realtime: bool, port_kind: str = "pty"
                   ) -> tuple[subprocess.Popen[str], str, bool]:
    """The emulator in its own process on ``port_kind`` (``pty`` or ``tcp:0``); returns
    (process, port, realtime granted)."""
    proc = subprocess.Popen([sys.executable, "-m", "robot_meta.hardware.emulator", robot,
                             "--baud", str(baud), "--port", port_kind],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port:
        proc.kill()
        raise RuntimeError("the emulator did not start (no port printed)")
    granted = _try_realtime(proc.pid, 80, 0) if realtime else False
    if realtime:  # every thread of the emulator (it has two: main and the real-time loop)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{proc.pid}/task"):
                _try_realtime(int(tid), 80, 0)
    return proc, port, granted


def bus_cycle(port: str, baud: int, ids: list[int], n: int) -> dict[str, float]:
    """Back-to-back sync read (current, velocity, position) + sync write (goal current)."""
    bus = open_bus(port, baud)
    try:
        for i in ids:
            bus.write(i, "return_delay_time", 0)
            bus.write(i, "operating_mode", 0)
        names = ("present_current", "present_velocity", "present_position")
        zero = dict.fromkeys(ids, 0)
        for _ in range(50):  # warm up
            bus.sync_read_many(names, ids)
            bus.sync_write("goal_current", zero)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            bus.sync_read_many(names, ids)
            bus.sync_write("goal_current", zero)
            times.append(time.perf_counter() - t)
        out = _percentiles_ms(times)
        out["retries"] = float(bus.stats.retries)
        return out
    finally:
        bus.close()


def control_loop(port: str, baud: int, robot_name: str, seconds: float, rate: float
                 ) -> dict[str, Any]:
    """A PD loop at ``rate`` Hz for ``seconds`` through the Robot class."""
    hw = load_hardware_map(robot_name)
    period = 1.0 / rate
    robot = Robot(open_bus(port, baud), hw, watchdog_ms=100, handle_signals=True)
    n = int(round(seconds * rate))
    lateness = np.zeros(n)
    work = np.zeros(n)
    missed = 0
    with robot:
        robot.enable()
        act = [k for k, j in enumerate(hw.joints) if j.actuated]
        kp, kd = 1.0, 0.1  # A/rad, A/(rad/s): hold the rest pose softly
        t0 = time.perf_counter() + 0.05
        for k in range(n):
            scheduled = t0 + k * period
            woke = sleep_until(scheduled)
            s = robot.read_state()
            robot.write_currents(-kp * s.q[act] - kd * s.dq[act])
            done = time.perf_counter()
            lateness[k] = woke - scheduled
            work[k] = done - woke
            if done > scheduled + period:
                missed += 1
        stats = robot.bus.stats
    j = _percentiles_ms(lateness)
    w = _percentiles_ms(work)
    return {"cycles": n, "missed": missed, "miss_rate": missed / n, "jitter": j, "work": w,
            "retries": stats.retries, "failures": stats.failures}


def run(robot: str = "arm2", seconds: float = 60.0, rate: float = 500.0, baud: int = 1_000_000,
        realtime: bool = True, cycles: int = 2000, port: str = "pty") -> dict[str, Any]:
    """Run the three measurements; return the result dict (the JSON of ``--json``)."""
    set_timer_slack(1000)
    granted = _try_realtime(0, 70, 1) if realtime else False
    floor = pty_floor()
    proc, url, emu_granted = start_emulator(robot, baud, realtime,
                                            "pty" if port == "pty" else "tcp:0")
    try:
        time.sleep(0.3)  # let the emulator settle
        ids = [j.motor_id for j in load_hardware_map(robot).joints]
        cyc = bus_cycle(url, baud, ids, cycles)
        loop = control_loop(url, baud, robot, seconds, rate)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "pty_floor_ms": round(floor["p50"], 4),
        "cycle_ms": round(cyc["p50"], 4),
        "miss_rate": loop["miss_rate"],
        "jitter_p50_ms": round(loop["jitter"]["p50"], 4),
        "jitter_p99_ms": round(loop["jitter"]["p99"], 4),
        "jitter_max_ms": round(loop["jitter"]["max"], 4),
        "cycle_p99_ms": round(cyc["p99"], 4),
        "pty_floor_p99_ms": round(floor["p99"], 4),
        "loop_work_p50_ms": round(loop["work"]["p50"], 4),
        "loop_work_p99_ms": round(loop["work"]["p99"], 4),
        "loop_cycles": loop["cycles"],
        "loop_missed": loop["missed"],
        "loop_retries": loop["retries"] + int(cyc["retries"]),
        "robot": robot,
        "port": port,
        "baud": baud,
        "rate_hz": rate,
        "seconds": seconds,
        "realtime": bool(granted and emu_granted),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    """``robot-meta bench bus``: print the results (JSON with --json)."""
    ap = argparse.ArgumentParser(prog="robot-meta bench bus", description=__doc__.split("\n")[0])
    ap.add_argument("--robot", default="arm2", choices=("arm2", "cartpole"))
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="length of the control-loop part (default 60)")
    ap.add_argument("--rate", type=float, default=500.0, help="control rate in Hz (500)")
    ap.add_argument("--baud", type=int, default=1_000_000)
    ap.add_argument("--cycles", type=int, default=2000, help="back-to-back cycles timed")
    ap.add_argument("--port", default="pty", choices=("pty", "tcp"),
                    help="how the emulator is reached: a pty (default, like a USB adapter) or "
                    "TCP on 127.0.0.1")
    ap.add_argument("--no-realtime", dest="realtime", action="store_false",
                    help="do not ask for SCHED_FIFO priority")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or not math.isfinite(args.seconds):
        ap.error("--seconds and --rate must be positive")
    res = run(args.robot, args.seconds, args.rate, args.baud, args.realtime, args.cycles,
              args.port)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"pty round trip (32 B, p50):      {res['pty_floor_ms']:.3f} ms")
        print(f"sync read + sync write (p50/p99): {res['cycle_ms']:.3f} / "
              f"{res['cycle_p99_ms']:.3f} ms at {res['baud']} baud")
        print(f"{res['rate_hz']:g} Hz loop for {res['seconds']:g} s: miss rate "
              f"{100 * res['miss_rate']:.3f} % ({res['loop_missed']}/{res['loop_cycles']}), "
              f"jitter p50/p99/max {res['jitter_p50_ms']:.3f} / {res['jitter_p99_ms']:.3f} / "
              f"{res['jitter_max_ms']:.3f} ms (targets: <= 0.1 %, p99 <= 0.3 ms); "
              f"realtime priority: {res['realtime']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
