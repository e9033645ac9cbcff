"""The env core shared by the batched MuJoCo env and the PyBullet twin.

It owns everything that is not physics: task-parameter draws, initial states, actuation
latency, sensor noise and bias, observations, named reward terms, episode bookkeeping and
auto-reset. A :class:`PhysicsBackend` owns the engine. Contract (dm_control / Gymnasium):

* ``step`` holds each action for ``control_dt`` = ``substeps * physics_dt`` (zero-order hold).
* ``terminated`` is a terminal state of the task, or a servo's overload shutdown
  (:class:`OverloadMonitor`, ``info["overload"]``); ``truncated`` is the time limit. They are
  never both true.
* Auto-reset: a finished env is reset inside ``step``; the last observation of the finished
  episode is in ``info["final_obs"]`` (rows where ``info["done"]``), and the returned
  observation is the first of the next episode.
* Seeding happens only in ``reset(seed)`` (and the constructor's ``seed``), from one
  ``SeedSequence`` split into independent generators for params, initial states and noise.
  Parameter and noise numbers are drawn from their generators in blocks ahead of use and served
  in order (:class:`_Buffered`): the same numbers as drawing them one call at a time.

Speed: ``step`` is the inner loop of training, so the per-step work is a fixed, small number of
numpy calls on preallocated arrays; nothing in it loops over envs in Python.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from robot_meta.sim.overload_monitor import OverloadMonitor
from robot_meta.sim.randomize import FamilySpec, ParamSampler
from robot_meta.sim.robots.robot_def import RobotDef
from robot_meta.sim.task import InitSpec, Task

_BLOCK = 4096  # random numbers drawn per refill of a buffered stream (at least; 8 takes for big takes)
_ROWS = 64  # param vectors drawn per refill


class _Buffered:
    """Draws from one Generator, made in blocks ahead of use and served in order.

    ``Generator.random`` and ``Generator.standard_normal`` fill an array element by element
    from the bit stream, with nothing carried between calls, so the numbers served here are
    exactly those that drawing ``take(n)`` at a time would give: a block drawn ahead is the
    concatenation of the smaller draws. Only this object may draw from ``rng``.

    ``skip(n)`` passes over the next n numbers without drawing them yet: they are drawn (and
    dropped) only if a later ``take`` needs what comes after them, so a stream nobody reads
    costs nothing, and the numbers served are still those of the stream's positions.
    """

    def __init__(self, rng: np.random.Generator, normal: bool):
        self._draw = rng.standard_normal if normal else rng.random
        self._buf = np.empty(0)
        self._pos = 0
        self._skipped = 0  # numbers passed over and not drawn yet

    def skip(self, n: int) -> None:
        """Pass over the next n numbers."""
        self._skipped += n

    def _settle(self) -> None:
        """Draw and drop the numbers passed over, from the block first."""
        n, self._skipped = self._skipped, 0
        left = len(self._buf) - self._pos
        if n <= left:
            self._pos += n
            return
        n -= left
        while n > 0:  # in bounded chunks: the same stream as one draw of n
            m = min(n, 16 * _BLOCK)
            self._draw(m)
            n -= m
        self._buf, self._pos = np.empty(0), 0

    def take(self, n: int) -> np.ndarray:
        """The next n numbers (a read-only view; later takes never overwrite it)."""
        if self._skipped:
            self._settle()
        pos, buf = self._pos, self._buf
        if pos + n > len(buf):
            buf = self._buf = np.concatenate([buf[pos:], self._draw(max(_BLOCK, 8 * n))])
            buf.flags.writeable = False
            pos = 0
        self._pos = pos + n
        return buf[pos : pos + n]


def _rows(ids: np.ndarray) -> np.ndarray | slice:
    """Index rows ids (k,): a slice when k == 1 (the usual auto-reset), which numpy indexes
    several times faster than an index array; the ids themselves otherwise."""
    if len(ids) == 1:
        i = int(ids[0])
        return slice(i, i + 1)
    return ids


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
        self._sampler = ParamSampler(robot, self.ranges)
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
        # factors = 2 (x - lo) / (hi - lo) - 1 with (lo, hi) each factor's norm_range
        self._norm_lo = np.array([f.norm_range[0] for f in robot.factors])
        self._norm_hi = np.array([f.norm_range[1] for f in robot.factors])

        self.params = np.zeros((B, self.factor_dim))
        # Sensor factors per env and joint, (3, B, nq): bias, position-noise std, velocity-noise
        # std (the stds repeated per joint, so that every operand of _observe has one layout).
        self._sense = np.zeros((3, B, self.nq))
        self._i_sense = np.array(self._i_bias + [self._i_pos_noise] * self.nq
                                 + [self._i_vel_noise] * self.nq, dtype=np.intp)
        # Whether any env has sensor noise now: without any, the noise terms are zero and the
        # noise stream is passed over (see _observe).
        self._noisy = True
        self.t = np.zeros(B, dtype=np.int64)
        self.task_state: dict[str, np.ndarray] = {}
        self._act_buf = np.zeros((B, self._L, self.nu))
        self._act_rows = self._act_buf.reshape(B * self._L, self.nu)  # a view: row i*L + k
        self._buf_pos = 0
        self._ar = np.arange(B)
        # _lag_rows[p, i]: the ring-buffer row env i's motors read when the newest action is at
        # position p, i.e. i*L + (p - latency_i) mod L; refreshed when latencies change.
        self._lag_offsets = np.arange(self._L)[:, None]
        self._lag_rows = self._ar * self._L + self._lag_offsets
        self._lag_table = (np.arange(self._L) - self._lag_offsets) % self._L  # [latency, p]
        self.ep_return = np.zeros(B)
        self._term_names = task.reward_terms  # (a property that builds the tuple on each read)
        self._ep_terms = np.zeros((len(task.reward_terms), B))
        self.ep_terms = dict(zip(task.reward_terms, self._ep_terms, strict=True))  # row views
        self.obs = np.zeros((B, self.obs_dim))
        self.overload = OverloadMonitor(robot, B)
        self._no_overload = np.zeros(B, dtype=bool)  # info["overload"] without servo joints
        self._no_overload.flags.writeable = False
        self._seed_rngs(seed)

    # ---- seeding -----------------------------------------------------------------------------
    def _seed_rngs(self, seed: int) -> None:
        ss = np.random.SeedSequence(seed)
        s_params, s_init, s_noise = ss.spawn(3)
        self.rng_params = np.random.default_rng(s_params)
        self.rng_init = np.random.default_rng(s_init)
        self.rng_noise = np.random.default_rng(s_noise)
        self._u_params = _Buffered(self.rng_params, normal=False)
        self._n_noise = _Buffered(self.rng_noise, normal=True)
        self._param_rows = np.empty((0, self.factor_dim))  # drawn ahead; see _draw_params
        self._param_pos = 0

    # ---- params ------------------------------------------------------------------------------
    def _draw_params(self, n: int) -> np.ndarray:
        """n param vectors from the family: sample_params(robot, ranges, rng_params, n).

        Without per-step resampling, the params stream is nothing but param vectors, so they
        are drawn and transformed ``_ROWS`` at a time and served in order: the same vectors,
        for a few numpy calls per block instead of per reset."""
        k = self._sampler.num_drawn
        if self.resample_prob > 0.0:  # redraw decisions interleave with the param draws
            return self._sampler.from_uniform(self._u_params.take(n * k).reshape(n, k))
        pos, rows = self._param_pos, self._param_rows
        if pos + n > len(rows):
            m = max(_ROWS, n)
            new = self._sampler.from_uniform(self._u_params.take(m * k).reshape(m, k))
            rows = self._param_rows = np.concatenate([rows[pos:], new])
            rows.flags.writeable = False
            pos = 0
        self._param_pos = pos + n
        return rows[pos : pos + n]

    def set_params(self, idx: np.ndarray | slice, params: np.ndarray) -> None:
        """Give envs idx new params (k, F) now; the physics changes from the next step."""
        self._set_params(self._ar[idx], params)

    def _set_params(self, ids: np.ndarray, params: np.ndarray) -> None:
        """set_params for env numbers ids (k,), each in [0, B)."""
        k = len(ids)
        params = np.asarray(params, dtype=float)
        if params.shape != (k, self.factor_dim):
            params = np.broadcast_to(params, (k, self.factor_dim))
        self.backend.set_params(ids, params)
        # Cached per-env copies of the core factors, used every step.
        if k == 1:  # the usual auto-reset, in a few scalar-indexed writes
            i, p = int(ids[0]), params[0]
            self.params[i] = p
            self._lag_rows[:, i] = self._lag_table[int(p[self._i_latency])] + i * self._L
            sense = p[self._i_sense].reshape(3, self.nq)
            self._sense[:, i] = sense
        else:
            self.params[ids] = params
            lat = params[:, self._i_latency].astype(np.int64)
            self._lag_rows[:, ids] = ids * self._L + (self._lag_offsets - lat) % self._L
            sense = params[:, self._i_sense].reshape(k, 3, self.nq).swapaxes(0, 1)
            self._sense[:, ids] = sense
        # sense[1:] are the noise stds just written
        if sense[1:].any():
            self._noisy = True
        elif self._noisy:
            self._noisy = bool(self._sense[1:].any())

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
        return 2.0 * (self.params - self._norm_lo) / (self._norm_hi - self._norm_lo) - 1.0

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
        rows = _rows(idx)
        q, dq, state = self.task.initial_state(self.rng_init, n, self.init)
        self.backend.set_state(idx, q, dq)
        if not self.task_state:
            self.task_state = {k: np.zeros((self.num_envs,) + v.shape[1:]) for k, v in state.items()}
        for k, v in state.items():
            self.task_state[k][rows] = v
        self.t[rows] = 0
        self._act_buf[rows] = 0.0
        self.overload.reset(rows)
        self.ep_return[rows] = 0.0
        self._ep_terms[:, rows] = 0.0
        self.obs[rows] = self._observe(rows, every=n == self.num_envs)

    # ---- sensing -----------------------------------------------------------------------------
    def _observe(self, rows: np.ndarray | slice, every: bool = False) -> np.ndarray:
        """Observations of envs rows (every: all of them, in order) from noisy, biased joint
        readings: q_meas = q + b + sigma_q * N(0, 1),  qdot_meas = qdot + sigma_qd * N(0, 1).

        When no env has noise (sigma = 0 everywhere, as in families that leave it nominal), the
        noise terms are zeros: the readings are q + b and qdot, and the 2 k nq normals they
        would have used are passed over in the noise stream, so that the numbers served after
        are the same. (x + 0 * n equals x for every x but -0.0, which np.array_equal and every
        downstream operation here treat as 0.0; tests/sim/test_bitexact.py checks the whole.)"""
        q = self.backend.qpos[rows]
        dq = self.backend.qvel[rows]
        if every:
            sense = self._sense
            state, t = self.task_state, self.t
        else:
            sense = self._sense[:, rows]
            state, t = {k: v[rows] for k, v in self.task_state.items()}, self.t[rows]
        if not self._noisy:
            self._n_noise.skip(2 * q.size)
            dq.flags.writeable = False  # a view of the simulations' state: the task only reads
            q_meas, dq_meas = self._sensor(q + sense[0], dq)
            return self.task.observe(q_meas, dq_meas, state, t)
        noise = self._n_noise.take(2 * q.size).reshape((2,) + q.shape)  # (2, k, nq) N(0, 1)
        bias, sd_q, sd_dq = sense
        q_meas, dq_meas = self._sensor(q + bias + sd_q * noise[0], dq + sd_dq * noise[1])
        return self.task.observe(q_meas, dq_meas, state, t)

    def _sensor(self, q_meas: np.ndarray, dq_meas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the sensors make of the noisy, biased readings: nothing here; the twin rounds
        them to encoder ticks when its servo effects say so."""
        return q_meas, dq_meas

    # ---- step --------------------------------------------------------------------------------
    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        """Apply actions (B, nu) in [-1, 1] (clipped). Returns obs, reward, terminated,
        truncated, info. ``info`` holds ``reward_terms`` {name: (B,)}, ``done`` (B,),
        ``final_obs`` (B, obs_dim), ``episode_return`` and ``episode_length`` (valid where done),
        ``applied_action`` (the delayed action that reached the motors) and ``overload`` (B,),
        the envs whose episode a servo's overload shutdown ended (then also terminated)."""
        # Latency: the motors receive the action commanded L_i steps ago (zeros before t = 0).
        self._buf_pos = pos = (self._buf_pos + 1) % self._L
        a = self._act_buf[:, pos]  # the newest action goes straight into the ring buffer
        np.maximum(np.asarray(action, dtype=float).reshape(self.num_envs, self.nu), -1.0, out=a)
        np.minimum(a, 1.0, out=a)  # clip to [-1, 1]
        applied = self._act_rows.take(self._lag_rows[pos], axis=0)
        self.backend.step(applied)
        self.t += 1

        q, dq = self.backend.qpos, self.backend.qvel
        rterms = self.task.reward_matrix(q, dq, a, self.task_state, self.t)  # (terms, B)
        reward = np.add.reduce(rterms, axis=0)  # r = ((r_1 + r_2) + r_3) + ..., in term order
        terms = dict(zip(self._term_names, rterms, strict=True))
        terminated = self.task.terminated(q, dq, self.task_state)
        if self.overload.active:
            overload = self.overload.update(applied, dq)
            terminated |= overload
        else:
            overload = self._no_overload
        done = terminated | (self.t >= self.episode_steps)
        truncated = done ^ terminated  # out of time and not terminal
        self.ep_return += reward
        self._ep_terms += rterms
        self.obs = self._observe(slice(None), every=True)
        info: dict[str, Any] = {"reward_terms": terms, "done": done, "applied_action": applied,
                                "overload": overload}

        if self.resample_prob > 0.0:
            redraw = self._u_params.take(self.num_envs) < self.resample_prob
            redraw &= ~done
            if redraw.any():
                idx = np.flatnonzero(redraw)
                self._set_params(idx, self._draw_params(len(idx)))

        if done.any():
            idx = np.flatnonzero(done)
            info["final_obs"] = self.obs.copy()
            info["episode_return"] = self.ep_return.copy()
            info["episode_length"] = self.t.copy()
            info["episode_terms"] = dict(zip(self.ep_terms, self._ep_terms.copy(), strict=True))
            if not self.fixed_tasks:
                self._set_params(idx, self._draw_params(len(idx)))
            self._reset_envs(idx)
        return self.obs.copy(), reward, terminated, truncated, info

    def close(self) -> None:
        self.backend.close()
