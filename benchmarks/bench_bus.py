"""``robot-meta bench bus --robot arm2 --json``: how fast and how steadily the HAL talks to servos.

In one run:

1. ``pty_floor_ms``: the raw round trip of 32 bytes through a pseudo-terminal to an echo
   process (median): the floor any pty-based emulator adds, independent of our code.
2. ``cycle_ms``: one control cycle's bus traffic, back to back, through the emulator at the
   given baud (1 Mbps): a sync read of present current, velocity and position (10 bytes per
   servo) and a sync write of goal current (median; ``cycle_p99_ms`` alongside). At 1 Mbps the
   wire alone takes (14 + 21 n + 11 + 3 n) bytes * 10 us = 730 us for n = 2 servos.
3. A control loop at ``--rate`` Hz (500) for ``--seconds`` (60) through the emulator, with the
   Robot class (safety clamp, health checks) and a PD law holding the arm, paced like
   ``robot-meta run`` (an overrun skips releases instead of catching up). ``jitter`` = wake-up
   time - release time of each cycle; ``miss_rate`` = (cycles whose work ended after the next
   release + releases skipped) / releases.
4. ``stalls_over_1ms_per_s`` (and over 0.5 ms): how often the machine itself takes a CPU away
   from a real-time thread spinning on the clock (interrupts; on a VM the hypervisor). No code
   of ours runs then; it is the floor under the miss rate, measured in the same run.

The emulator runs as a separate process (``python -m robot_meta.hardware.emulation.emulator``), as it
would on a robot bench. With ``--realtime`` (default) the run is set up as a robot's control
computer would be, and the JSON says what was granted:

* the client and the emulator get SCHED_FIFO priority on separate CPUs;
* the kernel's tty worker threads, which carry every byte through a pty or a USB serial
  adapter, get SCHED_FIFO above both (:func:`robot_meta.hardware.timing.boost_tty_workers`;
  off with ``--no-boost-tty-workers``);
* a PM QoS CPU latency limit of 0 is held, so that idle vCPUs poll instead of halting
  (:func:`robot_meta.hardware.timing.cpu_latency_limit`; off with ``--no-cpu-latency-limit``).

The loop sleeps to each release without spinning: on this 2-vCPU VM a vCPU spinning on the
clock slows the other (traced: 465 vs 21 slow cycles in 10 s).

Targets: miss rate <= 0.1 %, jitter p99 <= 0.3 ms.
"""

from __future__ import annotations

import argparse
import contextlib
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
from robot_meta.hardware.timing import (
    boost_tty_workers,
    cpu_latency_limit,
    restore_scheduling,
    set_timer_slack,
    steal_ms,
)
from robot_meta.launch.bench_cli import bench_main


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
        # Checked against the CPUs the system offers, not the target's current mask: a child
        # inherits its parent's pinning, and testing ``cpu in sched_getaffinity(child)`` used to
        # leave the emulator on the client's CPU.
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(pid, {cpu})
    return ok


def _pick_cpus() -> tuple[int | None, int | None]:
    """(client CPU, emulator CPU): two different CPUs when there are two, else no pinning.

    The emulator answers while the client waits, so neither delays the other; the kernel's
    tty workers, which carry each packet, run wherever they are woken.
    """
    with contextlib.suppress(OSError, AttributeError):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            return cpus[-1], cpus[0]
    return None, None


def pty_floor(n: int = 2000, size: int = 32, cpu: int | None = None) -> dict[str, float]:
    """Round trips of ``size`` bytes through a pty to a forked echo process (pinned to ``cpu``,
    where the emulator will run, so that the floor sees the same CPU placement)."""
    import serial

    master, slave = pty.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    pid = os.fork()
    if pid == 0:  # child: echo until the parent hangs up
        if cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpu})
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


def cpu_stalls(cpus: list[int | None], seconds: float = 3.0, chunk_s: float = 0.25
               ) -> dict[str, float]:
    """How often this machine takes a CPU away from a real-time thread: spin on the clock on
    each CPU in turn (the caller's priority, pinned) and count the gaps between consecutive
    clock reads (interrupts, and on a VM the hypervisor running something else). Spins in
    ``chunk_s`` pieces with short sleeps between, so that RT throttling (95 % of each second)
    never cuts in. A 500 Hz cycle has about 1 ms of slack, so each gap over 1 ms that lands
    inside a cycle's work is a missed deadline however fast our code is.

    Returns ``stalls_over_0_5ms_per_s``, ``stalls_over_1ms_per_s`` (summed over the CPUs the
    loop uses) and ``stall_max_ms``.
    """
    gaps: list[float] = []
    spun = 0.0
    old = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        for cpu in dict.fromkeys(cpus):  # each distinct CPU once
            if cpu is not None:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, {cpu})
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                last = t0 = time.perf_counter()
                stop = t0 + chunk_s
                while last < stop:
                    t = time.perf_counter()
                    if t - last > 2e-4:
                        gaps.append(t - last)
                    last = t
                spun += last - t0
                time.sleep(0.02)
    finally:
        if old is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, old)
    g = np.asarray(gaps)
    per_s = len(dict.fromkeys(cpus)) / max(spun, 1e-9)  # per second of every CPU at once
    return {"stalls_over_0_5ms_per_s": round(float((g > 5e-4).sum() * per_s), 2),
            "stalls_over_1ms_per_s": round(float((g > 1e-3).sum() * per_s), 2),
            "stall_max_ms": round(float(g.max() * 1e3) if len(g) else 0.0, 3)}


def start_emulator(robot: str, baud: int, realtime: bool, port_kind: str = "pty",
                   cpu: int | None = 0) -> tuple[subprocess.Popen[str], str, bool]:
    """The emulator in its own process on ``port_kind`` (``pty`` or ``tcp:0``), real-time and
    pinned to ``cpu`` when ``realtime``; returns (process, port, realtime granted)."""
    proc = subprocess.Popen([sys.executable, "-m", "robot_meta.hardware.emulation.emulator", robot,
                             "--baud", str(baud), "--port", port_kind],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port:
        proc.kill()
        raise RuntimeError("the emulator did not start (no port printed)")
    granted = _try_realtime(proc.pid, 80, cpu) if realtime else False
    if realtime:  # every thread of the emulator (it has two: main and the real-time loop)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{proc.pid}/task"):
                _try_realtime(int(tid), 80, cpu)
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


def control_loop(port: str, baud: int, robot_name: str, seconds: float, rate: float,
                 spin_s: float = 0.0) -> dict[str, Any]:
    """A PD loop at ``rate`` Hz for ``seconds`` through the Robot class, paced by the runtime's
    :class:`~robot_meta.runtime.control_loop.ControlLoop` (an overrun skips the releases that
    passed instead of catching up, as ``robot-meta run`` does).

    ``jitter`` = wake-up time - release time of each cycle. A release is *missed* when its
    cycle's work ends after the next release, or when it is skipped (no cycle ran in it), so
    ``miss_rate`` = (missed + skipped) / releases.
    """
    from robot_meta.runtime.control_loop import ControlLoop

    hw = load_hardware_map(robot_name)
    robot = Robot(open_bus(port, baud), hw, watchdog_ms=100, handle_signals=True)
    lateness: list[float] = []
    with robot:
        robot.enable()
        act = [k for k, j in enumerate(hw.joints) if j.actuated]
        kp, kd = 1.0, 0.1  # A/rad, A/(rad/s): hold the rest pose softly
        loop = ControlLoop(1.0 / rate, spin_s=spin_s)
        end = loop.start() + seconds
        woke = loop.release
        while woke < end:
            lateness.append(woke - loop.release)
            s = robot.read_state()
            robot.write_currents(-kp * s.q[act] - kd * s.dq[act])
            loop.wait()
            woke = time.perf_counter()
        stats = robot.bus.stats
    d = loop.stats
    releases = d.cycles + d.skipped
    return {"cycles": d.cycles, "missed": d.missed, "skipped": d.skipped,
            "miss_rate": (d.missed + d.skipped) / max(1, releases),
            "jitter": _percentiles_ms(lateness), "work": _percentiles_ms(d.work_s),
            "retries": stats.retries, "failures": stats.failures}


def run(robot: str = "arm2", seconds: float = 60.0, rate: float = 500.0, baud: int = 1_000_000,
        realtime: bool = True, cycles: int = 2000, port: str = "pty", boost_tty: bool = True,
        cpu_qos: bool = True) -> dict[str, Any]:
    """Run the three measurements; return the result dict (the JSON of ``--json``)."""
    set_timer_slack(1000)
    saved = boost_tty_workers() if realtime and boost_tty else []
    try:
        with cpu_latency_limit(0) if realtime and cpu_qos else contextlib.nullcontext(False) as qos:
            return _run(robot, seconds, rate, baud, realtime, cycles, port) | {
                "tty_workers_boosted": len(saved), "cpu_latency_limit_0": qos}
    finally:
        restore_scheduling(saved)


def _run(robot: str, seconds: float, rate: float, baud: int, realtime: bool, cycles: int,
         port: str) -> dict[str, Any]:
    cpu_client, cpu_emulator = _pick_cpus() if realtime else (None, None)
    granted = _try_realtime(0, 70, cpu_client) if realtime else False
    stalls = cpu_stalls([cpu_client, cpu_emulator])
    floor = pty_floor(cpu=cpu_emulator)
    proc, url, emu_granted = start_emulator(robot, baud, realtime,
                                            "pty" if port == "pty" else "tcp:0", cpu_emulator)
    try:
        time.sleep(0.3)  # let the emulator settle
        ids = [j.motor_id for j in load_hardware_map(robot).joints]
        cyc = bus_cycle(url, baud, ids, cycles)
        steal0 = steal_ms()
        loop = control_loop(url, baud, robot, seconds, rate)
        loop["steal_ms"] = round(steal_ms() - steal0, 1)
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
        "loop_skipped": loop["skipped"],
        "loop_retries": loop["retries"] + int(cyc["retries"]),
        **stalls,
        "loop_steal_ms": loop["steal_ms"],
        "robot": robot,
        "port": port,
        "baud": baud,
        "rate_hz": rate,
        "seconds": seconds,
        "realtime": bool(granted and emu_granted),
        "cpu_client": cpu_client,
        "cpu_emulator": cpu_emulator,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }


def _options(ap: argparse.ArgumentParser) -> None:
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
    ap.add_argument("--no-boost-tty-workers", dest="boost_tty", action="store_false",
                    help="leave the kernel's tty worker threads at normal priority (by default "
                    "they get SCHED_FIFO 90 for the run, see timing.boost_tty_workers)")
    ap.add_argument("--no-cpu-latency-limit", dest="cpu_qos", action="store_false",
                    help="let idle CPUs halt (by default the run holds /dev/cpu_dma_latency at 0, "
                    "as cyclictest does, see timing.cpu_latency_limit)")


def _measure(args: argparse.Namespace, ap: argparse.ArgumentParser) -> dict[str, Any]:
    if args.seconds <= 0 or args.rate <= 0 or not math.isfinite(args.seconds):
        ap.error("--seconds and --rate must be positive")
    return run(args.robot, args.seconds, args.rate, args.baud, args.realtime, args.cycles,
               args.port, args.boost_tty, args.cpu_qos)


def _text(res: dict[str, Any]) -> None:
    print(f"pty round trip (32 B, p50):      {res['pty_floor_ms']:.3f} ms")
    print(f"sync read + sync write (p50/p99): {res['cycle_ms']:.3f} / "
          f"{res['cycle_p99_ms']:.3f} ms at {res['baud']} baud")
    print(f"{res['rate_hz']:g} Hz loop for {res['seconds']:g} s: miss rate "
          f"{100 * res['miss_rate']:.3f} % ({res['loop_missed']} missed, {res['loop_skipped']} "
          f"skipped, {res['loop_cycles']} cycles), "
          f"jitter p50/p99/max {res['jitter_p50_ms']:.3f} / {res['jitter_p99_ms']:.3f} / "
          f"{res['jitter_max_ms']:.3f} ms (targets: <= 0.1 %, p99 <= 0.3 ms); "
          f"realtime priority: {res['realtime']}")


def main(argv: list[str] | None = None) -> int:
    """``robot-meta bench bus``: print the results (JSON with --json)."""
    return bench_main("bus", __doc__.split("\n")[0], argv, _options, _measure, _text,
                      json_help="print one JSON object", indent=None, raw_doc=False)


if __name__ == "__main__":
    sys.exit(main())
