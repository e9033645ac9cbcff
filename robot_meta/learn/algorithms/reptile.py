"""Reptile for meta-RL: adapt to each task with k inner steps, then move the meta-parameters
toward the adapted ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_meta.learn.adaptation import Params
from robot_meta.learn.algorithms.base import Shard
from robot_meta.learn.algorithms.maml import MAML

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike


class Reptile(MAML):
    """Reptile (Nichol et al. 2018) with the same inner loop as MAML.

    Per meta-iteration: M tasks, R rollouts of each with theta, theta'_i = adapt(theta, rollouts
    of task i) with k = ``inner_steps`` policy-gradient steps (the robot's rule), then
        theta <- theta + epsilon * mean_i (theta'_i - theta),     epsilon = ``reptile_step``.
    No outer gradient and no critic: the meta-update is the average adaptation displacement,
    whose expectation for k > 1 contains the gradient-alignment term that makes a few steps
    work well across tasks. The inner rate is fixed (Meta-SGD needs an outer gradient).
    """

    name = "reptile"

    @torch.no_grad()
    def meta_update(self, adapted: list[Params]) -> float:
        """theta <- theta + epsilon * mean_i (theta'_i - theta). Returns |mean_i theta'_i - theta|."""
        eps = self.cfg.meta.reptile_step
        disp = 0.0
        for k, p in self.theta().items():
            delta = torch.stack([a[k] for a in adapted]).mean(0) - p
            disp += float(delta.pow(2).sum())
            p += eps * delta
        return disp**0.5

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        """Pre-update rollouts of this shard's tasks and their adapted params theta'_i (the
        inner loop runs here, next to the rollouts it learns from)."""
        pre, adapted = self.pre_update(env)
        shard = self.shard(pre, None, adapted)
        names = list(adapted[0])
        shard["adapted"] = {k: torch.stack([a[k].detach() for a in adapted]).cpu().numpy() for k in names}
        return shard

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        pre = self.merge_rollouts(shards, "pre")
        stacked = {k: torch.as_tensor(np.concatenate([s["adapted"][k] for s in shards]))
                   for k in shards[0]["adapted"]}
        M = next(iter(stacked.values())).shape[0]
        disp = self.meta_update([{k: v[i] for k, v in stacked.items()} for i in range(M)])
        self.ac.obs_norm.update(pre["obs"][pre["mask"].bool()])
        return self.finish_metrics({"reptile/displacement": disp}, pre, None, shards)
