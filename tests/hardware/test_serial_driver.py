"""Our serial driver against the emulator over a real pty (and TCP, and loop://)."""

from __future__ import annotations

import time

import pytest

from robot_meta.hardware import (
    ModelMismatchError,
    PortError,
    RegisterError,
    Robot,
    ServoNotFoundError,
    ServoTimeoutError,
    open_bus,
)
from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel.serial_bus import SerialBus
from robot_meta.hardware.emulation.emulator import Emulator
from robot_meta.hardware.hardware_map import HardwareMap, JointHardware, load_hardware_map


def test_timeout_from_baud_and_packet_size() -> None:
    fast = SerialBus("loop://", 1_000_000, latency_ms=2)
    slow = SerialBus("loop://", 57_600, latency_ms=2)
    # 10 bits per byte: (14 + 21) bytes at 1 Mbps = 350 us, + 500 us return delay + 2 ms.
    assert fast.timeout_for(14, 21, 1) == pytest.approx(350e-6 + 500e-6 + 2e-3)
    assert slow.timeout_for(14, 21, 1) == pytest.approx(35 * 10 / 57_600 + 500e-6 + 2e-3)


def test_driver_against_emulator_on_pty(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    assert emu.port.startswith("/dev/pts/")
    with open_bus(emu.port) as bus:
        assert bus.ping(1) == ct.XM430_W350.model_number == 1020
        assert bus.ping(2) == 1020
        assert bus.scan(range(0, 4)) == {1: 1020, 2: 1020}
        # read / write
        assert bus.read(1, "present_position") == emu.register(1, "present_position")
        bus.write(1, "operating_mode", 0)
        assert emu.register(1, "operating_mode") == 0
        bus.write(2, "operating_mode", 0)
        bus.write(1, "goal_current", -123)
        assert bus.read(1, "goal_current") == -123
        # sync read / fast sync read / sync write
        pos = bus.sync_read("present_position", [1, 2])
        assert set(pos) == {1, 2} and all(abs(v - 2048) < 50 for v in pos.values())
        fast = bus.sync_read_many(["present_current", "present_velocity", "present_position"],
                                  [1, 2], fast=True)
        assert set(fast[2]) == {"present_current", "present_velocity", "present_position"}
        bus.sync_write("goal_current", {1: 40, 2: -40})
        time.sleep(0.01)
        assert (emu.register(1, "goal_current"), emu.register(2, "goal_current")) == (40, -40)
        # torque, hardware error status, reboot
        bus.torque([1, 2], True)
        assert emu.torque_enabled() == {1: True, 2: True}
        assert bus.hardware_error(1) == 0
        bus.reboot(2)
        assert emu.torque_enabled()[2] is False
        assert emu.register(2, "operating_mode") == 0  # EEPROM survives a reboot
        with pytest.raises(RegisterError, match="no register 'goal_torque'"):
            bus.read(1, "goal_torque")
        with pytest.raises(RegisterError, match="outside the register's range"):
            bus.write(1, "goal_current", 5000)
        with pytest.raises(RegisterError, match="read-only"):
            bus.write(1, "present_position", 0)
        assert bus.stats.crc_errors == 0
    assert emu.torque_enabled()[1] is False  # the bus turned off what it turned on


def test_driver_over_tcp() -> None:
    with Emulator("arm2", port="tcp:0") as emu:
        assert emu.port.startswith("socket://127.0.0.1:")
        with open_bus(emu.port) as bus:
            assert bus.ping(1) == 1020
            assert set(bus.sync_read("present_velocity", [1, 2])) == {1, 2}


def test_unknown_id_is_a_clear_error(arm2_emulator: Emulator) -> None:
    with open_bus(arm2_emulator.port, retries=1) as bus:
        with pytest.raises(ServoNotFoundError, match=r"ID 7.*2 attempts.*bus.scan\(\)"):
            bus.ping(7)
        bus.names[7] = "wrist"
        with pytest.raises(ServoTimeoutError, match=r"ID 7 \(joint 'wrist'\) did not answer"):
            bus.read(7, "present_position")
        assert bus.stats.retries >= 2


def test_wrong_model_number_is_a_clear_error(cartpole_emulator: Emulator) -> None:
    # A map that claims the pole encoder (ID 2) is a servo.
    real = load_hardware_map("cartpole")
    wrong = HardwareMap("cartpole", (real.joints[0], JointHardware(
        joint="hinge", motor_id=2, model="xm430-w350", actuated=True, kind="revolute",
        position_limits=(-3.0, 3.0), velocity_limit=30.0, max_current_a=0.5)))
    robot = Robot(open_bus(cartpole_emulator.port), wrong, handle_signals=False)
    with pytest.raises(ModelMismatchError,
                       match=r"joint 'hinge' \(ID 2\).*expects xm430-w350 \(1020\).*encoder"):
        robot.connect()
    robot.close()


def test_missing_servo_in_robot_names_the_joint(arm2_emulator: Emulator) -> None:
    arm2_emulator.disconnect(2)
    # default retries: a loaded machine may delay one answer of the present servo (ID 1)
    robot = Robot(open_bus(arm2_emulator.port), load_hardware_map("arm2"),
                  handle_signals=False)
    with pytest.raises(ServoNotFoundError, match=r"joint 'elbow'.*ID 2"):
        robot.connect()
    robot.close()


def test_loop_url_and_bad_port() -> None:
    # loop:// echoes our own packet back: the driver must ignore it and time out cleanly.
    with open_bus("loop://", retries=0) as bus, pytest.raises(ServoNotFoundError):
        bus.ping(1)
    with pytest.raises(PortError, match="cannot open serial port '/dev/does-not-exist'"):
        open_bus("/dev/does-not-exist")


def test_port_vanishing_is_a_port_error(arm2_emulator: Emulator) -> None:
    bus = open_bus(arm2_emulator.port)
    assert bus.ping(1) == 1020
    arm2_emulator.disconnect()  # hang up the pty
    time.sleep(0.05)
    with pytest.raises(PortError, match="adapter was unplugged or the emulator stopped"):
        bus.ping(1, retries=0)
    bus.disconnect()


def test_wire_timing_follows_baud() -> None:
    """A pty ignores the baud rate; the emulator adds 10 bits per byte itself."""
    def ping_time(baud: int) -> float:
        with Emulator("arm2", baud=baud, plant="none") as emu, \
                open_bus(emu.port, baud=baud) as bus:
            bus.write(1, "return_delay_time", 0)
            best = 1.0
            for _ in range(5):
                t = time.perf_counter()
                bus.ping(1)
                best = min(best, time.perf_counter() - t)
            return best

    # ping: 10 bytes out + 14 bytes back = 240 bit-times of 10 bits, 4.17 ms. Once in three runs
    # with two trainings loading the machine this measured 4.144 ms (0.5 % short; cause not
    # found): 2 % slack, against the 15x gap to 1 Mbps that the test is about.
    assert ping_time(57_600) >= 0.98 * 24 * 10 / 57_600
    assert ping_time(1_000_000) < 24 * 10 / 57_600
