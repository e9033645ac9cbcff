"""The cartpole's swing-up reset: the pole brought upright by the cart motor, no teleporting."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from robot_meta.hardware import MockBus, Robot, load_hardware_map
from robot_meta.runtime.reset import ResetController, make_reset
from robot_meta.runtime.swing_up import SwingUpReset, dlqr
from robot_meta.sim.robots.cartpole.reset import nominal_model


def test_lqr_stabilizes_the_linearized_cartpole() -> None:
    a, b = nominal_model().linearized(0.005)
    assert np.max(np.abs(np.linalg.eigvals(a))) > 1.0  # upright is unstable on its own
    k = dlqr(a, b, np.diag([100.0, 400.0, 4.0, 1.0]), np.array([[0.1]]))
    assert np.max(np.abs(np.linalg.eigvals(a - b @ k[None]))) < 1.0


def test_energy_is_zero_upright_and_minus_two_hanging() -> None:
    robot = SimpleNamespace(hw=load_hardware_map("cartpole"))
    r = SwingUpReset(robot, np.zeros(2))
    assert r.energy(0.0, 0.0) == 0.0
    assert abs(r.energy(np.pi, 0.0) + 2.0) < 1e-12


def test_make_reset_swings_a_balance_start_and_pids_the_rest() -> None:
    cartpole = SimpleNamespace(hw=load_hardware_map("cartpole"))
    arm = SimpleNamespace(hw=load_hardware_map("arm2"))
    assert isinstance(make_reset(cartpole, np.zeros(2)), SwingUpReset)  # balance: pole upright
    assert isinstance(make_reset(cartpole, np.array([0.0, np.pi])), ResetController)  # swingup
    assert isinstance(make_reset(arm, np.zeros(2)), ResetController)


def test_swing_up_brings_the_twin_pole_upright_and_still() -> None:
    # The PyBullet twin with a payload the nominal model does not know about, in real time.
    bus = MockBus("cartpole", params={"payload_mass": 0.09, "payload_offset": 0.05})
    with Robot(bus, load_hardware_map("cartpole"), handle_signals=False,
               overspeed_factor=None) as robot:
        robot.enable()
        q, _ = bus.emulated.true_state()
        assert abs(abs(q[1]) - np.pi) < 0.05  # starts hanging
        res = make_reset(robot, np.zeros(2)).run()
        q, dq = bus.emulated.true_state()
    pole = (q[1] + np.pi) % (2 * np.pi) - np.pi
    assert abs(pole) < 0.08 and abs(q[0]) < 0.08  # the plant, not the reading
    assert np.all(np.abs(dq) < 0.4)
    assert res.seconds < 40.0
