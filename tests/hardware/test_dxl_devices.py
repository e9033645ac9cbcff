"""Control tables as data, and the emulated devices' firmware semantics (no physics)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.dynamixel.device import (
    DRIVE_OFF,
    REBOOT_TIME_S,
    DynamixelDevice,
)
from robot_meta.hardware.dynamixel.network import DeviceNetwork
from robot_meta.hardware.hardware_map import load_hardware_map


def test_xm430_addresses_from_the_emanual() -> None:
    t = ct.XM430_W350
    expected = {
        "operating_mode": (11, 1), "homing_offset": (20, 4), "current_limit": (38, 2),
        "max_position_limit": (48, 4), "min_position_limit": (52, 4), "torque_enable": (64, 1),
        "hardware_error_status": (70, 1), "bus_watchdog": (98, 1), "goal_current": (102, 2),
        "goal_position": (116, 4), "present_current": (126, 2), "present_velocity": (128, 4),
        "present_position": (132, 4), "return_delay_time": (9, 1), "model_number": (0, 2),
    }
    for name, (addr, size) in expected.items():
        assert (t[name].address, t[name].size) == (addr, size), name
    assert t.model_number == 1020
    assert t.span(["present_current", "present_velocity", "present_position"]) == (126, 10)
    with pytest.raises(KeyError, match="no register 'goal_torque'"):
        t["goal_torque"]


def test_encoder_table_shares_the_state_block() -> None:
    e = ct.ENCODER
    assert not e.torque and "torque_enable" not in e
    for name in ("present_position", "present_velocity", "present_current", "model_number"):
        assert (e[name].address, e[name].size) == (ct.XM430_W350[name].address,
                                                   ct.XM430_W350[name].size)


def _net(*ids: int) -> tuple[DeviceNetwork, dict[int, DynamixelDevice]]:
    hw = load_hardware_map("arm2")
    devs = {i: DynamixelDevice(i, ct.XM430_W350, hw.by_motor_id(i)) for i in ids}
    return DeviceNetwork(devs.values()), devs


def _ask(net: DeviceNetwork, dxl_id: int, inst: int, params: bytes = b"", now: float = 0.0
         ) -> list[p.Packet]:
    out: list[p.Packet] = []
    for r in net.handle(p.Packet(dxl_id, inst, params), now):
        out += p.iter_packets(r.frame)
    return out


def _write(net: DeviceNetwork, dxl_id: int, name: str, value: int, now: float = 0.0) -> int:
    reg = ct.XM430_W350[name]
    (st,) = _ask(net, dxl_id, p.WRITE, p.le(reg.address, 2) + reg.encode(value), now)
    return st.error & 0x7F


def test_ping_read_write_and_errors() -> None:
    net, devs = _net(1, 2)
    (st,) = _ask(net, 1, p.PING)
    assert (st.id, p.from_le(st.data[:2])) == (1, 1020)
    assert _ask(net, 9, p.PING) == []  # nobody at ID 9
    assert sorted(s.id for s in _ask(net, p.BROADCAST_ID, p.PING)) == [1, 2]
    assert _write(net, 1, "goal_current", 100) == 0
    assert devs[1].get("goal_current") == 100
    assert _write(net, 1, "goal_current", 2000) == p.ERR_DATA_RANGE  # beyond 1193
    assert _write(net, 1, "current_limit", 500) == 0
    assert _write(net, 1, "goal_current", 600) == p.ERR_DATA_LIMIT  # beyond the limit register
    assert devs[1].get("goal_current") == 100  # a refused write changes nothing
    (st,) = _ask(net, 1, p.WRITE, p.le(132, 2) + p.le(5, 4))
    assert st.error == p.ERR_ACCESS  # present position is read-only
    (st,) = _ask(net, 1, p.WRITE, p.le(102, 2) + b"\x01")
    assert st.error == p.ERR_DATA_LENGTH  # half a register
    (st,) = _ask(net, 1, p.READ, p.le(102, 2) + p.le(2, 2))
    assert p.from_le(st.data, signed=True) == 100
    (st,) = _ask(net, 1, p.BULK_READ, b"")
    assert st.error == p.ERR_INSTRUCTION


def test_eeprom_locked_while_torque_on() -> None:
    net, devs = _net(1)
    assert _write(net, 1, "operating_mode", 0) == 0
    assert _write(net, 1, "torque_enable", 1) == 0
    assert _write(net, 1, "operating_mode", 3) == p.ERR_ACCESS
    assert devs[1].get("operating_mode") == 0


def test_sync_read_order_and_fast_sync_read() -> None:
    net, devs = _net(1, 2)
    devs[1].set("present_position", 1111)
    devs[2].set("present_position", -2222)
    params = p.le(132, 2) + p.le(4, 2) + bytes([2, 1])
    statuses = _ask(net, p.BROADCAST_ID, p.SYNC_READ, params)
    assert [(s.id, p.from_le(s.data, True)) for s in statuses] == [(2, -2222), (1, 1111)]
    (fast,) = _ask(net, p.BROADCAST_ID, p.FAST_SYNC_READ, params)
    assert fast.id == p.BROADCAST_ID
    assert {i: p.from_le(d, True) for i, (_, d) in p.decode_fast_status(fast, [2, 1], 4).items()
            } == {2: -2222, 1: 1111}


def test_sync_write_has_no_answer() -> None:
    net, devs = _net(1, 2)
    body = p.le(102, 2) + p.le(2, 2) + b"\x01" + p.le(50, 2) + b"\x02" + p.le(-60, 2)
    assert _ask(net, p.BROADCAST_ID, p.SYNC_WRITE, body) == []
    assert (devs[1].get("goal_current"), devs[2].get("goal_current")) == (50, -60)


def test_watchdog_stops_motor_and_locks_goals() -> None:
    net, devs = _net(1)
    d = devs[1]
    assert _write(net, 1, "operating_mode", 0) == 0
    assert _write(net, 1, "bus_watchdog", 5, now=0.0) == 0  # 100 ms
    assert _write(net, 1, "torque_enable", 1, now=0.0) == 0
    assert _write(net, 1, "goal_current", 200, now=0.05) == 0
    assert not d.check_watchdog(0.14)  # 90 ms since the last packet
    assert d.drive().current_a > 0
    assert d.check_watchdog(0.16)  # 110 ms: expired
    assert not d.torque_enabled and d.get("bus_watchdog") == -1
    assert d.drive() is DRIVE_OFF
    assert _write(net, 1, "goal_current", 10, now=0.2) == p.ERR_ACCESS  # goals read-only
    assert _write(net, 1, "bus_watchdog", 0, now=0.2) == 0  # clears the error
    assert _write(net, 1, "goal_current", 10, now=0.2) == 0


def test_hardware_error_sets_alert_bit_and_reboot_clears_it() -> None:
    net, devs = _net(1)
    assert _write(net, 1, "torque_enable", 1) == 0
    devs[1].raise_hardware_error(ct.HW_OVERLOAD)
    assert not devs[1].torque_enabled  # overload is in the default shutdown mask (52)
    (st,) = _ask(net, 1, p.PING)
    assert st.error & p.ALERT_BIT
    st = _ask(net, 1, p.WRITE, p.le(64, 2) + b"\x01")[0]
    assert st.error == p.ALERT_BIT | p.ERR_RESULT_FAIL  # cannot re-enable before a reboot
    (st,) = _ask(net, 1, p.REBOOT, now=1.0)
    assert _ask(net, 1, p.PING, now=1.0 + REBOOT_TIME_S / 2) == []  # still booting
    (st,) = _ask(net, 1, p.PING, now=1.0 + REBOOT_TIME_S)
    assert st.error == 0 and devs[1].hardware_error == 0
    assert "overload" in ct.describe_hardware_error(ct.HW_OVERLOAD)


def test_corrupted_instruction_gets_crc_error_status() -> None:
    net, _ = _net(1)
    (r,) = net.corrupted(p.Packet(1, p.READ, b""), 0.0)
    (st,) = p.iter_packets(r.frame)
    assert st.error == p.ERR_CRC
    assert net.corrupted(p.Packet(p.BROADCAST_ID, p.SYNC_WRITE, b""), 0.0) == []


def test_indirect_addressing() -> None:
    net, devs = _net(1)
    d = devs[1]
    d.set("present_position", 0x01020304)
    d.set("present_current", -2)
    # Indirect data 1..6 <- present position (4 bytes) + present current (2 bytes).
    targets = [132, 133, 134, 135, 126, 127]
    body = b"".join(p.le(a, 2) for a in targets)
    (st,) = _ask(net, 1, p.WRITE, p.le(168, 2) + body)
    assert st.error == 0
    (st,) = _ask(net, 1, p.READ, p.le(224, 2) + p.le(6, 2))
    assert p.from_le(st.data[:4]) == 0x01020304 and p.from_le(st.data[4:], signed=True) == -2
    # Writing through indirect data reaches the target register, with its checks.
    (st,) = _ask(net, 1, p.WRITE, p.le(170 + 2 * 6 - 2, 2) + p.le(102, 2) + p.le(103, 2))
    assert st.error == 0  # indirect 7, 8 -> goal current
    assert _ask(net, 1, p.WRITE, p.le(230, 2) + p.le(-7, 2))[0].error == 0
    assert d.get("goal_current") == -7
    assert _ask(net, 1, p.WRITE, p.le(230, 2) + p.le(5000, 2))[0].error == p.ERR_DATA_RANGE


def test_operating_modes_drive_from_the_servo_file() -> None:
    """Current mode: goal current within the current limit; PWM mode: duty = goal PWM * unit,
    goal PWM bounded by the PWM limit; every constant from the servo file."""
    net, devs = _net(1)
    d = devs[1]
    servo = d.joint.servo if d.joint else None
    assert servo is not None and servo.motor is not None
    unit = servo.current_unit_a
    assert _write(net, 1, "operating_mode", ct.MODE_CURRENT) == 0
    assert _write(net, 1, "current_limit", 400) == 0
    assert _write(net, 1, "torque_enable", 1) == 0
    assert _write(net, 1, "goal_current", 401) == p.ERR_DATA_LIMIT
    assert _write(net, 1, "goal_current", -400) == 0
    assert d.drive() == (pytest.approx(-400 * unit), pytest.approx(math.nan, nan_ok=True))
    # The present velocity does not change a current request: the envelope is the plant's.
    d.set("present_velocity", 100)
    assert d.drive().current_a == pytest.approx(-400 * unit)
    assert _write(net, 1, "torque_enable", 0) == 0
    assert _write(net, 1, "operating_mode", ct.MODE_PWM) == 0
    assert _write(net, 1, "pwm_limit", 500) == 0
    assert _write(net, 1, "torque_enable", 1) == 0
    assert _write(net, 1, "goal_pwm", 501) == p.ERR_DATA_LIMIT
    assert _write(net, 1, "goal_pwm", -500) == 0
    drive = d.drive()
    assert drive.current_a == 0.0 and drive.duty == pytest.approx(-500 * servo.pwm_unit)
    assert _write(net, 1, "goal_pwm", 886) == p.ERR_DATA_RANGE  # beyond the register's 885


def test_position_mode_has_no_back_emf_term_on_a_servo_joint() -> None:
    """Back-EMF lives in the plant's envelope: the position law is the pure PD."""
    net, devs = _net(1)
    d = devs[1]
    assert _write(net, 1, "torque_enable", 1) == 0  # factory mode: position (3)
    d.set("present_velocity", 200)  # 200 * 0.229 rpm = 4.8 rad/s, the no-load speed
    assert d.drive().current_a == 0.0  # at the goal, D gain 0 by default


def test_joint_without_servo_physics_keeps_the_device_side_back_emf() -> None:
    """A joint the simulators drive as an ideal effort source (``servo_physics`` False) gets
    the envelope from its device: the back-EMF current I_s(V) w / w0(V) in the position modes,
    and PWM turned into the current I_s(V) (d - w / w0(V))."""
    j = dataclasses.replace(load_hardware_map("arm2").by_motor_id(1), servo_physics=False)
    d = DynamixelDevice(1, ct.XM430_W350, j)
    net = DeviceNetwork([d])
    motor = j.servo.motor
    assert motor is not None
    assert _write(net, 1, "torque_enable", 1) == 0
    d.set("present_velocity", 100)
    omega = 100 * j.velocity_unit_rad_s
    expected = -motor.stall_current * omega / motor.no_load_speed
    assert d.drive().current_a == pytest.approx(expected, abs=j.current_unit_a)
    assert _write(net, 1, "torque_enable", 0) == 0
    assert _write(net, 1, "operating_mode", ct.MODE_PWM) == 0
    assert _write(net, 1, "torque_enable", 1) == 0
    assert _write(net, 1, "goal_pwm", 885) == 0
    drive = d.drive()
    assert math.isnan(drive.duty)
    duty = 885 * j.servo.pwm_unit
    assert drive.current_a == pytest.approx(motor.stall_current * (duty - omega / motor.no_load_speed),
                                            abs=j.current_unit_a)


def test_lowered_pwm_limit_saturates_the_current_loop() -> None:
    """PWM Limit bounds the voltage in current mode too: a current that needs a duty
    d = I / I_s(V) + w / w0(V) beyond the limit becomes PWM at the limit."""
    net, devs = _net(1)
    d = devs[1]
    motor = d.joint.servo.motor if d.joint else None
    assert motor is not None
    assert _write(net, 1, "operating_mode", ct.MODE_CURRENT) == 0
    assert _write(net, 1, "pwm_limit", 442) == 0  # 50 %
    assert _write(net, 1, "torque_enable", 1) == 0
    assert _write(net, 1, "goal_current", 100) == 0  # 0.27 A: 12 % of the stall current
    assert math.isnan(d.drive().duty)
    d.set("present_velocity", 100)  # 100 units = 48 % of the no-load speed: d = 0.59
    drive = d.drive()
    assert drive.current_a == 0.0 and drive.duty == pytest.approx(442 * d.joint.servo.pwm_unit)


def test_present_pwm_current_and_input_voltage() -> None:
    net, devs = _net(1)
    d = devs[1]
    j = d.joint
    assert j is not None and j.servo.motor is not None
    assert _write(net, 1, "operating_mode", ct.MODE_PWM) == 0
    assert _write(net, 1, "torque_enable", 1) == 0
    d.update_present(0.0, 1.0, 0.5, 0.0, 0.001, duty=0.4, supply_v=11.3)
    assert d.get("present_input_voltage") == 113
    assert d.get("present_pwm") == round(0.4 / j.servo.pwm_unit)
    assert d.get("present_current") == round(0.5 / j.current_unit_a)
    assert d.get("present_velocity") == j.velocity_to_raw(1.0)
    # A current-based mode reports the duty its current needs: I / I_s(V) + w / w0(V).
    d.update_present(0.0, 0.0, 0.5, 0.0, 0.001, supply_v=12.0)
    assert d.get("present_pwm") == round(0.5 / j.servo.motor.stall_current / j.servo.pwm_unit)
    assert _write(net, 1, "torque_enable", 0) == 0
    d.update_present(0.0, 0.0, 0.0, 0.0, 0.001)
    assert d.get("present_pwm") == 0


@pytest.mark.parametrize("mode", [ct.MODE_CURRENT, ct.MODE_PWM])
def test_stalled_servo_at_its_current_limit_overloads(mode: int) -> None:
    """A shaft held still (a static plant) at the current limit for the servo file's overload
    time_s: the
    overload error turns torque off. In PWM mode the stall current I_s is capped by the limit."""
    from robot_meta.hardware.emulation.emulated_robot import EmulatedRobot, StaticPlant

    hw = load_hardware_map("arm2")
    emu = EmulatedRobot(hw, StaticPlant(hw.joint_names))
    d = emu.device(2)
    d.set("operating_mode", mode)
    d.set("current_limit", 743)  # 2.0 A, below the 2.3 A stall current
    d.set("torque_enable", 1)
    d.set("goal_current" if mode == ct.MODE_CURRENT else "goal_pwm", 743 if mode == 0 else 885)
    emu.advance_to(0.5)
    assert d.get("present_current") == pytest.approx(743, abs=1)  # the motor's actual current
    assert d.torque_enabled and not d.hardware_error
    overload_s = d.joint.servo.overload.time_s
    for t in (1.0, 1.5, overload_s + 0.01):  # advance_to simulates <= 1 s per call
        emu.advance_to(t)
    assert d.hardware_error & ct.HW_OVERLOAD and not d.torque_enabled
    assert emu.device(1).hardware_error == 0
