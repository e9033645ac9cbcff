"""The context-conditioned dynamics model g(norm(o), a, z) of the ``cavia`` method."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robot_meta.learn.models.mlp import MLP
from robot_meta.learn.models.normalizer import EmpiricalNormalizer


class DynamicsModel(nn.Module):
    """Predicts the normalized state change of a transition, y = delta_norm(o' - o), from the
    normalized observation, the last ``history`` actions sent (clipped to [-1, 1], as the motors
    get them; an actuation latency delays their effect) and a context z.

    The context is what the inner step adapts (:mod:`robot_meta.learn.context_adaptation`): the
    network is shared by every task, so whatever makes one task's transitions differ from
    another's must be carried by z.
    """

    def __init__(self, obs_dim: int, action_dim: int, context_dim: int, hidden: Sequence[int] = (64, 64), *,
                 history: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        self.obs_dim, self.action_dim, self.context_dim = obs_dim, action_dim, context_dim
        self.act_dim = action_dim * history  # width of the action input: the last `history` actions
        self.delta_norm = EmpiricalNormalizer(obs_dim)
        self.net = MLP(obs_dim + self.act_dim + context_dim, hidden, obs_dim, generator=generator)

    def forward(self, obs_n: torch.Tensor, act: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(normalized o, action history, z) -> predicted normalized (o' - o), each (..., dim)."""
        return self.net(torch.cat([obs_n, act.clamp(-1.0, 1.0), z], dim=-1))

    def linear_layers(self) -> list[nn.Linear]:
        """The network's Linear layers in order (ELU between them): what a bundle exports."""
        return [m for m in self.net if isinstance(m, nn.Linear)]
