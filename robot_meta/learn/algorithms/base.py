"""The contract between the trainer, the evaluator and a learning algorithm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robot_meta.learn.agent import Agent
from robot_meta.learn.config import TrainConfig


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
    ac: Any  # an ActorCritic or RecurrentActorCritic
    optimizer: torch.optim.Optimizer
    lr: float

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, device: torch.device):
        self.cfg, self.spec, self.device = cfg, spec, device

    def env_kwargs(self) -> dict[str, Any]:
        """Extra arguments of ``make_vec_env`` for training (e.g. ``fixed_tasks``)."""
        return {}

    def phase_at(self, progress: float) -> str:
        """The phase at a given fraction of the budget, progress in [0, 1]."""
        return self.phases[0]

    def start_segment(self, env: Any, obs: np.ndarray, rng: np.random.Generator,
                      gen: torch.Generator) -> None:
        raise NotImplementedError

    def iterate(self, env: Any, phase: str) -> dict[str, float]:
        raise NotImplementedError

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
