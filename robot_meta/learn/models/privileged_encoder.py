"""RMA's privileged encoder mu(e) -> z."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robot_meta.learn.models.mlp import MLP


class PrivilegedEncoder(nn.Module):
    """z = tanh(MLP(e)): the true normalized factor vector e compressed to a latent z in [-1, 1]^L.

    The tanh bounds the regression target of the adaptation module (phase 2 of RMA)."""

    def __init__(self, priv_dim: int, latent_dim: int, hidden: Sequence[int] = (64, 64), *,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.net = MLP(priv_dim, hidden, latent_dim, generator=generator)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """z = mu(e), shape (B, latent_dim)."""
        return torch.tanh(self.net(e))
