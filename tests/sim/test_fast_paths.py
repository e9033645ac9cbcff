"""The env's fast paths compute exactly what their plain definitions do: buffered random draws,
param vectors drawn ahead, the batched physics against ``mujoco.rollout``, and per-env model
fields."""

import mujoco
import numpy as np
import pytest
from mujoco import rollout

from robot_meta.sim import make_vec_env
from robot_meta.sim.batched_env import _Buffered
from robot_meta.sim.randomize import sample_params
from robot_meta.sim.robots import ROBOT_NAMES
from robot_meta.sim.servo_physics import build_model


@pytest.mark.parametrize("normal", [False, True])
def test_buffered_draws_equal_draws_one_call_at_a_time(normal: bool) -> None:
    sizes = [3, 1, 4096, 0, 5000, 7, 4095, 2]
    buf = _Buffered(np.random.default_rng(11), normal=normal)
    rng = np.random.default_rng(11)
    for n in sizes:
        direct = rng.standard_normal(n) if normal else rng.random(n)
        np.testing.assert_array_equal(buf.take(n), direct)


@pytest.mark.parametrize("normal", [False, True])
def test_buffered_skips_pass_over_the_same_numbers_as_takes(normal: bool) -> None:
    """skip(n) leaves the stream where take(n) would: what is taken after is the same."""
    ops = [("take", 3), ("skip", 5), ("take", 2), ("skip", 9000), ("take", 4), ("skip", 4090),
           ("skip", 3), ("take", 7000), ("skip", 1), ("take", 1)]
    buf = _Buffered(np.random.default_rng(12), normal=normal)
    rng = np.random.default_rng(12)
    for op, n in ops:
        direct = rng.standard_normal(n) if normal else rng.random(n)
        if op == "take":
            np.testing.assert_array_equal(buf.take(n), direct)
        else:
            buf.skip(n)


@pytest.mark.parametrize("resample_prob", [0.0, 0.2])
def test_env_params_are_sample_params_from_the_params_stream(resample_prob: float) -> None:
    """Every param vector the env uses is the next sample_params draw from its params
    generator, in the documented order: per-step redraws, then finished episodes."""
    B, seed = 8, 3
    env = make_vec_env("cartpole", "all", B, seed=seed, resample_prob=resample_prob)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])
    np.testing.assert_array_equal(env.params, sample_params(env.robot, env.ranges, rng, B))
    act = np.random.default_rng(0)
    n_done = n_redrawn = 0
    for _ in range(300):
        expected = env.params.copy()
        _, _, _, _, info = env.step(act.uniform(-1, 1, (B, 1)))
        done = info["done"]
        if resample_prob > 0:
            redraw = np.flatnonzero((rng.random(B) < resample_prob) & ~done)
            if len(redraw):
                expected[redraw] = sample_params(env.robot, env.ranges, rng, len(redraw))
                n_redrawn += len(redraw)
        if done.any():
            expected[done] = sample_params(env.robot, env.ranges, rng, int(done.sum()))
            n_done += int(done.sum())
        np.testing.assert_array_equal(env.params, expected)
    assert n_done > B  # the ahead-drawn block of params was used up and refilled
    assert n_redrawn > 0 or resample_prob == 0


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_backend_step_equals_mujoco_rollout(robot: str) -> None:
    """One control period of the batch is bit-identical to mujoco.rollout on the same models
    and states (a cold solver warmstart, controls held for every substep)."""
    B = 16
    env = make_vec_env(robot, "all", B, seed=1, nthread=2)
    rng = np.random.default_rng(0)
    for _ in range(30):  # varied states, some mid-episode, some just reset
        env.step(rng.uniform(-1, 1, (B, env.action_dim)))
    be = env.backend
    models, data = be.models, [mujoco.MjData(be.base_model)]
    pool = rollout.Rollout(nthread=0)
    for _ in range(25):
        state = be.full_physics_state()
        ctrl = rng.uniform(-1, 1, (B, env.action_dim))
        out = np.zeros((B, be.nsub, state.shape[1]))
        pool.rollout(models, data, state, np.repeat(ctrl[:, None], be.nsub, axis=1), state=out)
        be.step(ctrl)
        np.testing.assert_array_equal(be.full_physics_state(), out[:, -1])
    pool.close()


def test_model_fields_follow_each_envs_params() -> None:
    env = make_vec_env("arm2", "all", 6, seed=2)
    rng = np.random.default_rng(0)
    for _ in range(300):  # several resets of a few envs at a time
        env.step(rng.uniform(-1, 1, (6, 2)))
    r, names = env.robot, env.robot.factor_names
    base = build_model(r)
    for p, m in zip(env.params, env.backend.models, strict=True):
        v = dict(zip(names, p, strict=True))
        pl = m.body(r.payload_body)
        assert pl.mass[0] == v["payload_mass"]
        np.testing.assert_array_equal(pl.ipos, base.body(r.payload_body).ipos
                                      + v["payload_offset"] * np.asarray(r.payload_axis))
        for link in r.links:
            assert m.body(link).mass[0] == base.body(link).mass[0] * v[f"{link}_mass_scale"]
        for j, a in zip(r.actuated_joints, r.actuators, strict=True):
            assert m.actuator(a).gear[0] == base.actuator(a).gear[0] * v[f"{j}_strength"]
            assert m.actuator(a).gainprm[7] == v["supply_voltage"]  # the <dcmotor>'s supply
        for j in r.joints:
            assert m.joint(j).damping[0] == v[f"{j}_damping"]
            assert m.joint(j).frictionloss[0] == v[f"{j}_frictionloss"]


def test_set_params_one_env_at_a_time_equals_all_at_once() -> None:
    """The single-env fast path of set_params leaves the env exactly as the vectorized one."""
    a = make_vec_env("cartpole", "all", 4, seed=0, nthread=0)
    b = make_vec_env("cartpole", "all", 4, seed=0, nthread=0)
    P = sample_params(a.robot, a.ranges, np.random.default_rng(5), 4)
    a.set_params(np.arange(4), P)
    for i, idx in enumerate([np.array([0]), slice(1, 2), [2], np.array([-1])]):
        b.set_params(idx, P[i : i + 1])  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a._lag_rows, b._lag_rows)
    np.testing.assert_array_equal(a._sense, b._sense)
    np.testing.assert_array_equal(a.backend.params, b.backend.params)
    for ma, mb in zip(a.backend.models, b.backend.models, strict=True):
        np.testing.assert_array_equal(ma.body_mass, mb.body_mass)
        np.testing.assert_array_equal(ma.actuator_gear, mb.actuator_gear)
    rng = np.random.default_rng(0)
    for _ in range(50):
        act = rng.uniform(-1, 1, (4, 1))
        np.testing.assert_array_equal(a.step(act)[0], b.step(act)[0])
