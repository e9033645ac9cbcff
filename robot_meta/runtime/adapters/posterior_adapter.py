"""``--method context`` (PEARL bundles): z = the mean of q(z | every transition of every
adaptation rollout so far), the product of the per-transition Gaussian factors and the N(0, I)
prior, computed by the exported posterior encoder; z is fixed within a rollout. Its variance is
the reported uncertainty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle


@register_adapter
class PosteriorAdapter(Adapter):
    """PEARL: the posterior q(z | all adaptation transitions), mean conditions the policy."""

    kind = "posterior"
    method = "context"
    bundle_methods = ("pearl",)
    needs = "a pearl bundle (posterior encoder)"
    warmup_oracle = True  # the posterior after W warm-up rollouts stands in for the oracle

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        if bundle.encoder is None or bundle.encoder.role != "posterior_encoder":
            raise UserError(f"{bundle.path}: a {bundle.manifest.method} bundle needs a posterior "
                            "encoder for context adaptation")
        self.encoder = bundle.encoder
        self.context: list[np.ndarray] = []  # (n_i, 2 obs + act + 1) per adaptation rollout
        self._current: list[np.ndarray] = []
        self.var = np.ones(self.latent_dim, dtype=np.float32)
        self.loaded: tuple[np.ndarray, np.ndarray] | None = None

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, var) of q(z | every completed adaptation rollout); the prior N(0, I) when
        there is none."""
        if not self.context:
            if self.loaded is not None:  # the state saved by a session, in `run`
                return self.loaded
            return np.zeros(self.latent_dim, np.float32), np.ones(self.latent_dim, np.float32)
        c = np.concatenate(self.context, axis=0)
        mean, var = self.encoder.infer(c, np.ones(len(c), dtype=np.float32))
        assert var is not None
        return np.asarray(mean, np.float32), np.asarray(var, np.float32)

    def begin(self, mode: str) -> None:
        super().begin(mode)
        self._current = []
        if mode == "prior":
            self.z, self.var = np.zeros(self.latent_dim, np.float32), np.ones(self.latent_dim, np.float32)
        elif mode == "oracle":
            assert self.oracle_z is not None
            self.z = self.oracle_z
        else:
            self.z, self.var = self.posterior()

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        # a transition laid out [o, a, r, o'] as the encoder was trained on
        self._current.append(np.concatenate([obs, action, [reward], next_obs]).astype(np.float32))

    def end(self, ret: float) -> None:
        # only the rollouts the session learns from: an evaluation ("after") rollout in adapt
        # mode acts with the posterior and must not grow it, or later ones see more data
        if self.learning and self.mode == "adapt" and self._current:
            self.context.append(np.stack(self._current))
        self._current = []

    def add_context(self, transitions: np.ndarray) -> None:
        """Add a completed rollout's transitions (n, D) (session resume)."""
        self.context.append(np.asarray(transitions, dtype=np.float32))

    def uncertainty(self) -> float:
        return float(np.sqrt(self.posterior()[1]).mean())

    def state(self) -> dict[str, Any]:
        mean, var = self.posterior()
        return {"kind": self.kind, "z": mean.tolist(), "z_var": var.tolist(),
                "transitions": int(sum(len(c) for c in self.context)),
                "posterior_std": float(np.sqrt(var).mean())}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        var = np.asarray(state.get("z_var", np.ones(self.latent_dim)), dtype=np.float32)
        self.loaded = (self.z, var)
