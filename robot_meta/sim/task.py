"""The task contract shared by the MuJoCo env and the PyBullet twin.

A task is engine-agnostic: it sees joint positions and velocities as batched numpy arrays
(B, nq) and (B, nv) in the robot's joint order, and never touches a physics engine. That is what
lets the sim and the twin produce observations and rewards with the same code.

Conventions (dm_control): per-step rewards lie in [0, 1]. A reward is a weighted sum of named
terms, each in [0, 1], whose weights sum to 1; every term is reported. ``terminated`` means the
episode reached a terminal state (e.g. the cart left the rail); running out of time is
``truncated`` and is decided by the env from ``episode_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from robot_meta.sim.robots.robot_def import RobotDef

TaskState = dict[str, np.ndarray]


@dataclass(frozen=True)
class InitSpec:
    """Initial-state spread: uniform noise of these half-widths around the task's start pose."""

    qpos_noise: float = 0.05  # rad or m
    qvel_noise: float = 0.05  # rad/s or m/s


class Task:
    """Base class of a task on one robot. Subclasses set the class attributes and override
    ``start_pose``, ``sample_task``, ``observe`` and ``reward_terms_raw``."""

    name: str = ""
    obs_names: tuple[str, ...] = ()  # "name [unit]" for each observation entry
    reward_weights: dict[str, float] = {}
    episode_steps: int = 0

    def __init__(self, robot: RobotDef):
        self.robot = robot
        self.nq = len(robot.joints)
        self.dt = robot.control_dt
        total = sum(self.reward_weights.values())
        assert abs(total - 1.0) < 1e-9, f"{type(self).__name__}: reward weights sum to {total}"
        self._weights = np.array(list(self.reward_weights.values()))[:, None]  # (terms, 1)

    @property
    def obs_dim(self) -> int:
        return len(self.obs_names)

    @property
    def reward_terms(self) -> tuple[str, ...]:
        return tuple(self.reward_weights)

    # ---- episode start ------------------------------------------------------------------
    def start_pose(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The nominal start (qpos, qvel), shape (n, nq) each."""
        return np.zeros((n, self.nq)), np.zeros((n, self.nq))

    def sample_task(self, rng: np.random.Generator, n: int) -> TaskState:
        """Per-episode task variables (targets, trajectories), each an array with leading dim n."""
        return {}

    def initial_state(
        self, rng: np.random.Generator, n: int, init: InitSpec
    ) -> tuple[np.ndarray, np.ndarray, TaskState]:
        """Draw n start states and task variables."""
        q, dq = self.start_pose(n)
        # q0 ~ start + U(-qpos_noise, qpos_noise), qdot0 ~ U(-qvel_noise, qvel_noise), per joint
        q = q + rng.uniform(-init.qpos_noise, init.qpos_noise, size=q.shape)
        dq = dq + rng.uniform(-init.qvel_noise, init.qvel_noise, size=dq.shape)
        return q, dq, self.sample_task(rng, n)

    # ---- per step ----------------------------------------------------------------------
    def observe(self, q: np.ndarray, dq: np.ndarray, state: TaskState, t: np.ndarray) -> np.ndarray:
        """Observation (B, obs_dim) from *measured* joint state at step count t (B,)."""
        raise NotImplementedError

    def reward_terms_raw(
        self, q: np.ndarray, dq: np.ndarray, action: np.ndarray, state: TaskState, t: np.ndarray,
        out: np.ndarray,
    ) -> None:
        """Write the unweighted reward terms, each in [0, 1], into the rows of out (terms, B),
        in ``reward_terms`` order, from the *true* joint state after the step."""
        raise NotImplementedError

    def reward_matrix(
        self, q: np.ndarray, dq: np.ndarray, action: np.ndarray, state: TaskState, t: np.ndarray
    ) -> np.ndarray:
        """Weighted reward terms as the rows of one (terms, B) array, in ``reward_terms`` order
        (the env sums and accumulates them in one operation each)."""
        terms = np.empty((len(self._weights), q.shape[0]))
        self.reward_terms_raw(q, dq, action, state, t, terms)
        terms *= self._weights  # r_k = w_k * term_k
        return terms

    def rewards(
        self, q: np.ndarray, dq: np.ndarray, action: np.ndarray, state: TaskState, t: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Weighted reward terms, each (B,), from the *true* joint state after the step."""
        return dict(zip(self.reward_terms, self.reward_matrix(q, dq, action, state, t),
                        strict=True))

    def terminated(self, q: np.ndarray, dq: np.ndarray, state: TaskState) -> np.ndarray:
        """Terminal-state flags (B,)."""
        return np.zeros(q.shape[0], dtype=bool)
