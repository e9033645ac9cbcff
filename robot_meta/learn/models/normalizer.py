"""Running observation normalization, as a module so that it is saved and exported with the model."""

from __future__ import annotations

import torch
from torch import nn


class EmpiricalNormalizer(nn.Module):
    """y = clip((x - mean) / sqrt(var + eps), -clip, clip), with running mean and variance.

    The statistics are buffers, so they live in the state dict and an ONNX export of a model that
    owns this module has the normalization baked in. ``update`` merges a batch with Chan's
    parallel formula:
        delta = mean_b - mean,  n' = n + n_b,
        mean' = mean + delta * n_b / n',
        M2' = var * n + var_b * n_b + delta^2 * n * n_b / n',  var' = M2' / n'.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int, eps: float = 1e-4, clip: float = 10.0):
        super().__init__()
        self.eps, self.clip = eps, clip
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch x (N, dim) into the running statistics."""
        x = x.reshape(-1, self.mean.shape[0]).to(self.mean.dtype)
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(0)
        var_b = x.var(0, unbiased=False)
        n = float(self.count)
        tot = n + n_b
        delta = mean_b - self.mean
        new_mean = self.mean + delta * (n_b / tot)
        m2 = self.var * n + var_b * n_b + delta.pow(2) * (n * n_b / tot)
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / tot)
        self.count.fill_(tot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize x (..., dim)."""
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + self.eps), -self.clip, self.clip)
