"""The batched, domain-randomized MuJoCo env and its factory ``make_vec_env``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_meta.sim.batched_env import BatchedEnv
from robot_meta.sim.feasibility import check_family
from robot_meta.sim.mujoco_backend import MujocoBackend
from robot_meta.sim.randomize import FamilySpec, load_family
from robot_meta.sim.robots.robot_def import RobotDef, get_robot


class VecEnv(BatchedEnv):
    """B MuJoCo envs of one robot, task and family. See :class:`BatchedEnv` for the contract."""

    def __init__(self, robot: RobotDef, family: FamilySpec | None, num_envs: int, seed: int = 0,
                 *, task: str | None = None, nthread: int = 2, **kwargs: object):
        backend = MujocoBackend(robot, num_envs, nthread=nthread)
        super().__init__(robot, robot.task(task), backend, family=family, seed=seed,
                         **kwargs)  # type: ignore[arg-type]
        self.reset()


def make_vec_env(
    robot: str | RobotDef,
    family: str | Path | FamilySpec = "all",
    num_envs: int = 64,
    seed: int = 0,
    *,
    task: str | None = None,
    split: str = "train",
    nthread: int = 2,
    params: np.ndarray | None = None,
    fixed_tasks: bool = False,
    resample_prob: float | None = None,
) -> VecEnv:
    """Build a batched MuJoCo env, reset and ready to step.

    Args:
        robot: ``cartpole`` or ``arm2`` (or a RobotDef).
        family: a bundled family name (``friction``, ``mass``, ``payload``, ``all``), a TOML
            path, or a FamilySpec.
        num_envs: B, the batch size.
        seed: the one seed from which params, initial states and noise are drawn.
        task: the task name (robot default when None: cartpole ``balance``, arm2 ``reach``).
        split: ``train`` or ``ood`` ranges of the family.
        nthread: threads stepping the physics, the calling thread included (0 or 1: the
            calling thread only).
        params: fixed params (F,) or (B, F) instead of draws.
        fixed_tasks: keep each env's task across episodes (for multi-rollout adaptation).
        resample_prob: per-step probability of redrawing params (default: the family's).
    """
    rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
    fam = load_family(rdef, family)
    check_family(rdef, fam)  # refuse training ranges the servos cannot hold
    return VecEnv(rdef, fam, num_envs, seed, task=task, nthread=nthread, split=split,
                  params=params, fixed_tasks=fixed_tasks, resample_prob=resample_prob)
