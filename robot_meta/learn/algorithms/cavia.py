"""CAVIA with a dynamics inner loss: the gradient method whose inner step carries task information.

The policy reads a context z, pi(a | o, z); a few rollouts of a task, then a gradient step on z
under a transition-prediction loss (:mod:`robot_meta.learn.context_adaptation`), then the policy
runs with the adapted z. Only z moves (CAVIA, Zintgraf et al. 2019); the loss is supervised
(GrBAL, Nagabandi et al. 2019), so the step is nearly deterministic for a task, unlike a
policy-gradient step from 3 rollouts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.learn.agent import Agent
from robot_meta.learn.algorithms import ppo
from robot_meta.learn.algorithms.base import Algorithm, EnvSpec, Shard
from robot_meta.learn.algorithms.maml import MAML
from robot_meta.learn.config import ConfigError, TrainConfig
from robot_meta.learn.context_adaptation import (
    ContextAdaptation,
    Transitions,
    action_history,
    context_step_spec,
)
from robot_meta.learn.models.actor_critic import ActorCritic
from robot_meta.learn.models.dynamics_model import DynamicsModel

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike


def transitions(data: dict[str, torch.Tensor], M: int, R: int, H: int) -> Transitions:
    """The (o, action history, o') transitions of collected episodes (B = M R rows, task i on
    rows i R .. i R + R - 1), per task: (M, R T, ...). Actions are the ones the env applied,
    clip(a, -1, 1)."""
    B, T = data["mask"].shape

    def per_task(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(M, R * T, *x.shape[2:])

    hist = action_history(data["actions"].clamp(-1.0, 1.0), H)
    return Transitions(per_task(data["obs"]), per_task(hist), per_task(data["final_obs"]),
                       per_task(data["mask"]))


class CAVIA(MAML):
    """Meta-training of the context step (module docstring). One meta-iteration, M tasks x R envs:

      1. pre-update: one episode per env acting with the prior context z0 (sampled actions);
      2. inner step: z'_i = adapt(z0, transitions of task i's R episodes);
      3. post-update: one episode per env acting with z'_i;
      4. PPO epochs on the pre- and post-update episodes together, each row with the z it acted
         with (z'_i detached: the policy learns to read z, the model learns what z holds);
      5. model epochs on the meta-objective
             L_meta(g, z0, alpha) = mean_i L(z'_i(z0, alpha, g); post-update transitions of task i),
         the loss of the adapted context on the task's *other* episodes, through the inner step
         (second order in g, which is small): z0, the rates and g learn that one step from a
         task's data gives a z that predicts that task.
    """

    name = "cavia"
    phases = ("meta",)

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, device: torch.device):
        Algorithm.__init__(self, cfg, spec, device)
        gen = torch.Generator().manual_seed(cfg.run.seed)
        C = cfg.model.latent_dim
        self.ac = ActorCritic(spec.obs_dim, spec.act_dim, C, spec.priv_dim, cfg.model.hidden,
                              init_std=cfg.ppo.init_std, actor_gain=cfg.ppo.actor_init_gain,
                              generator=gen).to(device)
        self.dyn = DynamicsModel(spec.obs_dim, spec.act_dim, C, cfg.model.encoder_hidden,
                                 history=cfg.meta.action_history, generator=gen).to(device)
        # z0 and log alpha (one rate per context dimension)
        self.ctx = torch.nn.ParameterDict({
            "z0": torch.nn.Parameter(torch.zeros(C)),
            "log_rates": torch.nn.Parameter(torch.full((C,), math.log(cfg.meta.inner_lr))),
        })
        self.lr = cfg.ppo.lr
        self.optimizer = torch.optim.Adam(self.ac.parameters(), lr=self.lr)
        self.model_opt = torch.optim.Adam(list(self.dyn.parameters()) + list(self.ctx.parameters()),
                                          lr=cfg.meta.model_lr)
        self.M, self.R = cfg.meta.meta_batch, cfg.meta.inner_rollouts
        if cfg.run.num_envs != self.M * self.R:
            raise ConfigError(
                f"[run].num_envs = {cfg.run.num_envs}: a {self.name} run needs [meta].meta_batch "
                f"* [meta].inner_rollouts = {self.M * self.R} envs"
            )
        self.rng = None
        self.gen = None

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.ac.parameters())

    # ---- the adaptation rule -------------------------------------------------------------------
    def context_rule(self, detach: bool = False) -> ContextAdaptation:
        """The inner step with the current rates (``detach``: as constants, for deployment)."""
        rates = self.ctx["log_rates"].exp()
        return ContextAdaptation(self.dyn, self.ac.obs_norm, rates.detach() if detach else rates,
                                 self.cfg.meta.inner_steps)

    def z0(self) -> torch.Tensor:
        return self.ctx["z0"]

    # ---- one meta-iteration --------------------------------------------------------------------
    def act_with(self, env: VecEnvLike, z_task: torch.Tensor) -> dict[str, torch.Tensor]:
        """One episode per env with task i's context z_task[i] (sampled actions); ``z`` per row."""
        z_rows = z_task.detach().repeat_interleave(self.R, 0)  # (B, C)
        std = self.ac.log_std.detach().exp().expand(z_rows.shape[0], -1)
        data = self.collect_with(env, lambda o: self.ac.action_mean(o, z_rows), std)
        data["z"] = z_rows
        return data

    def rollout_modules(self) -> dict[str, torch.nn.Module]:
        """A rollout worker takes the inner step itself: it needs the model, z0 and the rates."""
        return {"ac": self.ac, "dyn": self.dyn, "ctx": self.ctx}

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        """Steps 1-3 of the class docstring for this shard's tasks (in-process: all of them)."""
        M = self.M
        self.new_tasks(env)
        z0 = self.z0().detach().expand(M, -1)
        pre = self.act_with(env, z0)
        z_adapted = self.context_rule(detach=True).adapt(
            z0, transitions(pre, M, self.R, self.cfg.meta.action_history))
        post = self.act_with(env, z_adapted)
        out = self.shard({k: v for k, v in pre.items() if k != "z"},
                         {k: v for k, v in post.items() if k != "z"}, [])
        out["z_pre"], out["z_post"] = pre["z"].numpy().copy(), post["z"].numpy().copy()
        return out

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        """Steps 4-5 of the class docstring on the merged shards."""
        M, R, H = self.M, self.R, self.cfg.meta.action_history
        pre, post = self.merge_rollouts(shards, "pre"), self.merge_rollouts(shards, "post")
        pre["z"] = torch.as_tensor(np.concatenate([s["z_pre"] for s in shards]))
        post["z"] = torch.as_tensor(np.concatenate([s["z_post"] for s in shards]))
        tr_pre, tr_post = transitions(pre, M, R, H), transitions(post, M, R, H)
        keys = [k for k in pre if k != "row_T"]
        m = self.policy_update({k: torch.cat([pre[k], post[k]]) for k in keys})
        m.update(self.model_update(tr_pre, tr_post))
        self.ac.obs_norm.update(pre["obs"][pre["mask"].bool()])
        valid = pre["mask"].bool()
        self.dyn.delta_norm.update((pre["final_obs"] - pre["obs"])[valid])
        z_task = post["z"][::R]  # (M, C): the adapted context of each task
        m["context_norm"] = float(z_task.norm(dim=-1).mean())
        m["context_spread"] = float(z_task.std(0).mean())
        return self.finish_metrics(m, pre, post, shards)

    def policy_update(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        """PPO epochs over the episodes (rows), each acting with its own z."""
        cfg = self.cfg.ppo
        assert self.rng is not None
        rng = self.rng
        self.outer_targets(data)
        n_rows, T = data["obs"].shape[:2]

        def update(rows: np.ndarray) -> ppo.MinibatchLoss | None:
            r = torch.as_tensor(rows)
            valid = data["mask"][r].bool()
            obs = data["obs"][r]
            z = data["z"][r][:, None].expand(-1, T, -1)
            dist = self.ac.distribution(obs, z)
            logp = dist.log_prob(data["actions"][r]).sum(-1)
            pg, kl, clip_frac = ppo.clipped_surrogate(logp[valid], data["logp"][r][valid],
                                                      data["advantages"][r][valid], cfg.clip)
            value = self.ac.value(obs.reshape(-1, obs.shape[-1]),
                                  data["priv"][r].repeat_interleave(T, 0)).view(len(rows), T)
            v_loss = (data["returns"][r] - value)[valid].pow(2).mean()
            # H[N(mu, s^2)] = sum log s + 0.5 log(2 pi e)
            entropy = (self.ac.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()
            mb = ppo.ppo_loss(cfg, pg, v_loss, entropy, kl, clip_frac)
            return ppo.minibatch_step(self, self.ac.parameters(), mb)

        # No early stop on the KL here (cavia's policy update never had one; a change of results).
        out, _ = ppo.ppo_epochs(cfg, lambda: np.array_split(rng.permutation(n_rows), cfg.minibatches), update,
                            early_stop=False)
        m = data["mask"].bool()
        out["explained_variance"] = ppo.explained_variance(data["returns"][m], data["values"][m])
        return out

    def model_update(self, tr_pre: Transitions, tr_post: Transitions) -> dict[str, float]:
        """Epochs of the meta-objective (class docstring) over task minibatches; reports the
        post-update transitions' loss with z0 and with the adapted z (what the step gains)."""
        cfg = self.cfg
        assert self.rng is not None
        for _ in range(cfg.meta.model_epochs):
            for tasks in np.array_split(self.rng.permutation(self.M), min(cfg.ppo.minibatches, self.M)):
                t = torch.as_tensor(tasks)
                rule = self.context_rule()
                z0 = self.z0().expand(len(tasks), -1)
                z_adapted = rule.adapt(z0, tr_pre.take(t), create_graph=True)
                loss = rule.loss(z_adapted, tr_post.take(t)).mean()
                self.model_opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(self.dyn.parameters()) + list(self.ctx.parameters()),
                                               cfg.ppo.max_grad_norm)
                self.model_opt.step()
        with torch.no_grad():
            rule = self.context_rule(detach=True)
            z0 = self.z0().detach().expand(self.M, -1)
            prior = float(rule.loss(z0, tr_post).mean())
        z_adapted = rule.adapt(z0, tr_pre)
        with torch.no_grad():
            adapted = float(rule.loss(z_adapted, tr_post).mean())
        return {"model/loss_prior": prior, "model/loss_adapted": adapted,
                "model/step_gain": prior - adapted,
                "inner_lr_mean": float(self.ctx["log_rates"].detach().exp().mean())}

    def finish_metrics(self, m: dict[str, float], pre: dict[str, torch.Tensor],
                       post: dict[str, torch.Tensor] | None, shards: list[Shard]) -> dict[str, float]:
        rate = m.pop("inner_lr_mean", None)
        m = super().finish_metrics(m, pre, post, shards)
        if rate is not None:
            m["inner_lr_mean"] = rate
        return m

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"ac": self.ac.state_dict(), "optimizer": self.optimizer.state_dict(), "lr": self.lr,
                "dyn": self.dyn.state_dict(), "ctx": self.ctx.state_dict(),
                "model_opt": self.model_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        Algorithm.load_state_dict(self, state)
        self.dyn.load_state_dict(state["dyn"])
        self.ctx.load_state_dict(state["ctx"])
        self.model_opt.load_state_dict(state["model_opt"])

    # ---- deployment ----------------------------------------------------------------------------
    def adaptation_spec(self) -> dict[str, Any]:
        """The inner step as plain data for the bundle manifest; the robot runs it in numpy
        (:class:`robot_meta.runtime.context_step.ContextStep`)."""
        return context_step_spec(self.context_rule(detach=True), self.z0(), self.R, self.ac.log_std)

    def agent(self, num_envs: int) -> Agent:
        agent = ContextAgent(self.ac, self.context_rule(detach=True), self.z0().detach(), num_envs,
                             self.device, seed=self.cfg.run.seed)
        agent.oracle_warmup = self.cfg.eval.oracle_rollouts
        return agent

    def deployment_modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.ac}

    def export_fields(self) -> dict[str, Any]:
        """The manifest's fields; the robot's numpy step is checked against this one first."""
        spec = self.adaptation_spec()
        self.verify_step(spec)
        return {"latent_dim": self.cfg.model.latent_dim, "history_length": 0,
                "extra": {"adaptation": spec}}

    def verify_step(self, spec: dict[str, Any], tol: float = 1e-4) -> None:
        """Refuse the export unless the numpy step built from ``spec`` gives the same z' as this
        one (relative to the step's size), on transitions drawn around the normalizers' means."""
        from robot_meta.export.onnx_export import ExportError
        from robot_meta.runtime.context_step import ContextStep

        gen = torch.Generator().manual_seed(0)
        on = self.ac.obs_norm
        N, s = 200, self.spec
        obs = on.mean + torch.sqrt(on.var) * torch.randn(1, N, s.obs_dim, generator=gen)
        nxt = obs + torch.sqrt(self.dyn.delta_norm.var) * torch.randn(1, N, s.obs_dim, generator=gen)
        act = torch.rand(1, N, self.dyn.act_dim, generator=gen) * 2 - 1  # action histories
        rule = self.context_rule(detach=True)
        z0 = self.z0().detach()
        z_torch = rule.adapt(z0[None], Transitions(obs, act, nxt, torch.ones(1, N)))[0].double().numpy()
        z_np = ContextStep(spec).adapt(obs[0].numpy(), act[0].numpy(), nxt[0].numpy())
        step = float(np.abs(z_torch - z0.double().numpy()).max())
        err = float(np.abs(z_np - z_torch).max())
        if err > tol * max(step, 1e-3):
            raise ExportError(f"the robot's numpy context step differs from training's by {err:.3g} "
                              f"(step size {step:.3g}); not exporting")


class ContextAgent(Agent):
    """Deployment-time agent of ``cavia`` over N parallel tasks.

    ``explore`` rollouts collect the step's data as meta-training's inner loop did: acting with
    z0 and *sampling* a ~ N(mu(o, z0), sigma^2). The step's z' depends on the data's excitation,
    so data from the deterministic policy would give z' the policy never saw in training (arm2
    servo, seed 0: adapting from deterministic rollouts lost 0.2-1 in distribution and 5-7 out of
    it). The scored modes act deterministically, a = clip(mu(o, z), -1, 1), z fixed within the
    rollout: ``prior`` with z0; ``adapt`` with z' = adapt(z0, every explore rollout since
    ``reset_task``); ``oracle`` is ``adapt`` after the evaluator's warm-up rollouts.
    """

    explore_mode = "explore"

    def __init__(self, ac: ActorCritic, rule: ContextAdaptation, z0: torch.Tensor, n: int,
                 device: torch.device, seed: int = 0):
        self.ac, self.rule, self.n, self.device = ac, rule, n, device
        self.z0 = z0.expand(n, -1).clone()
        self.gen = torch.Generator().manual_seed(seed + 7919)
        self.reset_task()

    def reset_task(self) -> None:
        self.episodes: list[dict[str, torch.Tensor]] = []
        self.z = self.z0.clone()
        self.mode = "prior"

    def seed_episode(self, seed: int) -> None:
        self.gen.manual_seed(seed)

    def begin_episode(self, mode: str) -> None:
        self.mode = mode
        if mode in ("prior", "explore") or not self.episodes:
            self.z = self.z0.clone()
        else:
            eps = [{**e, "actions": action_history(e["actions"], self.rule.history)} for e in self.episodes]
            cat = {k: torch.cat([e[k] for e in eps], 1) for k in eps[0]}
            self.z = self.rule.adapt(self.z0, Transitions(cat["obs"], cat["actions"], cat["next_obs"],
                                                          cat["mask"]))
        self.cur: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "actions", "next_obs", "mask")}

    def context(self) -> np.ndarray:
        """The z each task acts with in the current rollout (N, C)."""
        return self.z.numpy().copy()

    @torch.no_grad()
    def act(self, obs: np.ndarray, priv: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if self.mode != "explore":
            return self.ac(o, self.z).numpy().astype(np.float64)
        mean = self.ac.action_mean(o, self.z)
        a = mean + self.ac.log_std.exp() * torch.randn(mean.shape, generator=self.gen)
        return a.numpy().astype(np.float64)

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                mask: np.ndarray) -> None:
        if self.mode != "explore":
            return  # scored rollouts teach nothing
        f = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        self.cur["obs"].append(f(obs))
        self.cur["actions"].append(f(action))  # as sent: the evaluator passes clip(a, -1, 1)
        self.cur["next_obs"].append(f(next_obs))
        self.cur["mask"].append(f(mask))

    def end_episode(self) -> None:
        if self.mode != "explore" or not self.cur["obs"]:
            return
        self.episodes.append({k: torch.stack(v, 1) for k, v in self.cur.items()})  # (N, T, ...)
