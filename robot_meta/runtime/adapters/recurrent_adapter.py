"""``--method rl2``: the RL2 adaptation rule on the robot, over the bundle's recurrent policy.

The policy adapts through its GRU hidden state h, one ONNX step per control cycle:

    (a_t, h_t) = pi(o_t, a_{t-1}, r_{t-1}, d_{t-1}, h_{t-1})

with d_{t-1} = 1 (and a_{t-1} = 0, r_{t-1} = 0) at the first step of each rollout, as in
training (robot_meta/learn/algorithms/rl2.py). The adaptation state is h_task, the hidden state
at the end of the last adaptation rollout: an ``adapt`` rollout starts from it and leaves its
final h there (rollout k of the session is episode k of an RL2 trial), a ``prior`` rollout
starts from h = 0 (zero-shot) and leaves h_task untouched, and an evaluation rollout (run
without ``learn``) starts from h_task without changing it. ``state()`` saves h_task as a list,
which ``robot-meta run`` restores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle, RecurrentPolicy


@register_adapter
class RecurrentAdapter(Adapter):
    """RL2: the GRU hidden state carried across rollouts is the adaptation state."""

    kind = "recurrent"
    uses_policy = False  # the bundle has a recurrent_policy instead of a policy
    method = "rl2"
    bundle_methods = ("rl2",)
    needs = "an rl2 bundle (recurrent policy)"
    warmup_oracle = True  # h after the warm-up rollouts

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        if bundle.recurrent is None:
            raise UserError(f"{bundle.path}: --method rl2 needs an rl2 bundle (a recurrent "
                            f"policy.onnx); this one is {bundle.manifest.method}. Use --method auto")
        self.recurrent: RecurrentPolicy = bundle.recurrent
        self.hidden_size = self.recurrent.hidden_size
        self.act_dim = len(bundle.manifest.actuated_joints)
        self.h_task = np.zeros(self.hidden_size, np.float32)  # after the last adapt rollout
        self.rollouts = 0  # adapt rollouts folded into h_task
        self.begin("prior")

    def begin(self, mode: str) -> None:
        super().begin(mode)
        self.h = np.zeros(self.hidden_size, np.float32) if mode == "prior" else self.h_task.copy()
        self._pending: np.ndarray | None = None  # h_t computed by act, committed by observe
        self.prev_action = np.zeros(self.act_dim, np.float32)
        self.prev_reward = 0.0
        self.prev_done = 1.0  # the first step of a rollout (an episode of the trial)

    def _step(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, h = self.recurrent.step(np.asarray(obs, np.float32), self.h[None], self.prev_action[None],
                                   self.prev_reward, self.prev_done)
        return np.asarray(a, dtype=float), np.asarray(h[0], np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        a, self._pending = self._step(obs)
        return a

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        # h_t, then the next step's inputs: the action sent, its reward, d = 0. A replayed
        # transition (session resume) had no act(): its GRU step is computed here.
        h = self._pending if self._pending is not None else self._step(obs)[1]
        self.h, self._pending = h, None
        self.prev_action = np.asarray(action, np.float32).reshape(self.act_dim)
        self.prev_reward = float(reward)
        self.prev_done = 0.0

    def end(self, ret: float) -> None:
        if self.mode == "adapt":
            self.h_task = self.h.copy()
            self.rollouts += 1

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "z": [], "h": self.h_task.tolist(), "rollouts": self.rollouts}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise UserError(f"adapted state of kind {state.get('kind')!r} does not fit an rl2 "
                            "bundle; run `robot-meta adapt` again")
        h = np.asarray(state.get("h", []), dtype=np.float32)
        if h.shape != (self.hidden_size,):
            raise UserError(f"adapted state has h of size {h.size}, the bundle's GRU needs "
                            f"{self.hidden_size}; run `robot-meta adapt` again")
        self.h_task = h
        self.rollouts = int(state.get("rollouts", 0))
        self.begin("adapt")
