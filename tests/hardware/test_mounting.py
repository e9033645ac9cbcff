"""The emulator's hidden mounting: ``<joint>_encoder_offset`` shifts what a servo reports,
``<joint>_reversed`` flips what it reports and which way it pushes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_meta.hardware import MockBus, Robot
from robot_meta.sim.randomize import SpecError, load_twin_file, load_twin_params


def _robot(params: object) -> tuple[MockBus, Robot]:
    bus = MockBus("arm2", params=params, clock="manual", plant="none")
    robot = Robot(bus, bus.emulated.hw, mode="current", handle_signals=False, overspeed_factor=None)
    robot.connect()
    return bus, robot


def test_offset_and_reversal_in_what_the_servo_reports_and_how_it_pushes() -> None:
    bus, robot = _robot({"shoulder_encoder_offset": 0.3, "elbow_encoder_offset": -0.2,
                         "elbow_reversed": 1})
    try:
        plant = bus.emulated.plant
        plant.set_state(np.array([0.1, 0.25]), np.array([0.5, -0.4]))
        bus.advance(0.002)
        s = robot.read_state()
        # q_reported = s q + o; dq_reported = s dq
        assert s.q == pytest.approx([0.1 + 0.3, -0.25 - 0.2], abs=2e-3)
        assert s.dq == pytest.approx([0.5, 0.4], abs=0.03)
        robot.enable()
        robot.write_currents([0.5, 0.5])
        bus.advance(0.002)
        tau = plant.last_effort
        assert tau[0] > 0 and tau[1] < 0  # the reversed elbow pushes the other way
        assert tau[1] == pytest.approx(-tau[0])
    finally:
        robot.close()
        bus.shutdown()


def test_twin_params_file_mounting_keys(tmp_path: Path) -> None:
    p = tmp_path / "hidden.toml"
    p.write_text('robot = "cartpole"\n[params]\npayload_mass = 0.05\nslider_encoder_offset = 0.4\n'
                 'hinge_reversed = 1\n')
    _, params, _, mounting = load_twin_file(p)
    assert mounting.offset("slider") == 0.4 and mounting.sign("hinge") == -1
    assert mounting.sign("slider") == 1 and mounting.any
    assert np.array_equal(load_twin_params(p)[1], params)  # the factors are unchanged
    for bad, msg in (("hinge_reversed = 2", "expected 0 or 1"),
                     ("wrist_encoder_offset = 0.1", "no joint 'wrist'"),
                     ("slider_encoder_offset = 4.0", r"\[-pi, pi\]")):
        p.write_text(f'robot = "cartpole"\n[params]\n{bad}\n')
        with pytest.raises(SpecError, match=msg):
            load_twin_file(p)


def test_a_policy_action_pushes_the_same_way_on_a_calibrated_reversed_servo() -> None:
    """write_action is a joint effort (the MJCF gear convention): on a servo mounted reversed
    and calibrated as such, the same action gives the same true effort as on one mounted as
    designed."""
    from robot_meta.calibration.calibration_file import (
        MotorCalibration,
        RobotCalibration,
        apply_calibration,
    )

    bus, robot = _robot({"elbow_reversed": 1})
    try:
        robot.hw = apply_calibration(bus.emulated.hw, RobotCalibration("arm2", {
            "shoulder": MotorCalibration(1, 0, 0, 288, 3808),
            "elbow": MotorCalibration(2, 1, 0, 419, 3677)}))
        robot.enable()
        sent = robot.write_action([0.5, 0.5])
        bus.advance(0.002)
        tau = bus.emulated.plant.last_effort
        assert sent == pytest.approx([0.5, 0.5], abs=0.01)
        assert tau[0] > 0 and tau[1] == pytest.approx(tau[0])  # both push toward +q
    finally:
        robot.close()
        bus.shutdown()
