"""calibration.json: LeRobot fields, atomic writes, and the refusals: a file whose motor IDs do
not match the robot, a malformed file, and an uncalibrated robot for flash and adapt."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from robot_meta.calibration.calibration_file import (
    FIELDS,
    MotorCalibration,
    RobotCalibration,
    apply_calibration,
    calibration_path,
    load_calibration,
    load_for_config,
)
from robot_meta.calibration.errors import CalibrationError, UncalibratedError
from robot_meta.hardware import load_hardware_map
from robot_meta.launch.cli import main
from robot_meta.runtime.connect import hardware_map_for
from robot_meta.runtime.robot_config import load_robot_config
from tests.runtime.helpers import robot_toml

ARM2 = RobotCalibration("arm2", {"shoulder": MotorCalibration(1, 0, -205, 288, 3808),
                                 "elbow": MotorCalibration(2, 1, 97, 419, 3677)})


def test_round_trip_and_software_application(tmp_path: Path) -> None:
    path = ARM2.save(tmp_path / "calibration.json")
    data = json.loads(path.read_text())
    assert set(data["motors"]["elbow"]) == set(FIELDS)  # LeRobot's field names
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no temporary left
    cal = load_calibration(path)
    assert cal.motors == ARM2.motors
    hw = load_hardware_map("arm2")
    calibrated = apply_calibration(hw, cal)
    sh, el = calibrated.joint("shoulder"), calibrated.joint("elbow")
    # The joint's zero reads where the uncalibrated servo read the offset.
    assert sh.ticks_to_position(2048 + 205) == pytest.approx(0.0)
    assert cal.offset_rad(hw.joint("shoulder")) == pytest.approx(205 * 2 * math.pi / 4096)
    # A reversed servo: positions, velocities and efforts all change sign together.
    assert el.direction == -1 and el.ticks_to_position(2048 - 97 + 100) == pytest.approx(
        -100 * 2 * math.pi / 4096)
    assert el.current_to_effort(1.0) == pytest.approx(-hw.joint("elbow").current_to_effort(1.0))
    summary = cal.summary(hw)
    assert summary["elbow"]["reversed"] is True and summary["shoulder"]["reversed"] is False


def test_motor_ids_that_do_not_match_are_refused_and_nothing_is_overwritten(
        bundles: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = robot_toml(tmp_path, "/dev/null-no-robot")
    cfg = load_robot_config(cfg_path)
    other = RobotCalibration("arm2", {"shoulder": MotorCalibration(7, 0, 0, 288, 3808),
                                      "elbow": MotorCalibration(2, 0, 0, 419, 3677)})
    path = other.save(calibration_path(cfg))
    before = path.read_bytes()
    with pytest.raises(CalibrationError, match=r"motor IDs do not match.*shoulder: file ID 7, robot "
                                               r"ID 1") as e:
        hardware_map_for(cfg, calibration=True)
    assert e.value.joint == "shoulder"
    # calibrate refuses before it touches the robot (the port here does not even exist)
    assert main(["calibrate", "--robot", str(cfg_path)]) == 2
    assert "motor IDs do not match" in capsys.readouterr().err
    assert path.read_bytes() == before
    # flash refuses too, and installs nothing
    assert main(["flash", str(bundles["ppo"][0]), "--robot", str(cfg_path)]) == 2
    assert "motor IDs do not match" in capsys.readouterr().err
    assert path.read_bytes() == before and not (tmp_path / "deploy" / "current").exists()


def test_a_file_for_another_robot_or_malformed_is_refused(tmp_path: Path) -> None:
    hw = load_hardware_map("arm2")
    cfg = load_robot_config(robot_toml(tmp_path, "/dev/null"))
    path = calibration_path(cfg)
    RobotCalibration("cartpole", ARM2.motors).save(path)
    with pytest.raises(CalibrationError, match="is for robot 'cartpole', not 'arm2'"):
        load_for_config(cfg, hw)
    path.write_text('{"format": 1, "robot": "arm2", "motors": {"shoulder": {"id": 1}}}')
    with pytest.raises(CalibrationError, match="motors.shoulder.drive_mode: expected an integer"):
        load_calibration(path)
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration(path)


def test_an_uncalibrated_robot_is_refused_with_how_to_calibrate(
        bundles: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = robot_toml(tmp_path, "/dev/null-no-robot")
    cfg = load_robot_config(cfg_path)
    with pytest.raises(UncalibratedError, match="not calibrated.*robot-meta calibrate.*--no-calibration"):
        hardware_map_for(cfg, calibration=True)
    assert main(["flash", str(bundles["ppo"][0]), "--robot", str(cfg_path)]) == 2
    assert "is not calibrated" in capsys.readouterr().err
    assert main(["adapt", "--robot", str(cfg_path)]) == 2
    assert "is not calibrated" in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()  # nothing installed, no session started


def test_the_robot_config_calibration_key_is_relative_to_the_config(tmp_path: Path) -> None:
    p = robot_toml(tmp_path, "/dev/null")
    p.write_text(p.read_text() + 'calibration = "cal/arm2.json"\n')
    assert calibration_path(load_robot_config(p)) == tmp_path / "cal" / "arm2.json"


def test_servo_registers_must_be_left_at_zero() -> None:
    """check_servo_registers asks the bus which registers a device has (the cartpole's encoder
    has no drive_mode) and refuses a servo whose own homing offset is set."""
    from robot_meta.calibration.calibration_file import check_servo_registers
    from robot_meta.calibration.errors import CalibrationError
    from robot_meta.hardware import MockBus

    bus = MockBus("cartpole", plant="none", clock="manual")
    bus.connect()
    hw = load_hardware_map("cartpole")
    try:
        check_servo_registers(bus, hw)  # factory state: both 0
        bus.emulated.device(2).set("homing_offset", 100)
        with pytest.raises(CalibrationError, match=r"ID 2\): its servo's homing_offset register "
                           r"reads 100"):
            check_servo_registers(bus, hw)
    finally:
        bus.shutdown()
