"""The env core shared by the batched MuJoCo env and the PyBullet twin.

It owns everything that is not physics: task-parameter draws, initial states, actuation
latency, sensor noise and bias, observations, named reward terms, episode bookkeeping and
auto-reset. A :class:`PhysicsBackend` owns the engine. Contract (dm_control / Gymnasium):

* ``step`` holds each action for ``control_dt`` = ``substeps * physics_dt`` (zero-order hold).
* ``terminated`` is a terminal state of the task; ``truncated`` is the time limit. They are
  never both true.
* Auto-reset: a finished env is reset inside ``step``; the last observation of the finished
  episode is in ``info["final_obs"]`` (rows where ``info["done"]``), and the returned
  observation is the first of the next episode.
* Seeding happens only in ``reset(seed)`` (and the constructor's ``seed``), from one
  ``SeedSequence`` split into independent generators for params, initial states and noise.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from robot_meta.sim.randomize import FamilySpec, normalize_params, sample_params
from robot_meta.sim.robots.robot_def import RobotDef
from robot_meta.sim.task import InitSpec, Task


class PhysicsBackend(Protocol):
    """What the env core needs from a physics engine, for B independent envs."""

    num_envs: int
    qpos: np.ndarray  # (B, nq), the current joint positions
    qvel: np.ndarray  # (B, nv), the current joint velocities

    def set_params(self, idx: np.ndarray, params: np.ndarray) -> None:
        """Apply the physics factors of params (k, F) to envs idx (k,)."""

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Set the joint state of envs idx."""

    def step(self, ctrl: np.ndarray) -> None:
        """Advance every env by one control period holding ctrl (B, nu) in [-1, 1]."""

    def close(self) -> None: ...


class BatchedEnv:
    """B envs of one robot and task, with domain randomization, over any physics backend.

    Args:
        robot: the robot definition.
        task: the task instance.
        backend: the physics engine holding B envs.
        family: the task family to draw params from (None: ``params`` must be given).
        split: ``train`` or ``ood``: which ranges of the family to draw from.
        params: fixed params, (F,) or (B, F). Overrides the family; tasks never change.
        fixed_tasks: keep each env's params across episodes (draw once per ``reset``); used to
            run several rollouts on the same task for adaptation.
        resample_prob: per-step probability of redrawing an env's params (RMA-style), default
            from the family.
        seed: the run seed; every random number of the env derives from it.
    """

    def __init__(
        self,
        robot: RobotDef,
        task: Task,
        backend: PhysicsBackend,
        *,
        family: FamilySpec | None = None,
        split: str = "train",
        params: np.ndarray | None = None,
        fixed_tasks: bool = False,
        resample_prob: float | None = None,
        init: InitSpec | None = None,
        seed: int = 0,
    ):
        if family is None and params is None:
            raise ValueError("give a task family or fixed params")
        self.robot, self.task, self.backend = robot, task, backend
        self.family = family
        self.split = split
        self.ranges = family.ranges(split) if family is not None else {}
        self.num_envs = B = backend.num_envs
        self.nq = len(robot.joints)
        self.nu = len(robot.actuators)
        self.obs_dim = task.obs_dim
        self.action_dim = self.nu
        self.factor_dim = len(robot.factors)
        self.episode_steps = task.episode_steps
        self.control_dt = robot.control_dt
        self.fixed_tasks = fixed_tasks or params is not None
        self._fixed_params = None if params is None else np.broadcast_to(
            np.asarray(params, dtype=float), (B, self.factor_dim)).copy()
        if resample_prob is None:
            resample_prob = family.resample_prob if family is not None else 0.0
        self.resample_prob = 0.0 if params is not None else resample_prob
        self.init = init or (family.init if family is not None else InitSpec())
        self._seed = seed

        names = robot.factor_names
        kinds = [f.kind for f in robot.factors]
        self._i_latency = kinds.index("latency_steps")
        self._i_pos_noise = kinds.index("pos_noise")
        self._i_vel_noise = kinds.index("vel_noise")
        self._i_bias = [names.index(f"{j}_bias") for j in robot.joints]
        lat_max = int(robot.factor("latency_steps").bounds[1])
        self._L = lat_max + 1  # action ring-buffer length

        self.params = np.zeros((B, self.factor_dim))
        self._latency = np.zeros(B, dtype=np.int64)
        self._bias = np.zeros((B, self.nq))
        self._pos_noise = np.zeros((B, 1))
        self._vel_noise = np.zeros((B, 1))
        self.t = np.zeros(B, dtype=np.int64)
        self.task_state: dict[str, np.ndarray] = {}
        self._act_buf = np.zeros((B, self._L, self.nu))
        self._buf_pos = 0
        self._ar = np.arange(B)
        self.ep_return = np.zeros(B)
        self.ep_terms = {k: np.zeros(B) for k in task.reward_terms}
        self.obs = np.zeros((B, self.obs_dim))
        self._seed_rngs(seed)

    # ---- seeding -----------------------------------------------------------------------------
    def _seed_rngs(self, seed: int) -> None:
        ss = np.random.SeedSequence(seed)
        s_params, s_init, s_noise = ss.spawn(3)
        self.rng_params = np.random.default_rng(s_params)
        self.rng_init = np.random.default_rng(s_init)
        self.rng_noise = np.random.default_rng(s_noise)

    # ---- params ------------------------------------------------------------------------------
    def _draw_params(self, n: int) -> np.ndarray:
        return sample_params(self.robot, self.ranges, self.rng_params, n)

    def set_params(self, idx: np.ndarray | slice, params: np.ndarray) -> None:
        """Give envs idx new params (k, F) now; the physics changes from the next step."""
        idx = self._ar[idx]
        params = np.broadcast_to(np.asarray(params, dtype=float), (len(idx), self.factor_dim))
        self.params[idx] = params
        self.backend.set_params(idx, params)
        # Cached per-env views of the core factors, used every step.
        self._latency[idx] = params[:, self._i_latency].astype(np.int64)
        self._bias[idx] = params[:, self._i_bias]
        self._pos_noise[idx, 0] = params[:, self._i_pos_noise]
        self._vel_noise[idx, 0] = params[:, self._i_vel_noise]

    def set_tasks(self, params: np.ndarray) -> np.ndarray:
        """Fix every env to the given params (F,) or (B, F) and reset. Returns observations."""
        self._fixed_params = np.broadcast_to(np.asarray(params, dtype=float),
                                             (self.num_envs, self.factor_dim)).copy()
        self.fixed_tasks = True
        self.resample_prob = 0.0
        self.set_params(slice(None), self._fixed_params)
        self._reset_envs(self._ar)
        return self.obs.copy()

    @property
    def factors(self) -> np.ndarray:
        """The privileged context: normalized true factor vector (B, F); see normalize_params."""
        return normalize_params(self.robot, self.params)

    # ---- reset -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env (drawing new params unless fixed). Returns observations (B, obs_dim)."""
        if seed is not None:
            self._seed = seed
        self._seed_rngs(self._seed)
        if self._fixed_params is not None:
            params = self._fixed_params
        else:
            params = self._draw_params(self.num_envs)
        self.set_params(slice(None), params)
        self._reset_envs(self._ar)
        return self.obs.copy()

    def next_episode(self) -> np.ndarray:
        """Start the next episode of every env from the current random streams (new params
        unless tasks are fixed, new start states), without reseeding. Returns observations."""
        if not self.fixed_tasks:
            self.set_params(slice(None), self._draw_params(self.num_envs))
        self._reset_envs(self._ar)
        return self.obs.copy()

    def _reset_envs(self, idx: np.ndarray) -> None:
        n = len(idx)
        q, dq, state = self.task.initial_state(self.rng_init, n, self.init)
        self.backend.set_state(idx, q, dq)
        if not self.task_state:
            self.task_state = {k: np.zeros((self.num_envs,) + v.shape[1:]) for k, v in state.items()}
        for k, v in state.items():
            self.task_state[k][idx] = v
        self.t[idx] = 0
        self._act_buf[idx] = 0.0
        self.ep_return[idx] = 0.0
        for v in self.ep_terms.values():
            v[idx] = 0.0
        self.obs[idx] = self._observe(idx)

    # ---- sensing -----------------------------------------------------------------------------
    def _observe(self, idx: np.ndarray | slice) -> np.ndarray:
        """Observations of envs idx from noisy, biased joint readings:
        q_meas = q + b + sigma_q * N(0, 1),  qdot_meas = qdot + sigma_qd * N(0, 1)."""
        q = self.backend.qpos[idx]
        dq = self.backend.qvel[idx]
        noise = self.rng_noise.standard_normal((2,) + q.shape)
        q_meas = q + self._bias[idx] + self._pos_noise[idx] * noise[0]
        dq_meas = dq + self._vel_noise[idx] * noise[1]
        if isinstance(idx, slice):
            state, t = self.task_state, self.t
        else:
            state, t = {k: v[idx] for k, v in self.task_state.items()}, self.t[idx]
        return self.task.observe(q_meas, dq_meas, state, t)

    # ---- step --------------------------------------------------------------------------------
    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        """Apply actions (B, nu) in [-1, 1] (clipped). Returns obs, reward, terminated,
        truncated, info. ``info`` holds ``reward_terms`` {name: (B,)}, ``done`` (B,),
        ``final_obs`` (B, obs_dim), ``episode_return`` and ``episode_length`` (valid where done),
        and ``applied_action`` (the delayed action that reached the motors)."""
        a = np.clip(np.asarray(action, dtype=float).reshape(self.num_envs, self.nu), -1.0, 1.0)
        # Latency: the motors receive the action commanded L_i steps ago (zeros before t = 0).
        self._buf_pos = (self._buf_pos + 1) % self._L
        self._act_buf[:, self._buf_pos] = a
        applied = self._act_buf[self._ar, (self._buf_pos - self._latency) % self._L]
        self.backend.step(applied)
        self.t += 1

        q, dq = self.backend.qpos, self.backend.qvel
        terms = self.task.rewards(q, dq, a, self.task_state, self.t)
        reward = np.sum(list(terms.values()), axis=0) if len(terms) > 1 else next(iter(terms.values()))
        terminated = self.task.terminated(q, dq, self.task_state)
        truncated = (self.t >= self.episode_steps) & ~terminated
        done = terminated | truncated
        self.ep_return += reward
        for k, v in terms.items():
            self.ep_terms[k] += v
        self.obs = self._observe(slice(None))
        info: dict[str, Any] = {"reward_terms": terms, "done": done, "applied_action": applied}

        if self.resample_prob > 0.0:
            redraw = self.rng_params.random(self.num_envs) < self.resample_prob
            redraw &= ~done
            if redraw.any():
                idx = np.flatnonzero(redraw)
                self.set_params(idx, self._draw_params(len(idx)))

        if done.any():
            idx = np.flatnonzero(done)
            info["final_obs"] = self.obs.copy()
            info["episode_return"] = self.ep_return.copy()
            info["episode_length"] = self.t.copy()
            info["episode_terms"] = {k: v.copy() for k, v in self.ep_terms.items()}
            if not self.fixed_tasks:
                self.set_params(idx, self._draw_params(len(idx)))
            self._reset_envs(idx)
        return self.obs.copy(), reward, terminated, truncated, info

    def close(self) -> None:
        self.backend.close()
