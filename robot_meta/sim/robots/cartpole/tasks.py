"""Cartpole tasks: balance (start upright) and swing-up (start hanging down)."""

from __future__ import annotations

import numpy as np

from robot_meta.sim.task import Task, TaskState

from . import constants as C


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
        # [x, cos theta, sin theta, xdot, thetadot], written into one array (no stacking)
        obs = np.empty((q.shape[0], 5))
        obs[:, 0] = q[:, 0]
        np.cos(q[:, 1], out=obs[:, 1])
        np.sin(q[:, 1], out=obs[:, 2])
        obs[:, 3:5] = dq
        return obs

    def upright(self, th: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def reward_terms_raw(self, q: np.ndarray, dq: np.ndarray, action: np.ndarray,
                         state: TaskState, t: np.ndarray, out: np.ndarray) -> None:
        x, th, thdot = q[:, 0], q[:, 1], dq[:, 1]
        upright, centered, small_control, small_velocity = out
        self.upright(th, upright)
        # centered = 1 - min(1, (x / x_soft)^2)
        np.subtract(1.0, np.minimum(1.0, (x / C.RAIL_SOFT_LIMIT) ** 2), out=centered)
        # small_control = 1 - mean_i a_i^2, a in [-1, 1] (one motor: the mean is a^2 itself)
        np.subtract(1.0, action[:, 0] ** 2, out=small_control)
        # small_velocity = exp(-thetadot^2 / 25): 1 at rest, 0.37 at 5 rad/s
        np.exp(thdot**2 / -25.0, out=small_velocity)

    def terminated(self, q: np.ndarray, dq: np.ndarray, state: TaskState) -> np.ndarray:
        # The cart left the safe part of the rail, before the hard stops.
        result: np.ndarray = np.abs(q[:, 0]) > C.RAIL_SOFT_LIMIT
        return result


class Balance(_CartpoleTask):
    """Keep the pole upright from a near-upright start. upright = max(cos theta, 0)."""

    name = "balance"
    reward_weights = {"upright": 0.6, "centered": 0.2, "small_control": 0.1, "small_velocity": 0.1}

    def upright(self, th: np.ndarray, out: np.ndarray) -> None:
        np.maximum(np.cos(th), 0.0, out=out)


class SwingUp(_CartpoleTask):
    """Swing the pole up from hanging and keep it there. upright = (cos theta + 1) / 2."""

    name = "swingup"
    reward_weights = {"upright": 0.6, "centered": 0.2, "small_control": 0.1, "small_velocity": 0.1}

    def start_pose(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros((n, 2))
        q[:, 1] = np.pi
        return q, np.zeros((n, 2))

    def upright(self, th: np.ndarray, out: np.ndarray) -> None:
        np.divide(np.cos(th) + 1.0, 2.0, out=out)


TASKS = {"balance": Balance, "swingup": SwingUp}
