"""Gymnasium adapters: check_env passes, and the vector env follows same-step auto-reset."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robot_meta.sim import make_gym_env, make_gym_vector_env
from robot_meta.sim.robots import ROBOT_NAMES


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_check_env_passes_without_warnings(robot: str) -> None:
    env = make_gym_env(robot, "all")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["factors"].shape == (len(env.env.robot.factors),)


def test_vector_env_same_step_autoreset() -> None:
    env = make_gym_vector_env("cartpole", "all", num_envs=4, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 5)
    seen_final = False
    for _ in range(260):
        obs, rew, term, trunc, info = env.step(np.ones((4, 1)))
        if "final_obs" in info:
            mask = info["_final_obs"]
            assert np.array_equal(mask, term | trunc)
            for i in np.flatnonzero(mask):
                assert info["final_obs"][i].shape == (5,)
                assert not np.allclose(info["final_obs"][i], obs[i])
            seen_final = True
    assert seen_final
    env.close()
