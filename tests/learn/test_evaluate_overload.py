"""run_episode reports which episodes a servo overload shutdown ended."""

from types import SimpleNamespace

import numpy as np

from robot_meta.learn.evaluate import run_episode
from robot_meta.sim import make_vec_env
from robot_meta.sim.randomize import nominal_params
from robot_meta.sim.robots.robot_def import get_robot


def _agent(shoulder: float) -> SimpleNamespace:
    """A fixed-action agent: env 0 pushes the shoulder at `shoulder`, env 1 holds 0."""
    noop = lambda *a, **k: None  # noqa: E731
    act = lambda obs, priv: np.array([[shoulder, 0.0], [0.0, 0.0]])  # noqa: E731
    return SimpleNamespace(seed_episode=noop, begin_episode=noop, end_episode=noop,
                           observe=noop, act=act)


def test_overloaded_episodes_are_flagged_per_env() -> None:
    robot = get_robot("arm2")
    env = make_vec_env(robot, "servo", 2, 0, params=nominal_params(robot), nthread=0)
    flags: list[np.ndarray] = []
    run_episode(env, _agent(1.0), "prior", 0, flags)  # stalled at the stop at full current
    run_episode(env, _agent(0.9), "prior", 0, flags)  # stalled below the overload current
    env.close()
    assert [f.tolist() for f in flags] == [[True, False], [False, False]]
