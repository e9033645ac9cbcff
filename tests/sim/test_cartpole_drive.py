"""The cartpole's cart drive (issue 20): an XM430-W210 on a 10 cm drum, simulated with its
torque-speed envelope and armature, is fast enough for the oracle (the runtime's energy swing-up
and LQR catch) to bring the pole up from hanging and balance it, in MuJoCo and in the twin."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.runtime.swing_up import SwingUpReset
from robot_meta.sim.mujoco_backend import MujocoBackend
from robot_meta.sim.randomize import params_from_dict
from robot_meta.sim.robots.cartpole.reset import nominal_model
from robot_meta.sim.robots.robot_def import get_robot
from robot_meta.sim.servo_physics import build_model
from robot_meta.sim.twin import TwinBackend

ROBOT = get_robot("cartpole")
HW = ROBOT.hardware_map
CART = HW.joint("slider")
SERVO = CART.servo
MOTOR = SERVO.motor
assert MOTOR is not None
PERIOD = 0.005  # the swing-up reset's control period
T_END = 25.0  # s of simulated time
# The hidden plants: nominal (no payload, which the controller's model assumes 0.05 kg of), and
# the payload the runtime's swing-up test uses, which the controller does not know.
CASES = {"nominal": {}, "payload": {"payload_mass": 0.09, "payload_offset": 0.05}}


def test_the_cart_drive_is_the_w210_on_a_10cm_drum() -> None:
    """The datasheet figures that make the swing-up possible, through the hardware map."""
    assert CART.model == "xm430-w210" and CART.servo_physics
    assert SERVO.model_number == ct.get_table("xm430-w210").model_number == 1030
    v0 = MOTOR.no_load_speed * CART.transmission  # w0 r = 77 rpm * 0.1 m
    assert CART.velocity_limit == pytest.approx(v0) and v0 == pytest.approx(0.806, abs=1e-3)
    assert MOTOR.stall_torque / CART.transmission == pytest.approx(30.0)  # stall force [N]
    assert CART.effort_limit == pytest.approx(10.0, abs=1e-3)  # K_t I_max / r
    assert CART.max_current_a < SERVO.max_current_a
    m = build_model(ROBOT)  # the MJCF gear is the hardware map's, so the servo builds in
    assert m.actuator_gaintype[0] == mujoco.mjtGain.mjGAIN_DCMOTOR
    assert m.dof_armature[0] == pytest.approx(MOTOR.armature / CART.transmission**2)
    assert nominal_model().armature == pytest.approx(m.dof_armature[0])
    assert "supply_voltage" in ROBOT.factor_names


def _swing_up(plant_step: Callable[[float], tuple[np.ndarray, np.ndarray]], q: np.ndarray,
              dq: np.ndarray) -> dict[str, np.ndarray]:
    """Run the oracle from hanging for T_END at PERIOD; ``plant_step(effort)`` holds the
    effort [N] for one period and returns the new (q, dq). Returns the histories."""
    ctl = SwingUpReset(SimpleNamespace(hw=HW), np.zeros(2), PERIOD)
    hist: dict[str, list[float]] = {"theta": [], "x": [], "xdot": [], "amps": []}
    for _ in range(round(T_END / PERIOD)):
        effort = ctl.command(q, dq)
        amps = CART.effort_to_current(effort)  # what goes on the wire as goal current
        q, dq = plant_step(effort)
        hist["theta"].append(math.remainder(float(q[1]), 2 * math.pi))
        hist["x"].append(float(q[0]))
        hist["xdot"].append(float(dq[0]))
        hist["amps"].append(amps)
    return {k: np.array(v) for k, v in hist.items()}


def _check(h: dict[str, np.ndarray]) -> None:
    last = round(1.0 / PERIOD)
    assert np.all(np.abs(h["theta"][-last:]) < 0.2), "the pole is not upright for the last second"
    assert np.all(np.abs(h["x"]) < CART.position_limits[1]), "the cart left the soft limit"
    assert np.all(np.abs(h["amps"]) <= CART.max_current_a + 1e-12), "current above the limit"
    # The envelope leaves no drive at w0 r and brakes beyond it: only the pole's pull on the
    # cart can carry it past, and not by much.
    assert np.max(np.abs(h["xdot"])) < 1.05 * CART.velocity_limit


@pytest.mark.parametrize("case", list(CASES))
def test_oracle_swings_up_and_balances_in_mujoco(case: str) -> None:
    params = params_from_dict(ROBOT, CASES[case], "test")
    backend = MujocoBackend(ROBOT, 1, nthread=0)
    backend.set_params(np.array([0]), params[None])
    m = backend.models[0]  # the servo's <dcmotor> and armature, with the hidden factors
    backend.close()
    assert m.actuator_gaintype[0] == mujoco.mjtGain.mjGAIN_DCMOTOR and m.dof_armature[0] > 0.0
    d = mujoco.MjData(m)
    d.qpos[1] = math.pi
    nsub = round(PERIOD / m.opt.timestep)

    def step(effort: float) -> tuple[np.ndarray, np.ndarray]:
        d.ctrl[0] = effort / CART.gear  # normalized action: goal current / I_max
        mujoco.mj_step(m, d, nsub)
        return d.qpos.copy(), d.qvel.copy()

    _check(_swing_up(step, d.qpos.copy(), d.qvel.copy()))


@pytest.mark.parametrize("case", list(CASES))
def test_oracle_swings_up_and_balances_in_the_twin(case: str) -> None:
    b = TwinBackend(ROBOT)
    b.set_params(np.array([0]), params_from_dict(ROBOT, CASES[case], "test")[None])
    b.set_state(np.array([0]), np.array([[0.0, math.pi]]), np.zeros((1, 2)))
    nsub = round(PERIOD / b.physics_dt)
    delivered: list[float] = []

    def step(effort: float) -> tuple[np.ndarray, np.ndarray]:
        b.step_effort(np.array([[effort]]), nsub)
        delivered.append(float(b.motor_current[0, 0]))
        return b.qpos[0].copy(), b.qvel[0].copy()

    try:
        _check(_swing_up(step, b.qpos[0].copy(), b.qvel[0].copy()))
    finally:
        b.close()
    # the twin's servo delivered no more than was commanded (its envelope only takes away)
    assert np.max(np.abs(delivered)) <= CART.max_current_a + 1e-9
