"""PEARL's probabilistic context encoder q(z | c) as a product of per-transition Gaussians."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robot_meta.learn.models.mlp import MLP
from robot_meta.learn.models.normalizer import EmpiricalNormalizer

MIN_VAR, MAX_VAR = 1e-3, 1e4  # bounds of each factor's variance (numerical safety)


def product_of_gaussians(mu: torch.Tensor, var: torch.Tensor, mask: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior N(m, s^2) proportional to N(0, I) * prod_n N(mu_n, var_n), per latent dimension:

        1 / s^2 = 1 + sum_n 1 / var_n,      m = s^2 * sum_n mu_n / var_n.

    The prior N(0, I) is one more factor, so an empty context gives the prior and every added
    transition can only shrink the variance. mu, var: (..., N, L); mask (..., N) selects the
    transitions that count. Returns (m, s^2), each (..., L).
    """
    prec = 1.0 / var
    if mask is not None:
        prec = prec * mask.unsqueeze(-1).to(prec.dtype)
    post_prec = 1.0 + prec.sum(-2)
    post_var = 1.0 / post_prec
    return post_var * (prec * mu).sum(-2), post_var


class PosteriorEncoder(nn.Module):
    """Per-transition factors Psi(z | c_n) = N(mu_n, var_n) from c_n = (o, a, r, o'), and the
    posterior q(z | c) = N(0, I) * prod_n Psi(z | c_n) (see :func:`product_of_gaussians`).

    Inputs are raw: the normalizers of o and of o' - o are part of the module. Because the
    posterior's natural parameters are sums over transitions, a rollout can be summarised by
    ``stats`` = (sum_n 1/var_n, sum_n mu_n/var_n) and rollouts combined by adding their stats.
    """

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, hidden: Sequence[int] = (128, 128), *,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.obs_dim, self.act_dim, self.latent_dim = obs_dim, act_dim, latent_dim
        self.transition_dim = 2 * obs_dim + act_dim + 1
        self.obs_norm = EmpiricalNormalizer(obs_dim)
        self.delta_norm = EmpiricalNormalizer(obs_dim)
        self.net = MLP(2 * obs_dim + act_dim + 1, hidden, 2 * latent_dim, generator=generator)

    def split(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split raw transitions (..., 2*obs+act+1) laid out as [o, a, r, o'] into (o, a, r, o')."""
        n, m = self.obs_dim, self.act_dim
        return c[..., :n], c[..., n:n + m], c[..., n + m:n + m + 1], c[..., n + m + 1:]

    def update_normalizers(self, c: torch.Tensor) -> None:
        """Update the running statistics of o and o' - o from raw transitions."""
        o, _, _, o2 = self.split(c)
        self.obs_norm.update(o)
        self.delta_norm.update(o2 - o)

    def factors(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-transition (mu_n, var_n), each (..., L), from raw transitions (..., D)."""
        o, a, r, o2 = self.split(c)
        h = self.net(torch.cat([self.obs_norm(o), a, r, self.delta_norm(o2 - o)], dim=-1))
        mu, log_var = h[..., : self.latent_dim], h[..., self.latent_dim:]
        var = torch.exp(log_var).clamp(MIN_VAR, MAX_VAR)
        return mu, var

    def stats(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Natural-parameter contributions (1/var_n, mu_n/var_n) of each transition (..., L)."""
        mu, var = self.factors(c)
        return 1.0 / var, mu / var

    @staticmethod
    def from_stats(prec_sum: torch.Tensor, eta_sum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, var) from summed stats: var = 1 / (1 + sum prec), mean = var * sum eta."""
        var = 1.0 / (1.0 + prec_sum)
        return var * eta_sum, var

    def forward(self, c: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | c) for a padded set of raw transitions c (B, N, D) with mask (B, N) of valid
        rows. Returns (mean, var), each (B, L). This is the exported deployment path."""
        mu, var = self.factors(c)
        return product_of_gaussians(mu, var, mask)
