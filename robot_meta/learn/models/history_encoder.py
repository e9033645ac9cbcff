"""RMA's adaptation module phi(last H steps of (o, a)) -> z_hat."""

from __future__ import annotations

import math

import torch
from torch import nn

from robot_meta.learn.models.mlp import MLP
from robot_meta.learn.models.normalizer import EmpiricalNormalizer


class HistoryEncoder(nn.Module):
    """z_hat = tanh(head(conv(embed([norm(o_k), a_k] for k = t-H .. t-1)))).

    A temporal convolution as in RMA: a per-step linear embedding, two strided 1-D convolutions
    over time, and an MLP head. The input is the raw history (B, H, obs_dim + act_dim), oldest
    first, zero-padded at the start of an episode; the observation normalizer is a copy of the
    policy's (frozen), so that the exported module takes raw sensor values.
    """

    def __init__(self, obs_dim: int, act_dim: int, history: int, latent_dim: int, channels: int = 32, *,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.obs_dim, self.act_dim, self.history = obs_dim, act_dim, history
        self.obs_norm = EmpiricalNormalizer(obs_dim)
        self.embed = MLP(obs_dim + act_dim, (channels,), channels, generator=generator)
        self.conv = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size=5, stride=2), nn.ELU(),
            nn.Conv1d(channels, channels, kernel_size=5, stride=2), nn.ELU(),
        )
        for m in self.conv:
            if isinstance(m, nn.Conv1d):  # seeded init (no global RNG), as in MLP
                nn.init.orthogonal_(m.weight, gain=math.sqrt(2.0), generator=generator)
                assert m.bias is not None
                nn.init.zeros_(m.bias)
        t = history
        for _ in range(2):
            t = (t - 5) // 2 + 1
        if t < 1:
            raise ValueError(f"history length {history} is too short for the encoder; use >= 13")
        self.head = MLP(channels * t, (64,), latent_dim, generator=generator)

    def forward(self, hist: torch.Tensor) -> torch.Tensor:
        """hist (B, H, obs_dim + act_dim) raw -> z_hat (B, latent_dim)."""
        obs, act = hist[..., : self.obs_dim], hist[..., self.obs_dim:]
        # Zero rows (padding before the episode start) stay zero after normalization.
        pad = (hist.abs().sum(-1, keepdim=True) > 0).to(hist.dtype)
        x = torch.cat([self.obs_norm(obs) * pad, act], dim=-1)
        h = self.embed(x).transpose(1, 2)  # (B, C, H)
        h = self.conv(h).flatten(1)
        return torch.tanh(self.head(h))
