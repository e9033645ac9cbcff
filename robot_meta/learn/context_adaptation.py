"""The inner step of the ``cavia`` method, callable on its own: a gradient step on a context
vector z under a transition-prediction loss (CAVIA's context parameters, GrBAL's dynamics loss).

    rule = ContextAdaptation(dynamics, obs_norm, rates, steps)
    z_adapted = rule.adapt(z0, transitions)

Why this loss: the policy-gradient step of MAML-style methods estimates a direction in the
policy's weight space from the returns of 3 rollouts, which is mostly noise (the same-task step
cosine was 0.04 +/- 0.28). A prediction loss is supervised: every transition is a labelled
example of the task's dynamics, 3 rollouts give hundreds of them, and its gradient in z is
nearly deterministic for a task. The policy reads the adapted z, as RMA's and PEARL's read theirs.

The maths, for one task with transitions (o_j, a_j, o'_j), j = 1..N (the valid steps of its
rollouts), a dynamics model g (:class:`DynamicsModel`) and the policy's frozen normalizer:

    x_j = [norm(o_j), clip(h_j, -1, 1), z],   y_j = delta_norm(o'_j - o_j)
    h_j = [a_j, a_{j-1}, ..., a_{j-H+1}]  (the last H actions sent, zeros before the rollout:
          with an actuation latency of d steps, o' depends on a_{j-d})
    L(z) = (1 / N) sum_j 0.5 || g(x_j) - y_j ||^2
    z <- z - alpha * dL/dz          (k times; alpha one rate per context dimension)

z0 (the prior context), alpha and g are meta-learned so that the adapted z predicts the task's
*other* transitions well (:class:`robot_meta.learn.algorithms.cavia.CAVIA`). The robot runs the
same step in numpy (:mod:`robot_meta.runtime.context_step`), with the weights from the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robot_meta.learn.models.dynamics_model import DynamicsModel
from robot_meta.learn.models.normalizer import EmpiricalNormalizer
from robot_meta.runtime.context_step import RULE


@dataclass
class Transitions:
    """Transitions of M tasks, each padded to N: raw o, the action sent, raw o', validity."""

    obs: torch.Tensor  # (M, N, obs_dim)
    actions: torch.Tensor  # (M, N, H act_dim): the last H actions sent, newest first
    next_obs: torch.Tensor  # (M, N, obs_dim)
    mask: torch.Tensor  # (M, N), 1 on valid transitions

    def take(self, rows: torch.Tensor | slice) -> Transitions:
        """The transitions of a subset of tasks."""
        return Transitions(self.obs[rows], self.actions[rows], self.next_obs[rows], self.mask[rows])


def action_history(actions: torch.Tensor, H: int) -> torch.Tensor:
    """The last H actions at each step of rollouts (..., T, A) -> (..., T, H A), newest first,
    zeros before each rollout's first step (as :func:`robot_meta.runtime.context_step.action_history`)."""
    T = actions.shape[-2]
    parts = [actions] + [torch.nn.functional.pad(actions[..., :T - h, :], (0, 0, h, 0)) for h in range(1, H)]
    return torch.cat(parts, dim=-1)


class ContextAdaptation:
    """z' = adapt(z, transitions): k gradient steps of the prediction loss (module docstring)."""

    def __init__(self, dynamics: DynamicsModel, obs_norm: EmpiricalNormalizer,
                 rates: torch.Tensor, steps: int = 1):
        self.dynamics, self.obs_norm, self.rates, self.steps = dynamics, obs_norm, rates, steps
        self.history = dynamics.act_dim // dynamics.action_dim

    def loss(self, z: torch.Tensor, tr: Transitions) -> torch.Tensor:
        """L(z) per task, (M,): the mean over valid transitions of 0.5 ||g(x) - y||^2."""
        M, N, _ = tr.obs.shape
        x_o = self.obs_norm(tr.obs)
        y = self.dynamics.delta_norm(tr.next_obs - tr.obs)
        pred = self.dynamics(x_o, tr.actions, z[:, None, :].expand(M, N, z.shape[-1]))
        err = 0.5 * (pred - y).pow(2).sum(-1) * tr.mask
        return err.sum(1) / tr.mask.sum(1).clamp_min(1.0)

    def adapt(self, z: torch.Tensor, tr: Transitions, create_graph: bool = False) -> torch.Tensor:
        """k steps z <- z - alpha dL/dz for every task at once: z (M, C) -> (M, C).

        The tasks' losses are independent, so the gradient of their sum in the (M, C) block is
        each task's own gradient. ``create_graph`` keeps the graph for the meta-gradient (to z0,
        alpha and g); otherwise the result is detached."""
        rates = self.rates if create_graph else self.rates.detach()
        with torch.enable_grad():
            if not create_graph:
                z = z.detach()
            for _ in range(self.steps):
                if not z.requires_grad:
                    z = z.requires_grad_(True)
                (g,) = torch.autograd.grad(self.loss(z, tr).sum(), z, create_graph=create_graph)
                z = z - rates * g
        return z if create_graph else z.detach()


def context_step_spec(rule: ContextAdaptation, z0: torch.Tensor, inner_rollouts: int,
                      log_std: torch.Tensor | None = None) -> dict[str, Any]:
    """The inner step as plain data (a bundle manifest's ``extra["adaptation"]``), what the
    robot's numpy step (:class:`robot_meta.runtime.context_step.ContextStep`) is built from;
    ``log_std``: the policy's exploration noise for the rollouts the step learns from."""
    on, dn = rule.obs_norm, rule.dynamics.delta_norm

    def floats(x: torch.Tensor) -> list[Any]:
        return x.detach().double().tolist()

    return {
        "rule": RULE,
        "steps": rule.steps,
        "action_history": rule.history,
        "inner_rollouts": inner_rollouts,
        "z0": floats(z0),
        "rates": floats(rule.rates),
        "obs_mean": floats(on.mean), "obs_var": floats(on.var), "obs_eps": on.eps, "obs_clip": on.clip,
        "delta_mean": floats(dn.mean), "delta_var": floats(dn.var), "delta_eps": dn.eps,
        "delta_clip": dn.clip,
        "layers": [{"weight": floats(lin.weight), "bias": floats(lin.bias)}
                   for lin in rule.dynamics.linear_layers()],
        **({} if log_std is None else {"log_std": floats(log_std)}),
    }
