"""The motor-driven reset: PID on current to the start pose, no teleporting."""

from __future__ import annotations

import time
from pathlib import Path
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


# A hidden arm (drawn by bench sessions, in the training range) on which the default gains held
# the elbow in a limit cycle: 40 ms of latency, a 0.32 kg payload, stiction and backlash.
_HIDDEN_ARM = """
robot = "arm2"
[params]
elbow_bias = 0.049658
elbow_frictionloss = 0.094212
elbow_strength = 1.063843
latency_steps = 2
payload_mass = 0.315091
shoulder_bias = -0.133368
shoulder_frictionloss = 0.018826
shoulder_strength = 1.055611
supply_voltage = 11.419757
[servo]
stiction = 0.03943
backlash = 0.002793
encoder_quantization = true
current_lag = 0.00223
supply_resistance = 0.2209
"""


def _reset_on_hidden_arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, period_s: float,
                         **gains: float) -> str:
    """Push the hidden arm away, then reset it on a manual clock whose loop period is
    ``period_s`` (a slow bus round trip). Returns "ok" or the ResetError's message."""
    import robot_meta.runtime.reset as reset_mod

    path = tmp_path / "hidden.toml"
    path.write_text(_HIDDEN_ARM)
    bus = MockBus("arm2", params=str(path), clock="manual")

    class SteppedLoop:  # ControlLoop on the bus's manual clock
        def __init__(self, period: float) -> None:
            self.period = period

        def start(self) -> float:
            return 0.0

        def wait(self) -> int:
            bus.advance(self.period)
            return 0

    monkeypatch.setattr(reset_mod, "ControlLoop", SteppedLoop)
    with Robot(bus, load_hardware_map("arm2"), handle_signals=False, overspeed_factor=None) as robot:
        robot.enable()
        for _ in range(30):
            robot.read_state()
            robot.write_action(np.array([-0.6, 0.8]))
            bus.advance(0.02)
        try:
            ResetController(robot, np.zeros(2), period_s=period_s, **gains).run()
        except ResetError as e:
            return str(e)
        s = robot.read_state()  # the reading: this arm's encoders are homed off (its biases)
        assert np.all(np.abs(s.q) < 0.06) and np.all(np.abs(s.dq) < 0.3)
        return "ok"


def test_arm2_reset_gains_come_from_its_folder() -> None:
    from robot_meta.runtime.reset import RESET_GAINS, reset_gains

    arm = reset_gains(load_hardware_map("arm2"))
    assert arm["full_effort_error"] == 2 * RESET_GAINS["full_effort_error"]
    assert reset_gains(load_hardware_map("arm2"), integral_rate=5.0)["integral_rate"] == 5.0
    assert reset_gains(load_hardware_map("cartpole")) == RESET_GAINS


def test_arm2_gains_settle_where_the_default_gains_limit_cycle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robot_meta.runtime.reset import RESET_GAINS

    bad = _reset_on_hidden_arm(tmp_path, monkeypatch, 0.02, **RESET_GAINS)
    assert "did not settle" in bad and "elbow" in bad
    assert _reset_on_hidden_arm(tmp_path, monkeypatch, 0.02) == "ok"
