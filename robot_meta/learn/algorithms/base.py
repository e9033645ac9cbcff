"""The contract between the trainer, the evaluator and a learning algorithm.

An iteration is split in two halves so that collection can run elsewhere (Ray rollout workers,
:mod:`robot_meta.learn.rollout_pool`): ``collect_shard`` steps one env with copies of the acting
networks and returns a *shard*, plain numpy arrays and floats; ``learn`` merges the shards of
all workers and updates the networks. In-process training is the one-shard case of the same
code (``iterate`` = ``learn([collect_shard(env)])``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.learn.agent import Agent
from robot_meta.learn.config import META_BATCH_METHODS, ConfigError, TrainConfig

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike

Shard = dict[str, Any]
"""One worker's part of an iteration: ``num_envs`` (its B_k), ``steps`` (env steps taken),
``metrics`` (per-env means over its envs), ``episode_returns`` (returns of the episodes that
ended) and algorithm-specific numpy arrays. Nothing in it references torch."""


@dataclass(frozen=True)
class EnvSpec:
    """The shapes an algorithm needs from the env."""

    robot: str
    obs_dim: int
    act_dim: int
    priv_dim: int  # F, the privileged factor vector e
    episode_steps: int


class Algorithm:
    """A training algorithm. The trainer drives it in *segments*: ``start_segment`` gets a
    freshly reset env and generators seeded from (run seed, iteration), then ``iterate`` is
    called repeatedly; each call collects experience and updates the networks, and returns
    scalar metrics (``steps`` = env steps taken). Everything that must survive a restart is in
    ``state_dict``; per-env state (histories, contexts) lives only within a segment, which is
    what makes a resumed run identical to an uninterrupted one.

    Subclasses set ``name`` and ``phases`` and implement the methods below.
    """

    name: str = ""
    phases: tuple[str, ...] = ()
    # set by every subclass: the actor-critic, its optimizer and the (adaptive) learning rate
    ac: torch.nn.Module  # an ActorCritic or RecurrentActorCritic (each subclass narrows it)
    optimizer: torch.optim.Optimizer
    lr: float
    rng: np.random.Generator | None  # the update's draws (set per segment)
    gen: torch.Generator | None

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, device: torch.device):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.total_envs = cfg.run.num_envs  # B of the whole batch (a worker's shard is part of it)

    def env_kwargs(self) -> dict[str, Any]:
        """Extra arguments of ``make_vec_env`` for training (e.g. ``fixed_tasks``)."""
        return {}

    def phase_at(self, progress: float) -> str:
        """The phase at a given fraction of the budget, progress in [0, 1]."""
        return self.phases[0]

    def start_segment(self, env: VecEnvLike, obs: np.ndarray, rng: np.random.Generator,
                      gen: torch.Generator) -> None:
        raise NotImplementedError

    def iterate(self, env: VecEnvLike, phase: str) -> dict[str, float]:
        """One iteration in-process: collect from ``env`` and update (returns the metrics)."""
        self.prepare_iteration(phase)
        return self.learn([self.collect_shard(env, phase)], phase)

    # ---- the sharded iteration (see the module docstring) ---------------------------------------
    def prepare_iteration(self, phase: str) -> None:
        """Learner side, before the acting weights of an iteration are taken (no-op here)."""

    def start_learner(self, rng: np.random.Generator, gen: torch.Generator) -> None:
        """Learner side of a segment when the envs live on rollout workers: only the
        generators the update draws from (the per-env state lives on the workers)."""
        self.rng, self.gen = rng, gen

    def collect_shard(self, env: VecEnvLike, phase: str) -> Shard:
        """Collect this iteration's experience from ``env`` (all of it in-process, one shard on
        a rollout worker) with the current acting networks."""
        raise NotImplementedError

    def learn(self, shards: list[Shard], phase: str) -> dict[str, float]:
        """Merge the shards (in worker order) and update the networks; returns the metrics with
        ``steps`` = env steps of every shard."""
        raise NotImplementedError

    def rollout_modules(self) -> dict[str, torch.nn.Module]:
        """The modules a rollout worker acts with (their parameters and buffers, normalizers
        included, are broadcast each iteration)."""
        return {"ac": self.ac}

    def rollout_weights(self) -> dict[str, np.ndarray]:
        """The acting modules' state as flat numpy arrays, ``module/key`` -> array."""
        return {f"{m}/{k}": v.detach().cpu().numpy() for m, mod in self.rollout_modules().items()
                for k, v in mod.state_dict().items()}

    def load_rollout_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load what :meth:`rollout_weights` produced (on a worker)."""
        for m, mod in self.rollout_modules().items():
            prefix = f"{m}/"
            mod.load_state_dict({k[len(prefix):]: torch.as_tensor(np.array(v))
                                 for k, v in weights.items() if k.startswith(prefix)})

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs. The default covers the actor-critic ``ac``, its
        ``optimizer`` and the adaptive learning rate ``lr`` every algorithm here has; subclasses
        with more modules extend it."""
        return {"ac": self.ac.state_dict(), "optimizer": self.optimizer.state_dict(), "lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ac.load_state_dict(state["ac"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr = float(state["lr"])

    def agent(self, num_envs: int) -> Agent:
        """The deployment-time policy with its adaptation rule, for ``num_envs`` parallel tasks."""
        raise NotImplementedError

    def export_fields(self) -> dict[str, Any]:
        """What a bundle's manifest says about these networks: ``latent_dim``, ``history_length``
        and ``extra`` (method-specific data the robot needs, e.g. an adaptation rule)."""
        return {"latent_dim": 0, "history_length": 0, "extra": {}}

    def deployment_modules(self) -> dict[str, torch.nn.Module]:
        """The modules a bundle exports (each owns an ONNX-friendly ``forward`` on raw inputs)."""
        raise NotImplementedError


def merge_metrics(shards: list[Shard]) -> dict[str, float]:
    """The shards' per-env mean metrics, averaged with weights B_k (a single shard as is)."""
    if len(shards) == 1:
        return dict(shards[0]["metrics"])
    keys: list[str] = []
    for s in shards:
        keys += [k for k in s["metrics"] if k not in keys]
    out = {}
    for k in keys:
        w = [(s["num_envs"], s["metrics"][k]) for s in shards if k in s["metrics"]]
        out[k] = sum(n * v for n, v in w) / max(sum(n for n, _ in w), 1)
    return out


def merge_returns(shards: list[Shard], m: dict[str, float]) -> None:
    """``episode_return`` = mean return of the episodes that ended in any shard (if any did)."""
    rets = np.concatenate([np.asarray(s["episode_returns"], dtype=float) for s in shards])
    if len(rets):
        m["episode_return"] = float(np.mean(rets))


def concat_envs(shards: list[Shard], key: str, axis: int) -> dict[str, torch.Tensor]:
    """shard[key] (a dict of arrays with the env axis at ``axis``) concatenated over shards in
    worker order, as tensors (a fresh, writable copy)."""
    names = shards[0][key].keys()
    return {k: torch.as_tensor(np.concatenate([s[key][k] for s in shards], axis=axis)) for k in names}


def to_numpy(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Tensors -> numpy arrays (copies: the algorithm reuses its buffers)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in d.items()}


def shard_sizes(n: int, workers: int) -> list[int]:
    """n split into ``workers`` near-equal consecutive parts, the larger ones first."""
    return [len(p) for p in np.array_split(np.arange(n), workers)]


def shard_configs(cfg: TrainConfig, workers: int) -> list[TrainConfig]:
    """The config of each worker: the batch B of envs (the meta-batch of M tasks for the gradient
    methods, each task on R envs) split into near-equal consecutive shards."""
    import copy

    if workers < 1:
        raise ConfigError(f"workers: must be >= 1, got {workers}")
    out = []
    if cfg.run.algorithm in META_BATCH_METHODS:
        M, R = cfg.meta.meta_batch, cfg.meta.inner_rollouts
        if workers > M:
            raise ConfigError(f"[meta].meta_batch = {M} tasks cannot be split over {workers} workers; "
                              f"use at most {M} workers")
        for m in shard_sizes(M, workers):
            c = copy.deepcopy(cfg)
            c.meta.meta_batch, c.run.num_envs = m, m * R
            out.append(c)
        return out
    if cfg.run.num_envs < workers:
        raise ConfigError(f"[run].num_envs = {cfg.run.num_envs} envs cannot be split over {workers} "
                          f"workers; use at most {cfg.run.num_envs} workers")
    for b in shard_sizes(cfg.run.num_envs, workers):
        c = copy.deepcopy(cfg)
        c.run.num_envs = b
        out.append(c)
    return out
