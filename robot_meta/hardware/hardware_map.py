"""Hardware maps: how a robot's joints are wired to motors, and the unit conversions.

A hardware map is plain data (no torch, no mujoco) so that the robot computer can import it.
Each robot folder under ``robot_meta/sim/robots/<name>/hardware.py`` defines ``HARDWARE_MAP``.

Conventions (XM430-class servos, Dynamixel Protocol 2.0):

* position:  q  = direction * (ticks - zero_ticks) * (2*pi / ticks_per_rev) * transmission
* velocity:  dq = direction * raw * velocity_unit_rad_s * transmission
* current:   I  = raw * current_unit_a                                  [A]
* effort:    tau_joint = direction * torque_constant * I / transmission  [N*m or N]

``transmission`` is joint units per motor radian: 1 for a direct-drive revolute joint, the pulley
radius in metres for a belt-driven prismatic joint (so a motor torque tau gives a force tau / r).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

# XM430-W350 raw unit scales, from the e-Manual control table.
XM430_TICKS_PER_REV = 4096
XM430_VELOCITY_UNIT_RAD_S = 0.229 * 2.0 * math.pi / 60.0  # 0.229 rpm per unit
XM430_CURRENT_UNIT_A = 0.00269  # 2.69 mA per unit
XM430_TORQUE_CONSTANT = 4.1 / 2.3  # stall torque / stall current at 12 V [N*m/A]
XM430_MODEL_NUMBER = 1020  # XM430-W350


@dataclass(frozen=True)
class JointHardware:
    """One joint, the motor (or passive encoder) that drives or reads it, and its limits.

    Limits are in joint units (rad, m, rad/s, m/s, N*m or N). ``max_current_a`` is the current
    that a normalized action of +1 maps to; it must not exceed the servo's current limit.
    """

    joint: str
    motor_id: int
    model: str  # a control-table name: "xm430-w350" or "encoder"
    actuated: bool
    kind: str  # "revolute" or "prismatic"
    position_limits: tuple[float, float]
    velocity_limit: float
    effort_limit: float = 0.0
    max_current_a: float = 0.0
    transmission: float = 1.0
    direction: int = 1
    zero_ticks: int = 2048
    ticks_per_rev: int = XM430_TICKS_PER_REV
    velocity_unit_rad_s: float = XM430_VELOCITY_UNIT_RAD_S
    current_unit_a: float = XM430_CURRENT_UNIT_A
    torque_constant: float = XM430_TORQUE_CONSTANT

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


ROBOT_NAMES = ("cartpole", "arm2")


def load_hardware_map(robot: str) -> HardwareMap:
    """Return the hardware map of a bundled robot, importing only its plain-data module."""
    if robot not in ROBOT_NAMES:
        raise ValueError(f"unknown robot {robot!r}; known robots: {', '.join(ROBOT_NAMES)}")
    module = importlib.import_module(f"robot_meta.sim.robots.{robot}.hardware")
    hw: HardwareMap = module.HARDWARE_MAP
    return hw
