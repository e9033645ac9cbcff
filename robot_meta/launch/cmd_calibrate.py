"""``robot-meta calibrate --robot R``: find each joint's zero, direction and range, automatically,
and write the robot's ``calibration.json``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from robot_meta.launch.robot_args import add_robot_args, load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "calibrate", help="find each joint's zero, direction and range (automatic, no human)",
        description="Calibrate the robot's motors with no human in the loop, at a limited "
                    "current and speed, as each joint's `calibration` in robot.toml says: links "
                    "hanging under gravity give their zeros (zero = hang), slow moves to a rail's "
                    "end stops give its range and centre (zero = end_stops), a hanging passive "
                    "link gives its encoder's zero, and the coupling between joints gives "
                    "each joint's direction relative to the reference joint. A joint that does not "
                    "move as commanded aborts with torque off. Writes calibration.json (LeRobot's "
                    "fields: id, drive_mode, homing_offset, range_min, range_max) atomically to the "
                    "config's `calibration` path or <deploy_dir>/calibration.json; flash, adapt "
                    "and run then use it.")
    add_robot_args(p)
    p.add_argument("--check", action="store_true",
                   help="do not calibrate: check the existing calibration against the robot (every "
                        "joint moves as commanded and the relative directions come out as designed)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing calibration file that belongs to another robot or "
                        "other motor IDs (refused by default: nothing is overwritten)")
    p.add_argument("--json", action="store_true",
                   help='print {"joints": {joint: {"offset_rad", "reversed", "range_rad"}}, "file", '
                        '"robot_seconds"}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_meta.calibration.calibration_file import (
        calibration_path,
        check_matches,
        load_calibration,
    )
    from robot_meta.calibration.calibrator import Calibrator
    from robot_meta.calibration.errors import CalibrationError
    from robot_meta.runtime.connect import hardware_map_for

    cfg = load_config(args)

    def status(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    path = calibration_path(cfg)
    if args.check:
        signs = _with_retries(cfg, True, status, lambda robot: Calibrator(robot, status=status).check())
        out = {"file": str(path), "ok": True, "joints": sorted(signs)}
        print(json.dumps(out) if args.json else f"{path}: every joint moves as calibrated")
        return 0
    hw = hardware_map_for(cfg)
    if path.exists() and not args.force:
        # Refuse before touching the robot: the file may be another robot's (wrong --deploy-dir
        # or `calibration` path), and it is not ours to overwrite.
        try:
            check_matches(load_calibration(path), hw, str(path))
        except CalibrationError as e:
            raise CalibrationError(f"{e}. Nothing was overwritten; pass --force to replace it",
                                   e.joint) from e
    status(f"calibrating {cfg.robot} on {cfg.port} (current <= half of each joint's limit)")
    cal = calibrate(cfg, status)
    cal.save(path)
    joints = cal.summary(hw)
    out = {"joints": joints, "file": str(path), "robot_seconds": round(cal.robot_seconds, 3)}
    if args.json:
        print(json.dumps(out))
        return 0
    for joint, r in joints.items():
        rng = "turns freely" if r["range_rad"] is None else \
            f"range [{r['range_rad'][0]:+.3f}, {r['range_rad'][1]:+.3f}] rad"
        print(f"{joint:10s} offset {r['offset_rad']:+.4f} rad  "
              f"{'REVERSED' if r['reversed'] else 'as designed'}  {rng}")
    print(f"wrote {path} ({cal.robot_seconds:.1f} s on the robot)")
    print(f"next: robot-meta flash BUNDLE --robot {args.robot}")
    return 0


def calibrate(cfg: Any, status: Callable[[str], None], attempts: int = 5) -> Any:
    """Connect (uncalibrated), check the servos' own Homing Offset and Drive Mode registers,
    and run the :class:`~robot_meta.calibration.calibrator.Calibrator`; returns the
    RobotCalibration (not saved). A transient bus failure starts it over (see
    :func:`_with_retries`)."""
    from robot_meta.calibration.calibration_file import check_servo_registers
    from robot_meta.calibration.calibrator import Calibrator
    from robot_meta.runtime.connect import hardware_map_for

    hw = hardware_map_for(cfg)

    def once(robot: Any) -> Any:
        check_servo_registers(robot.bus, hw)
        return Calibrator(robot, status=status).run()

    return _with_retries(cfg, False, status, once, attempts)


def _with_retries(cfg: Any, calibration: bool, status: Callable[[str], None],
                  fn: Callable[[Any], Any], attempts: int = 5) -> Any:
    """Open the robot (``calibration``: in its calibrated frame) and return ``fn(robot)``;
    torque is off and the port closed afterwards. A transient bus failure (a lost or corrupted
    packet beyond the bus retries, or a watchdog expiry after a stall: the Robot turned torque
    off) starts over, up to ``attempts`` times, as an adaptation session retries a rollout; a
    servo that stays silent fails every attempt and is reported with its joint."""
    from robot_meta.hardware.errors import CorruptPacketError, ServoTimeoutError, TorqueLostError
    from robot_meta.runtime.connect import open_robot

    transient = (ServoTimeoutError, CorruptPacketError, TorqueLostError)
    for attempt in range(attempts):
        try:
            robot = open_robot(cfg, calibration=calibration)
        except transient as e:
            if attempt + 1 == attempts:
                raise
            status(f"could not connect ({e}); trying again ({attempt + 1}/{attempts})")
            time.sleep(1.0)
            continue
        try:
            return fn(robot)
        except transient as e:
            if attempt + 1 == attempts:
                raise
            status(f"interrupted by the bus ({e}); starting over ({attempt + 1}/{attempts})")
        finally:
            robot.close()  # torque off
        time.sleep(1.0)
    raise AssertionError("unreachable")
