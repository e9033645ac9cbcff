"""One rollout on the robot: observations and rewards from measured joint state, the task code
shared with simulation, the policy at the bundle's control rate.

Cycle k of a rollout (time index t = k, as in the simulator):

    read q_k, dq_k                              (one sync read)
    if k > 0:  r_{k-1} = R(q_k, dq_k, a_{k-1}, task, k)  -> transition (o_{k-1}, a_{k-1}, r, o_k)
    o_k = observe(q_k, dq_k, task, k)           (the bundle's observation layout)
    a_k = adapter.act(o_k)  ->  sent = robot.write_action(a_k)   (after the safety layer)

and a final read closes the last transition. Transitions record the action actually sent.
The task variables (arm2 ``reach``: the target) are drawn on the robot side from a seeded
generator and saved with the rollout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.export.manifest import Manifest
from robot_meta.runtime.adapters import Adapter
from robot_meta.runtime.control_loop import ControlLoop

if TYPE_CHECKING:
    from robot_meta.hardware.robot import Robot


@dataclass
class RolloutResult:
    """A finished rollout: arrays for the session file and a JSON summary."""

    arrays: dict[str, np.ndarray]
    summary: dict[str, Any]
    loop: ControlLoop

    @property
    def ret(self) -> float:
        return float(self.summary["return"])


class RolloutRunner:
    """Runs rollouts of a bundle's task on a connected robot.

    Args:
        robot: a :class:`~robot_meta.hardware.Robot` (connected; torque enabled by the caller).
        manifest: the bundle manifest (robot, task, observation layout, control_dt).
        episode_steps: rollout length (default: the task's episode length).
    """

    def __init__(self, robot: Robot, manifest: Manifest, episode_steps: int | None = None):
        from robot_meta.sim.robots import get_robot  # plain numpy task code

        rdef = get_robot(manifest.robot)
        self.task = rdef.task(manifest.task)
        names = [s.partition(" [")[0] for s in self.task.obs_names]
        if names != [o["name"] for o in manifest.observation]:
            raise UserError(f"the bundle's observation layout {[o['name'] for o in manifest.observation]} "
                            f"differs from this robot-meta's {manifest.robot}/{manifest.task} task "
                            f"{names}; export the bundle with the robot-meta version on the robot")
        self.robot = robot
        self.manifest = manifest
        self.dt = manifest.control_dt
        self.steps = int(episode_steps or self.task.episode_steps)
        if self.steps <= 0:
            raise UserError(f"--episode-steps must be positive, got {self.steps}")

    def sample_task(self, seed: int | list[int]) -> dict[str, np.ndarray]:
        """Task variables for one rollout (leading dim 1), from a seeded generator."""
        return self.task.sample_task(np.random.default_rng(seed), 1)

    def start_pose(self) -> np.ndarray:
        return np.asarray(self.task.start_pose(1)[0][0], dtype=float)

    def run(self, adapter: Adapter, mode: str, task_state: dict[str, np.ndarray],
            learn: bool = True, status: Callable[[int, float, ControlLoop], None] | None = None
            ) -> RolloutResult:
        """One rollout of ``self.steps`` control steps acting with ``adapter`` in ``mode``;
        with ``learn`` the adapter folds it into its state afterwards (evaluation rollouts
        do not)."""
        robot, task, T = self.robot, self.task, self.steps
        n_o, n_a, L = len(self.manifest.observation), len(self.manifest.actuated_joints), adapter.latent_dim
        obs = np.zeros((T, n_o))
        nxt = np.zeros((T, n_o))
        cmd = np.zeros((T, n_a))
        sent = np.zeros((T, n_a))
        rew = np.zeros(T)
        zs = np.zeros((T, L), np.float32)
        qs = np.zeros((T + 1, len(robot.hw.joints)))
        dqs = np.zeros_like(qs)
        ts = np.zeros(T + 1)
        skipped = np.zeros(T, np.int32)
        adapter.learning = learn  # e.g. gradient adaptation explores only in rollouts it learns from
        adapter.begin(mode)
        loop = ControlLoop(self.dt)
        ret = 0.0
        n = T
        terminated = False
        prev_o: np.ndarray | None = None
        t0 = loop.start()
        for k in range(T + 1):
            s = robot.read_state()
            q, dq = s.q[None], s.dq[None]
            qs[k], dqs[k], ts[k] = s.q, s.dq, s.t - t0
            o = task.observe(q, dq, task_state, np.array([k]))[0]
            if not np.all(np.isfinite(o)):
                raise UserError(f"non-finite observation at step {k}: {o}; check the sensors")
            if k > 0:
                assert prev_o is not None
                # r_{k-1} = R(q_k, dq_k, a_{k-1}): the reward of the previous action
                terms = task.rewards(q, dq, sent[k - 1][None], task_state, np.array([k]))
                r = float(sum(float(v[0]) for v in terms.values()))
                rew[k - 1], nxt[k - 1] = r, o
                ret += r
                adapter.observe(prev_o, sent[k - 1], r, o)
                if bool(task.terminated(q, dq, task_state)[0]):
                    n, terminated = k, True
                    break
            if k == T:
                break
            a = adapter.act(o)
            cmd[k] = a
            sent[k] = robot.write_action(np.clip(a, -1.0, 1.0))
            zs[k] = adapter.z if L else zs[k]
            obs[k] = prev_o = o
            if status is not None:
                status(k, ret, loop)
            skipped[k] = loop.wait()
        # The rollout is over: torque off, because what follows (the adapter's update, saving
        # the rollout, a gradient step and an ONNX export) can outlast the bus watchdog, and
        # nothing commands the motors until the next reset turns torque back on. In current
        # control this is what a zero command does physically: no holding torque either way.
        if robot.torque_on:
            robot.disable()
        if learn:
            adapter.end(ret)
        arrays: dict[str, np.ndarray] = {
            "obs": obs[:n], "action": sent[:n], "commanded": cmd[:n], "reward": rew[:n],
            "next_obs": nxt[:n], "z": zs[:n], "q": qs[: n + 1], "dq": dqs[: n + 1],
            "t": ts[: n + 1], "skipped": skipped[:n]}
        arrays |= {f"task_{k}": np.asarray(v) for k, v in task_state.items()}
        summary = {"return": ret, "steps": n, "terminated": terminated, "mode": mode,
                   "z": [float(x) for x in adapter.z], "uncertainty": adapter.uncertainty(),
                   "deadlines": loop.stats.as_dict(), "wall_s": time.perf_counter() - t0,
                   "task": {k: np.asarray(v).tolist() for k, v in task_state.items()}}
        return RolloutResult(arrays, summary, loop)


def transitions(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """A saved rollout's transitions as PEARL context rows [o, a, r, o'] (n, 2 obs + act + 1)."""
    return np.concatenate([arrays["obs"], arrays["action"], arrays["reward"][:, None],
                           arrays["next_obs"]], axis=1).astype(np.float32)
