"""PEARL-style context meta-RL on PPO: a posterior q(z | c) over transitions of one task, and a
policy trained on z sampled from posteriors built from *other* rollouts of the same task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.learn.agent import Agent
from robot_meta.learn.algorithms.base import Shard
from robot_meta.learn.algorithms.ppo import PPO
from robot_meta.learn.models.actor_critic import ActorCritic
from robot_meta.learn.models.posterior_encoder import PosteriorEncoder
from robot_meta.learn.models.transition_decoder import TransitionDecoder
from robot_meta.sim.randomize import sample_params

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike


class PEARL(PPO):
    """Probabilistic context encoder (Rakelly et al. 2019) with an on-policy learner.

    * Tasks persist: each env keeps its task for ``episodes_per_task`` episodes, then draws a
      new one. At the start of an episode with m >= 1 earlier rollouts of the task, k ~ U{1..m}
      of them are picked and z ~ q(z | their transitions); with m = 0, z ~ N(0, I). z is held for
      the episode and conditions the policy pi(a | o, z), trained by PPO.
    * The encoder is trained as a conditional VAE over transitions of one task: for a context c
      and other transitions c' of the same task,
          L = E_{z ~ q(z|c)} [ 0.5 || D(o', a', z) - (norm(o'' - o'), r') ||^2 ]
              + beta KL(q(z | c) || N(0, I)),
      so z must carry what the dynamics depend on.
    * At deployment, the posterior mean given 1..K rollouts conditions the policy, and the
      posterior variance is the uncertainty.
    """

    name = "pearl"
    phases = ("pearl",)

    def context_dim(self) -> int:
        return self.cfg.model.latent_dim

    def build_extra(self, gen: torch.Generator) -> None:
        s, m = self.spec, self.cfg.model
        self.encoder = PosteriorEncoder(s.obs_dim, s.act_dim, m.latent_dim, m.encoder_hidden,
                                        generator=gen).to(self.device)
        self.decoder = TransitionDecoder(s.obs_dim, s.act_dim, m.latent_dim, m.encoder_hidden,
                                         generator=gen).to(self.device)
        self.vae_opt = torch.optim.Adam(list(self.encoder.parameters()) + list(self.decoder.parameters()),
                                        lr=self.cfg.pearl.lr)

    def env_kwargs(self) -> dict[str, Any]:
        return {"fixed_tasks": True}  # tasks change only when this algorithm says so

    # ---- per-env task state ------------------------------------------------------------------
    def reset_segment_state(self, env: VecEnvLike) -> None:
        B, L, E = self.cfg.run.num_envs, self.latent_dim, self.cfg.pearl.episodes_per_task
        D, M = self.encoder.transition_dim, self.cfg.pearl.task_memory
        dev = self.device
        self.ep_in_task = np.zeros(B, dtype=np.int64)
        self.prev_prec = torch.zeros(B, E, L, device=dev)  # per earlier rollout: sum_n 1/var_n
        self.prev_eta = torch.zeros(B, E, L, device=dev)  # and sum_n mu_n / var_n
        self.cur_prec = torch.zeros(B, L, device=dev)
        self.cur_eta = torch.zeros(B, L, device=dev)
        self.memory = torch.zeros(B, M, D, device=dev)  # transitions of the current task (ring)
        self.mem_count = np.zeros(B, dtype=np.int64)
        self.ranges = env.ranges
        self.new_transitions: list[torch.Tensor] = []
        self.z = torch.zeros(B, L, device=dev)
        self.draw_z(np.arange(B))

    def draw_z(self, idx: np.ndarray) -> None:
        """z for a new episode of envs idx: a sample of q(z | k random earlier rollouts)."""
        assert self.rng is not None and self.gen is not None
        if len(idx) == 0:
            return
        E = self.cfg.pearl.episodes_per_task
        m = self.ep_in_task[idx]
        k = np.where(m > 0, self.rng.integers(1, np.maximum(m, 1) + 1), 0)  # k ~ U{1..m}
        # pick k of the m earlier rollouts: the k smallest of m random keys
        keys = self.rng.random((len(idx), E))
        keys[np.arange(E)[None, :] >= m[:, None]] = np.inf
        rank = keys.argsort(1).argsort(1)
        sel = torch.as_tensor(rank < k[:, None], dtype=torch.float32, device=self.device)
        ii = torch.as_tensor(idx, device=self.device)
        prec = (self.prev_prec[ii] * sel[..., None]).sum(1)
        eta = (self.prev_eta[ii] * sel[..., None]).sum(1)
        mean, var = PosteriorEncoder.from_stats(prec, eta)
        eps = torch.randn(mean.shape, generator=self.gen).to(self.device)
        self.z[ii] = mean + var.sqrt() * eps

    def act_context(self, obs: torch.Tensor, priv: torch.Tensor) -> torch.Tensor:
        return self.z.clone()

    @torch.no_grad()
    def on_step(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                done: np.ndarray, env: VecEnvLike) -> None:
        B, M = self.cfg.run.num_envs, self.cfg.pearl.task_memory
        c = self.tensor(np.concatenate([obs, action, reward[:, None], next_obs], axis=1))
        pos = torch.as_tensor(self.mem_count % M, device=self.device)
        self.memory[torch.arange(B, device=self.device), pos] = c
        self.mem_count += 1
        self.new_transitions.append(c)
        prec, eta = self.encoder.stats(c)
        self.cur_prec += prec
        self.cur_eta += eta
        if not done.any():
            return
        idx = np.flatnonzero(done)
        ii = torch.as_tensor(idx, device=self.device)
        E = self.cfg.pearl.episodes_per_task
        slot = torch.as_tensor(np.minimum(self.ep_in_task[idx], E - 1), device=self.device)
        self.prev_prec[ii, slot] = self.cur_prec[ii]
        self.prev_eta[ii, slot] = self.cur_eta[ii]
        self.cur_prec[ii] = 0.0
        self.cur_eta[ii] = 0.0
        self.ep_in_task[idx] += 1
        new = idx[self.ep_in_task[idx] >= E]
        if len(new):
            # A new task from the training family. (The physics changes from the next step;
            # the already-reset first observation keeps the old sensor bias for one step.)
            assert self.rng is not None
            env.set_params(new, sample_params(env.robot, self.ranges, self.rng, len(new)))
            nn_ = torch.as_tensor(new, device=self.device)
            self.ep_in_task[new] = 0
            self.prev_prec[nn_] = 0.0
            self.prev_eta[nn_] = 0.0
            self.mem_count[new] = 0
        self.draw_z(idx)

    # ---- encoder training --------------------------------------------------------------------
    def vae_rows(self) -> np.ndarray:
        """Training rows for the encoder updates of this iteration, drawn from the per-env task
        memory: (updates, V, Nc + Nt, D), the first Nc transitions of a row a context c, the
        other Nt its targets c' (same task), for the V envs holding at least Nc + Nt."""
        p = self.cfg.pearl
        assert self.rng is not None
        Nc, Nt, M = p.context_size, p.target_size, p.task_memory
        valid = np.flatnonzero(self.mem_count >= Nc + Nt)
        out = np.zeros((p.encoder_updates, len(valid), Nc + Nt, self.encoder.transition_dim), np.float32)
        if len(valid) == 0:
            return out
        for u in range(p.encoder_updates):
            cnt = np.minimum(self.mem_count[valid], M)
            keys = self.rng.random((len(valid), M))
            keys[np.arange(M)[None, :] >= cnt[:, None]] = np.inf
            pick = torch.as_tensor(keys.argsort(1)[:, : Nc + Nt], device=self.device)
            out[u] = self.memory[torch.as_tensor(valid, device=self.device)[:, None], pick].cpu().numpy()
        return out

    def vae_update(self, transitions: torch.Tensor, rows: torch.Tensor) -> dict[str, float]:
        """Gradient steps on the conditional-VAE loss over transitions of the same task;
        ``transitions`` (N, D) are this iteration's (for the normalizers), ``rows`` come from
        :meth:`vae_rows` (of every shard, side by side)."""
        p = self.cfg.pearl
        assert self.gen is not None
        Nc, Nt = p.context_size, p.target_size
        # Normalizer statistics are updated once per iteration, from this iteration's data.
        self.encoder.update_normalizers(transitions)
        if rows.shape[1] == 0:
            return {}
        recs, kls = [], []
        for u in range(p.encoder_updates):
            ctx, tgt = rows[u, :, :Nc], rows[u, :, Nc:]
            mu_n, var_n = self.encoder.factors(ctx)
            prec = (1.0 / var_n).sum(1)
            eta = (mu_n / var_n).sum(1)
            mean, var = PosteriorEncoder.from_stats(prec, eta)
            z = mean + var.sqrt() * torch.randn(mean.shape, generator=self.gen).to(self.device)
            o, a, r, o2 = self.encoder.split(tgt)
            pred = self.decoder(self.encoder.obs_norm(o), a, z[:, None].expand(-1, Nt, -1))
            # Targets in comparable units: normalized state deltas, and rewards over their spread
            # in this batch (raw rewards vary by ~0.1 per step, so an error from ignoring z would
            # cost almost nothing next to the KL term and z would carry nothing).
            r_scale = r.std().clamp_min(1e-3).detach()
            target = torch.cat([self.encoder.delta_norm(o2 - o), r / r_scale], dim=-1)
            # The negative ELBO per task: the Nt target transitions' Gaussian log-likelihoods
            # are summed (each is evidence about the task), the KL to the prior is paid once:
            #   L = sum_t 0.5 ||D(o_t, a_t, z) - y_t||^2 + beta KL(q(z | c) || N(0, I)).
            # (Averaging over t instead weighs the KL Nt times more and collapses q to the prior.)
            rec_t = 0.5 * (pred - target).pow(2).sum(-1)  # (V, Nt)
            # KL(N(m, s^2) || N(0, I)) = 0.5 sum (s^2 + m^2 - 1 - log s^2)
            kl = 0.5 * (var + mean.pow(2) - 1.0 - var.log()).sum(-1).mean()
            rec = rec_t.mean()  # per transition, for the log
            loss = rec_t.sum(1).mean() + p.kl_weight * kl
            self.vae_opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(self.encoder.parameters()) + list(self.decoder.parameters()),
                                           self.cfg.ppo.max_grad_norm)
            self.vae_opt.step()
            recs.append(float(rec.detach()))
            kls.append(float(kl.detach()))
        return {"loss/reconstruction": float(np.mean(recs)), "kl_posterior": float(np.mean(kls))}

    def rollout_modules(self) -> dict[str, torch.nn.Module]:
        return {"ac": self.ac, "encoder": self.encoder}

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        shard = super().collect_shard(env, phase)
        T, B = self.cfg.ppo.horizon, self.cfg.run.num_envs
        # this iteration's transitions, (T, B_k, D): side by side over shards, then flattened
        shard["transitions"] = torch.cat(self.new_transitions).view(T, B, -1).cpu().numpy().copy()
        self.new_transitions = []
        shard["vae_rows"] = self.vae_rows()
        with torch.no_grad():
            _, var = PosteriorEncoder.from_stats(self.prev_prec.sum(1), self.prev_eta.sum(1))
            shard["metrics"]["posterior_std"] = float(var.sqrt().mean())
        return shard

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        m = super().learn(shards, phase)
        trans = torch.as_tensor(np.concatenate([s["transitions"] for s in shards], axis=1))
        rows = torch.as_tensor(np.concatenate([s["vae_rows"] for s in shards], axis=1))
        m.update(self.vae_update(trans.reshape(-1, trans.shape[-1]).to(self.device), rows.to(self.device)))
        return m

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        d.update(encoder=self.encoder.state_dict(), decoder=self.decoder.state_dict(),
                 vae_opt=self.vae_opt.state_dict())
        return d

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.vae_opt.load_state_dict(state["vae_opt"])

    def agent(self, num_envs: int) -> Agent:
        agent = PEARLAgent(self.ac, self.encoder, num_envs, self.device)
        agent.oracle_warmup = self.cfg.eval.oracle_rollouts
        return agent

    def deployment_modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.ac, "encoder": self.encoder}


class PEARLAgent(Agent):
    """z = the posterior mean given every rollout since ``reset_task`` (adapt, oracle after the
    evaluator's warm-up rollouts), or the prior mean 0 (prior). z is fixed within a rollout."""

    def __init__(self, ac: ActorCritic, encoder: PosteriorEncoder, n: int, device: torch.device):
        self.ac, self.encoder, self.n, self.device = ac, encoder, n, device
        L = encoder.latent_dim
        self.prec = torch.zeros(n, L, device=device)
        self.eta = torch.zeros(n, L, device=device)
        self.cur_prec = torch.zeros(n, L, device=device)
        self.cur_eta = torch.zeros(n, L, device=device)
        self.z = torch.zeros(n, L, device=device)

    def reset_task(self) -> None:
        for t in (self.prec, self.eta, self.cur_prec, self.cur_eta):
            t.zero_()

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) of q(z | all completed rollouts), each (n, L)."""
        return PosteriorEncoder.from_stats(self.prec, self.eta)

    def begin_episode(self, mode: str) -> None:
        self.cur_prec.zero_()
        self.cur_eta.zero_()
        self.z = torch.zeros_like(self.z) if mode == "prior" else self.posterior()[0]

    @torch.no_grad()
    def act(self, obs: np.ndarray, priv: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.ac(o, self.z).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                mask: np.ndarray) -> None:
        c = torch.as_tensor(np.concatenate([obs, action, reward[:, None], next_obs], axis=1),
                            dtype=torch.float32, device=self.device)
        prec, eta = self.encoder.stats(c)
        m = torch.as_tensor(mask, dtype=torch.float32, device=self.device)[:, None]
        self.cur_prec += prec * m
        self.cur_eta += eta * m

    def end_episode(self) -> None:
        self.prec += self.cur_prec
        self.eta += self.cur_eta

    def uncertainty(self) -> np.ndarray:
        return self.posterior()[1].sqrt().mean(-1).cpu().numpy()
