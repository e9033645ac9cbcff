"""Gymnasium adapters of the batched MuJoCo env: a single ``gymnasium.Env`` and a
``gymnasium.vector.VectorEnv`` (same-step auto-reset, as the batched env does it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from robot_meta.sim.randomize import FamilySpec
from robot_meta.sim.vec_env import VecEnv, make_vec_env


def _spaces(env: VecEnv) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    # Every observation is a bounded physical quantity; 1e3 is far beyond any of them.
    obs = gym.spaces.Box(-1e3, 1e3, shape=(env.obs_dim,), dtype=np.float64)
    act = gym.spaces.Box(-1.0, 1.0, shape=(env.action_dim,), dtype=np.float64)
    return obs, act


class GymEnv(gym.Env[np.ndarray, np.ndarray]):
    """One domain-randomized env. Observations are float64; actions lie in [-1, 1] (normalized
    motor current). ``info`` carries the reward terms and the privileged factor vector."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, robot: str, family: str | Path | FamilySpec = "all", seed: int | None = None,
                 *, task: str | None = None, split: str = "train"):
        self._seed = 0 if seed is None else seed
        self.env = make_vec_env(robot, family, 1, self._seed, task=task, split=split, nthread=0)
        self.observation_space, self.action_space = _spaces(self.env)
        self.spec_robot = robot

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs = self.env.reset(seed=seed) if seed is not None else self.env.next_episode()
        return obs[0], {"factors": self.env.factors[0].copy()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, rew, term, trunc, info = self.env.step(np.asarray(action, dtype=float)[None])
        out = {k: float(v[0]) for k, v in info["reward_terms"].items()}
        if info["done"][0]:
            obs = info["final_obs"]
        return obs[0], float(rew[0]), bool(term[0]), bool(trunc[0]), {"reward_terms": out}

    def close(self) -> None:
        self.env.close()


class GymVectorEnv(VectorEnv):
    """B envs as a Gymnasium VectorEnv with same-step auto-reset: on a finished step the
    returned observation starts the next episode, and ``info["final_obs"]`` (masked by
    ``info["_final_obs"]``) holds the last one of the finished episode."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, robot: str, family: str | Path | FamilySpec = "all", num_envs: int = 8,
                 seed: int = 0, *, task: str | None = None, split: str = "train",
                 nthread: int = 2):
        self.env = make_vec_env(robot, family, num_envs, seed, task=task, split=split,
                                nthread=nthread)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.env)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, list):
            seed = seed[0]
        obs = self.env.reset(seed=seed)
        return obs, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        obs, rew, term, trunc, info = self.env.step(actions)
        out: dict[str, Any] = dict(info["reward_terms"])
        if info["done"].any():
            out["final_obs"] = np.array(list(info["final_obs"]), dtype=object)
            out["_final_obs"] = info["done"].copy()
        return obs, rew, term, trunc, out

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def make_gym_env(robot: str, family: str | Path | FamilySpec = "all", seed: int | None = None,
                 *, task: str | None = None, split: str = "train") -> GymEnv:
    """A single ``gymnasium.Env`` of the robot's task family (passes ``check_env``)."""
    return GymEnv(robot, family, seed, task=task, split=split)


def make_gym_vector_env(robot: str, family: str | Path | FamilySpec = "all", num_envs: int = 8,
                        seed: int = 0, *, task: str | None = None,
                        split: str = "train") -> GymVectorEnv:
    """A ``gymnasium.vector.VectorEnv`` over the batched MuJoCo env."""
    return GymVectorEnv(robot, family, num_envs, seed, task=task, split=split)
