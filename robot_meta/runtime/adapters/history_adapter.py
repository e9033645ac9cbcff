"""``--method rma`` (RMA bundles): z = phi(last H (o, a) pairs, oldest first, zero-padded at the
rollout start), recomputed at every control step: RMA adapts online, within a rollout.
``prior`` holds z = phi(zero history); ``oracle`` holds z = mu(e) of the true factors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle


@register_adapter
class HistoryAdapter(Adapter):
    """RMA: z = phi(the last H (o, a) pairs) at every step; resets with each rollout."""

    kind = "history"
    method = "rma"
    bundle_methods = ("rma",)
    needs = "an rma bundle (history encoder)"
    online = True  # RMA adapts within a rollout, also in `run` without a session

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        if bundle.encoder is None or bundle.encoder.role != "history_encoder":
            raise UserError(f"{bundle.path}: an rma bundle needs a history encoder")
        self.encoder = bundle.encoder
        m = bundle.manifest
        self.H = m.history_length
        self.obs_dim, self.act_dim = len(m.observation), len(m.actuated_joints)
        self.hist = np.zeros((self.H, self.obs_dim + self.act_dim), np.float32)
        self.z_prior = self.encoder.infer(self.hist)[0].astype(np.float32)

    def begin(self, mode: str) -> None:
        super().begin(mode)
        self.hist[:] = 0.0  # zero-padded history at the rollout start
        if mode == "prior":
            self.z = self.z_prior
        elif mode == "oracle":
            assert self.oracle_z is not None
            self.z = self.oracle_z

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.mode == "adapt":
            self.z = self.encoder.infer(self.hist)[0].astype(np.float32)
        return super().act(obs)

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        # h <- (h[1:], (o_t, a_t)): the oldest entry first, as phi was trained
        self.hist[:-1] = self.hist[1:]
        self.hist[-1, : self.obs_dim] = obs
        self.hist[-1, self.obs_dim:] = action

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "z": self.z.tolist(), "online": True, "history_length": self.H}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise UserError(f"adapted state of kind {state.get('kind')!r} does not fit an RMA "
                            "bundle; run `robot-meta adapt` again")
        self.mode = "adapt"  # RMA keeps adapting online in `run`
