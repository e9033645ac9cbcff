"""Cartpole tasks: balance (start upright) and swing-up (start hanging down)."""

from __future__ import annotations

import numpy as np

from robot_meta.sim.robots.cartpole import constants as C
from robot_meta.sim.task import Task, TaskState


class _CartpoleTask(Task):
    obs_names = (
        "cart_position [m]",
        "cos_pole_angle [1]",
        "sin_pole_angle [1]",
        "cart_velocity [m/s]",
        "pole_angular_velocity [rad/s]",
    )
    episode_steps = C.EPISODE_STEPS

    def observe(self, q: np.ndarray, dq: np.ndarray, state: TaskState, t: np.ndarray) -> np.ndarray:
        x, th = q[:, 0], q[:, 1]
        return np.stack([x, np.cos(th), np.sin(th), dq[:, 0], dq[:, 1]], axis=1)

    def upright(self, th: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rewards(self, q: np.ndarray, dq: np.ndarray, action: np.ndarray, state: TaskState,
                t: np.ndarray) -> dict[str, np.ndarray]:
        w = self.reward_weights
        x, th, thdot = q[:, 0], q[:, 1], dq[:, 1]
        # centered = 1 - min(1, (x / x_soft)^2)
        centered = 1.0 - np.minimum(1.0, (x / C.RAIL_SOFT_LIMIT) ** 2)
        # small_control = 1 - mean_i a_i^2, a in [-1, 1]
        small_control = 1.0 - np.mean(action**2, axis=1)
        # small_velocity = exp(-thetadot^2 / 25): 1 at rest, 0.37 at 5 rad/s
        small_velocity = np.exp(-(thdot**2) / 25.0)
        return {
            "upright": w["upright"] * self.upright(th),
            "centered": w["centered"] * centered,
            "small_control": w["small_control"] * small_control,
            "small_velocity": w["small_velocity"] * small_velocity,
        }

    def terminated(self, q: np.ndarray, dq: np.ndarray, state: TaskState) -> np.ndarray:
        # The cart left the safe part of the rail, before the hard stops.
        result: np.ndarray = np.abs(q[:, 0]) > C.RAIL_SOFT_LIMIT
        return result


class Balance(_CartpoleTask):
    """Keep the pole upright from a near-upright start. upright = max(cos theta, 0)."""

    name = "balance"
    reward_weights = {"upright": 0.6, "centered": 0.2, "small_control": 0.1, "small_velocity": 0.1}

    def upright(self, th: np.ndarray) -> np.ndarray:
        return np.maximum(np.cos(th), 0.0)


class SwingUp(_CartpoleTask):
    """Swing the pole up from hanging and keep it there. upright = (cos theta + 1) / 2."""

    name = "swingup"
    reward_weights = {"upright": 0.6, "centered": 0.2, "small_control": 0.1, "small_velocity": 0.1}

    def start_pose(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros((n, 2))
        q[:, 1] = np.pi
        return q, np.zeros((n, 2))

    def upright(self, th: np.ndarray) -> np.ndarray:
        return (np.cos(th) + 1.0) / 2.0


TASKS = {"balance": Balance, "swingup": SwingUp}
