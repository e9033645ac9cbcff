"""Arm2 tasks: reach a target and hold it there, and track a target moving on a circle.

Positions are in the arm plane (x, z) relative to the shoulder; the forward kinematics with
angles from the downward vertical are
    p_elbow = l1 (sin q1, -cos q1),   p_tip = p_elbow + l2 (sin(q1+q2), -cos(q1+q2)).
"""

from __future__ import annotations

import numpy as np

from robot_meta.sim.task import Task, TaskState

from . import constants as C

REACH_SIGMA = 0.05  # m: reach = exp(-d^2 / (2 sigma^2)), 0.61 at 5 cm, 0.14 at 10 cm


_L = np.array([C.LINK1_LENGTH, C.LINK2_LENGTH])


def tip_position(q: np.ndarray) -> np.ndarray:
    """End-effector (x, z) relative to the shoulder, (B, 2)."""
    x, z = _tip_xz(q)
    return np.stack([x, z], axis=1)


def _tip_xz(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tip's x and z (B,) each, as tip_position computes them."""
    q_abs = q.copy()
    q_abs[:, 1] += q[:, 0]  # (q1, q1 + q2): absolute link angles
    return np.sin(q_abs).dot(_L), -np.cos(q_abs).dot(_L)


class _Arm2Task(Task):
    obs_names = (
        "cos_shoulder [1]", "sin_shoulder [1]", "cos_elbow [1]", "sin_elbow [1]",
        "shoulder_velocity [rad/s]", "elbow_velocity [rad/s]",
        "target_x [m]", "target_z [m]", "target_vx [m/s]", "target_vz [m/s]",
        "error_x [m]", "error_z [m]",
    )
    episode_steps = C.EPISODE_STEPS

    def target(self, state: TaskState, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target position and velocity (B, 2) at step count t."""
        raise NotImplementedError

    def observe(self, q: np.ndarray, dq: np.ndarray, state: TaskState, t: np.ndarray) -> np.ndarray:
        # [cos q1, sin q1, cos q2, sin q2, qdot, p, v, p - tip], written into one array
        p, v = self.target(state, t)
        x, z = _tip_xz(q)
        obs = np.empty((q.shape[0], self.obs_dim))
        np.cos(q, out=obs[:, 0:4:2])  # columns 0 and 2
        np.sin(q, out=obs[:, 1:4:2])  # columns 1 and 3
        obs[:, 4:6] = dq
        obs[:, 6:8] = p
        obs[:, 8:10] = v
        np.subtract(p[:, 0], x, out=obs[:, 10])
        np.subtract(p[:, 1], z, out=obs[:, 11])
        return obs

    def reward_terms_raw(self, q: np.ndarray, dq: np.ndarray, action: np.ndarray,
                         state: TaskState, t: np.ndarray, out: np.ndarray) -> None:
        p, _ = self.target(state, t)
        x, z = _tip_xz(q)
        d2 = (x - p[:, 0]) ** 2 + (z - p[:, 1]) ** 2  # |tip - p|^2
        # reach = exp(-d^2 / (2 sigma^2))
        np.exp(d2 / (-2.0 * REACH_SIGMA**2), out=out[0])
        # small_control = 1 - mean_i a_i^2  (np.mean's sum / count)
        np.subtract(1.0, np.add.reduce(action**2, axis=1) / action.shape[1], out=out[1])
        if len(out) > 2:
            # small_velocity = exp(-|qdot|^2 / 8): 1 at rest, 0.37 at 2.8 rad/s
            np.exp(np.add.reduce(dq**2, axis=1) / -8.0, out=out[2])


class Reach(_Arm2Task):
    """Reach a fixed target drawn in the upper and lower workspace, and hold it against gravity.

    target = r (sin phi, -cos phi), r ~ U(0.2, 0.42) m, phi ~ U(-2.2, 2.2) rad from hanging.
    """

    name = "reach"
    reward_weights = {"reach": 0.8, "small_control": 0.1, "small_velocity": 0.1}

    def sample_task(self, rng: np.random.Generator, n: int) -> TaskState:
        r = rng.uniform(0.2, 0.42, size=n)  # r ~ U(0.2, 0.42) m
        phi = rng.uniform(-2.2, 2.2, size=n)  # phi ~ U(-2.2, 2.2) rad
        return {"target": np.stack([r * np.sin(phi), -r * np.cos(phi)], axis=1)}

    def target(self, state: TaskState, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = state["target"]
        return p, np.zeros(p.shape)


class Track(_Arm2Task):
    """Track a target on a circle: p(t) = c + rho (cos(w t + psi), sin(w t + psi)).

    Centre at distance U(0.22, 0.3) m and angle U(-1.8, 1.8) rad from hanging,
    rho ~ U(RHO) = U(0.05, 0.1) m, |w| ~ U(OMEGA) = U(1, 2) rad/s with a random sign,
    psi ~ U(0, 2 pi).
    """

    name = "track"
    reward_weights = {"reach": 0.9, "small_control": 0.1}
    RHO = (0.05, 0.1)  # m, circle radius range
    OMEGA = (1.0, 2.0)  # rad/s, angular speed range

    def sample_task(self, rng: np.random.Generator, n: int) -> TaskState:
        cr = rng.uniform(0.22, 0.30, size=n)  # centre distance ~ U(0.22, 0.3) m
        cphi = rng.uniform(-1.8, 1.8, size=n)  # centre angle ~ U(-1.8, 1.8) rad
        rho = rng.uniform(*self.RHO, size=n)  # radius ~ U(RHO) m
        omega = rng.uniform(*self.OMEGA, size=n) * rng.choice([-1.0, 1.0], size=n)  # |w| ~ U(OMEGA)
        psi = rng.uniform(0.0, 2.0 * np.pi, size=n)  # phase ~ U(0, 2 pi)
        centre = np.stack([cr * np.sin(cphi), -cr * np.cos(cphi)], axis=1)
        return {"centre": centre, "rho": rho, "omega": omega, "psi": psi}

    def target(self, state: TaskState, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ang = state["omega"] * (t * self.dt) + state["psi"]
        rho, om = state["rho"], state["omega"]
        c, s = np.cos(ang), np.sin(ang)
        # p = centre + rho (cos, sin),  v = rho omega (-sin, cos)
        p = state["centre"].copy()
        p[:, 0] += rho * c
        p[:, 1] += rho * s
        v = np.empty(p.shape)
        rw = rho * om
        np.multiply(rw, -s, out=v[:, 0])
        np.multiply(rw, c, out=v[:, 1])
        return p, v


class TrackFast(Track):
    """Track a target circling fast, where the servos' torque-speed line binds: as ``track`` with
    |w| ~ U(2.5, 4) rad/s and rho ~ U(0.06, 0.12) m (tip speeds up to 0.48 m/s, centripetal
    accelerations up to 1.9 m/s^2), so payload, supply voltage and latency shape the motion.
    """

    name = "track_fast"
    RHO = (0.06, 0.12)
    OMEGA = (2.5, 4.0)


class ReachQuick(Reach):
    """Reach under time pressure: as ``reach``, in an episode of 1 s (50 steps), so most of the
    return is earned or lost in the move itself, where the torque-speed line, the payload and
    the latency decide how hard the arm may accelerate and when it must brake."""

    name = "reach_quick"
    episode_steps = 50


TASKS = {"reach": Reach, "reach_quick": ReachQuick, "track": Track, "track_fast": TrackFast}
