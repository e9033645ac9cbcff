"""Hardware maps: how a robot's joints are wired to motors, and the unit conversions.

A hardware map is plain data (no torch, no mujoco) so that the robot computer can import it.
A robot's hardware map is built from the ``[[joints]]`` of the ``robot.toml`` in its folder
(:mod:`robot_meta.robot_toml`).

Conventions (raw units as the servo file states them):

* position:  q  = direction * (ticks - zero_ticks) * (2*pi / ticks_per_rev) * transmission
* velocity:  dq = direction * raw * velocity_unit_rad_s * transmission
* current:   I  = raw * current_unit_a                                  [A]
* effort:    tau_joint = direction * torque_constant * I / transmission  [N*m or N]

``transmission`` is joint units per motor radian: 1 for a direct-drive revolute joint, the pulley
radius in metres for a belt-driven prismatic joint (so a motor torque tau gives a force tau / r).

Unit scales, the torque constant and the velocity limit come from the servo's data file
(``robot_meta/hardware/servos/<model>.toml``); a hardware map types none of them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from robot_meta.hardware.servos import ServoModel, load_servo

_FROM_SERVO = math.nan  # a field left at this is filled in from the servo file


@dataclass(frozen=True)
class JointHardware:
    """One joint, the motor (or passive encoder) that drives or reads it, and its limits.

    Limits are in joint units (rad, m, rad/s, m/s, N*m or N). ``max_current_a`` is the current
    that a normalized action of +1 maps to; it must not exceed the servo's current limit.
    Fields left at their defaults come from the servo file of ``model``: the unit scales, the
    torque constant, and the velocity limit (the no-load speed at the nominal supply, times the
    transmission). ``effort_limit`` is K_t * max_current_a / transmission.
    ``servo_physics``: the simulators give this joint the servo's torque-speed envelope and
    armature (False: an ideal effort source, for a robot whose drive is not yet modelled).
    """

    joint: str
    motor_id: int
    model: str  # a servo file's name: "xm430-w350", "xm540-w270", "encoder", ...
    actuated: bool
    kind: str  # "revolute" or "prismatic"
    position_limits: tuple[float, float]
    velocity_limit: float = _FROM_SERVO
    max_current_a: float = 0.0
    transmission: float = 1.0
    direction: int = 1
    zero_ticks: int = 2048
    servo_physics: bool = True
    ticks_per_rev: int = 0
    velocity_unit_rad_s: float = _FROM_SERVO
    current_unit_a: float = _FROM_SERVO
    torque_constant: float = _FROM_SERVO

    def __post_init__(self) -> None:
        servo = self.servo
        fill = {"velocity_unit_rad_s": servo.velocity_unit_rad_s,
                "current_unit_a": servo.current_unit_a,
                "torque_constant": servo.torque_constant if servo.has_motor else 0.0}
        for name, value in fill.items():
            if math.isnan(getattr(self, name)):
                object.__setattr__(self, name, value)
        if not self.ticks_per_rev:
            object.__setattr__(self, "ticks_per_rev", servo.ticks_per_rev)
        if math.isnan(self.velocity_limit):
            if not servo.has_motor:
                raise ValueError(f"joint {self.joint!r}: a {self.model!r} has no motor, so give "
                                 "its velocity_limit")
            object.__setattr__(self, "velocity_limit", servo.no_load_speed * self.transmission)
        if self.actuated and self.max_current_a > servo.max_current_a + 1e-12:
            raise ValueError(f"joint {self.joint!r}: max_current_a {self.max_current_a:g} A exceeds "
                             f"the {self.model} current limit {servo.max_current_a:g} A")

    @property
    def servo(self) -> ServoModel:
        """The servo (or encoder) model's data (``robot_meta/hardware/servos/<model>.toml``)."""
        return load_servo(self.model)

    @property
    def effort_limit(self) -> float:
        """The joint effort of max_current_a: K_t * max_current_a / transmission [N*m or N]."""
        return self.torque_constant * self.max_current_a / self.transmission

    # ---- position -------------------------------------------------------------------------
    def ticks_to_position(self, ticks: float) -> float:
        """Encoder ticks -> joint position (rad or m)."""
        rad = (ticks - self.zero_ticks) * (2.0 * math.pi / self.ticks_per_rev)
        return self.direction * rad * self.transmission

    def position_to_ticks(self, q: float) -> int:
        """Joint position (rad or m) -> nearest encoder tick."""
        rad = self.direction * q / self.transmission
        return int(round(rad * self.ticks_per_rev / (2.0 * math.pi) + self.zero_ticks))

    # ---- velocity -------------------------------------------------------------------------
    def raw_to_velocity(self, raw: float) -> float:
        """Present-velocity register units -> joint velocity (rad/s or m/s)."""
        return self.direction * raw * self.velocity_unit_rad_s * self.transmission

    def velocity_to_raw(self, dq: float) -> int:
        """Joint velocity (rad/s or m/s) -> present-velocity register units."""
        return int(round(self.direction * dq / (self.velocity_unit_rad_s * self.transmission)))

    # ---- current / effort ------------------------------------------------------------------
    def raw_to_current(self, raw: float) -> float:
        """Current register units -> amperes."""
        return raw * self.current_unit_a

    def current_to_raw(self, amps: float) -> int:
        """Amperes -> current register units (rounded toward zero so limits are never exceeded)."""
        return int(amps / self.current_unit_a)

    def current_to_effort(self, amps: float) -> float:
        """Motor current [A] -> joint effort [N*m or N]."""
        return self.direction * self.torque_constant * amps / self.transmission

    def effort_to_current(self, effort: float) -> float:
        """Joint effort [N*m or N] -> motor current [A]."""
        return self.direction * effort * self.transmission / self.torque_constant

    @property
    def gear(self) -> float:
        """Joint effort per unit normalized action: the MJCF actuator gear of this joint."""
        return self.torque_constant * self.max_current_a / self.transmission


@dataclass(frozen=True)
class HardwareMap:
    """The joints of one robot in the policy's joint order."""

    robot: str
    joints: tuple[JointHardware, ...]
    folder: Path | None = None  # the robot's folder (robot.toml, an optional reset.py)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.joint for j in self.joints)

    @property
    def motor_ids(self) -> tuple[int, ...]:
        return tuple(j.motor_id for j in self.joints)

    @property
    def actuated(self) -> tuple[JointHardware, ...]:
        """The actuated joints, in action order."""
        return tuple(j for j in self.joints if j.actuated)

    def joint(self, name: str) -> JointHardware:
        for j in self.joints:
            if j.joint == name:
                return j
        raise KeyError(f"robot {self.robot!r} has no joint {name!r}; joints: {self.joint_names}")

    def by_motor_id(self, motor_id: int) -> JointHardware:
        for j in self.joints:
            if j.motor_id == motor_id:
                return j
        raise KeyError(f"robot {self.robot!r} has no motor ID {motor_id}; IDs: {self.motor_ids}")


def load_hardware_map(robot: str | Path) -> HardwareMap:
    """The hardware map of a robot given by registered name or folder path, built from the
    ``robot.toml`` of its folder (plain data: no mujoco or torch)."""
    from robot_meta.robot_registry import robot_folder
    from robot_meta.robot_toml import hardware_map_from_toml, load_robot_toml

    folder = robot_folder(robot)
    if folder not in _MAPS:
        _MAPS[folder] = hardware_map_from_toml(load_robot_toml(folder), folder)
    return _MAPS[folder]


_MAPS: dict[Path, HardwareMap] = {}
