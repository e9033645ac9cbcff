"""The RL2 recurrent policy: a GRU over (observation, previous action, reward, done flag) whose
hidden state is the task memory, a Gaussian action head and a privileged critic."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robot_meta.learn.models.mlp import MLP
from robot_meta.learn.models.normalizer import EmpiricalNormalizer


class RecurrentActorCritic(nn.Module):
    """GRU actor-critic (Duan et al. 2016, "RL2"; Wang et al. 2016).

    One control step, with x_t = [norm(o_t), a_{t-1}, r_{t-1}, d_{t-1}]:

        h_t = GRU(x_t, h_{t-1})                                  (h_0 = 0 at a trial start)
        pi(a_t | o_t, h_t) = N(mu([norm(o_t), h_t]), diag(sigma^2))
        V_t = V([norm(o_t), e, h_t])

    * ``a_{t-1}`` is the action sent at the previous step (in [-1, 1]), ``r_{t-1}`` the reward it
      earned and ``d_{t-1}`` = 1 when step t is the first of an episode (then a_{t-1} = 0 and
      r_{t-1} = 0). The hidden state is *not* reset at episode boundaries within a trial: it is
      what carries the knowledge of the task from one episode to the next.
    * The action head sees norm(o_t) directly as well as h_t, so the GRU need only carry what
      the current observation does not tell: the dynamics of the task.
    * ``e`` is the privileged factor vector, seen only by the critic (asymmetric actor-critic);
      the critic also reads h_t, because the value depends on how far the policy has adapted.
    * sigma is state-independent: log sigma is a learned vector.
    * The running observation normalizer is part of the module, so that ``forward`` (the
      deployment path, exported to ONNX) takes raw sensor values.
    """

    def __init__(self, obs_dim: int, act_dim: int, priv_dim: int, hidden_size: int,
                 hidden: Sequence[int], *, init_std: float = 0.5, actor_gain: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.obs_dim, self.act_dim, self.priv_dim = obs_dim, act_dim, priv_dim
        self.hidden_size = hidden_size
        self.input_dim = obs_dim + act_dim + 2  # [norm(o), a_prev, r_prev, d_prev]
        self.obs_norm = EmpiricalNormalizer(obs_dim)
        self.gru = nn.GRUCell(self.input_dim, hidden_size)
        # GRU weights orthogonal per gate block (gain 1), biases zero, all from `generator`.
        for w in (self.gru.weight_ih, self.gru.weight_hh):
            for block in w.data.chunk(3, dim=0):
                nn.init.orthogonal_(block, gain=1.0, generator=generator)
        nn.init.zeros_(self.gru.bias_ih)
        nn.init.zeros_(self.gru.bias_hh)
        self.actor = MLP(obs_dim + hidden_size, hidden, act_dim, generator=generator, out_gain=actor_gain)
        self.critic = MLP(obs_dim + priv_dim + hidden_size, hidden, 1, generator=generator, out_gain=1.0)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """h_0 = 0, shape (batch, hidden_size)."""
        return torch.zeros(batch, self.hidden_size, device=device)

    def step(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
             prev_done: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One GRU step: (norm(o_t), h_t) from raw o_t (B, obs_dim), a_{t-1} (B, act_dim),
        r_{t-1} (B, 1), d_{t-1} (B, 1) and h_{t-1} (B, hidden_size)."""
        o = self.obs_norm(obs)
        x = torch.cat([o, prev_action, prev_reward, prev_done], dim=-1)
        return o, self.gru(x, h)

    def action_mean(self, norm_obs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """mu([norm(o_t), h_t]), the unclipped mean action (B, act_dim)."""
        return self.actor(torch.cat([norm_obs, h], dim=-1))

    def distribution(self, norm_obs: torch.Tensor, h: torch.Tensor) -> torch.distributions.Normal:
        """pi(. | o_t, h_t) as a diagonal Gaussian."""
        mean = self.action_mean(norm_obs, h)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def value(self, norm_obs: torch.Tensor, priv: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """V([norm(o_t), e, h_t]), shape (B,)."""
        return self.critic(torch.cat([norm_obs, priv, h], dim=-1)).squeeze(-1)

    def forward(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
                prev_done: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deployment step: (clip(mu, -1, 1), h_t) from raw inputs (see :meth:`step`); the
        normalizer and the clipping are baked in, ready for ONNX export."""
        o, h_out = self.step(obs, prev_action, prev_reward, prev_done, h)
        return torch.clamp(self.action_mean(o, h_out), -1.0, 1.0), h_out
