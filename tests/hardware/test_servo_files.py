"""Servo models and control tables are data: a new model is a file, and a robot uses it."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from robot_meta.hardware import MockBus, ModelMismatchError, Robot
from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel.serial_bus import SerialBus
from robot_meta.hardware.emulation.emulated_robot import EmulatedRobot, StaticPlant
from robot_meta.hardware.emulation.loopback import LoopbackSerial
from robot_meta.hardware.hardware_map import HardwareMap, JointHardware
from robot_meta.hardware.servos import SERVO_DIR, ServoSpecError, load_servo
from robot_meta.hardware.servos.servo_model import parse_servo


def _xm540_robot_map(max_current_a: float = 5.0) -> HardwareMap:
    """One revolute joint on an XM540-W270 at ID 3: more current than any XM430 allows."""
    return HardwareMap("big_joint", (JointHardware(
        joint="hip", motor_id=3, model="xm540-w270", actuated=True, kind="revolute",
        position_limits=(-2.0, 2.0), max_current_a=max_current_a),))


def test_xm540_constants_come_from_its_file() -> None:
    s = load_servo("xm540-w270")
    assert s.model_number == 1120 and s.control_table == "xm540"
    assert s.motor is not None and s.motor.gear_ratio == 272.5
    assert s.torque_constant == pytest.approx(10.6 / 4.4)  # e-Manual: 2.409 N*m/A at 12 V
    assert s.no_load_speed == pytest.approx(30 * 2 * math.pi / 60, rel=1e-4)
    assert s.max_current_a == pytest.approx(2047 * 0.00269)
    t = ct.get_table("xm540-w270")
    assert t["model_number"].default == 1120 and t["velocity_limit"].default == 128
    assert (t["goal_current"].low, t["goal_current"].high) == (-2047, 2047)
    assert t.indirect == (168, 224, 28) and t["indirect_data_28"].address == 251
    assert t["external_port_data_3"].address == 156
    # The XM540 table restates only what differs from the XM430's: the rest is shared.
    assert t["present_position"] == ct.XM430_W350["present_position"]
    assert ct.TABLES_BY_NUMBER[1120] is t


def test_a_joint_cannot_ask_more_current_than_its_servo_file_allows() -> None:
    with pytest.raises(ValueError, match=r"exceeds the xm540-w270 current limit 5\.50"):
        _xm540_robot_map(max_current_a=6.0)
    with pytest.raises(ValueError, match="exceeds the xm430-w350 current limit"):
        JointHardware("j", 1, "xm430-w350", True, "revolute", (-1.0, 1.0), max_current_a=5.0)


def test_robot_drives_an_emulated_xm540_through_the_serial_driver() -> None:
    """The emulator serves the new model from its data file; the HAL Robot pings it (model
    number 1120), writes the Current Limit its file allows (1858 > the XM430's 1193), maps
    its 28 indirect registers, and commands currents within that limit."""
    hw = _xm540_robot_map()
    emulated = EmulatedRobot(hw, StaticPlant(hw.joint_names))
    dev = emulated.device(3)
    robot = Robot(SerialBus(LoopbackSerial(emulated), retries=0), hw, handle_signals=False,
                  overspeed_factor=None)
    with robot:
        assert robot.bus.ping(3) == 1120
        assert dev.get("current_limit") == int(5.0 / 0.00269) == 1858
        assert dev.get("pwm_limit") == 885 and dev.get("operating_mode") == ct.MODE_CURRENT
        assert robot._state_block is not None  # one sync read per cycle
        robot.enable()
        sent = robot.write_currents([4.5])
        assert sent[0] == pytest.approx(int(4.5 / 0.00269) * 0.00269)
        assert dev.get("goal_current") == int(4.5 / 0.00269) == 1672
        assert robot.write_currents([9.0])[0] == pytest.approx(1858 * 0.00269)  # clamped
        state = robot.read_state()
        assert state.q.shape == (1,) and np.isfinite(state.q).all()
    assert not dev.torque_enabled


def test_mock_bus_wraps_an_emulated_xm540_and_a_wrong_model_is_refused() -> None:
    hw = _xm540_robot_map()
    emulated = EmulatedRobot(hw, StaticPlant(hw.joint_names))
    bus = MockBus(emulated, clock="manual")
    bus.connect()
    assert bus.ping(3) == 1120 and bus.table(3).model == "xm540-w270"
    # A hardware map that expects an XM430 at ID 3 is refused, naming both models.
    wrong = HardwareMap("w", (JointHardware("hip", 3, "xm430-w350", True, "revolute",
                                            (-2.0, 2.0), max_current_a=2.0),))
    with pytest.raises(ModelMismatchError, match=r"expects xm430-w350 \(1020\) but the device "
                       r"reports xm540-w270 \(1120\)"):
        Robot(bus, wrong, handle_signals=False).connect()


def test_servo_and_table_files_are_checked_with_did_you_mean() -> None:
    data = tomllib.loads((SERVO_DIR / "xm540-w270.toml").read_text())
    data["motor"]["stal_torque"] = data["motor"].pop("stall_torque")
    with pytest.raises(ServoSpecError, match=r"x\.toml\.motor\.stal_torque: unknown key; did you "
                       r"mean 'stall_torque'\?"):
        parse_servo(data, "x.toml")
    data = tomllib.loads((SERVO_DIR / "xm540-w270.toml").read_text())
    data["motor"]["voltage_range"] = [12.5, 14.8]
    with pytest.raises(ServoSpecError, match="nominal_voltage: 12 V lies outside"):
        parse_servo(data, "x.toml")
    del data["limits"]
    with pytest.raises(ServoSpecError, match=r"missing table \[limits\]"):
        parse_servo(data, "x.toml")
    with pytest.raises(KeyError, match="unknown device model 'xl999'; known models: encoder, "
                       "xm430-w210, xm430-w350, xm540-w270"):
        ct.get_table("xl999")
