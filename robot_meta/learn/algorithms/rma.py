"""RMA: a policy pi(o, z) with a privileged encoder z = mu(e) (phase 1), then an adaptation
module z_hat = phi(last H steps of (o, a)) regressed to mu(e) on its own rollouts (phase 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.learn.agent import Agent
from robot_meta.learn.algorithms.base import Shard, concat_envs, merge_metrics, merge_returns, to_numpy
from robot_meta.learn.algorithms.ppo import PPO
from robot_meta.learn.models.actor_critic import ActorCritic
from robot_meta.learn.models.history_encoder import HistoryEncoder
from robot_meta.learn.models.privileged_encoder import PrivilegedEncoder

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike


class RMA(PPO):
    """Rapid Motor Adaptation (Kumar et al. 2021).

    * ``teacher`` phase: PPO trains pi(o, z) and mu(e) end to end, z = mu(e), e the true
      normalized factor vector.
    * ``student`` phase: pi and mu are frozen; phi drives the policy (DAgger-style: the states
      come from phi's own mistakes) and is trained by regression,
          L = || phi(h_t) - mu(e) ||^2,   h_t = (o_k, a_k) for k = t-H .. t-1,
      with the history zero-padded at episode starts.
    At deployment, phi runs at every control step.
    """

    name = "rma"
    phases = ("teacher", "student")

    def context_dim(self) -> int:
        return self.cfg.model.latent_dim

    def build_extra(self, gen: torch.Generator) -> None:
        s, m = self.spec, self.cfg.model
        self.mu = PrivilegedEncoder(s.priv_dim, m.latent_dim, m.encoder_hidden, generator=gen).to(self.device)
        self.phi = HistoryEncoder(s.obs_dim, s.act_dim, self.cfg.rma.history, m.latent_dim,
                                  generator=gen).to(self.device)
        self.phi_opt = torch.optim.Adam(self.phi.parameters(), lr=self.cfg.rma.lr)
        self.student_started = False

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.ac.parameters()) + list(self.mu.parameters())

    def phase_at(self, progress: float) -> str:
        return "teacher" if progress < 1.0 - self.cfg.rma.phase2_fraction else "student"

    # ---- teacher: z = mu(e) ------------------------------------------------------------------
    def act_context(self, obs: torch.Tensor, priv: torch.Tensor) -> torch.Tensor:
        return self.mu(priv)

    def update_context(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.mu(batch["priv"])  # gradient flows into mu through the policy loss

    # ---- student: phi ------------------------------------------------------------------------
    def reset_segment_state(self, env: VecEnvLike) -> None:
        B, s = self.cfg.run.num_envs, self.spec
        self.hist = torch.zeros(B, self.cfg.rma.history, s.obs_dim + s.act_dim, device=self.device)

    def prepare_iteration(self, phase: str) -> None:
        if phase == "student" and not self.student_started:
            # phi sees raw observations through a frozen copy of the policy's normalizer.
            self.phi.obs_norm.load_state_dict(self.ac.obs_norm.state_dict())
            self.student_started = True

    def rollout_modules(self) -> dict[str, torch.nn.Module]:
        return {"ac": self.ac, "mu": self.mu, "phi": self.phi}

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        if phase == "teacher":
            return super().collect_shard(env, phase)
        return self.student_collect(env)

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        if phase == "teacher":
            return super().learn(shards, phase)
        return self.student_learn(shards)

    def student_collect(self, env: VecEnvLike) -> Shard:
        """Collect T steps acting with a = mu_pi(o, phi(h)); returns this shard's share of the
        regression rows (h, mu(e)), drawn without replacement."""
        T, B = self.cfg.ppo.horizon, self.cfg.run.num_envs
        assert self.rng is not None and self.obs is not None
        hists = torch.zeros(T, *self.hist.shape, device=self.device)
        targets = torch.zeros(T, B, self.latent_dim, device=self.device)
        rew_sum = 0.0
        with torch.no_grad():
            for t in range(T):
                obs_t = self.tensor(self.obs)
                priv_t = self.tensor(env.factors)
                hists[t] = self.hist
                targets[t] = self.mu(priv_t)
                z_hat = self.phi(self.hist)
                action = self.ac(obs_t, z_hat)
                next_obs, rew, _term, _trunc, info = env.step(action.cpu().numpy().astype(np.float64))
                done = info["done"]
                entry = torch.cat([obs_t, action], dim=-1)
                self.hist = torch.cat([self.hist[:, 1:], entry[:, None]], dim=1)
                if done.any():
                    self.hist[torch.as_tensor(done, device=self.device)] = 0.0
                    self.ep_returns.extend(info["episode_return"][done].tolist())
                rew_sum += float(rew.mean())
                self.obs = next_obs
        N = T * B
        X, Y = hists.reshape(N, *hists.shape[2:]), targets.reshape(N, -1)
        # Consecutive histories overlap almost entirely: a random subset of the collected rows
        # (batches x batch_size per iteration, this shard's share B_k / B of them) carries nearly
        # all of the information.
        r = self.cfg.rma
        share = round(r.batches * r.batch_size * B / self.total_envs)
        pick = torch.from_numpy(self.rng.choice(N, size=min(N, share), replace=False)).to(self.device)
        rets, self.ep_returns = np.asarray(self.ep_returns, dtype=float), []
        return {"num_envs": B, "steps": N, "metrics": {"reward/step_mean": rew_sum / T},
                "episode_returns": rets, "rows": to_numpy({"h": X[pick], "target": Y[pick]})}

    def student_learn(self, shards: list[Shard]) -> dict[str, float]:
        """Regress phi(h) to mu(e) over the shards' rows: L = || phi(h) - mu(e) ||^2."""
        d = concat_envs(shards, "rows", axis=0)
        X, Y = d["h"].to(self.device), d["target"].to(self.device)
        losses = []
        for idx in torch.arange(len(X), device=self.device).split(self.cfg.rma.batch_size):
            loss = (self.phi(X[idx]) - Y[idx]).pow(2).sum(-1).mean()
            self.phi_opt.zero_grad()
            loss.backward()
            self.phi_opt.step()
            losses.append(float(loss.detach()))
        m = {"loss/adaptation": float(np.mean(losses))}
        m.update(merge_metrics(shards))
        m["steps"] = float(sum(s["steps"] for s in shards))
        merge_returns(shards, m)
        return m

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        d.update(mu=self.mu.state_dict(), phi=self.phi.state_dict(), phi_opt=self.phi_opt.state_dict(),
                 student_started=self.student_started)
        return d

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.mu.load_state_dict(state["mu"])
        self.phi.load_state_dict(state["phi"])
        self.phi_opt.load_state_dict(state["phi_opt"])
        self.student_started = bool(state["student_started"])

    def agent(self, num_envs: int) -> Agent:
        return RMAAgent(self.ac, self.mu, self.phi, num_envs, self.device)

    def deployment_modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.ac, "encoder": self.phi, "privileged_encoder": self.mu}

    def export_fields(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "history_length": self.cfg.rma.history, "extra": {}}


class RMAAgent(Agent):
    """phi online at every step (adapt), phi on an empty history held fixed (prior), mu(e) (oracle).
    The history is reset at each rollout start: RMA adapts within a rollout."""

    def __init__(self, ac: ActorCritic, mu: PrivilegedEncoder, phi: HistoryEncoder, n: int,
                 device: torch.device):
        self.ac, self.mu, self.phi, self.n, self.device = ac, mu, phi, n, device
        self.hist = torch.zeros(n, phi.history, phi.obs_dim + phi.act_dim, device=device)
        self.mode = "adapt"

    def reset_task(self) -> None:
        self.hist.zero_()

    def begin_episode(self, mode: str) -> None:
        self.mode = mode
        self.hist.zero_()

    @torch.no_grad()
    def act(self, obs: np.ndarray, priv: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if self.mode == "oracle":
            z = self.mu(torch.as_tensor(priv, dtype=torch.float32, device=self.device))
        elif self.mode == "prior":
            z = self.phi(torch.zeros_like(self.hist))
        else:
            z = self.phi(self.hist)
        return self.ac(o, z).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                mask: np.ndarray) -> None:
        entry = torch.as_tensor(np.concatenate([obs, action], axis=1), dtype=torch.float32,
                                device=self.device)
        m = torch.as_tensor(mask, device=self.device)
        rolled = torch.cat([self.hist[:, 1:], entry[:, None]], dim=1)
        self.hist[m] = rolled[m]
