"""Cartpole's task definitions: shift moves the balanced pole to a target rail position."""

import numpy as np

from robot_meta.sim import make_vec_env
from robot_meta.sim.robots import get_robot
from robot_meta.sim.robots.cartpole.tasks import Shift


def test_shift_observes_the_target_and_rewards_being_there_upright() -> None:
    task = Shift(get_robot("cartpole"))
    state = {"target": np.array([0.3, 0.3, -0.2])}
    q = np.array([[0.3, 0.0], [0.1, 0.0], [-0.2, np.pi]])  # at target; 20 cm short; fallen
    dq = np.zeros((3, 2))
    obs = task.observe(q, dq, state, np.zeros(3))
    np.testing.assert_allclose(obs[:, 5], [0.0, 0.2, 0.0], atol=1e-12)  # x* - x
    r = task.rewards(q, dq, np.zeros((3, 1)), state, np.zeros(3))
    np.testing.assert_allclose(r["at_target"], [0.5, 0.5 * np.exp(-2.0), 0.5])  # exp(-e^2/2s^2)
    np.testing.assert_allclose(r["upright"], [0.3, 0.3, 0.0])


def test_shift_episodes_last_two_seconds_with_targets_on_the_rail() -> None:
    env = make_vec_env("cartpole", "shift", 256, 0, task="shift", nthread=0)
    obs = env.reset(seed=0)
    target = obs[:, 0] + obs[:, 5]
    assert np.abs(target).max() <= Shift.SHIFT and np.abs(target).min() < 0.05
    assert env.episode_steps == 100
    names = list(env.robot.factor_names)
    assert np.abs(env.params[:, names.index("hinge_bias")]).max() <= 0.01  # calibrated
    env.close()
