"""``robot-meta bench calibrate --robot R``: does ``robot-meta calibrate`` recover hidden
miscalibration, and how long does it take on the robot?

Over ``--sets`` hidden mountings of the emulated robot (the PyBullet twin behind emulated
Dynamixel servos, in-process with a manual clock, so that robot time is simulated time and the
run is deterministic), each drawn from one seeded generator:

* every joint's encoder offset ~ U(-0.5, 0.5) rad at the servo's shaft;
* every other set reverses one joint that is not the reference (the reference defines the
  positive sense: a mirrored robot is the same robot, see ``robot_meta.calibration.spec``);
* every other set is the robot "as built": the twin's servo effects (the XM430 gearbox's
  stiction and backlash, a 12-bit encoder, a 2 ms current loop, supply sag), and a payload
  ~ U(0, max) of the robot's payload range;

the calibration runs, and the benchmark reports, per set and overall: the largest error of the
recovered offsets [rad], whether every direction is right, and the robot seconds it took
(targets: every direction right, every offset within 0.01 rad, <= 60 s of robot time).

``--track``: the calibration is then put to use. A PD controller (a stand-in for a policy: it
acts on the joint readings alone, so a miscalibrated reading moves the robot to the wrong
place) holds a sequence of joint targets, on (a) the robot mounted as designed, (b) the hidden
mounting after calibration, (c) the hidden mounting uncalibrated; the score is the RMS error
of the *true* joint angles from the targets. Calibration works when (b) matches (a).

``--session BUNDLE``: the real thing, in real time on the emulator process: an adaptation
session of the bundle on the robot as designed, and on the same dynamics with the hidden
mounting (set 2: offsets, a reversed joint, as built) after ``robot-meta calibrate``; the
before/after columns are compared target by target (same seed, same targets), with a 95 %
normal interval of the paired differences.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.launch.bench_cli import Done, bench_main

if TYPE_CHECKING:
    from collections.abc import Callable

    from robot_meta.calibration.calibration_file import RobotCalibration
    from robot_meta.hardware import MockBus, Robot
    from robot_meta.hardware.hardware_map import HardwareMap

MAX_OFFSET = 0.5  # rad
TRACK_TARGETS: dict[str, list[tuple[float, ...]]] = {
    "arm2": [(0.4, -0.6), (-0.5, 0.8), (0.2, 0.3), (-0.3, -0.4)],
    "cartpole": [(0.3,), (-0.4,), (0.1,), (-0.2,)]}
TRACK_HOLD_S = 2.0


def _hidden_sets(robot: str, n: int, seed: int) -> list[dict[str, Any]]:
    """n hidden mountings (module docstring): {"params": {...}, "servo": {...}} each."""
    from robot_meta.calibration.spec import load_calibration_spec
    from robot_meta.hardware.servos import load_servo
    from robot_meta.sim.robots.robot_def import get_robot

    rdef = get_robot(robot)
    spec = load_calibration_spec(robot)
    movable = [j.joint for j in spec.joints if j.direction != "reference"]
    # payload ~ U over the `all` family's training range (the factor's norm_range)
    pay = rdef.factor("payload_mass").norm_range if "payload_mass" in rdef.factor_names else (0, 0)
    gb = load_servo(rdef.hardware_map.actuated[0].model).gearbox
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params: dict[str, Any] = {}
        for j in rdef.joints:
            params[f"{j}_encoder_offset"] = round(float(rng.uniform(-MAX_OFFSET, MAX_OFFSET)), 4)
        if i % 2 == 0 and movable:
            params[f"{movable[(i // 2) % len(movable)]}_reversed"] = 1
        servo: dict[str, Any] = {}
        if i % 4 >= 2:  # as built
            params["payload_mass"] = round(float(rng.uniform(*pay)), 3)
            if gb is not None:
                servo = {"stiction": gb.stiction, "backlash": gb.backlash,
                         "encoder_quantization": True, "current_lag": 0.002,
                         "supply_resistance": 0.3}
        out.append({"params": params, "servo": servo})
    return out


def _write(robot: str, hidden: dict[str, Any], path: Path) -> Path:
    lines = [f'robot = "{robot}"', "[params]"]
    lines += [f"{k} = {v}" for k, v in hidden["params"].items()]
    if hidden["servo"]:
        lines.append("[servo]")
        lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
                  for k, v in hidden["servo"].items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _robot(robot: str, params: Path) -> tuple[MockBus, Robot]:
    from robot_meta.hardware import MockBus, Robot

    bus = MockBus(robot, params=params, clock="manual")
    r = Robot(bus, bus.emulated.hw, mode="current", handle_signals=False)
    r.connect()
    return bus, r


def calibrate_once(robot: str, params_file: Path, hidden: dict[str, Any]) -> dict[str, Any]:
    """Calibrate one hidden robot; its errors against the truth."""
    from robot_meta.calibration.calibrator import BusClock, Calibrator

    bus, r = _robot(robot, params_file)
    t = time.perf_counter()
    try:
        cal = Calibrator(r, clock=BusClock(bus)).run()
    finally:
        r.close()
        bus.shutdown()
    wall = time.perf_counter() - t
    found = cal.summary(bus.emulated.hw)
    errs, right = {}, True
    for j, f in found.items():
        errs[j] = round(abs(f["offset_rad"] - hidden["params"].get(f"{j}_encoder_offset", 0.0)), 5)
        right &= f["reversed"] == bool(hidden["params"].get(f"{j}_reversed", 0))
    return {"max_offset_err_rad": max(errs.values()), "offset_err_rad": errs,
            "directions_correct": bool(right), "robot_seconds": round(cal.robot_seconds, 2),
            "wall_s": round(wall, 2), "calibration": cal}


def track(robot: str, params: Path, calibration: RobotCalibration | None) -> float:
    """RMS error [joint units] of the true actuated joint angles from TRACK_TARGETS under a PD
    law acting on the joint readings (in the calibrated frame when given); the last second of
    each hold counts."""
    from robot_meta.calibration.calibration_file import apply_calibration
    from robot_meta.calibration.calibrator import BusClock

    bus, r = _robot(robot, params)
    clock = BusClock(bus)
    try:
        hw = bus.emulated.hw
        if calibration is not None:
            r.hw = apply_calibration(hw, calibration)
        act = [k for k, j in enumerate(r.hw.joints) if j.actuated]
        kp, kd = (8.0, 0.4) if robot == "arm2" else (150.0, 30.0)
        r.enable()
        sq = []
        for goal in TRACK_TARGETS[robot]:
            t0 = clock.now()
            while clock.now() - t0 < TRACK_HOLD_S:
                s = r.read_state()
                tau = [kp * (g - s.q[k]) - kd * s.dq[k] for g, k in zip(goal, act, strict=True)]
                amps = [r.hw.joints[k].effort_to_current(x) for k, x in zip(act, tau, strict=True)]
                r.write_currents(amps)
                if clock.now() - t0 > TRACK_HOLD_S - 1.0:
                    q_true, _ = bus.emulated.true_state()
                    sq += [(q_true[k] - g) ** 2 for g, k in zip(goal, act, strict=True)]
                clock.sleep(0.01)
    finally:
        r.close()
        bus.shutdown()
    return float(math.sqrt(np.mean(sq)))


def _inproc_factory(robot: str, params_file: Path, hw: HardwareMap) -> Callable[[], Robot]:
    """Open the robot on an in-process emulated bus in real time (``MockBus`` with the wall
    clock: the physics catches up with the clock at every exchange), driven through ``hw``."""
    from robot_meta.hardware import MockBus, Robot

    def make() -> Robot:
        bus = MockBus(robot, params=params_file, clock="wall")
        r = Robot(bus, hw, mode="current", watchdog_ms=100, handle_signals=False)
        r.connect()
        return r

    return make


def session_pair(robot: str, bundle: Path, hidden: dict[str, Any], tmp: Path, rollouts: int,
                 eval_rollouts: int, seed: int, inproc: bool = False) -> dict[str, Any]:
    """Two adaptation sessions of ``bundle`` on the emulator process (real time, a pty), same
    dynamics and seed (so the same targets): the servos mounted as designed (no calibration),
    and the hidden mounting calibrated with ``robot-meta calibrate`` first. Returns both
    results and the paired per-target differences of the before and after columns.
    ``inproc``: the same on an in-process bus (no pty and no emulator process: for a machine
    too loaded to serve the emulator's wire timing), calibrated in simulated time."""
    if inproc:
        return _session_pair_inproc(robot, bundle, hidden, tmp, rollouts, eval_rollouts, seed)
    from robot_meta.calibration.calibration_file import calibration_path
    from robot_meta.launch.cmd_calibrate import calibrate
    from robot_meta.launch.emulator_process import EmulatorProcess
    from robot_meta.runtime.flash import flash
    from robot_meta.runtime.robot_config import load_robot_config
    from robot_meta.runtime.session import AdaptationSession, SessionSpec

    plain = {"params": {k: v for k, v in hidden["params"].items()
                        if not k.endswith(("_encoder_offset", "_reversed"))},
             "servo": hidden["servo"]}
    out: dict[str, Any] = {}
    cols: dict[str, dict[str, list[float]]] = {}
    for name, h, calibrated in (("as_designed", plain, False), ("calibrated", hidden, True)):
        work = tmp / f"session-{name}"
        f = _write(robot, h, tmp / f"{name}.toml")
        with EmulatorProcess(robot, f, seed=seed, log=tmp / f"emulator-{name}.log") as emu:
            cfg = load_robot_config(robot).with_overrides(port=emu.port, deploy_dir=work / "deploy")
            cal_s = None
            if calibrated:
                t = time.perf_counter()
                cal = calibrate(cfg, status=lambda m: print("      " + m, file=sys.stderr, flush=True))
                cal.save(calibration_path(cfg))
                cal_s = {"robot_seconds": round(cal.robot_seconds, 1),
                         "wall_s": round(time.perf_counter() - t, 1)}
            flash(bundle, cfg, calibration=calibrated)
            spec = SessionSpec(method="auto", rollouts=rollouts, eval_rollouts=eval_rollouts,
                               seed=seed, command="robot-meta bench calibrate --session")
            res = AdaptationSession(cfg, spec, session_dir=work / "session",
                                    calibration=calibrated).run()
        cols[name] = res.columns
        out[name] = {"before": round(res.before or 0.0, 2), "after": round(res.after or 0.0, 2),
                     "rollouts": [round(x, 2) for x in res.rollouts], "calibration": cal_s}
    out.update(_paired(cols))
    return out


def _session_pair_inproc(robot: str, bundle: Path, hidden: dict[str, Any], tmp: Path,
                         rollouts: int, eval_rollouts: int, seed: int) -> dict[str, Any]:
    from robot_meta.calibration.calibration_file import apply_calibration
    from robot_meta.runtime.flash import flash
    from robot_meta.runtime.robot_config import load_robot_config
    from robot_meta.runtime.session import AdaptationSession, SessionSpec
    from robot_meta.sim.robots.robot_def import get_robot

    plain = {"params": {k: v for k, v in hidden["params"].items()
                        if not k.endswith(("_encoder_offset", "_reversed"))},
             "servo": hidden["servo"]}
    hw = get_robot(robot).hardware_map
    out: dict[str, Any] = {}
    cols: dict[str, dict[str, list[float]]] = {}
    for name, h, calibrated in (("as_designed", plain, False), ("calibrated", hidden, True)):
        work = tmp / f"session-{name}"
        f = _write(robot, h, tmp / f"{name}.toml")
        cfg = load_robot_config(robot).with_overrides(port="inproc", deploy_dir=work / "deploy")
        used, cal_s = hw, None
        if calibrated:
            res_cal = calibrate_once(robot, f, h)
            cal = res_cal.pop("calibration")
            used = apply_calibration(hw, cal)
            cal_s = {k: res_cal[k] for k in ("robot_seconds", "max_offset_err_rad",
                                             "directions_correct")}
        make = _inproc_factory(robot, f, used)
        flash(bundle, cfg, calibration=False, robot_factory=make)
        spec = SessionSpec(method="auto", rollouts=rollouts, eval_rollouts=eval_rollouts,
                           seed=seed, command="robot-meta bench calibrate --session --inproc")
        res = AdaptationSession(cfg, spec, session_dir=work / "session", robot_factory=make,
                                calibration=False,
                                status=lambda m: print("      " + m, file=sys.stderr,
                                                       flush=True)).run()
        cols[name] = res.columns
        out[name] = {"before": round(res.before or 0.0, 2), "after": round(res.after or 0.0, 2),
                     "rollouts": [round(x, 2) for x in res.rollouts], "calibration": cal_s}
    out.update(_paired(cols))
    return out


def _paired(cols: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Paired per-target differences calibrated - as designed of the before and after columns,
    with a 95 % normal interval."""
    out: dict[str, Any] = {}
    for col in ("before", "after"):
        a, b = np.array(cols["as_designed"][col]), np.array(cols["calibrated"][col])
        d = b - a  # paired by target (same seed, same targets)
        half = 1.96 * float(np.std(d, ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else math.nan
        out[f"{col}_diff"] = {"mean": round(float(d.mean()), 2),
                              "ci95": [round(float(d.mean()) - half, 2),
                                       round(float(d.mean()) + half, 2)]}
    return out


def run(robot: str, sets: int, seed: int, do_track: bool) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, hidden in enumerate(_hidden_sets(robot, sets, seed)):
            f = _write(robot, hidden, Path(tmp) / f"hidden{i}.toml")
            res = calibrate_once(robot, f, hidden)
            cal = res.pop("calibration")
            row: dict[str, Any] = {"set": i, "hidden": hidden["params"],
                                   "as_built": bool(hidden["servo"]), **res}
            if do_track:
                plain = {"params": {k: v for k, v in hidden["params"].items()
                                    if not k.endswith(("_encoder_offset", "_reversed"))},
                         "servo": hidden["servo"]}
                g = _write(robot, plain, Path(tmp) / f"designed{i}.toml")
                row["track_rms"] = {
                    "as_designed": round(track(robot, g, None), 4),
                    "calibrated": round(track(robot, f, cal), 4),
                    "uncalibrated": round(track(robot, f, None), 4),
                }
            rows.append(row)
            print(f"set {i}: max offset error {res['max_offset_err_rad']:.4f} rad, directions "
                  f"{'right' if res['directions_correct'] else 'WRONG'}, "
                  f"{res['robot_seconds']:.1f} s robot, {res['wall_s']:.1f} s wall"
                  + (f", track rms {row['track_rms']}" if do_track else ""),
                  file=sys.stderr, flush=True)
    return {
        "robot": robot, "sets": sets, "seed": seed, "date": str(date.today()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": [round(x, 2) for x in os.getloadavg()],
        "max_offset_err_rad": max(r["max_offset_err_rad"] for r in rows),
        "directions_correct": f"{sum(r['directions_correct'] for r in rows)}/{len(rows)}",
        "robot_seconds_max": max(r["robot_seconds"] for r in rows),
        "robot_seconds_mean": round(float(np.mean([r["robot_seconds"] for r in rows])), 2),
        "rows": rows,
    }


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="arm2", choices=["arm2", "cartpole"])
    p.add_argument("--sets", type=int, default=8, help="hidden mountings (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--track", action="store_true",
                   help="also score a PD tracking task: as designed / calibrated / uncalibrated")
    p.add_argument("--session", metavar="BUNDLE",
                   help="instead: adaptation sessions of this bundle on the emulator process, the "
                        "first hidden set calibrated vs the same dynamics mounted as designed")
    p.add_argument("--rollouts", type=int, default=3, help="--session: adaptation rollouts")
    p.add_argument("--eval-rollouts", type=int, default=5, help="--session: targets per column")
    p.add_argument("--inproc", action="store_true",
                   help="--session on an in-process bus in real time instead of the emulator "
                        "process (for a machine too loaded to serve the emulator's wire timing)")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any] | Done:
    if args.sets < 1:
        from robot_meta.errors import UserError

        raise UserError("--sets must be >= 1")
    if args.session:
        hidden = _hidden_sets(args.robot, 4, args.seed)[2]  # reversed joint, as built
        with tempfile.TemporaryDirectory() as tmp:
            pair = session_pair(args.robot, Path(args.session), hidden, Path(tmp), args.rollouts,
                                args.eval_rollouts, args.seed, inproc=args.inproc)
        out = {"robot": args.robot, "bundle": args.session, "hidden": hidden,
               "load": [round(x, 2) for x in os.getloadavg()], **pair}
        print(json.dumps(out, indent=2))  # a session pair is always printed as JSON
        return Done(0)
    return run(args.robot, args.sets, args.seed, args.track)


def _text(res: dict[str, Any]) -> None:
    print(f"{res['robot']}: {res['sets']} hidden mountings (offsets up to +-{MAX_OFFSET} rad)")
    print(f"  max offset error {res['max_offset_err_rad']:.4f} rad (target 0.01)")
    print(f"  directions correct {res['directions_correct']}")
    print(f"  robot seconds: max {res['robot_seconds_max']:.1f}, mean {res['robot_seconds_mean']:.1f}"
          " (target <= 60)")


def main(argv: list[str] | None = None) -> int:
    return bench_main("calibrate", __doc__, argv, _options, _measure, _text, json_help="print JSON only")


if __name__ == "__main__":
    sys.exit(main())
