"""Arm2's task definitions: the fast tracking task moves where the servos' torque-speed line
binds, and reach_quick is reach in 1 s episodes."""

import numpy as np

from robot_meta.sim import make_vec_env


def test_track_fast_targets_are_fast_and_the_fast_family_is_calibrated() -> None:
    env = make_vec_env("arm2", "fast", 256, 0, task="track_fast", nthread=0)
    obs = env.reset(seed=0)
    speed = np.hypot(obs[:, 8], obs[:, 9])  # target velocity (obs 8, 9) = rho |w|
    assert speed.min() >= 0.06 * 2.5 - 1e-9 and speed.max() <= 0.12 * 4.0 + 1e-9
    assert np.median(speed) > 0.25  # m/s; `track` stays below 0.2
    names = list(env.robot.factor_names)
    for j in ("shoulder_bias", "elbow_bias"):  # offsets within what calibration leaves
        assert np.abs(env.params[:, names.index(j)]).max() <= 0.01
    slow = make_vec_env("arm2", "fast", 256, 0, task="track", nthread=0).reset(seed=0)
    assert np.hypot(slow[:, 8], slow[:, 9]).max() <= 0.2 + 1e-9
    env.close()


def test_reach_quick_is_reach_with_one_second_episodes() -> None:
    quick = make_vec_env("arm2", "quick", 8, 0, task="reach_quick", nthread=0)
    reach = make_vec_env("arm2", "quick", 8, 0, task="reach", nthread=0)
    np.testing.assert_array_equal(quick.reset(seed=0), reach.reset(seed=0))  # the same targets
    assert quick.episode_steps == 50 and reach.episode_steps == 200
    zero = np.zeros((8, quick.action_dim))
    for t in range(1, 51):
        _, _, terminated, truncated, info = quick.step(zero)
        assert bool(info["done"].all()) == (t == 50)  # every episode ends at 1 s, by time
    assert truncated.all() and not terminated.any()
    quick.close()
    reach.close()
