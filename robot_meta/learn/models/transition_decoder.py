"""PEARL's transition decoder p(o' - o, r | o, a, z), the likelihood of the variational objective."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robot_meta.learn.models.mlp import MLP


class TransitionDecoder(nn.Module):
    """Predicts the normalized state change and the reward of a transition from (norm(o), a, z).

    With a unit-variance Gaussian likelihood, -log p = 0.5 * ||prediction - target||^2 + const,
    so training q(z | c) through this decoder makes z carry what the dynamics depend on."""

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, hidden: Sequence[int] = (128, 128), *,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.net = MLP(obs_dim + act_dim + latent_dim, hidden, obs_dim + 1, generator=generator)

    def forward(self, obs_n: torch.Tensor, act: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(normalized o, a, z) -> predicted [normalized (o' - o), r]."""
        return self.net(torch.cat([obs_n, act, z], dim=-1))
