"""The Gaussian policy pi(a | o, z) and the privileged critic V(o, e)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robot_meta.learn.models.mlp import MLP
from robot_meta.learn.models.normalizer import EmpiricalNormalizer


class ActorCritic(nn.Module):
    """Actor pi(a | o, z) = N(mu(norm(o), z), diag(sigma^2)) and critic V(norm(o), e).

    * ``o`` is the raw observation; the running normalizer is part of the module, so that
      ``forward`` (the deployment path, exported to ONNX) takes raw sensor values.
    * ``z`` is the context (latent) vector; ``latent_dim = 0`` gives a plain policy, the robust
      (domain-randomization-only) baseline.
    * ``e`` is the privileged factor vector, seen only by the critic (asymmetric actor-critic):
      the value may depend on the dynamics even when the actor must infer them.
    * sigma is state-independent: log sigma is a learned vector.
    """

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, priv_dim: int,
                 hidden: Sequence[int], *, init_std: float = 0.5, actor_gain: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.obs_dim, self.act_dim, self.latent_dim, self.priv_dim = obs_dim, act_dim, latent_dim, priv_dim
        self.obs_norm = EmpiricalNormalizer(obs_dim)
        self.actor = MLP(obs_dim + latent_dim, hidden, act_dim, generator=generator, out_gain=actor_gain)
        self.critic = MLP(obs_dim + priv_dim, hidden, 1, generator=generator, out_gain=1.0)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def action_mean(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """mu(norm(o), z), the unclipped mean action (B, act_dim)."""
        return self.actor(torch.cat([self.obs_norm(obs), z], dim=-1))

    def distribution(self, obs: torch.Tensor, z: torch.Tensor) -> torch.distributions.Normal:
        """pi(. | o, z) as a diagonal Gaussian."""
        mean = self.action_mean(obs, z)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def value(self, obs: torch.Tensor, priv: torch.Tensor) -> torch.Tensor:
        """V(norm(o), e), shape (B,)."""
        return self.critic(torch.cat([self.obs_norm(obs), priv], dim=-1)).squeeze(-1)

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Deployment action: clip(mu(norm(o), z), -1, 1). Raw observations in, motor command out
        (normalization and clipping baked in, ready for ONNX export)."""
        return torch.clamp(self.action_mean(obs, z), -1.0, 1.0)
