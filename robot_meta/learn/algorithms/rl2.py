"""RL2: a recurrent policy that adapts through its hidden state, trained by recurrent PPO over
trials of K episodes of one task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.errors import UserError
from robot_meta.learn.agent import Agent
from robot_meta.learn.algorithms import ppo
from robot_meta.learn.algorithms.base import (
    Algorithm,
    EnvSpec,
    Shard,
    concat_envs,
    merge_metrics,
    merge_returns,
    to_numpy,
)
from robot_meta.learn.config import TrainConfig
from robot_meta.learn.models.recurrent_actor_critic import RecurrentActorCritic
from robot_meta.learn.storage.rollout_buffer import compute_gae
from robot_meta.sim.randomize import sample_params

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike


class RL2(Algorithm):
    """RL2 (Duan et al. 2016) with recurrent PPO.

    * Trials: each env keeps its task for K = ``[rl2].episodes_per_trial`` episodes. The GRU
      state h is carried across the episodes of a trial (the previous-done input marks the
      boundaries) and reset to 0 when the env draws its next task. Adaptation is the hidden
      state: after k episodes of a task, h holds what the policy learned about it.
    * Returns: the trial is the RL2 episode. Across an episode boundary inside a trial the
      advantage and value flow on into the next episode,
          delta_t = r_t + gamma V(first state of the next episode, h) - V(s_t);
      at a trial end (the task changes) the recursion stops, with the time limit bootstrapped
      from the finished episode's own last state, r_T += gamma V(s_final, h_final). A terminal
      state (e.g. the cart left the rail) ends its return with value 0 also inside a trial, so
      that failing is never a shortcut to a fresh start.
    * Update: PPO (clipped surrogate, value loss, entropy bonus, gradient-norm clipping,
      KL-adaptive learning rate with early stopping; the ``[ppo]`` hyperparameters) over
      truncated BPTT chunks of ``[rl2].bptt`` steps. Each chunk is replayed from the hidden
      state recorded at its start during collection, h being reset where a new trial begins.
    * Rewards are scaled by (1 - gamma) inside the learner (values in [0, 1]), as in PPO; the
      previous-reward input and the logged returns are unscaled.
    """

    name = "rl2"
    ac: RecurrentActorCritic
    phases = ("rl2",)

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, device: torch.device):
        super().__init__(cfg, spec, device)
        T, L = cfg.ppo.horizon, cfg.rl2.bptt
        self.chunk = min(L, T)
        if T % self.chunk:
            raise UserError(f"[ppo].horizon = {T} must be a multiple of [rl2].bptt = {L} (or "
                            "bptt >= horizon): the update cuts each env's rollout into BPTT chunks")
        gen = torch.Generator().manual_seed(cfg.run.seed)
        self.ac = RecurrentActorCritic(spec.obs_dim, spec.act_dim, spec.priv_dim, cfg.rl2.hidden_size,
                                       cfg.model.hidden, init_std=cfg.ppo.init_std,
                                       actor_gain=cfg.ppo.actor_init_gain, generator=gen).to(device)
        self.lr = cfg.ppo.lr
        self.optimizer = torch.optim.Adam(self.ac.parameters(), lr=self.lr)
        self.obs: np.ndarray | None = None
        self.rng: np.random.Generator | None = None
        self.gen: torch.Generator | None = None

    def env_kwargs(self) -> dict[str, Any]:
        return {"fixed_tasks": True}  # tasks change only at trial ends, decided here

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    # ---- segment -------------------------------------------------------------------------------
    def start_segment(self, env: VecEnvLike, obs: np.ndarray, rng: np.random.Generator,
                      gen: torch.Generator) -> None:
        """Every env starts a new trial (the trainer has just reset the env with new tasks)."""
        B, dev = self.cfg.run.num_envs, self.device
        self.obs, self.rng, self.gen = obs, rng, gen
        self.ranges = env.ranges
        self.h = self.ac.initial_state(B, dev)  # h_{t-1}
        self.prev_action = torch.zeros(B, self.spec.act_dim, device=dev)
        self.prev_reward = torch.zeros(B, 1, device=dev)
        self.prev_done = torch.ones(B, 1, device=dev)  # the first step of an episode
        self.trial_start = torch.ones(B, dtype=torch.bool, device=dev)
        # The first trial of each env starts at a random episode index (it is shorter), so that
        # a batch mixes early and late episodes of trials instead of moving in lock step.
        self.ep_in_trial = rng.integers(0, self.cfg.rl2.episodes_per_trial, size=B)
        self.trial_returns: dict[int, list[float]] = {}

    # ---- collection ----------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self, env: VecEnvLike) -> dict[str, torch.Tensor]:
        """T steps of B envs with a ~ pi(. | o, h); returns the rollout as (T, B, ...) tensors,
        including the inputs and hidden state h_{t-1} the policy saw at every step."""
        cfg, K = self.cfg.ppo, self.cfg.rl2.episodes_per_trial
        assert self.obs is not None and self.gen is not None and self.rng is not None
        T, B, dev = cfg.horizon, self.cfg.run.num_envs, self.device
        scale = 1.0 - cfg.gamma  # reward scaling: values in [0, 1]
        s = self.spec
        z = lambda *shape: torch.zeros(*shape, device=dev)  # noqa: E731
        d: dict[str, torch.Tensor] = {
            "obs": z(T, B, s.obs_dim), "prev_action": z(T, B, s.act_dim), "prev_reward": z(T, B, 1),
            "prev_done": z(T, B, 1), "h": z(T, B, self.ac.hidden_size),
            "trial_start": torch.zeros(T, B, dtype=torch.bool, device=dev), "priv": z(T, B, s.priv_dim),
            "actions": z(T, B, s.act_dim), "logp": z(T, B), "values": z(T, B), "rewards": z(T, B),
            "dones": z(T, B)}
        term_sums: dict[str, float] = {}
        rew_sum = 0.0
        for t in range(T):
            obs_t = self.tensor(self.obs)
            priv_t = self.tensor(env.factors)  # e before the step (trial ends may draw new tasks)
            for k, v in (("obs", obs_t), ("prev_action", self.prev_action), ("prev_reward", self.prev_reward),
                         ("prev_done", self.prev_done), ("h", self.h), ("trial_start", self.trial_start),
                         ("priv", priv_t)):
                d[k][t] = v
            o_n, h = self.ac.step(obs_t, self.prev_action, self.prev_reward, self.prev_done, self.h)
            dist = self.ac.distribution(o_n, h)
            action = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=self.gen).to(dev)
            d["actions"][t] = action
            d["logp"][t] = dist.log_prob(action).sum(-1)
            d["values"][t] = self.ac.value(o_n, priv_t, h)
            a_np = action.cpu().numpy().astype(np.float64)
            next_obs, rew, term, trunc, info = env.step(a_np)
            done = info["done"]
            sent = action.clamp(-1.0, 1.0)  # what the env applied
            r = self.tensor(rew)
            # next inputs: a_t, r_t, d_t = 0; new episodes get a = 0, r = 0, d = 1
            self.h = h
            self.prev_action = sent
            self.prev_reward = r[:, None].clone()
            self.prev_done = torch.zeros(B, 1, device=dev)
            self.trial_start = torch.zeros(B, dtype=torch.bool, device=dev)
            ends = np.zeros(B, dtype=bool)  # trial ends: the GAE recursion stops
            if done.any():
                idx = np.flatnonzero(done)
                for i in idx:
                    self.trial_returns.setdefault(int(self.ep_in_trial[i]), []).append(
                        float(info["episode_return"][i]))
                self.ep_in_trial[idx] += 1
                ends[idx] = self.ep_in_trial[idx] >= K
                new = np.flatnonzero(ends)
                trunc_end = np.flatnonzero(ends & trunc)
                if len(trunc_end):
                    # Time limit at a trial end: r_T += gamma V(s_final, h_final), with h_final
                    # one more GRU step over the final observation of the same task.
                    ii = torch.as_tensor(trunc_end, device=dev)
                    o_f, h_f = self.ac.step(self.tensor(info["final_obs"][trunc_end]), sent[ii],
                                            r[ii, None], torch.zeros(len(ii), 1, device=dev), h[ii])
                    r[ii] += cfg.gamma * self.ac.value(o_f, priv_t[ii], h_f) / scale
                dd = torch.as_tensor(idx, device=dev)
                self.prev_action[dd] = 0.0
                self.prev_reward[dd] = 0.0
                self.prev_done[dd] = 1.0
                if len(new):
                    # A new trial: a new task from the training family and h = 0. (The physics
                    # changes from the next step; the already-reset first observation keeps the
                    # old sensor bias for one step.)
                    env.set_params(new, sample_params(env.robot, self.ranges, self.rng, len(new)))
                    self.ep_in_trial[new] = 0
                    nn_ = torch.as_tensor(new, device=dev)
                    self.h[nn_] = 0.0
                    self.trial_start[nn_] = True
            d["rewards"][t] = r * scale
            # d_t = 1 stops the GAE recursion: a terminal state, or the end of a trial.
            d["dones"][t] = self.tensor((term | ends).astype(np.float32))
            rew_sum += float(rew.mean())
            for k, v in info["reward_terms"].items():
                term_sums[k] = term_sums.get(k, 0.0) + float(v.mean())
            self.obs = next_obs
        o_n, h = self.ac.step(self.tensor(self.obs), self.prev_action, self.prev_reward, self.prev_done,
                              self.h)
        last_v = self.ac.value(o_n, self.tensor(env.factors), h)
        d["advantages"], d["returns"] = compute_gae(d["rewards"], d["values"], d["dones"], last_v,
                                                    cfg.gamma, cfg.lam)
        self.metrics = {f"reward_terms/{k}": v / T for k, v in term_sums.items()}
        self.metrics["reward/step_mean"] = rew_sum / T
        return d

    # ---- update --------------------------------------------------------------------------------
    def sequences(self, d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(T, B, ...) -> (C, T/C * B, ...): each env's rollout cut into chunks of C steps."""
        C = self.chunk
        out = {}
        for k, v in d.items():
            T, B = v.shape[:2]
            out[k] = v.reshape(T // C, C, B, *v.shape[2:]).transpose(0, 1).reshape(C, (T // C) * B,
                                                                                   *v.shape[2:])
        return out

    def replay(self, seq: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the GRU over chunks (C, N, ...) from their recorded start states, resetting h
        where a trial starts. Returns (norm(o_t), h_t), each (C, N, .), with gradient."""
        h = seq["h"][0]
        norm_obs, hs = [], []
        for t in range(seq["obs"].shape[0]):
            h = torch.where(seq["trial_start"][t][:, None], torch.zeros_like(h), h)
            o_n, h = self.ac.step(seq["obs"][t], seq["prev_action"][t], seq["prev_reward"][t],
                                  seq["prev_done"][t], h)
            norm_obs.append(o_n)
            hs.append(h)
        return torch.stack(norm_obs), torch.stack(hs)

    def update(self, d: dict[str, torch.Tensor]) -> dict[str, float]:
        """PPO epochs over shuffled minibatches of BPTT chunks (see the class docstring)."""
        cfg = self.cfg.ppo
        assert self.rng is not None
        rng = self.rng
        seqs = self.sequences(d)
        N = seqs["obs"].shape[1]

        def minibatches() -> tuple[torch.Tensor, ...]:
            perm = torch.from_numpy(rng.permutation(N)).to(self.device)
            return perm.chunk(min(cfg.minibatches, N))

        def update(idx: torch.Tensor) -> ppo.MinibatchLoss | None:
            part = {k: v[:, idx] for k, v in seqs.items()}
            o_n, h = self.replay(part)
            dist = self.ac.distribution(o_n, h)
            logp = dist.log_prob(part["actions"]).sum(-1)
            entropy = dist.entropy().sum(-1).mean()
            value = self.ac.value(o_n, part["priv"], h)
            pg, kl, clip_frac = ppo.clipped_surrogate(logp.flatten(), part["logp"].flatten(),
                                                      part["advantages"].flatten(), cfg.clip)
            v_loss = (part["returns"] - value).pow(2).mean()
            mb = ppo.ppo_loss(cfg, pg, v_loss, entropy, kl, clip_frac)
            return ppo.minibatch_step(self, self.ac.parameters(), mb)

        out, n = ppo.ppo_epochs(cfg, minibatches, update)
        out["explained_variance"] = ppo.explained_variance(d["returns"].flatten(), d["values"].flatten())
        out["lr"] = self.lr
        out["action_std"] = float(self.ac.log_std.detach().exp().mean())
        out["minibatch_updates"] = float(n)
        return out

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        """The (T, B_k, ...) rollout with advantages and returns, and the returns of the episodes
        that ended, by their index k within a trial."""
        self.ac.train()
        d = self.collect(env)
        trial = {str(k): np.asarray(v, dtype=float) for k, v in self.trial_returns.items()}
        self.trial_returns = {}
        B = self.cfg.run.num_envs
        rets = np.concatenate(list(trial.values())) if trial else np.zeros(0)
        return {"num_envs": B, "steps": self.cfg.ppo.horizon * B, "metrics": dict(self.metrics),
                "episode_returns": rets, "trial_returns": trial, "rollout": to_numpy(d)}

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        self.ac.train()
        d = {k: v.to(self.device) for k, v in concat_envs(shards, "rollout", axis=1).items()}
        m = merge_metrics(shards)
        m.update(self.update(d))
        # The normalizer is frozen within an iteration (old and new log-probs see the same
        # normalization) and updated from the collected observations afterwards.
        self.ac.obs_norm.update(d["obs"])
        m["steps"] = float(sum(s["steps"] for s in shards))
        trial: dict[int, list[float]] = {}
        for s in shards:
            for k, v in s["trial_returns"].items():
                trial.setdefault(int(k), []).extend(np.asarray(v).tolist())
        if trial:
            merge_returns(shards, m)
            K = self.cfg.rl2.episodes_per_trial
            for k, v in sorted(trial.items()):
                # the return of episode k of a trial: rising with k is adaptation at work
                m[f"return/episode_{k}"] = float(np.mean(v))
            if K - 1 in trial and 0 in trial:
                m["return/episode_last"] = m[f"return/episode_{K - 1}"]
                m["return/last_minus_first"] = m["return/episode_last"] - m["return/episode_0"]
        return m

    # ---- deployment ----------------------------------------------------------------------------
    def agent(self, num_envs: int) -> Agent:
        agent = RL2Agent(self.ac, num_envs, self.device)
        agent.oracle_warmup = self.cfg.eval.oracle_rollouts
        return agent

    def deployment_modules(self) -> dict[str, torch.nn.Module]:
        return {"recurrent_policy": self.ac}

    def export_fields(self) -> dict[str, Any]:
        # No latent z and no history window: the adaptation state is the GRU state h.
        return {"latent_dim": 0, "history_length": 0,
                "extra": {"hidden_size": self.ac.hidden_size,
                          "episodes_per_trial": self.cfg.rl2.episodes_per_trial}}


class RL2Agent(Agent):
    """The trained RL2 policy over N parallel tasks, acting with the mean action.

    The adaptation state is h_task, the hidden state at the end of the last ``adapt`` rollout
    since ``reset_task``:

    * ``prior``: the rollout starts from h = 0 (a fresh trial: zero-shot), and leaves h_task
      untouched;
    * ``adapt``: the rollout starts from h_task (episode k of the trial after k rollouts) and
      its final h becomes the new h_task;
    * ``oracle``: as adapt, after the evaluator's ``oracle_warmup`` rollouts (RL2 has no
      privileged encoder: the closest equivalent is the state after plenty of episodes).

    Each rollout starts with a_prev = 0, r_prev = 0, d_prev = 1, as in training. h advances
    only on rows whose episode is still running (``observe``'s mask).
    """

    def __init__(self, ac: RecurrentActorCritic, n: int, device: torch.device):
        self.ac, self.n, self.device = ac, n, device
        self.h_task = ac.initial_state(n, device)
        self.h = self.h_task.clone()
        self.h_next = self.h
        self.mode = "prior"
        self._new_episode_inputs()

    def _new_episode_inputs(self) -> None:
        self.prev_action = torch.zeros(self.n, self.ac.act_dim, device=self.device)
        self.prev_reward = torch.zeros(self.n, 1, device=self.device)
        self.prev_done = torch.ones(self.n, 1, device=self.device)

    def reset_task(self) -> None:
        self.h_task = self.ac.initial_state(self.n, self.device)

    def begin_episode(self, mode: str) -> None:
        self.mode = mode
        self.h = self.ac.initial_state(self.n, self.device) if mode == "prior" else self.h_task.clone()
        self.h_next = self.h
        self._new_episode_inputs()

    @torch.no_grad()
    def act(self, obs: np.ndarray, priv: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        a, self.h_next = self.ac(o, self.prev_action, self.prev_reward, self.prev_done, self.h)
        return a.cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                mask: np.ndarray) -> None:
        m = torch.as_tensor(mask, dtype=torch.bool, device=self.device)[:, None]
        a = torch.as_tensor(action, dtype=torch.float32, device=self.device)
        r = torch.as_tensor(reward, dtype=torch.float32, device=self.device)[:, None]
        self.h = torch.where(m, self.h_next, self.h)
        self.prev_action = torch.where(m, a, self.prev_action)
        self.prev_reward = torch.where(m, r, self.prev_reward)
        self.prev_done = torch.where(m, torch.zeros_like(self.prev_done), self.prev_done)

    def end_episode(self) -> None:
        if self.mode != "prior":
            self.h_task = self.h.clone()
