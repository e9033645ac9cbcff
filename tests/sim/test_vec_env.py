"""The batched env contract: seeding, shapes, auto-reset, terminated vs truncated, latency,
sensor noise and bias, per-step resampling, and valid models under every family."""

import numpy as np
import pytest

from robot_meta.sim import make_vec_env
from robot_meta.sim.randomize import load_families, params_from_dict
from robot_meta.sim.robots import ROBOT_NAMES


def _rollout(env, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    obs, rews = [env.reset(seed=seed)], []
    for _ in range(steps):
        o, r, *_ = env.step(rng.uniform(-1, 1, (env.num_envs, env.action_dim)))
        obs.append(o)
        rews.append(r)
    return np.array(obs), np.array(rews)


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_seeding_is_deterministic(robot: str) -> None:
    e1 = make_vec_env(robot, "all", 8, seed=5)
    e2 = make_vec_env(robot, "all", 8, seed=5)
    o1, r1 = _rollout(e1, 300, 0)
    o2, r2 = _rollout(e2, 300, 0)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(e1.params, e2.params)
    o3, _ = _rollout(e1, 300, 0)  # reset(seed) replays the same stream
    np.testing.assert_array_equal(o1, o3)
    o4, _ = _rollout(e1, 5, 1)
    assert not np.array_equal(o1[:6], o4)


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_shapes_rewards_and_autoreset(robot: str) -> None:
    env = make_vec_env(robot, "all", 16, seed=0)
    obs = env.reset()
    assert obs.shape == (16, env.obs_dim) and env.factors.shape == (16, env.factor_dim)
    rng = np.random.default_rng(0)
    n_done = 0
    for _ in range(env.episode_steps + 5):
        obs, rew, term, trunc, info = env.step(rng.uniform(-1, 1, (16, env.action_dim)))
        assert rew.shape == (16,) and np.all(rew >= 0) and np.all(rew <= 1)
        np.testing.assert_allclose(sum(info["reward_terms"].values()), rew)
        assert not np.any(term & trunc)
        if info["done"].any():
            d = info["done"]
            n_done += int(d.sum())
            assert np.all(info["episode_length"][d] <= env.episode_steps)
            assert np.all(info["episode_length"][trunc] == env.episode_steps)
            assert not np.array_equal(info["final_obs"][d], obs[d])
            assert np.all(env.t[d] == 0)
    assert n_done >= 16  # every env finished at least one episode


def test_cartpole_leaving_the_rail_terminates() -> None:
    env = make_vec_env("cartpole", "all", 4, seed=0)
    env.reset()
    for _ in range(env.episode_steps):
        _, _, term, trunc, info = env.step(np.ones((4, 1)))
        if term.any():
            assert np.all(np.abs(info["final_obs"][term, 0]) > 0.7)
            assert not trunc[term].any()
            return
    pytest.fail("full push never left the rail")


def test_latency_delays_the_action() -> None:
    env = make_vec_env("cartpole", "all", 3, seed=0, nthread=0)
    p = np.stack([params_from_dict(env.robot, {"latency_steps": k, "slider_frictionloss": 0.0},
                                   "t") for k in (0, 1, 2)])
    env.set_tasks(p)
    env.backend.set_state(np.arange(3), np.zeros((3, 2)), np.zeros((3, 2)))  # at rest, upright
    x = []
    for _ in range(4):
        _, _, _, _, info = env.step(np.full((3, 1), 0.5))
        x.append(env.backend.qpos[:, 0].copy())
    x = np.array(x)  # (steps, envs)
    # env k first moves at step k (0-based): before that the motor saw the zero-initialized buffer
    for k in range(3):
        assert np.all(x[:k, k] == 0.0) and x[k, k] > 0.0


def test_sensor_noise_and_bias_act_on_observations_only() -> None:
    env = make_vec_env("cartpole", "all", 2, seed=0, nthread=0)
    clean = params_from_dict(env.robot, {"slider_frictionloss": 0.0}, "t")
    noisy = params_from_dict(env.robot, {"pos_noise": 0.01, "slider_bias": 0.05,
                                         "slider_frictionloss": 0.0}, "t")
    env.set_tasks(np.stack([clean, noisy]))
    xs = []
    for _ in range(200):
        env.backend.set_state(np.arange(2), np.zeros((2, 2)), np.zeros((2, 2)))
        o, *_ = env.step(np.zeros((2, 1)))
        xs.append(o[:, 0])
    xs = np.array(xs)
    assert np.all(xs[:, 0] == 0.0)  # the clean env reads the true cart position
    assert xs[:, 1].mean() == pytest.approx(0.05, abs=0.003)  # bias
    assert xs[:, 1].std() == pytest.approx(0.01, rel=0.2)  # noise std
    np.testing.assert_array_equal(env.backend.qpos[:, 0], 0.0)  # the physics is untouched


def test_per_step_resampling_flag() -> None:
    fixed = make_vec_env("arm2", "payload", 4, seed=0)
    moving = make_vec_env("arm2", "payload", 4, seed=0, resample_prob=0.5)
    p0f, p0m = fixed.params.copy(), moving.params.copy()
    for _ in range(20):
        fixed.step(np.zeros((4, 2)))
        moving.step(np.zeros((4, 2)))
    np.testing.assert_array_equal(fixed.params, p0f)  # params change only between episodes
    assert np.mean(moving.params != p0m) > 0.1


def test_fixed_tasks_keep_params_across_episodes() -> None:
    env = make_vec_env("arm2", "payload", 4, seed=0, fixed_tasks=True)
    p0 = env.params.copy()
    for _ in range(env.episode_steps * 2 + 1):
        env.step(np.zeros((4, 2)))
    np.testing.assert_array_equal(env.params, p0)
    drawn = make_vec_env("arm2", "payload", 4, seed=0)
    for _ in range(env.episode_steps + 1):
        drawn.step(np.zeros((4, 2)))
    assert not np.array_equal(drawn.params, p0)


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_randomization_never_produces_an_invalid_model(robot: str) -> None:
    """Every family, both splits: 64 draws each, 60 steps of random bang-bang actions give
    positive masses, non-negative friction, positive gains and finite states."""
    for fam in load_families(robot).values():
        for split in ("train", "ood"):
            env = make_vec_env(robot, fam, 64, seed=1, split=split)
            rng = np.random.default_rng(0)
            for m in env.backend.models:
                assert np.all(m.body_mass >= 0) and np.all(m.body_mass[1:-1] > 0)
                assert np.all(m.dof_damping >= 0) and np.all(m.dof_frictionloss >= 0)
                assert np.all(m.actuator_gear[:, 0] > 0)
            for _ in range(60):
                obs, r, *_ = env.step(rng.choice([-1.0, 1.0], (64, env.action_dim)))
                assert np.all(np.isfinite(obs)) and np.all(np.isfinite(r))
                # no blow-up: full current on a near-frictionless arm link can reach ~200 rad/s
                assert np.all(np.abs(env.backend.qvel) < 500.0), (fam.name, split)
