"""Open the robot a ``robot.toml`` describes: its bus, its hardware map with the configured
motor IDs, and the :class:`~robot_meta.hardware.Robot` with the safety layer."""

from __future__ import annotations

import dataclasses
from typing import Any

from robot_meta.errors import UserError
from robot_meta.hardware.hardware_map import HardwareMap, load_hardware_map
from robot_meta.runtime.manifest import Manifest
from robot_meta.runtime.robot_config import RobotConfig


def hardware_map_for(cfg: RobotConfig) -> HardwareMap:
    """The robot's hardware map with the motor IDs of the config."""
    hw = load_hardware_map(cfg.robot)
    ids = cfg.ids
    return HardwareMap(hw.robot, tuple(dataclasses.replace(j, motor_id=ids[j.joint])
                                       for j in hw.joints))


def check_rate(cfg: RobotConfig, manifest: Manifest) -> None:
    """The config's control rate must be the bundle's (the policy was trained at control_dt)."""
    if abs(cfg.control_hz * manifest.control_dt - 1.0) > 1e-6:
        raise UserError(f"{cfg.source}: control_hz = {cfg.control_hz:g}, but the bundle was trained "
                        f"at {1.0 / manifest.control_dt:g} Hz (control_dt {manifest.control_dt:g} s); "
                        "set control_hz to match")


def open_robot(cfg: RobotConfig, **kwargs: Any) -> Any:
    """A connected Robot (torque off) on the config's port; kwargs go to Robot."""
    from robot_meta.hardware import Robot, open_bus

    bus = open_bus(cfg.port, cfg.baud)
    robot = Robot(bus, hardware_map_for(cfg), mode="current", watchdog_ms=cfg.watchdog_ms, **kwargs)
    try:
        robot.connect()
    except BaseException:
        robot.close()
        raise
    return robot
