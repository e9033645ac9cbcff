"""PPO on the batched env: the robust (domain-randomization-only) baseline, and the base of the
context methods (RMA, PEARL), which only change what the context z is."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np
import torch

from robot_meta.learn.agent import Agent
from robot_meta.learn.algorithms.base import (
    Algorithm,
    EnvSpec,
    Shard,
    concat_envs,
    merge_metrics,
    merge_returns,
    to_numpy,
)
from robot_meta.learn.config import PPOConfig, TrainConfig
from robot_meta.learn.models.actor_critic import ActorCritic
from robot_meta.learn.storage.rollout_buffer import RolloutBuffer

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike

M = TypeVar("M")  # a minibatch, whatever the algorithm samples


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip: float) -> tuple[torch.Tensor, float, float]:
    """The PPO policy loss of a minibatch, with the KL and the clipped fraction.

    ratio = pi(a|s) / pi_old(a|s);  L_clip = -E[min(ratio A, clip(ratio, 1-eps, 1+eps) A)],
    A normalized over the minibatch; KL(old || new) estimated as E[(ratio - 1) - log ratio]
    (Schulman's k3). Returns (L_clip, KL, fraction of clipped ratios).
    """
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    pg = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
    with torch.no_grad():
        kl = float(((ratio - 1) - log_ratio).mean())
        clip_frac = float(((ratio - 1).abs() > clip).float().mean())
    return pg, kl, clip_frac


def adapt_lr(optimizer: torch.optim.Optimizer, lr: float, kl: float, cfg: PPOConfig) -> float:
    """The KL-adaptive schedule: lr /= 1.5 when KL > 2 KL*, lr *= 1.5 when KL < KL*/2, within
    [min_lr, max_lr]; applied to ``optimizer`` (except parameter groups marked ``fixed_lr``) and
    returned (unchanged for a fixed schedule)."""
    if cfg.lr_schedule == "adaptive":
        if kl > 2.0 * cfg.desired_kl:
            lr = max(cfg.min_lr, lr / 1.5)
        elif kl < cfg.desired_kl / 2.0:
            lr = min(cfg.max_lr, lr * 1.5)
        for g in optimizer.param_groups:
            if not g.get("fixed_lr"):
                g["lr"] = lr
    return lr


LOSS_STATS = ("loss/policy", "loss/value", "loss/entropy", "kl", "clip_frac")


class MinibatchLoss(NamedTuple):
    """One minibatch's PPO loss and its terms (the stats of LOSS_STATS, in that order after ``loss``)."""

    loss: torch.Tensor
    pg: torch.Tensor
    v_loss: torch.Tensor
    entropy: torch.Tensor
    kl: float
    clip_frac: float


def ppo_loss(cfg: PPOConfig, pg: torch.Tensor, v_loss: torch.Tensor, entropy: torch.Tensor, kl: float,
             clip_frac: float, extra: torch.Tensor | float | None = None) -> MinibatchLoss:
    """L = L_clip + c_v L_V - c_H H [+ extra], with its terms."""
    loss = pg + cfg.value_coef * v_loss - cfg.entropy_coef * entropy
    if extra is not None:
        loss = loss + extra
    return MinibatchLoss(loss, pg, v_loss, entropy, kl, clip_frac)


def add_loss_stats(stats: dict[str, float], mb: MinibatchLoss) -> None:
    """Accumulate one minibatch's losses into ``stats`` (keys LOSS_STATS, averaged by the caller)."""
    for k, v in zip(LOSS_STATS, (float(mb.pg.detach()), float(mb.v_loss.detach()), float(mb.entropy.detach()),
                                 mb.kl, mb.clip_frac), strict=True):
        stats[k] = stats.get(k, 0.0) + v


def minibatch_step(algo: Algorithm, params: Iterable[torch.nn.Parameter], mb: MinibatchLoss,
                   reject: Callable[[], float | None] | None = None) -> MinibatchLoss | None:
    """One PPO minibatch update of ``algo`` (its ``optimizer``, ``lr`` and ``cfg.ppo``): back-propagate
    ``mb.loss``, clip the gradient norm of ``params``, step, and follow the KL-adaptive schedule.

    ``reject`` (a trust region) runs after the step; when it returns a KL the step was undone, the
    schedule follows that KL and None is returned. Otherwise the schedule follows ``mb.kl`` and
    ``mb`` is returned."""
    cfg = algo.cfg.ppo
    algo.optimizer.zero_grad()
    mb.loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    algo.optimizer.step()
    kl_rejected = reject() if reject is not None else None
    if kl_rejected is not None:
        algo.lr = adapt_lr(algo.optimizer, algo.lr, kl_rejected, cfg)
        return None
    algo.lr = adapt_lr(algo.optimizer, algo.lr, mb.kl, cfg)
    return mb


def ppo_epochs(cfg: PPOConfig, minibatches: Callable[[], Iterable[M]],
               update: Callable[[M], MinibatchLoss | None],
               early_stop: bool = True) -> tuple[dict[str, float], int]:
    """The PPO epoch loop that ppo (and rma, pearl), rl2, maml/fomaml and cavia share.

    ``cfg.epochs`` passes; each calls ``minibatches()`` for that epoch's shuffled split (the draw
    happens there, once per epoch) and ``update`` on every minibatch (one optimizer step, usually
    :func:`minibatch_step`). The epochs stop early once a minibatch's KL exceeds ``cfg.max_kl``
    (with ``early_stop`` and max_kl > 0), or when ``update`` returns None (a rejected step).
    Returns the LOSS_STATS averaged over the accepted updates, and their number."""
    stats = dict.fromkeys(LOSS_STATS, 0.0)
    n = 0
    for _ in range(cfg.epochs):
        for batch in minibatches():
            mb = update(batch)
            if mb is None:
                return mean_stats(stats, n), n
            add_loss_stats(stats, mb)
            n += 1
            if early_stop and cfg.max_kl > 0 and mb.kl > cfg.max_kl:
                return mean_stats(stats, n), n
    return mean_stats(stats, n), n


def mean_stats(stats: dict[str, float], n: int) -> dict[str, float]:
    """Summed minibatch stats -> their means over n updates."""
    return {k: v / max(n, 1) for k, v in stats.items()}


def explained_variance(ret: torch.Tensor, val: torch.Tensor) -> float:
    """1 - Var[R - V] / Var[R]: how much of the returns' variance the critic explains."""
    return float(1 - (ret - val).var() / (ret.var() + 1e-8))


class PPO(Algorithm):
    """Clipped PPO with GAE, a running observation normalizer, an entropy bonus, gradient-norm
    clipping and a KL-adaptive learning rate with early stopping.

    Rewards are scaled by (1 - gamma) inside the learner so that values lie in [0, 1] whatever
    the episode length; logged returns are unscaled. Subclasses override the context hooks
    ``act_context`` (z used to act, no gradient), ``update_context`` (z of a minibatch, with
    gradient when an encoder learns through the policy loss) and ``on_step``.
    """

    name = "ppo"
    ac: ActorCritic
    phases: tuple[str, ...] = ("ppo",)

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, device: torch.device):
        super().__init__(cfg, spec, device)
        gen = torch.Generator().manual_seed(cfg.run.seed)
        self.init_gen = gen
        self.latent_dim = self.context_dim()
        self.ac = ActorCritic(spec.obs_dim, spec.act_dim, self.latent_dim, spec.priv_dim,
                              cfg.model.hidden, init_std=cfg.ppo.init_std,
                              actor_gain=cfg.ppo.actor_init_gain, generator=gen).to(device)
        self.build_extra(gen)
        self.lr = cfg.ppo.lr
        self.optimizer = torch.optim.Adam(self.trainable_parameters(), lr=self.lr)
        self.buffer = RolloutBuffer(cfg.ppo.horizon, cfg.run.num_envs, spec.obs_dim, spec.act_dim,
                                    self.latent_dim, spec.priv_dim, device)
        self.obs: np.ndarray | None = None
        self.rng: np.random.Generator | None = None
        self.gen: torch.Generator | None = None

    # ---- hooks for subclasses ------------------------------------------------------------------
    def context_dim(self) -> int:
        """Size of z (0 for the robust baseline)."""
        return 0

    def build_extra(self, gen: torch.Generator) -> None:
        """Build extra modules (encoders) before the optimizer is created."""

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters the PPO loss optimizes."""
        return list(self.ac.parameters())

    def act_context(self, obs: torch.Tensor, priv: torch.Tensor) -> torch.Tensor:
        """z used to act at this step, (B, L), no gradient."""
        return obs.new_zeros(obs.shape[0], 0)

    def update_context(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """z of a minibatch in the PPO loss (with gradient if an encoder trains through it)."""
        return batch["z"]

    def on_step(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                done: np.ndarray, env: VecEnvLike) -> None:
        """Called after every env step; next_obs is the final observation on done rows."""

    def reset_segment_state(self, env: VecEnvLike) -> None:
        """Reset per-env state at the start of a segment."""

    # ---- segment -------------------------------------------------------------------------------
    def start_segment(self, env: VecEnvLike, obs: np.ndarray, rng: np.random.Generator,
                      gen: torch.Generator) -> None:
        self.obs, self.rng, self.gen = obs, rng, gen
        self.ep_returns: list[float] = []
        self.reset_segment_state(env)

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    # ---- collection ----------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self, env: VecEnvLike) -> dict[str, float]:
        """Fill the buffer with T steps of B envs, acting with a ~ pi(. | o, z)."""
        cfg = self.cfg.ppo
        assert self.obs is not None and self.gen is not None
        scale = 1.0 - cfg.gamma  # reward scaling: values in [0, 1]
        self.buffer.clear()
        term_sums: dict[str, float] = {}
        rew_sum = 0.0
        for _ in range(cfg.horizon):
            obs_t = self.tensor(self.obs)
            priv_t = self.tensor(env.factors)  # e before the step (done rows may get new tasks)
            z = self.act_context(obs_t, priv_t)
            dist = self.ac.distribution(obs_t, z)
            noise = torch.randn(dist.mean.shape, generator=self.gen)
            action = dist.mean + dist.stddev * noise
            logp = dist.log_prob(action).sum(-1)
            value = self.ac.value(obs_t, priv_t)
            a_np = action.cpu().numpy().astype(np.float64)
            next_obs, rew, _term, trunc, info = env.step(a_np)
            done = info["done"]
            r = self.tensor(rew) * scale
            if trunc.any():
                # Time limit: bootstrap the cut-off tail, r_T += gamma V(s_final).
                idx = np.flatnonzero(trunc)
                final = self.tensor(info["final_obs"][idx])
                r[idx] += cfg.gamma * self.ac.value(final, priv_t[idx])
            self.buffer.add(obs=obs_t, z=z, priv=priv_t, actions=action, logp=logp, values=value,
                            rewards=r, dones=self.tensor(done.astype(np.float32)))
            trans_next = next_obs
            if done.any():
                trans_next = next_obs.copy()
                trans_next[done] = info["final_obs"][done]
                self.ep_returns.extend(info["episode_return"][done].tolist())
            self.on_step(self.obs, np.clip(a_np, -1.0, 1.0), rew, trans_next, done, env)
            rew_sum += float(rew.mean())
            for k, v in info["reward_terms"].items():
                term_sums[k] = term_sums.get(k, 0.0) + float(v.mean())
            self.obs = next_obs
        last_obs = self.tensor(self.obs)
        last_v = self.ac.value(last_obs, self.tensor(env.factors))
        self.buffer.finish(last_v, cfg.gamma, cfg.lam)
        T = cfg.horizon
        out = {f"reward_terms/{k}": v / T for k, v in term_sums.items()}
        out["reward/step_mean"] = rew_sum / T
        return out

    # ---- update --------------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        """PPO epochs over the buffer.

        ratio = pi(a|s) / pi_old(a|s);  L_clip = -E[min(ratio A, clip(ratio, 1-eps, 1+eps) A)]
        L = L_clip + c_v (R - V(s))^2 - c_H H[pi];  A normalized per minibatch.
        The learning rate follows the KL: lr /= 1.5 when KL > 2 KL*, lr *= 1.5 when KL < KL*/2
        (adaptive schedule), and the epochs stop early once KL > max_kl.
        """
        cfg = self.cfg.ppo
        assert self.rng is not None
        rng = self.rng

        def update(batch: dict[str, torch.Tensor]) -> MinibatchLoss | None:
            z = self.update_context(batch)
            dist = self.ac.distribution(batch["obs"], z)
            logp = dist.log_prob(batch["actions"]).sum(-1)
            entropy = dist.entropy().sum(-1).mean()
            value = self.ac.value(batch["obs"], batch["priv"])
            pg, kl, clip_frac = clipped_surrogate(logp, batch["logp"], batch["advantages"], cfg.clip)
            v_loss = (batch["returns"] - value).pow(2).mean()
            mb = ppo_loss(cfg, pg, v_loss, entropy, kl, clip_frac, self.extra_loss(batch))
            return minibatch_step(self, self.trainable_parameters(), mb)

        out, n = ppo_epochs(cfg, lambda: self.buffer.minibatches(cfg.minibatches, rng), update)
        out["explained_variance"] = explained_variance(self.buffer.returns.flatten(),
                                                       self.buffer.data["values"].flatten())
        out["lr"] = self.lr
        out["action_std"] = float(self.ac.log_std.detach().exp().mean())
        out["minibatch_updates"] = float(n)
        return out

    def extra_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """An extra term added to the PPO loss (none here)."""
        return 0.0

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        """T steps of this env's B_k envs: the buffer with GAE advantages and returns (computed
        here, with the same value network the learner has) and the finished episodes' returns."""
        self.ac.train()
        m = self.collect(env)
        data = to_numpy(self.buffer.data)
        data["advantages"] = self.buffer.advantages.cpu().numpy().copy()
        data["returns"] = self.buffer.returns.cpu().numpy().copy()
        rets, self.ep_returns = np.asarray(self.ep_returns, dtype=float), []
        B = self.buffer.B
        return {"num_envs": B, "steps": self.cfg.ppo.horizon * B, "metrics": m,
                "episode_returns": rets, "buffer": data}

    def load_buffer(self, shards: list[Shard]) -> None:
        """The learner's buffer = the shards' (T, B_k, ...) rollouts side by side, (T, B, ...)."""
        d = concat_envs(shards, "buffer", axis=1)
        self.buffer.advantages, self.buffer.returns = d.pop("advantages"), d.pop("returns")
        self.buffer.data = {k: v.to(self.device) for k, v in d.items()}
        self.buffer.advantages = self.buffer.advantages.to(self.device)
        self.buffer.returns = self.buffer.returns.to(self.device)
        self.buffer.B = int(self.buffer.data["obs"].shape[1])
        self.buffer.t = self.buffer.T

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        self.ac.train()
        self.load_buffer(shards)
        m = merge_metrics(shards)
        m.update(self.update())
        # The normalizer is frozen within an iteration (old and new log-probs see the same
        # normalization) and updated from the collected observations afterwards.
        self.ac.obs_norm.update(self.buffer.data["obs"])
        m["steps"] = float(sum(s["steps"] for s in shards))
        merge_returns(shards, m)
        return m

    # ---- deployment ----------------------------------------------------------------------------
    def agent(self, num_envs: int) -> Agent:
        return PolicyAgent(self.ac, self.device)

    def deployment_modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.ac}

    def export_fields(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "history_length": 0, "extra": {}}


class PolicyAgent(Agent):
    """A context-free policy: every mode acts the same (the robust baseline)."""

    def __init__(self, ac: ActorCritic, device: torch.device):
        self.ac, self.device = ac, device

    def reset_task(self) -> None:
        pass

    def begin_episode(self, mode: str) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: np.ndarray, priv: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.ac(o, o.new_zeros(o.shape[0], 0)).cpu().numpy().astype(np.float64)
