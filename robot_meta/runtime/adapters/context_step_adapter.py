"""``--method context-step`` (``cavia`` bundles): a gradient step on the policy's context z.

Each adaptation rollout (``learning``) collects the step's data as meta-training's inner loop
did: it acts with the prior context z0, sampling a = mu(o, z0) + sigma * n, n ~ N(0, I), with the
policy's sigma from the manifest (the safety layer still clamps what reaches the motors), and
records its transitions (o, a sent, o'). After it, z' = ContextStep.adapt(z0, every adaptation
transition so far), in numpy from the weights in the bundle manifest
(:mod:`robot_meta.runtime.context_step`). The policy stays the bundle's verified ONNX graph; only
its z input changes, so there is no adapted bundle to write and no torch on the robot. Scored
rollouts act deterministically, with z0 (``prior``) or z' (``adapt``), and teach nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle
from robot_meta.runtime.context_step import ContextStep


@register_adapter
class ContextStepAdapter(Adapter):
    """z' = adapt(z0, adaptation transitions); z fixed within a rollout (module docstring)."""

    kind = "context-step"
    method = "context-step"
    bundle_methods = ("cavia",)
    needs = "a cavia bundle (a context step on a dynamics loss)"
    warmup_oracle = True  # z' after the warm-up rollouts

    @classmethod
    def create(cls, bundle: Bundle, *, rollouts: int = 5, seed: int = 0) -> ContextStepAdapter:
        return cls(bundle, seed=seed)

    def __init__(self, bundle: Bundle, seed: int = 0):
        super().__init__(bundle)
        spec = bundle.manifest.extra.get("adaptation")
        if not isinstance(spec, dict):
            raise UserError(f"{bundle.path}: a {bundle.manifest.method} bundle without an adaptation "
                            "rule in its manifest; re-export it")
        self.step = ContextStep(spec, f"{bundle.path}: manifest extra.adaptation")
        if self.step.context_dim != self.latent_dim:
            raise UserError(f"{bundle.path}: the adaptation rule's z has {self.step.context_dim} "
                            f"dimensions, the policy's {self.latent_dim}; re-export the bundle")
        self.z0 = self.step.z0.astype(np.float32)
        log_std = spec.get("log_std")  # absent: a bundle exported before exploration was recorded
        self.std: np.ndarray | float = (0.0 if log_std is None
                                        else np.exp(np.asarray(log_std, dtype=np.float64)))
        self.rng = np.random.default_rng(seed + 7919)
        self.adapted = self.z0.copy()
        self.data: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (o, a, o') per rollout
        self._current: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.loss_prior: float | None = None
        self.loss_adapted: float | None = None

    def begin(self, mode: str) -> None:
        super().begin(mode)
        self._current = []
        self.z = self.z0.copy() if (mode == "prior" or self.learning) else self.adapted.copy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        a = super().act(obs)
        if self.learning:  # exploration around mu(o, z0), as in meta-training (module docstring)
            a = a + self.std * self.rng.standard_normal(a.shape)
        return a

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        if self.learning:
            self._current.append((np.asarray(obs, float), np.asarray(action, float),
                                  np.asarray(next_obs, float)))

    def end(self, ret: float) -> None:
        if not self.learning or not self._current:
            return
        o, a, o2 = (np.stack(x) for x in zip(*self._current, strict=True))
        self.data.append((o, a, o2))
        self._current = []
        O, A, O2 = self.step.stack(self.data)
        z = self.step.adapt(O, A, O2)
        self.loss_prior = self.step.loss_and_grad(self.step.z0, O, A, O2)[0]
        self.loss_adapted = self.step.loss_and_grad(z, O, A, O2)[0]
        self.adapted = z.astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "z": self.adapted.tolist(),
                "transitions": int(sum(len(d[0]) for d in self.data)),
                "loss_prior": self.loss_prior, "loss_adapted": self.loss_adapted}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.adapted = self.z.copy()
