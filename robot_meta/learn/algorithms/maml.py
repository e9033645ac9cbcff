"""MAML and first-order MAML for meta-RL, with a PPO-style clipped outer update (as in ProMP)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.learn.adaptation import (
    GradientAdaptation,
    Params,
    Rollouts,
    adapt_tasks,
    batched_action_mean,
    log_prob,
    moved_names,
    policy_params,
    stack_params,
)
from robot_meta.learn.agent import Agent
from robot_meta.learn.algorithms import ppo
from robot_meta.learn.algorithms.base import Algorithm, EnvSpec, Shard, to_numpy
from robot_meta.learn.config import ConfigError, TrainConfig
from robot_meta.learn.models.actor_critic import ActorCritic
from robot_meta.learn.storage.rollout_buffer import compute_gae
from robot_meta.sim.randomize import sample_params

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike


def _lr_key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys may not contain dots


class MAML(Algorithm):
    """Model-agnostic meta-learning (Finn et al. 2017) on a Gaussian policy.

    One meta-iteration over a meta-batch of M tasks, each simulated by R envs:
      1. pre-update: one rollout per env with theta (R rollouts per task, sampled actions);
      2. inner loop: theta'_i = adapt(theta, rollouts of task i), k policy-gradient steps
         (:mod:`robot_meta.learn.adaptation`, the rule the robot runs);
      3. post-update: one rollout per env with theta'_i;
      4. outer update: PPO epochs on the post-update data, differentiating through the inner
         step. With r = pi_{theta'_i(theta)}(a | o) / pi_{theta'_i,old}(a | o),
             L_out(theta) = -mean min(r A, clip(r, 1 - eps, 1 + eps) A) + c_v (R - V)^2 - c_H H,
         A from GAE with a privileged critic V(o, e) fitted to post-update returns.
         dL_out/dtheta = (I - alpha d^2 L_in/dtheta^2) grad L_out(theta'): ``torch.autograd.grad``
         with ``create_graph=True`` inside the inner step keeps the Hessian term; first-order
         MAML (:class:`FOMAML`) drops it (theta' = theta + stop_grad(theta'_i - theta)).
    The learning rate follows the outer KL as in PPO. With ``meta_sgd``, alpha is one learned
    rate per parameter tensor, trained by the outer loss.
    """

    name = "maml"
    ac: ActorCritic
    phases = ("meta",)
    first_order = False

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, device: torch.device):
        super().__init__(cfg, spec, device)
        gen = torch.Generator().manual_seed(cfg.run.seed)
        self.ac = ActorCritic(
            spec.obs_dim,
            spec.act_dim,
            0,
            spec.priv_dim,
            cfg.model.hidden,
            init_std=cfg.ppo.init_std,
            actor_gain=cfg.ppo.actor_init_gain,
            generator=gen,
        ).to(device)
        self.log_lr = torch.nn.ParameterDict()
        if cfg.meta.meta_sgd:
            for k in self.adapted_names():
                self.log_lr[_lr_key(k)] = torch.nn.Parameter(torch.tensor(math.log(cfg.meta.inner_lr)))
        self.lr = cfg.ppo.lr
        groups: list[dict[str, Any]] = [{"params": list(self.ac.parameters()), "lr": self.lr}]
        if cfg.meta.meta_sgd:
            groups.append(
                {"params": list(self.log_lr.parameters()), "lr": cfg.meta.rate_lr, "fixed_lr": True}
            )
        self.optimizer = torch.optim.Adam(groups)
        self.M, self.R = cfg.meta.meta_batch, cfg.meta.inner_rollouts
        if cfg.run.num_envs != self.M * self.R:
            raise ConfigError(
                f"[run].num_envs = {cfg.run.num_envs}: a {self.name} run needs [meta].meta_batch "
                f"* [meta].inner_rollouts = {self.M * self.R} envs"
            )
        self.rng: np.random.Generator | None = None
        self.gen: torch.Generator | None = None

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.ac.parameters()) + list(self.log_lr.parameters())

    def env_kwargs(self) -> dict[str, Any]:
        return {"fixed_tasks": True}  # the algorithm assigns tasks to envs

    # ---- the adaptation rule -------------------------------------------------------------------
    def adapted_names(self) -> list[str]:
        """The parameters the inner step moves: the actor tensors [meta].adapt_params selects, and
        log_std if adapt_std."""
        m = self.cfg.meta
        return moved_names(list(policy_params(self.ac)), m.adapt_params, m.adapt_std)

    def inner_rates(self) -> float | dict[str, torch.Tensor]:
        """alpha: the configured scalar, or the learned per-tensor rates (Meta-SGD)."""
        if not self.cfg.meta.meta_sgd:
            return float(self.cfg.meta.inner_lr)
        return {k: self.log_lr[_lr_key(k)].exp() for k in self.adapted_names()}

    def rule(self, detach: bool = False) -> GradientAdaptation:
        """The adaptation rule with the current rates (what a bundle records for the robot);
        ``detach``: rates as constants, for deployment."""
        m = self.cfg.meta
        rates = self.inner_rates()
        if detach and not isinstance(rates, float):
            rates = {k: v.detach() for k, v in rates.items()}
        return GradientAdaptation(
            self.ac, rates, steps=m.inner_steps, gamma=m.gamma, clip=self.cfg.ppo.clip,
            adapt_std=m.adapt_std, adapt_params=m.adapt_params,
        )

    def adapt_task(
        self, rule: GradientAdaptation, theta: Params, ro: Rollouts, differentiable: bool
    ) -> Params:
        """theta'_i for the outer loss: second order (MAML), first order (FOMAML), or a constant."""
        if not differentiable:
            return rule.adapt(theta, ro)
        if self.first_order:
            adapted = rule.adapt(theta, ro)
            out = {}
            for k in theta:
                a = rule.rate(k)
                if isinstance(a, float | int):
                    # fixed rate: theta' = theta + stop_grad(theta'_i - theta), d theta'/d theta = I
                    out[k] = theta[k] + (adapted[k] - theta[k].detach())
                else:
                    # First-order Meta-SGD: theta' = theta - alpha * stop_grad(G), G = (theta -
                    # theta'_i) / alpha the summed inner gradients, so d theta'/d theta = I and
                    # d theta'/d alpha = -G: the outer loss learns the rates without second derivatives.
                    out[k] = theta[k] - a * ((theta[k].detach() - adapted[k]) / a.detach())
            return out
        return rule.adapt(theta, ro, create_graph=True)

    # ---- segment -------------------------------------------------------------------------------
    def start_segment(
        self, env: VecEnvLike, obs: np.ndarray, rng: np.random.Generator, gen: torch.Generator
    ) -> None:
        self.rng, self.gen = rng, gen
        self.ranges = env.ranges

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def new_tasks(self, env: VecEnvLike) -> None:
        """Draw M tasks from the training family; task i runs on envs i*R .. i*R + R - 1."""
        assert self.rng is not None
        P = sample_params(env.robot, self.ranges, self.rng, self.M)
        env.set_params(slice(None), np.repeat(P, self.R, axis=0))

    def collect(self, env: VecEnvLike, stacked: Params) -> dict[str, torch.Tensor]:
        """One synchronized episode of every env, acting with task i's params stacked[.][i]
        (sampled actions); see :meth:`collect_with`."""
        M, R = self.M, self.R
        B = M * R
        std = stacked["log_std"].exp().repeat_interleave(R, 0)  # (B, act)
        return self.collect_with(
            env, lambda o: batched_action_mean(self.ac, stacked, o.view(M, R, -1)).reshape(B, -1), std)

    @torch.no_grad()
    def collect_with(self, env: VecEnvLike, mean_fn: Callable[[torch.Tensor], torch.Tensor],
                     std: torch.Tensor) -> dict[str, torch.Tensor]:
        """One synchronized episode of every env, sampling a ~ N(mean_fn(o), std^2) (std (B,
        act)). Returns (B, T, ...) tensors; ``mask`` is 1 until each env's episode ends, ``last``
        marks that step, ``term`` whether it ended by termination, ``final_obs`` is the next
        observation of each step (the true one at an episode's end)."""
        assert self.gen is not None
        T = env.episode_steps
        B = std.shape[0]
        obs = env.next_episode()
        keys = ("obs", "actions", "logp", "rewards", "mask", "last", "term", "final_obs")
        out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        active = np.ones(B, dtype=bool)
        priv = self.tensor(env.factors)
        for _ in range(T):
            o = self.tensor(obs)
            mean = mean_fn(o)
            a = mean + std * torch.randn(mean.shape, generator=self.gen)
            # log N(a; mean, std^2), summed over action dims
            logp = (-0.5 * ((a - mean) / std).pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
            next_obs, rew, term, _trunc, info = env.step(a.numpy().astype(np.float64))
            done = info["done"]
            final = next_obs.copy()
            if done.any():
                final[done] = info["final_obs"][done]
            out["obs"].append(o)
            out["actions"].append(a)
            out["logp"].append(logp)
            out["rewards"].append(self.tensor(rew))
            out["mask"].append(self.tensor(active.astype(np.float32)))
            out["last"].append(self.tensor((active & done).astype(np.float32)))
            out["term"].append(self.tensor((active & term).astype(np.float32)))
            out["final_obs"].append(self.tensor(final))
            active &= ~done
            obs = next_obs
            if not active.any():
                break
        data = {k: torch.stack(v, 1) for k, v in out.items()}
        data["priv"] = priv
        data["return"] = (data["rewards"] * data["mask"]).sum(1)
        return data

    def task_rollouts(self, data: dict[str, torch.Tensor], i: int) -> Rollouts:
        """The R rollouts of task i in collected data."""
        s = slice(i * self.R, (i + 1) * self.R)
        # the steps the task's worker collected (shards are padded to a common length when merged)
        T = int(data["row_T"][i * self.R]) if "row_T" in data else data["obs"].shape[1]
        return Rollouts(
            data["obs"][s, :T], data["actions"][s, :T], data["rewards"][s, :T], data["mask"][s, :T],
            data["logp"][s, :T],
        )

    def theta(self) -> Params:
        return policy_params(self.ac)

    def pre_update(self, env: VecEnvLike) -> tuple[dict[str, torch.Tensor], list[Params]]:
        """New tasks, the pre-update rollouts with theta, and each task's adapted params."""
        self.new_tasks(env)
        theta = {k: v.detach() for k, v in self.theta().items()}
        pre = self.collect(env, stack_params([theta] * self.M))
        rule = self.rule()
        adapted = [self.adapt_task(rule, theta, self.task_rollouts(pre, i), False) for i in range(self.M)]
        return pre, adapted

    # ---- outer update --------------------------------------------------------------------------
    @torch.no_grad()
    def outer_targets(self, post: dict[str, torch.Tensor]) -> None:
        """GAE advantages and returns of the post-update rollouts, with rewards scaled by
        (1 - gamma) as in PPO and the time-limit tail bootstrapped: r_T += gamma V(s_final)."""
        cfg = self.cfg.ppo
        B, T, _ = post["obs"].shape
        obs, priv = post["obs"].reshape(B * T, -1), post["priv"].repeat_interleave(T, 0)
        values = self.ac.value(obs, priv).view(B, T)
        r = post["rewards"] * (1.0 - cfg.gamma)
        trunc_last = post["last"] * (1.0 - post["term"])
        v_final = self.ac.value(post["final_obs"].reshape(B * T, -1), priv).view(B, T)
        r = r + cfg.gamma * v_final * trunc_last
        # Rows that never ended within the collected steps are cut off: bootstrap their tail.
        open_rows = post["mask"][:, -1] * (1.0 - post["last"][:, -1])
        r[:, -1] += cfg.gamma * v_final[:, -1] * open_rows
        dones = (
            post["last"]
            + open_rows[:, None] * torch.nn.functional.one_hot(torch.tensor(T - 1), T).to(r.dtype)[None, :]
        )
        adv, ret = compute_gae(r.T, values.T, dones.T, torch.zeros(B), cfg.gamma, cfg.lam)
        post["values"], post["advantages"], post["returns"] = values, adv.T, ret.T

    def outer_update(self, pre: dict[str, torch.Tensor], post: dict[str, torch.Tensor]) -> dict[str, float]:
        """PPO epochs over task minibatches, differentiating through each task's inner step."""
        cfg = self.cfg.ppo
        assert self.rng is not None
        rng = self.rng
        self.outer_targets(post)
        R, T = self.R, post["obs"].shape[1]
        rejected = 0.0

        def update(tasks: np.ndarray) -> ppo.MinibatchLoss | None:
            rows = torch.as_tensor(np.concatenate([np.arange(i * R, (i + 1) * R) for i in tasks]))
            logp = self.post_logp(tasks, pre, post, True)
            valid = post["mask"][rows].bool()
            old_logp, adv = post["logp"][rows][valid], post["advantages"][rows][valid]
            pg, kl, clip_frac = ppo.clipped_surrogate(logp[valid], old_logp, adv, cfg.clip)
            obs = post["obs"][rows].reshape(-1, post["obs"].shape[-1])
            value = self.ac.value(obs, post["priv"][rows].repeat_interleave(T, 0)).view(len(rows), T)
            v_loss = (post["returns"][rows] - value)[valid].pow(2).mean()
            # H[N(mu, s^2)] = sum log s + 0.5 log(2 pi e), of the pre-update policy
            entropy = (self.ac.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()
            mb = ppo.ppo_loss(cfg, pg, v_loss, entropy, kl, clip_frac)
            if cfg.max_kl <= 0:
                return ppo.minibatch_step(self, self.trainable_parameters(), mb)
            backup = self.snapshot()

            def trust_region() -> float | None:
                # The step changes theta'_i(theta) through the inner loop, where a small step of
                # theta can move the adapted policy far. Measure the KL it caused and undo it if it
                # leaves the region. (The inner step needs autograd; its result is detached.)
                nonlocal rejected
                new_logp = self.post_logp(tasks, pre, post, False).detach()
                _, kl_new, _ = ppo.clipped_surrogate(new_logp[valid], old_logp, adv, cfg.clip)
                if not kl_new > cfg.max_kl:  # (a NaN KL keeps the step, as a comparison would)
                    return None
                self.restore(backup)
                rejected += 1.0
                return kl_new

            return ppo.minibatch_step(self, self.trainable_parameters(), mb, trust_region)

        n_split = min(cfg.minibatches, self.M)
        out, n = ppo.ppo_epochs(cfg, lambda: np.array_split(rng.permutation(self.M), n_split), update)
        out["rejected_steps"] = rejected
        m = post["mask"].bool()
        out["explained_variance"] = ppo.explained_variance(post["returns"][m], post["values"][m])
        out["minibatch_updates"] = float(n)
        return out

    def post_logp(
        self,
        tasks: np.ndarray,
        pre: dict[str, torch.Tensor],
        post: dict[str, torch.Tensor],
        differentiable: bool,
    ) -> torch.Tensor:
        """log pi_{theta'_i(theta)}(a | o) on the post-update rollouts of ``tasks``, (len*R, T)."""
        rule, theta, R = self.rule(), self.theta(), self.R
        logps = []
        for i in tasks:
            th_i = self.adapt_task(rule, theta, self.task_rollouts(pre, int(i)), differentiable)
            s = slice(int(i) * R, (int(i) + 1) * R)
            logps.append(log_prob(self.ac, th_i, post["obs"][s], post["actions"][s]))
        return torch.cat(logps)

    def snapshot(self) -> dict[str, Any]:
        """Copies of the trainable parameters and the optimizer state (to undo a step)."""
        import copy

        return {
            "params": [p.detach().clone() for p in self.trainable_parameters()],
            "opt": copy.deepcopy(self.optimizer.state_dict()),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        with torch.no_grad():
            for p, v in zip(self.trainable_parameters(), snap["params"], strict=True):
                p.copy_(v)
        self.optimizer.load_state_dict(snap["opt"])

    def rollout_modules(self) -> dict[str, torch.nn.Module]:
        return {"ac": self.ac, "log_lr": self.log_lr}

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        """This shard's tasks: pre-update rollouts, the inner loop (theta'_i for each of its
        tasks, no outer gradient), and the post-update rollouts with theta'_i."""
        pre, adapted = self.pre_update(env)
        post = self.collect(env, stack_params(adapted))
        return self.shard(pre, post, adapted)

    def shard(self, pre: dict[str, torch.Tensor], post: dict[str, torch.Tensor] | None,
              adapted: list[Params]) -> Shard:
        steps = pre["mask"].numel() + (post["mask"].numel() if post is not None else 0)
        out: Shard = {"num_envs": self.M * self.R, "steps": steps, "metrics": {},
                      "episode_returns": np.zeros(0), "pre": self.numpy_rollout(pre)}
        if post is not None:
            out["post"] = self.numpy_rollout(post)
        return out

    @staticmethod
    def numpy_rollout(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        out = to_numpy(d)
        out["row_T"] = np.full(d["obs"].shape[0], d["obs"].shape[1], dtype=np.int64)
        return out

    @staticmethod
    def merge_rollouts(shards: list[Shard], key: str) -> dict[str, torch.Tensor]:
        """The shards' (B_k, T_k, ...) rollouts as one (B, max T_k, ...) batch; a shorter
        shard (every episode of it ended early) is padded with mask 0 (no valid step)."""
        T = max(s[key]["obs"].shape[1] for s in shards)
        out = {}
        for k in shards[0][key]:
            parts = []
            for s in shards:
                x = s[key][k]
                if x.ndim >= 2 and k not in ("priv", "row_T"):
                    x = np.pad(x, [(0, 0), (0, T - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
                parts.append(x)
            out[k] = torch.as_tensor(np.concatenate(parts, axis=0))
        return out

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        pre, post = self.merge_rollouts(shards, "pre"), self.merge_rollouts(shards, "post")
        m = self.outer_update(pre, post)
        self.ac.obs_norm.update(pre["obs"][pre["mask"].bool()])
        return self.finish_metrics(m, pre, post, shards)

    def finish_metrics(
        self, m: dict[str, float], pre: dict[str, torch.Tensor], post: dict[str, torch.Tensor] | None,
        shards: list[Shard],
    ) -> dict[str, float]:
        m["return/pre_update"] = float(pre["return"].mean())
        m["steps"] = float(sum(s["steps"] for s in shards))  # collected steps, not padding
        if post is not None:
            m["return/post_update"] = float(post["return"].mean())
            m["return/adaptation_gain"] = m["return/post_update"] - m["return/pre_update"]
        m["episode_return"] = m.get("return/post_update", m["return/pre_update"])
        m["lr"] = self.lr
        m["action_std"] = float(self.ac.log_std.detach().exp().mean())
        if self.cfg.meta.meta_sgd:
            m["inner_lr_mean"] = float(torch.stack([v.detach().exp() for v in self.log_lr.values()]).mean())
        return m

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "log_lr": self.log_lr.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        extra = sorted(set(state["log_lr"]) - set(self.log_lr))
        if extra:
            raise ConfigError(
                f"the checkpoint has learned inner rates for {', '.join(extra)}, which this config does "
                f"not adapt: it was trained with [meta].adapt_std = true; set that in the run's config.toml"
            )
        self.log_lr.load_state_dict(state["log_lr"])

    # ---- deployment ----------------------------------------------------------------------------
    def adaptation_spec(self) -> dict[str, Any]:
        """The adaptation rule as plain data, for the bundle manifest (the robot re-runs it)."""
        rates = self.inner_rates()
        lr: float | dict[str, float] = (
            rates if isinstance(rates, float) else {k: float(v.detach()) for k, v in rates.items()}
        )
        m = self.cfg.meta
        return {
            "rule": "policy_gradient",
            "inner_lr": lr,
            "inner_steps": m.inner_steps,
            "gamma": m.gamma,
            "clip": self.cfg.ppo.clip,
            "adapt_std": m.adapt_std,
            "adapt_params": m.adapt_params,
            "inner_rollouts": m.inner_rollouts,
            "log_std": self.ac.log_std.detach().tolist(),
            # the frozen observation normalizer, so the robot can rebuild pi_theta in torch
            "obs_mean": [float(x) for x in torch.as_tensor(self.ac.obs_norm.mean)],
            "obs_var": [float(x) for x in torch.as_tensor(self.ac.obs_norm.var)],
            "obs_eps": self.ac.obs_norm.eps,
            "obs_clip": self.ac.obs_norm.clip,
        }

    def agent(self, num_envs: int) -> Agent:
        agent = GradientAgent(self.ac, self.rule(detach=True), num_envs, self.device, seed=self.cfg.run.seed)
        agent.oracle_warmup = self.cfg.eval.oracle_rollouts
        return agent

    def deployment_modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.ac}

    def export_fields(self) -> dict[str, Any]:
        return {"latent_dim": 0, "history_length": 0, "extra": {"adaptation": self.adaptation_spec()}}


class FOMAML(MAML):
    """First-order MAML: the outer gradient is grad L_out evaluated at theta'_i, without the
    second-order term through the inner step. With ``meta_sgd`` the rates are learned too, to
    first order (see ``adapt_task``)."""

    name = "fomaml"
    first_order = True


class GradientAgent(Agent):
    """Deployment-time agent of the gradient methods, over N parallel tasks.

    ``explore`` samples a ~ pi_theta(. | o) with the meta-parameters theta and records the
    rollout (the inner loop's data, collected by the pre-update policy as in meta-training; the
    policy gradient needs the exploration). The scored modes act with the mean action mu(o), as
    the robot does (an adapted bundle is run deterministically) and as every other method is
    scored: ``prior`` with theta; ``adapt`` with theta'_n = adapt(theta, every exploration
    rollout of task n since ``reset_task``), recomputed at the start of each rollout; ``oracle``
    is ``adapt`` after the evaluator's warm-up exploration rollouts (there is no privileged
    encoder). Scoring the sampled policy instead would count a narrower sigma after the step as
    adaptation, and adds the exploration noise to every return.

    Why not learn from the adapted policies' own rollouts: meta-training fits theta (and, with
    Meta-SGD, the rates) to steps taken on theta's rollouts. On rollouts of theta'_n the
    importance ratios pi_theta / pi_theta'_n leave the clip range, and the step the meta-learned
    rates take from them hurt (arm2 FOMAML with learned rates, sampled-action scoring: +6.9 after
    one rollout, -16.6 after three that way, NaN after ten).
    """

    explore_mode = "explore"

    def __init__(
        self, ac: ActorCritic, rule: GradientAdaptation, n: int, device: torch.device, seed: int = 0
    ):
        self.ac, self.rule, self.n, self.device = ac, rule, n, device
        self.gen = torch.Generator().manual_seed(seed + 7919)
        self.theta = {k: v.detach() for k, v in policy_params(ac).items()}
        self.reset_task()

    def reset_task(self) -> None:
        self.episodes: list[dict[str, torch.Tensor]] = []  # completed rollouts, each (N, T, ...)
        self.params = stack_params([self.theta] * self.n)
        self.mode = "prior"

    def seed_episode(self, seed: int) -> None:
        self.gen.manual_seed(seed)

    def begin_episode(self, mode: str) -> None:
        self.mode = mode
        if mode in ("prior", "explore") or not self.episodes:
            self.params = stack_params([self.theta] * self.n)
        else:
            self.params = adapt_tasks(self.rule, stack_params([self.theta] * self.n), self.rollouts())
        self.cur: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "actions", "logp", "rewards", "mask")
        }

    def rollouts(self) -> Rollouts:
        """Every recorded rollout of every task, padded to a common length: (N, E, T, ...)."""
        T = max(e["obs"].shape[1] for e in self.episodes)

        def pad(x: torch.Tensor) -> torch.Tensor:  # (N, t, ...) -> (N, T, ...)
            return torch.nn.functional.pad(x, [0, 0] * (x.dim() - 2) + [0, T - x.shape[1]])

        cat = {k: torch.stack([pad(e[k]) for e in self.episodes], 1) for k in self.episodes[0]}
        return Rollouts(cat["obs"], cat["actions"], cat["rewards"], cat["mask"], cat["logp"])

    @torch.no_grad()
    def act(self, obs: np.ndarray, priv: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        mean = batched_action_mean(self.ac, self.params, o[:, None])[:, 0]
        if self.mode != "explore":
            return mean.numpy().astype(np.float64)
        std = self.params["log_std"].exp()
        a = mean + std * torch.randn(mean.shape, generator=self.gen)
        self._obs, self._a = o, a
        self._logp = (-0.5 * ((a - mean) / std).pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        return a.numpy().astype(np.float64)

    def observe(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray, mask: np.ndarray
    ) -> None:
        if self.mode != "explore":
            return  # scored rollouts teach nothing (see the class docstring)
        self.cur["obs"].append(self._obs)
        self.cur["actions"].append(self._a)  # the sampled action, before the env clips it
        self.cur["logp"].append(self._logp)
        self.cur["rewards"].append(torch.as_tensor(reward, dtype=torch.float32))
        self.cur["mask"].append(torch.as_tensor(mask, dtype=torch.float32))

    def end_episode(self) -> None:
        if self.mode != "explore" or not self.cur["obs"]:
            return
        self.episodes.append({k: torch.stack(v, 1) for k, v in self.cur.items()})  # (N, T, ...)
