"""Cartpole tasks: balance (start upright) and swing-up (start hanging down)."""

from __future__ import annotations

import numpy as np

from robot_meta.sim.task import Task, TaskState

from . import constants as C


class _CartpoleTask(Task):
    obs_names: tuple[str, ...] = (
        "cart_position [m]",
        "cos_pole_angle [1]",
        "sin_pole_angle [1]",
        "cart_velocity [m/s]",
        "pole_angular_velocity [rad/s]",
    )
    episode_steps = C.EPISODE_STEPS

    def observe(self, q: np.ndarray, dq: np.ndarray, state: TaskState, t: np.ndarray) -> np.ndarray:
        # [x, cos theta, sin theta, xdot, thetadot], written into one array (no stacking); a task
        # with more entries (obs_names) fills the columns after these
        obs = np.empty((q.shape[0], self.obs_dim))
        obs[:, 0] = q[:, 0]
        np.cos(q[:, 1], out=obs[:, 1])
        np.sin(q[:, 1], out=obs[:, 2])
        obs[:, 3:5] = dq
        return obs

    def upright(self, th: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def position(self, x: np.ndarray, state: TaskState, out: np.ndarray) -> None:
        """The cart-position term (the second reward term): centered = 1 - min(1, (x / x_soft)^2)."""
        np.subtract(1.0, np.minimum(1.0, (x / C.RAIL_SOFT_LIMIT) ** 2), out=out)

    def reward_terms_raw(self, q: np.ndarray, dq: np.ndarray, action: np.ndarray,
                         state: TaskState, t: np.ndarray, out: np.ndarray) -> None:
        x, th, thdot = q[:, 0], q[:, 1], dq[:, 1]
        upright, position, small_control, small_velocity = out
        self.upright(th, upright)
        self.position(x, state, position)
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


class Shift(Balance):
    """Move the balanced cartpole to a new rail position quickly: start upright near x = 0, target
    x* ~ U(-SHIFT, SHIFT), 2 s episodes. Moving the cart under an upright pole means first
    stepping the wrong way to tilt the pole toward the target, then catching it there; how hard
    that may be done depends on the cart motor's force and speed, the pole's mass and the
    latency, which a blind policy can only learn from the motion itself.

    at_target = exp(-(x - x*)^2 / (2 sigma^2)) with sigma = AT_TARGET_SIGMA; upright =
    max(cos theta, 0)."""

    name = "shift"
    obs_names = (*Balance.obs_names, "target_offset [m]")
    reward_weights = {"upright": 0.3, "at_target": 0.5, "small_control": 0.1, "small_velocity": 0.1}
    episode_steps = 100  # 2 s at 50 Hz
    SHIFT = 0.4  # m, target range
    AT_TARGET_SIGMA = 0.1  # m: at_target 0.61 at 10 cm, 0.14 at 20 cm

    def sample_task(self, rng: np.random.Generator, n: int) -> TaskState:
        return {"target": rng.uniform(-self.SHIFT, self.SHIFT, size=n)}  # x* ~ U(-SHIFT, SHIFT) m

    def observe(self, q: np.ndarray, dq: np.ndarray, state: TaskState, t: np.ndarray) -> np.ndarray:
        # [x, cos theta, sin theta, xdot, thetadot, x* - x]
        obs = super().observe(q, dq, state, t)
        np.subtract(state["target"], q[:, 0], out=obs[:, 5])
        return obs

    def position(self, x: np.ndarray, state: TaskState, out: np.ndarray) -> None:
        # at_target = exp(-(x - x*)^2 / (2 sigma^2))
        np.exp((x - state["target"]) ** 2 / (-2.0 * self.AT_TARGET_SIGMA**2), out=out)


TASKS = {"balance": Balance, "swingup": SwingUp, "shift": Shift}
