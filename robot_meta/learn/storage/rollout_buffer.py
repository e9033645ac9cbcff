"""The on-policy rollout buffer and generalized advantage estimation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                last_values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over a (T, B) rollout.

    GAE: delta_t = r_t + gamma V(s_t+1) (1 - d_t) - V(s_t),
         A_t = delta_t + gamma lambda (1 - d_t) A_t+1,        R_t = A_t + V(s_t),
    where d_t marks the last step of an episode (terminated or truncated; a truncated step's
    reward already carries + gamma V(final obs)), and V(s_T) = ``last_values``.
    Returns (advantages, returns), each (T, B).
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_values)
    next_value = last_values
    for t in range(T - 1, -1, -1):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_adv = delta + gamma * lam * not_done * next_adv
        adv[t] = next_adv
        next_value = values[t]
    return adv, adv + values


class RolloutBuffer:
    """T steps of B envs: raw observations, contexts z, privileged factors e, actions, log-probs,
    values, rewards and episode-end flags. Filled by ``add``; ``minibatches`` yields shuffled
    flat minibatches of every field plus advantages and returns."""

    def __init__(self, T: int, B: int, obs_dim: int, act_dim: int, latent_dim: int, priv_dim: int,
                 device: torch.device):
        self.T, self.B, self.device = T, B, device
        z = lambda *s: torch.zeros(*s, device=device)  # noqa: E731
        self.data = {
            "obs": z(T, B, obs_dim), "z": z(T, B, latent_dim), "priv": z(T, B, priv_dim),
            "actions": z(T, B, act_dim), "logp": z(T, B), "values": z(T, B),
            "rewards": z(T, B), "dones": z(T, B),
        }
        self.t = 0
        self.advantages = z(T, B)
        self.returns = z(T, B)

    def add(self, **fields: torch.Tensor) -> None:
        """Store one step: every field of ``data``, each (B, ...)."""
        for k, v in fields.items():
            self.data[k][self.t] = v
        self.t += 1

    def full(self) -> bool:
        return self.t == self.T

    def clear(self) -> None:
        self.t = 0

    def finish(self, last_values: torch.Tensor, gamma: float, lam: float) -> None:
        """Compute advantages and returns (see :func:`compute_gae`)."""
        d = self.data
        self.advantages, self.returns = compute_gae(d["rewards"], d["values"], d["dones"],
                                                    last_values, gamma, lam)

    def minibatches(self, n: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """n shuffled minibatches covering the buffer once (flattened over T and B)."""
        N = self.T * self.B
        flat = {k: v.reshape(N, *v.shape[2:]) for k, v in self.data.items()}
        flat["advantages"] = self.advantages.reshape(N)
        flat["returns"] = self.returns.reshape(N)
        perm = torch.from_numpy(rng.permutation(N)).to(self.device)
        for idx in perm.chunk(n):
            yield {k: v[idx] for k, v in flat.items()}
