"""robot-meta calibrate on the emulated robot (in-process, simulated time): hidden encoder
offsets and a reversed servo are recovered; a joint that does not move as commanded, a stale
calibration and Ctrl-C all leave torque off with an error naming the joint."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from robot_meta.calibration.calibration_file import (
    MotorCalibration,
    RobotCalibration,
    apply_calibration,
)
from robot_meta.calibration.calibrator import BusClock, Calibrator
from robot_meta.calibration.errors import CalibrationError
from robot_meta.hardware import MockBus, Robot

CASES = {
    # one reversed non-reference joint per robot, offsets up to 0.5 rad of either sign
    "arm2-elbow-reversed": ("arm2", {"shoulder_encoder_offset": 0.45, "elbow_encoder_offset": -0.38,
                                     "elbow_reversed": 1}),
    "cartpole-hinge-reversed": ("cartpole", {"slider_encoder_offset": 0.3,
                                             "hinge_encoder_offset": -0.5, "hinge_reversed": 1}),
    "cartpole-as-designed": ("cartpole", {"slider_encoder_offset": -0.42,
                                          "hinge_encoder_offset": 0.27}),
}


@contextlib.contextmanager
def _robot(name: str, params: Any, plant: str = "twin") -> Iterator[tuple[MockBus, Robot]]:
    """A connected robot on an in-process emulated bus (manual clock); closed afterwards."""
    bus = MockBus(name, params=params, clock="manual", plant=plant)
    robot = Robot(bus, bus.emulated.hw, mode="current", handle_signals=False)
    robot.connect()
    try:
        yield bus, robot
    finally:
        robot.close()
        bus.shutdown()


class _TickClock(BusClock):
    """The bus clock, calling ``action`` at the n-th sleep (a fault at a chosen moment)."""

    def __init__(self, bus: MockBus, n: int, action: Any):
        super().__init__(bus)
        self.n, self.action, self.count = n, action, 0

    def sleep(self, dt: float) -> None:
        self.count += 1
        if self.count == self.n:
            self.action()
        super().sleep(dt)


def _torque_off(bus: MockBus) -> bool:
    return not any(d.torque_enabled for d in bus.emulated.devices.values())


@pytest.mark.parametrize("case", sorted(CASES))
def test_calibration_recovers_hidden_offsets_and_directions(case: str) -> None:
    name, hidden = CASES[case]
    with _robot(name, hidden) as (bus, robot):
        cal = Calibrator(robot, clock=BusClock(bus)).run()
        assert _torque_off(bus)
        hw = bus.emulated.hw
        found = cal.summary(hw)
        for j in hw.joints:
            assert found[j.joint]["reversed"] == bool(hidden.get(f"{j.joint}_reversed", 0)), j.joint
            err = found[j.joint]["offset_rad"] - hidden.get(f"{j.joint}_encoder_offset", 0.0)
            assert abs(err) < 0.01, (j.joint, err)
        assert cal.robot_seconds > 0
        if name == "cartpole":
            # the twin's rail stops are at +-0.8 m; the range lies stop_margin (2 cm) inside
            lo, hi = cal.range_joint(hw.joint("slider")) or (0.0, 0.0)
            assert lo == pytest.approx(-0.78, abs=0.005) and hi == pytest.approx(0.78, abs=0.005)
            assert cal.range_joint(hw.joint("hinge")) is None  # the pole turns freely
        # In the calibrated frame, the robot reads its true joint positions.
        calibrated = apply_calibration(hw, cal)
        robot.hw = calibrated
        q_true, _ = bus.emulated.true_state()
        q = robot.read_state().q
        assert np.allclose(q, q_true, atol=0.01 * max(j.transmission for j in hw.joints) + 0.005)


def test_a_blocked_robot_aborts_naming_the_joint_with_torque_off() -> None:
    with _robot("arm2", None, plant="none") as (bus, robot):  # no physics: nothing moves
        with pytest.raises(CalibrationError, match="joint 'shoulder'.*did not move") as e:
            Calibrator(robot, clock=BusClock(bus)).run()
        assert e.value.joint == "shoulder"
        assert _torque_off(bus)


def test_a_motor_turning_against_its_encoder_aborts() -> None:
    """The elbow's motor leads swapped: it pushes the other way from what its encoder reads."""
    with _robot("arm2", None) as (bus, robot):
        bus.emulated._act_sign[1] = -1.0  # the command path reversed, the reporting not
        with pytest.raises(CalibrationError, match="joint 'elbow'.*moved the wrong way"):
            Calibrator(robot, clock=BusClock(bus)).run()
        assert _torque_off(bus)


def test_a_servo_lost_during_calibration_names_the_joint() -> None:
    with _robot("arm2", None) as (bus, robot):
        with pytest.raises(Exception, match="elbow"):
            Calibrator(robot, clock=_TickClock(bus, 150, bus.emulated.devices[2].unplug)).run()
        assert _torque_off(bus)


def test_a_stale_calibration_moving_the_wrong_way_is_refused_by_check() -> None:
    hidden = {"elbow_reversed": 1, "elbow_encoder_offset": 0.2}
    with _robot("arm2", hidden) as (bus, robot):
        # The calibration of this robot, from its hidden mounting: homing offset = -o N / (2 pi).
        cal = RobotCalibration("arm2", {
            "shoulder": MotorCalibration(1, 0, 0, 288, 3808),
            "elbow": MotorCalibration(2, 1, -round(0.2 * 4096 / (2 * math.pi)), 419, 3677)})
        # The right calibration checks out...
        robot.hw = apply_calibration(bus.emulated.hw, cal)
        assert Calibrator(robot, clock=BusClock(bus)).check() == {"shoulder": 1, "elbow": 1}
        # ...a stale one (the elbow servo remounted since) does not.
        m = cal.motors["elbow"]
        stale = RobotCalibration(cal.robot, {**cal.motors, "elbow": MotorCalibration(
            m.id, 1 - m.drive_mode, m.homing_offset, m.range_min, m.range_max)})
        robot.hw = apply_calibration(bus.emulated.hw, stale)
        with pytest.raises(CalibrationError, match="joint 'elbow' moves the wrong way") as e:
            Calibrator(robot, clock=BusClock(bus)).check()
        assert e.value.joint == "elbow"
        assert _torque_off(bus)


def test_ctrl_c_during_calibration_leaves_torque_off() -> None:
    with _robot("cartpole", {"slider_encoder_offset": 0.1}) as (bus, robot):

        def ctrl_c() -> None:
            assert not _torque_off(bus)  # mid-way to an end stop, torque on and pushing
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            Calibrator(robot, clock=_TickClock(bus, 200, ctrl_c)).run()
        assert _torque_off(bus)
        assert robot.hw is bus.emulated.hw  # the robot is handed back in its own frame


def test_fit_of_a_decaying_swing_finds_its_centre() -> None:
    from robot_meta.calibration.calibrator import fit_decaying_swing

    t = np.arange(0, 5, 0.01)
    q = math.pi + 0.12 + np.exp(-0.08 * t) * 0.2 * np.sin(4.6 * t + 0.7)
    q += np.random.default_rng(0).normal(0, 0.002, len(t))
    c, amp = fit_decaying_swing(t, q)
    assert c == pytest.approx(math.pi + 0.12, abs=0.002) and amp == pytest.approx(0.2, abs=0.02)
