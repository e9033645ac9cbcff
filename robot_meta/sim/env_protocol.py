"""The batched env as the learners and the evaluator see it: the seam between ``sim`` and ``learn``.

Training (in-process, or on a Ray rollout worker) steps a :class:`~robot_meta.sim.vec_env.VecEnv`;
evaluation steps a ``VecEnv`` or a :class:`~robot_meta.sim.twin.TwinEnv`. Both are
:class:`~robot_meta.sim.batched_env.BatchedEnv`, but nothing in ``learn`` needs more than what this
protocol lists, so an env over another physics engine only has to provide these members.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from robot_meta.sim.randomize import Distribution
    from robot_meta.sim.robots.robot_def import RobotDef


class VecEnvLike(Protocol):
    """B envs of one robot and task, stepped together (the contract of ``BatchedEnv``).

    Shapes: observations (B, obs_dim), actions (B, action_dim) in [-1, 1], the privileged
    factors e (B, factor_dim) normalized to [-1, 1], the raw task params (B, factor_dim).
    """

    robot: RobotDef
    ranges: Mapping[str, Distribution]  # the family's distributions new tasks are drawn from
    params: np.ndarray  # (B, F) the true task params, in the robot's units
    num_envs: int
    obs_dim: int
    action_dim: int
    factor_dim: int
    episode_steps: int

    @property
    def factors(self) -> np.ndarray:
        """The privileged context e, (B, F) in [-1, 1]."""
        ...

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env (new tasks unless fixed); the observations (B, obs_dim)."""
        ...

    def next_episode(self) -> np.ndarray:
        """Start the next episode of every env without reseeding; the observations."""
        ...

    def set_params(self, idx: np.ndarray | slice, params: np.ndarray) -> None:
        """Give envs ``idx`` the task params ``params`` (len(idx), F)."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        """Apply actions (B, action_dim); obs, reward, terminated, truncated, info (``done``,
        ``final_obs``, ``episode_return``, ``reward_terms``, ...)."""
        ...

    def close(self) -> None:
        """Release the physics backend."""
        ...
