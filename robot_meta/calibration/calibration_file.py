"""``calibration.json``: each motor's zero, direction and range, and how the HAL applies it.

One file per robot, at the robot config's ``calibration`` path or
``<deploy_dir>/calibration.json``, written atomically by ``robot-meta calibrate``::

    {"format": 1, "robot": "arm2", "created": "2026-12-06T23:00:00Z", "robot_seconds": 21.4,
     "motors": {"shoulder": {"id": 1, "drive_mode": 0, "homing_offset": -205,
                             "range_min": 288, "range_max": 3808}, ...}}

The per-motor fields are LeRobot's (``MotorCalibration``), in raw encoder ticks:
``homing_offset`` is added to the position the servo reports, so that the joint's zero reads
the hardware map's ``zero_ticks`` (2048, the middle of a turn); ``drive_mode`` 1 means the
servo is mounted reversed relative to the hardware map; ``range_min``/``range_max`` bound the
usable range in the same offset ticks.

Applied in software, not on the servo. The HAL reads and writes raw registers, and
:func:`apply_calibration` folds the file into the joint conversions of the hardware map
(``zero_ticks`` <- ``zero_ticks - homing_offset``, ``direction`` <- ``-direction`` for drive
mode 1), so positions, velocities, currents and efforts all change frame together, and the
position limits shrink to the measured range. Reasons: (1) the cartpole's pole encoder is a
passive device without a Drive Mode register, and one mechanism must serve every joint;
(2) Homing Offset and Drive Mode are EEPROM: writing them on every calibration wears the
servo, needs torque off, and their interplay (which sign the offset takes in reverse mode,
the velocity-limit and position-limit registers that then change meaning) differs by firmware;
(3) the file is the single record of the calibration: a replaced servo, a servo moved to
another robot or a factory reset cannot silently carry a stale offset, because the file is
checked against the IDs that answer; (4) the servo registers stay at their factory values, so
``robot-meta calibrate`` always measures the raw servo. The servos' own Homing Offset (20) and
Drive Mode (10) must therefore read 0; :func:`check_servo_registers` verifies it on connect.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_meta.calibration.errors import CalibrationError, UncalibratedError
from robot_meta.hardware.hardware_map import HardwareMap, JointHardware

if TYPE_CHECKING:
    from robot_meta.hardware.bus import MotorBus
    from robot_meta.runtime.robot_config import RobotConfig

FORMAT = 1
FILE_NAME = "calibration.json"
FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


@dataclass(frozen=True)
class MotorCalibration:
    """One motor's calibration (LeRobot's field names; raw encoder ticks)."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    def as_dict(self) -> dict[str, int]:
        """The JSON form."""
        return {f: int(getattr(self, f)) for f in FIELDS}


@dataclass(frozen=True)
class RobotCalibration:
    """A robot's calibration: {joint: MotorCalibration}, and how long it took on the robot."""

    robot: str
    motors: dict[str, MotorCalibration]
    robot_seconds: float = 0.0
    created: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``format``, ``robot``, ``created``, ``robot_seconds``, ``motors``)."""
        return {"format": FORMAT, "robot": self.robot, "created": self.created,
                "robot_seconds": round(float(self.robot_seconds), 3),
                "motors": {j: m.as_dict() for j, m in self.motors.items()}}

    def save(self, path: str | Path) -> Path:
        """Write the file atomically (the old file or the new one, never a mix)."""
        from robot_meta.runtime.atomic import write_json_atomic

        created = self.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out = replace(self, created=created)
        write_json_atomic(path, out.as_dict())
        return Path(path)

    # ---- frames ------------------------------------------------------------------------------
    def offset_rad(self, j: JointHardware) -> float:
        """The encoder offset found for a joint, in rad at the servo's shaft, in the sense of
        the emulator's ``<joint>_encoder_offset``: what the uncalibrated servo reads (through
        the designed hardware map) at the joint's zero, divided by the transmission."""
        m = self.motors[j.joint]
        # Raw ticks at the joint's zero: T0 = zero_ticks - homing_offset.
        return j.direction * (-m.homing_offset) * 2.0 * math.pi / j.ticks_per_rev

    def range_joint(self, j: JointHardware) -> tuple[float, float] | None:
        """The calibrated range of a joint in joint units (None for a joint that turns freely)."""
        m = self.motors[j.joint]
        if not math.isfinite(j.position_limits[0]) and not math.isfinite(j.position_limits[1]):
            return None
        cj = apply_joint(j, m)
        a, b = (cj.ticks_to_position(m.range_min - m.homing_offset),
                cj.ticks_to_position(m.range_max - m.homing_offset))
        return (min(a, b), max(a, b))

    def summary(self, hw: HardwareMap) -> dict[str, dict[str, Any]]:
        """{joint: {"offset_rad", "reversed", "range_rad"}} as ``calibrate --json`` prints it:
        ranges in rad at the servo's shaft (joint units / transmission), None for a joint that
        turns freely."""
        out: dict[str, dict[str, Any]] = {}
        for j in hw.joints:
            r = self.range_joint(j)
            out[j.joint] = {
                "offset_rad": round(self.offset_rad(j), 6),
                "reversed": bool(self.motors[j.joint].drive_mode),
                "range_rad": None if r is None else [round(r[0] / j.transmission, 6),
                                                     round(r[1] / j.transmission, 6)],
            }
        return out


def apply_joint(j: JointHardware, m: MotorCalibration) -> JointHardware:
    """One joint's conversions with its calibration folded in (module docstring)."""
    direction = -j.direction if m.drive_mode else j.direction
    return replace(j, direction=direction, zero_ticks=j.zero_ticks - m.homing_offset)


def apply_calibration(hw: HardwareMap, cal: RobotCalibration) -> HardwareMap:
    """The hardware map in the calibrated frame: zero, direction, and position limits narrowed
    to the measured range (never widened). Raises CalibrationError if a joint is missing or a
    motor ID differs (:func:`check_matches`)."""
    check_matches(cal, hw)
    joints = []
    for j in hw.joints:
        m = cal.motors[j.joint]
        cj = apply_joint(j, m)
        r = cal.range_joint(j)
        if r is not None and j.actuated:
            lo, hi = max(j.position_limits[0], r[0]), min(j.position_limits[1], r[1])
            if lo >= hi:
                raise CalibrationError(
                    f"joint {j.joint!r}: the calibrated range [{r[0]:.3g}, {r[1]:.3g}] does not "
                    f"overlap the hardware map's limits {j.position_limits}; re-run "
                    "`robot-meta calibrate`", j.joint)
            cj = replace(cj, position_limits=(lo, hi))
        joints.append(cj)
    return HardwareMap(hw.robot, tuple(joints))


def check_matches(cal: RobotCalibration, hw: HardwareMap, source: str = "") -> None:
    """The calibration must be this robot's: same robot type, same joints, same motor IDs."""
    where = source or "the calibration file"
    if cal.robot != hw.robot:
        raise CalibrationError(f"{where} is for robot {cal.robot!r}, not {hw.robot!r}; point the "
                               "robot config's `calibration` at this robot's file, or re-run "
                               "`robot-meta calibrate`")
    missing = [j for j in hw.joint_names if j not in cal.motors]
    extra = [j for j in cal.motors if j not in hw.joint_names]
    if missing or extra:
        raise CalibrationError(f"{where}: joints {sorted(cal.motors)} do not match the robot's "
                               f"{list(hw.joint_names)}; re-run `robot-meta calibrate`",
                               (missing or extra)[0])
    wrong = {j.joint: (cal.motors[j.joint].id, j.motor_id) for j in hw.joints
             if cal.motors[j.joint].id != j.motor_id}
    if wrong:
        desc = ", ".join(f"{k}: file ID {a}, robot ID {b}" for k, (a, b) in wrong.items())
        raise CalibrationError(f"{where}: motor IDs do not match the robot ({desc}); the file "
                               "belongs to another robot or the servos were re-addressed. "
                               "Re-run `robot-meta calibrate --force` to replace it",
                               next(iter(wrong)))


def _int(data: dict[str, Any], key: str, where: str) -> int:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise CalibrationError(f"{where}.{key}: expected an integer, got {v!r}")
    return v


def load_calibration(path: str | Path) -> RobotCalibration:
    """Read and validate a calibration file; errors name the file and the field."""
    p = Path(path)
    if not p.exists():
        raise UncalibratedError(f"{p}: no calibration file")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{p}: not valid JSON ({e}); re-run `robot-meta calibrate`") from e
    if not isinstance(data, dict) or not isinstance(data.get("motors"), dict):
        raise CalibrationError(f"{p}: expected an object with a `motors` table")
    if data.get("format") != FORMAT:
        raise CalibrationError(f"{p}: format {data.get('format')!r}, this version reads {FORMAT}")
    if not isinstance(data.get("robot"), str):
        raise CalibrationError(f"{p}: missing `robot`")
    motors = {}
    for joint, m in data["motors"].items():
        where = f"{p}: motors.{joint}"
        if not isinstance(m, dict):
            raise CalibrationError(f"{where}: expected an object with {', '.join(FIELDS)}")
        unknown = sorted(set(m) - set(FIELDS))
        if unknown:
            raise CalibrationError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(FIELDS)}")
        vals = {f: _int(m, f, where) for f in FIELDS}
        if vals["drive_mode"] not in (0, 1):
            raise CalibrationError(f"{where}.drive_mode: 0 (as designed) or 1 (reversed), "
                                   f"got {vals['drive_mode']}")
        if vals["range_min"] > vals["range_max"]:
            raise CalibrationError(f"{where}: range_min {vals['range_min']} > range_max "
                                   f"{vals['range_max']}")
        motors[joint] = MotorCalibration(**vals)
    rs = data.get("robot_seconds", 0.0)
    return RobotCalibration(data["robot"], motors,
                            float(rs) if isinstance(rs, int | float) else 0.0,
                            str(data.get("created", "")))


def calibration_path(cfg: RobotConfig) -> Path:
    """Where a robot config's calibration lives: its ``calibration`` key (relative to the
    config file), else ``<deploy_dir>/calibration.json``."""
    if cfg.calibration:
        p = Path(cfg.calibration).expanduser()
        if not p.is_absolute() and cfg.source:
            p = Path(cfg.source).resolve().parent / p
        return p
    return Path(cfg.deploy_dir) / FILE_NAME


def load_for_config(cfg: RobotConfig, hw: HardwareMap) -> RobotCalibration:
    """The robot's calibration, checked against its hardware map; a missing file raises
    :class:`UncalibratedError` saying how to calibrate (or to pass --no-calibration)."""
    path = calibration_path(cfg)
    if not path.exists():
        raise UncalibratedError(
            f"robot {cfg.robot!r} ({cfg.port}) is not calibrated: no {path}. Run `robot-meta "
            f"calibrate --robot {cfg.source or cfg.robot}` first (it finds each joint's zero, "
            "direction and range, about a minute with no human), or pass --no-calibration if "
            "the servos are mounted exactly as the hardware map says")
    cal = load_calibration(path)
    check_matches(cal, hw, str(path))
    return cal


def check_servo_registers(bus: MotorBus, hw: HardwareMap) -> None:
    """The calibration is applied in software on top of the raw servo: every servo's own
    Homing Offset (20) must read 0 and its Drive Mode (10) must not select reverse (bit 0)."""
    for j in hw.joints:
        for name in ("homing_offset", "drive_mode"):
            if bus.has_register(j.motor_id, name):
                v = bus.read(j.motor_id, name)
                if (v & 1 if name == "drive_mode" else v) != 0:  # Drive Mode bit 0: reverse
                    raise CalibrationError(
                        f"joint {j.joint!r} (ID {j.motor_id}): its servo's {name} register reads "
                        f"{v}, but robot_meta applies calibration in software on a servo left at "
                        f"0. Write 0 to it with torque off (bus.write({j.motor_id}, {name!r}, 0)), "
                        "then re-run `robot-meta calibrate`", j.joint)
