"""The multilayer perceptron every model in this package is built from."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear -> ELU -> ... -> Linear, with orthogonal initialization drawn from ``generator``
    (no global RNG): hidden layers with gain sqrt(2), the output layer with ``out_gain``."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, *,
                 generator: torch.Generator | None = None, out_gain: float = 1.0):
        layers: list[nn.Module] = []
        dims = [in_dim, *hidden]
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ELU()]
        layers.append(nn.Linear(dims[-1], out_dim))
        super().__init__(*layers)
        linears = [m for m in self if isinstance(m, nn.Linear)]
        for i, m in enumerate(linears):
            gain = out_gain if i == len(linears) - 1 else math.sqrt(2.0)
            nn.init.orthogonal_(m.weight, gain=gain, generator=generator)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 (nn.Sequential semantics)
        return super().forward(x)
