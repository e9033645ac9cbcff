"""``robot.toml``: the plain-data description of one robot, in the robot's folder.

    name = "arm2"
    description = "..."
    default_task = "reach"
    physics_dt = 0.005                      # s
    control_dt = 0.02                       # s, a multiple of physics_dt
    links = ["link1", "link2"]              # bodies whose mass and inertia are randomized
    payload = { body = "payload", axis = [0.0, 0.0, -1.0] }
    supply_voltage = 12.0                   # V: adds the supply_voltage factor (servo envelope)
    demo = true                             # optional: the robot `robot-meta demo` defaults to
    sensors = []                            # optional: the MJCF's <sensor> names
    [norm_range]                            # optional: factors the `all` family does not list
    supply_voltage = [10.0, 14.8]           #   (default for supply_voltage: the servo's range)
    [check]                                 # optional: `robot-meta robot check`'s trajectory
    start = [0.3, -0.2]                     #   start pose, one value per joint
    amplitude = 0.15                        #   sine action amplitude (normalized)

    [[joints]]                              # in observation order
    name = "shoulder"
    kind = "revolute"                       # revolute (rad) or prismatic (m)
    actuator = "shoulder_motor"             # the MJCF actuator; omit for a passive joint
    motor_id = 1
    model = "xm430-w350"                    # robot_meta/hardware/servos/<model>.toml
    position_limits = [-2.7, 2.7]           # joint units; omit for an unlimited joint
    max_current_a = 2.0                     # A at action +1
    damping = 0.05                          # nominal viscous friction (N*m*s/rad or N*s/m)
    frictionloss = 0.02                     # nominal Coulomb friction (N*m or N)
    rest = 0.0                              # where the joint settles unpowered (rest pose)
    calibration = { zero = "hang" }         # robot_meta.calibration.spec.JointCalibration

Loaded with :mod:`robot_meta.toml_config` (unknown keys get "did you mean"). This module builds
the hardware map and the calibration spec from it, with the standard library and numpy-free
hardware modules only, so the robot computer can read a robot folder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robot_meta.errors import UserError
from robot_meta.robot_registry import ROBOT_FILE, robot_folder
from robot_meta.toml_config import TomlConfigError, load_dataclass


class RobotTomlError(UserError, ValueError):
    """A robot.toml is invalid; the message names the file and field."""


@dataclass(frozen=True)
class JointCalibrationToml:
    """How one joint is calibrated (see robot_meta.calibration.spec)."""

    zero: Literal["hang", "end_stops"]
    direction: Literal["reference", "hangs_with", "swings_with"] = "reference"
    relative_to: str = ""
    expected_sign: int = 1


@dataclass(frozen=True)
class JointToml:
    """One joint, its motor (or passive encoder), limits, nominal friction and rest position."""

    name: str
    kind: Literal["revolute", "prismatic"]
    motor_id: int
    model: str
    calibration: JointCalibrationToml
    actuator: str = ""
    position_limits: tuple[float, float] | None = None
    velocity_limit: float | None = None
    max_current_a: float = 0.0
    transmission: float = 1.0
    direction: int = 1
    zero_ticks: int = 2048
    servo_physics: bool = True
    damping: float = 0.0
    frictionloss: float = 0.0
    rest: float = 0.0

    @property
    def actuated(self) -> bool:
        return bool(self.actuator)

    @property
    def unit(self) -> str:
        """The joint's position unit: rad (revolute) or m (prismatic)."""
        return "rad" if self.kind == "revolute" else "m"


@dataclass(frozen=True)
class PayloadToml:
    """The placeholder payload body and the axis its offset moves along (body frame)."""

    body: str
    axis: tuple[float, float, float]


@dataclass(frozen=True)
class CheckToml:
    """The open-loop trajectory of ``robot check``'s MuJoCo-vs-twin comparison."""

    start: tuple[float, ...] = ()
    amplitude: float = 0.3


@dataclass(frozen=True)
class RobotToml:
    """A validated robot.toml."""

    name: str
    default_task: str
    physics_dt: float
    control_dt: float
    links: tuple[str, ...]
    payload: PayloadToml
    joints: tuple[JointToml, ...]
    description: str = ""
    supply_voltage: float | None = None
    demo: bool = False
    sensors: tuple[str, ...] = ()  # the MJCF's <sensor> names, if it has any
    norm_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    check: CheckToml = field(default_factory=CheckToml)

    def validate(self, where: str) -> None:
        if not self.joints:
            raise RobotTomlError(f"{where}.joints: a robot needs at least one [[joints]] table")
        names = [j.name for j in self.joints]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise RobotTomlError(f"{where}.joints: duplicate joint name(s) {sorted(dup)}")
        ids = [j.motor_id for j in self.joints]
        if len(set(ids)) != len(ids):
            raise RobotTomlError(f"{where}.joints: motor IDs must differ, got {ids}")
        if not self.actuated_joints:
            raise RobotTomlError(f"{where}.joints: no joint has an `actuator`")
        for k, j in enumerate(self.joints):
            w = f"{where}.joints[{k}] ({j.name})"
            if not 0 <= j.motor_id <= 252:
                raise RobotTomlError(f"{w}.motor_id: must be an integer ID in [0, 252]")
            if j.calibration.relative_to and j.calibration.relative_to not in names:
                raise RobotTomlError(f"{w}.calibration.relative_to: no joint "
                                     f"{j.calibration.relative_to!r}; joints: {', '.join(names)}")
            if j.position_limits is not None and j.position_limits[0] >= j.position_limits[1]:
                raise RobotTomlError(f"{w}.position_limits: low must be below high")
            if j.transmission <= 0:
                raise RobotTomlError(f"{w}.transmission: must be positive")
            if j.direction not in (-1, 1):
                raise RobotTomlError(f"{w}.direction: must be -1 or 1")
        if self.physics_dt <= 0 or self.control_dt < self.physics_dt:
            raise RobotTomlError(f"{where}: need 0 < physics_dt <= control_dt")
        steps = round(self.control_dt / self.physics_dt)
        if abs(steps * self.physics_dt - self.control_dt) > 1e-9:
            raise RobotTomlError(f"{where}.control_dt: must be a whole multiple of physics_dt")
        if self.check.start and len(self.check.start) != len(self.joints):
            raise RobotTomlError(f"{where}.check.start: one value per joint ({len(self.joints)})")
        for fname, (lo, hi) in self.norm_range.items():
            if not lo < hi:
                raise RobotTomlError(f"{where}.norm_range.{fname}: low must be below high")

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def actuated_joints(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints if j.actuated)

    @property
    def actuators(self) -> tuple[str, ...]:
        return tuple(j.actuator for j in self.joints if j.actuated)

    @property
    def rest_pose(self) -> dict[str, float]:
        """Where each joint settles with the motors off."""
        return {j.name: j.rest for j in self.joints}


@functools.cache
def _load(folder: Path) -> RobotToml:
    try:
        return load_dataclass(RobotToml, folder / ROBOT_FILE, RobotTomlError)
    except TomlConfigError as e:  # pragma: no cover - load_dataclass raises RobotTomlError
        raise RobotTomlError(str(e)) from e


def load_robot_toml(robot: str | Path) -> RobotToml:
    """The robot.toml of a robot given by name or folder path."""
    folder = robot_folder(robot)
    return _load(folder)


def hardware_map_from_toml(spec: RobotToml, folder: Path | None = None) -> Any:
    """The robot's :class:`~robot_meta.hardware.hardware_map.HardwareMap`."""
    from robot_meta.hardware.hardware_map import HardwareMap, JointHardware

    joints = []
    for j in spec.joints:
        lim = j.position_limits if j.position_limits is not None else (-math.inf, math.inf)
        try:
            joints.append(JointHardware(
                joint=j.name, motor_id=j.motor_id, model=j.model, actuated=j.actuated, kind=j.kind,
                position_limits=lim,
                velocity_limit=math.nan if j.velocity_limit is None else j.velocity_limit,
                max_current_a=j.max_current_a, transmission=j.transmission, direction=j.direction,
                zero_ticks=j.zero_ticks, servo_physics=j.servo_physics))
        except ValueError as e:
            raise RobotTomlError(f"{folder or spec.name}/{ROBOT_FILE}: {e}") from e
    return HardwareMap(robot=spec.name, joints=tuple(joints), folder=folder)


def calibration_spec_from_toml(spec: RobotToml) -> Any:
    """The robot's :class:`~robot_meta.calibration.spec.CalibrationSpec`."""
    from robot_meta.calibration.spec import CalibrationSpec, JointCalibration

    return CalibrationSpec(robot=spec.name, joints=tuple(
        JointCalibration(j.name, zero=j.calibration.zero, rest=j.rest,
                         direction=j.calibration.direction, relative_to=j.calibration.relative_to,
                         expected_sign=j.calibration.expected_sign)
        for j in spec.joints))


def _package_name(folder: Path) -> str:
    """The import name of a robot folder: its dotted name inside robot_meta, else a private
    package name unique to the folder."""
    pkg_root = Path(__file__).resolve().parent
    try:
        rel = folder.resolve().relative_to(pkg_root.parent)
        if (folder / "__init__.py").is_file():
            return ".".join(rel.parts)
    except ValueError:
        pass
    safe = "".join(c if c.isalnum() else "_" for c in folder.name)
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    return f"robot_meta_robot_{safe}_{digest}"


def load_folder_module(folder: Path, stem: str) -> types.ModuleType | None:
    """Import ``<folder>/<stem>.py`` by file path (None when the file does not exist). The
    folder becomes a package, so the module may ``from . import constants``."""
    if not (folder / f"{stem}.py").is_file():
        return None
    pkg = _package_name(folder)
    if pkg not in sys.modules and not pkg.startswith("robot_meta."):
        module = types.ModuleType(pkg, f"robot folder {folder}")
        module.__path__ = [str(folder.resolve())]
        module.__package__ = pkg
        sys.modules[pkg] = module
    return importlib.import_module(f"{pkg}.{stem}")
