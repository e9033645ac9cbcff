"""The motor-driven reset: PID on current to the start pose, no teleporting."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from robot_meta.hardware import MockBus, Robot, load_hardware_map
from robot_meta.runtime.reset import ResetController, ResetError


def test_reset_drives_a_loaded_arm_back_with_its_motors() -> None:
    bus = MockBus("arm2", params={"payload_mass": 0.6})  # wall clock: physics in real time
    with Robot(bus, load_hardware_map("arm2"), handle_signals=False, overspeed_factor=None) as robot:
        robot.enable()
        t = time.perf_counter()
        while time.perf_counter() - t < 0.5:  # push the arm away with the motors
            robot.read_state()
            robot.write_action(np.array([0.5, -0.4]))
            time.sleep(0.005)
        q_far = robot.read_state().q
        assert np.max(np.abs(q_far)) > 0.5
        res = ResetController(robot, np.zeros(2), timeout_s=15.0).run()
        q, dq = bus.emulated.true_state()
        assert np.all(np.abs(q) < 0.06) and np.all(np.abs(dq) < 0.3)  # the plant, not the reading
        assert res.seconds < 15.0 and res.steps > 10


def test_reset_refuses_a_start_gravity_cannot_reach() -> None:
    robot = SimpleNamespace(hw=load_hardware_map("cartpole"))
    with pytest.raises(ResetError, match="hinge.*passive"):
        ResetController(robot, np.array([0.0, 0.0]))  # balance: the pole upright
    ResetController(robot, np.array([0.0, np.pi]))  # swing-up: hanging, reachable
