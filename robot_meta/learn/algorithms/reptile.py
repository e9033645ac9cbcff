"""Reptile for meta-RL: adapt to each task with k inner steps, then move the meta-parameters
toward the adapted ones."""

from __future__ import annotations

from typing import Any

import torch

from robot_meta.learn.adaptation import Params
from robot_meta.learn.algorithms.maml import MAML


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

    def iterate(self, env: Any, phase: str) -> dict[str, float]:
        pre, adapted = self.pre_update(env)
        disp = self.meta_update(adapted)
        self.ac.obs_norm.update(pre["obs"][pre["mask"].bool()])
        return self.finish_metrics({"reptile/displacement": disp}, pre, None)
