"""The in-process mock bus: same interface, backed by the twin, MuJoCo or no physics."""

from __future__ import annotations

import numpy as np
import pytest

from robot_meta.hardware import MockBus, Robot, load_hardware_map, open_bus


def test_mock_bus_interface_and_twin_physics() -> None:
    bus = MockBus("arm2", clock="manual")
    with bus:
        assert bus.ping(1) == 1020
        assert bus.scan(range(4)) == {1: 1020, 2: 1020}
        bus.write(1, "operating_mode", 0)
        bus.torque([1], True)
        bus.sync_write("goal_current", {1: 300})
        p0 = bus.sync_read("present_position", [1, 2])
        bus.advance(0.2)
        p1 = bus.sync_read("present_position", [1, 2])
        assert p1[1] > p0[1] + 20  # the shoulder turns under +0.8 A
        # Present Current is the motor's actual current: at the shoulder's speed the servo's
        # torque-speed line leaves less than the commanded 0.8 A (tau_s (1 - w / w0) / K_t).
        j = load_hardware_map("arm2").joint("shoulder")
        w = j.raw_to_velocity(bus.read(1, "present_velocity"))
        line = float(j.servo.envelope(1e9, w, 12.0, 1e9)) / j.torque_constant / j.current_unit_a
        assert w > 0.5 * j.servo.no_load_speed  # on the line, not at rest
        assert bus.read(1, "present_current") == pytest.approx(min(300, line), abs=3)
    assert bus.emulated.device(1).torque_enabled is False  # torque off when the bus closes
    bus.shutdown()


def test_robot_on_mock_in_lockstep() -> None:
    bus = MockBus("cartpole", clock="manual")
    robot = Robot(bus, load_hardware_map("cartpole"), handle_signals=False, watchdog_ms=0)
    robot.connect()
    robot.enable()
    xs = []
    for _ in range(25):  # 0.5 s at 50 Hz, pushing the cart right
        s = robot.read_state()
        robot.write_action([0.2])
        bus.advance(0.02)
        xs.append(s.q[0])
    assert xs[-1] > 0.05 and np.all(np.diff(xs) >= -1e-3)
    robot.close()
    bus.shutdown()


def test_mock_without_physics_and_via_open_bus() -> None:
    bus = open_bus("mock:arm2", plant="none", clock="manual")
    bus.write(2, "operating_mode", 0)
    assert bus.read(2, "present_position") == 2048  # the static plant stays at q = 0
    bus.close()


def test_mock_with_mujoco_plant() -> None:
    pytest.importorskip("mujoco")
    bus = MockBus("arm2", plant="mujoco", clock="manual")
    with bus:
        bus.write(1, "operating_mode", 0)
        bus.torque([1], True)
        bus.sync_write("goal_current", {1: 300})
        p0 = bus.read(1, "present_position")
        bus.advance(0.2)
        assert bus.read(1, "present_position") > p0 + 20
    bus.shutdown()
