"""Open the robot a ``robot.toml`` describes: its bus, its hardware map with the configured
motor IDs and its calibration (``calibration.json``, see
:mod:`robot_meta.calibration.calibration_file`), and the :class:`~robot_meta.hardware.Robot`
with the safety layer."""

from __future__ import annotations

import dataclasses
from typing import Any

from robot_meta.errors import UserError
from robot_meta.export.manifest import Manifest
from robot_meta.hardware.hardware_map import HardwareMap, load_hardware_map
from robot_meta.runtime.robot_config import RobotConfig


def hardware_map_for(cfg: RobotConfig, calibration: bool = False) -> HardwareMap:
    """The robot's hardware map with the motor IDs of the config; with ``calibration``, in the
    calibrated frame of its calibration file (a missing file raises
    :class:`~robot_meta.calibration.errors.UncalibratedError`, a file from another robot a
    :class:`~robot_meta.calibration.errors.CalibrationError`)."""
    hw = load_hardware_map(cfg.robot)
    ids = cfg.ids
    hw = HardwareMap(hw.robot, tuple(dataclasses.replace(j, motor_id=ids[j.joint])
                                     for j in hw.joints))
    if calibration:
        from robot_meta.calibration.calibration_file import apply_calibration, load_for_config

        hw = apply_calibration(hw, load_for_config(cfg, hw))
    return hw


def check_rate(cfg: RobotConfig, manifest: Manifest) -> None:
    """The config's control rate must be the bundle's (the policy was trained at control_dt)."""
    if abs(cfg.control_hz * manifest.control_dt - 1.0) > 1e-6:
        raise UserError(f"{cfg.source}: control_hz = {cfg.control_hz:g}, but the bundle was trained "
                        f"at {1.0 / manifest.control_dt:g} Hz (control_dt {manifest.control_dt:g} s); "
                        "set control_hz to match")


def open_robot(cfg: RobotConfig, *, calibration: bool = True, **kwargs: Any) -> Any:
    """A connected Robot (torque off) on the config's port; kwargs go to Robot.

    ``calibration``: drive the robot in the frame of its calibration file, which must exist
    and match the robot (else a UserError saying to run ``robot-meta calibrate``), and check
    that the servos' own Homing Offset and Drive Mode registers are still 0; False: the
    hardware map as designed (``--no-calibration``)."""
    from robot_meta.hardware import Robot, open_bus

    hw = hardware_map_for(cfg, calibration)  # before the port: a missing file fails first
    bus = open_bus(cfg.port, cfg.baud)
    robot = Robot(bus, hw, mode="current", watchdog_ms=cfg.watchdog_ms, **kwargs)
    try:
        robot.connect()
        if calibration:
            from robot_meta.calibration.calibration_file import check_servo_registers

            check_servo_registers(robot.bus, hw)
    except BaseException:
        robot.close()
        raise
    return robot
