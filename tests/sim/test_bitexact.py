"""Golden trajectories: the env's observations, rewards and infos are bit-identical to those
recorded (in ``tests/fixtures/golden_trajectories.npz``) with the code before the speed-up work
of issue 25, for every task family of both robots, both tasks, per-step resampling, the OOD
split, and the PyBullet twin (which shares the env core).

Each case steps a small batch with a fixed seed and a fixed action sequence (actions beyond
[-1, 1] exercise the clip). Episodes are shortened and staggered so auto-resets come in groups
of 1, 2 and 5 envs as well as all of them at once (the env core's distinct reset paths).

Regenerate (only when a change of results is intended, and say so in the commit):
    PYTHONPATH=. python -m tests.sim.test_bitexact --write
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot_meta.sim import make_vec_env
from robot_meta.sim.batched_env import BatchedEnv

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "golden_trajectories.npz"
B, STEPS, EPISODE = 8, 30, 12
# Start step counts: envs 5-6 and 7 run ahead, so resets come as {7}, {5, 6}, {0..4}, ...
T0 = np.array([0, 0, 0, 0, 0, 3, 3, 7])

# (robot, family, task, split, resample_prob) per case; task None = the robot's default.
CASES: dict[str, tuple[str, str, str | None, str, float | None]] = {}
for _robot, _other in (("cartpole", "swingup"), ("arm2", "track")):
    for _fam in ("friction", "mass", "payload", "all", "servo"):
        CASES[f"{_robot}-{_fam}"] = (_robot, _fam, None, "train", None)
    CASES[f"{_robot}-all-{_other}"] = (_robot, "all", _other, "train", None)
    CASES[f"{_robot}-all-resample"] = (_robot, "all", None, "train", 0.2)
    CASES[f"{_robot}-servo-ood"] = (_robot, "servo", None, "ood", None)
TWIN_CASES = {"twin-cartpole": "cartpole", "twin-arm2": "arm2"}
# Cartpole driven off the rail: terminations (about 50 steps of full drive), episodes unchanged.
RAIL_CASES = {"cartpole-all-offrail": "all", "cartpole-servo-offrail": "servo"}


def _actions(env: BatchedEnv, steps: int, seed: int, low: float = -1.3) -> np.ndarray:
    """A fixed action sequence (steps, B, nu), a ~ U(low, 1.3): a share of it is clipped."""
    return np.random.default_rng(seed).uniform(low, 1.3, (steps, env.num_envs, env.nu))


def _record(env: BatchedEnv, steps: int, seed: int, low: float = -1.3) -> dict[str, np.ndarray]:
    """Step env from its current state through the fixed actions; every output, stacked."""
    out: dict[str, list[Any]] = {k: [] for k in (
        "obs", "reward", "terminated", "truncated", "done", "terms", "applied",
        "final_step", "final_obs", "episode_return", "episode_length", "episode_terms")}
    out["obs"].append(env.obs.copy())
    for k, a in enumerate(_actions(env, steps, seed, low)):
        o, r, term, trunc, info = env.step(a)
        out["obs"].append(o)
        out["reward"].append(r)
        out["terminated"].append(term)
        out["truncated"].append(trunc)
        out["done"].append(info["done"])
        out["terms"].append(np.stack(list(info["reward_terms"].values())))
        out["applied"].append(info["applied_action"])
        if "final_obs" in info:
            out["final_step"].append(k)
            out["final_obs"].append(info["final_obs"])
            out["episode_return"].append(info["episode_return"])
            out["episode_length"].append(info["episode_length"])
            out["episode_terms"].append(np.stack(list(info["episode_terms"].values())))
    res = {k: np.asarray(v) for k, v in out.items()}
    res["params"] = env.params.copy()  # the params in force at the end (redraws included)
    return res


def _sim_case(name: str) -> dict[str, np.ndarray]:
    robot, family, task, split, resample = CASES[name]
    env = make_vec_env(robot, family, B, seed=7, task=task, split=split, resample_prob=resample)
    env.episode_steps = EPISODE
    env.t[:] = T0  # stagger the episodes (only the step counter; the state is a fresh reset)
    try:
        return _record(env, STEPS, seed=1)
    finally:
        env.close()


def _rail_case(name: str) -> dict[str, np.ndarray]:
    env = make_vec_env("cartpole", RAIL_CASES[name], 3, seed=11)
    try:
        return _record(env, 70, seed=3, low=0.6)
    finally:
        env.close()


def _twin_case(name: str) -> dict[str, np.ndarray]:
    from robot_meta.sim.randomize import load_family, sample_params
    from robot_meta.sim.robots import get_robot
    from robot_meta.sim.twin import make_twin_env

    rdef = get_robot(TWIN_CASES[name])
    fam = load_family(rdef, "servo")
    params = sample_params(rdef, fam.ranges("train"), np.random.default_rng(5), 2)
    env = make_twin_env(rdef, params, num_envs=2, seed=3)
    env.episode_steps = 12
    try:
        return _record(env, 15, seed=2)
    finally:
        env.close()


def _case(name: str) -> dict[str, np.ndarray]:
    if name in TWIN_CASES:
        return _twin_case(name)
    return _rail_case(name) if name in RAIL_CASES else _sim_case(name)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as f:
        return dict(f)


@pytest.mark.parametrize("name", [*CASES, *RAIL_CASES, *TWIN_CASES])
def test_trajectory_is_bit_identical_to_the_recording(name: str, golden: dict[str, np.ndarray]
                                                      ) -> None:
    got = _case(name)
    keys = sorted(k.split("/", 1)[1] for k in golden if k.startswith(name + "/"))
    assert keys == sorted(got), f"{name}: recorded keys {keys}, got {sorted(got)}"
    for k in keys:
        want = golden[f"{name}/{k}"]
        if k == "params" and got[k].shape[1] > want.shape[1]:
            # factors a robot appended since the recording (extra_factors, e.g. the cartpole's
            # slider_force): outside these families they stay nominal, and the rest is unchanged
            from robot_meta.sim.randomize import nominal_params
            from robot_meta.sim.robots import get_robot

            nominal = nominal_params(get_robot(TWIN_CASES.get(name, name.split("-")[0])))
            assert np.array_equal(got[k][:, want.shape[1]:],
                                  np.broadcast_to(nominal[want.shape[1]:], got[k][:, want.shape[1]:].shape))
            got[k] = got[k][:, :want.shape[1]]
        assert got[k].dtype == want.dtype and got[k].shape == want.shape, (name, k)
        assert np.array_equal(got[k], want), f"{name}/{k}: differs from the recording"


def test_cases_exercise_resets_of_one_few_and_many_envs(golden: dict[str, np.ndarray]) -> None:
    """The recording covers what it claims: resets of 1, 2 and 5 envs, terminations, and
    clipped actions."""
    sizes = {int(d.sum()) for n in CASES for d in golden[f"{n}/done"]}
    assert {1, 2, 5} <= sizes
    assert all(golden[f"{n}/terminated"].any() for n in RAIL_CASES)
    assert all((np.abs(golden[f"{n}/applied"]) == 1.0).any() for n in CASES)


def write(path: Path = FIXTURE) -> None:
    """Record every case with the current code into ``path``."""
    names = [*CASES, *RAIL_CASES, *TWIN_CASES]
    arrays = {f"{n}/{k}": v for n in names for k, v in _case(n).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    print(f"wrote {len(arrays)} arrays to {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.sim.test_bitexact --write")
    write()
