"""The ``cavia`` inner step on the robot, in numpy: no torch, no onnx.

It is :class:`robot_meta.learn.context_adaptation.ContextAdaptation` written out by hand, with
the dynamics model's weights and the normalizers' statistics from the bundle manifest
(``extra["adaptation"]``, rule ``dynamics_context``). For one task's transitions
(o_j, a_j, o'_j), j = 1..N:

    x_j = [norm(o_j), clip(h_j, -1, 1), z],   y_j = delta_norm(o'_j - o_j)
    h_j = [a_j, a_{j-1}, ..., a_{j-H+1}]  (the last H actions sent, zeros before the rollout)
    L(z) = (1 / N) sum_j 0.5 || g(x_j) - y_j ||^2,     z <- z - alpha * dL/dz   (k times)

g is Linear -> ELU -> ... -> Linear, h_{i+1} = elu(W_i h_i + b_i), so back-propagation gives
    dL/dpred_j = (pred_j - y_j) / N,
    dL/dh_i = (dL/da_i) W_i,  dL/da_{i-1} = dL/dh_i * elu'(a_{i-1}),  elu'(a) = 1 if a > 0 else e^a,
and dL/dz is the z-columns of dL/dx summed over j. Computed in float64; it agrees with the torch
step to float32 rounding (tests/runtime/test_context_step.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_meta.errors import UserError

RULE = "dynamics_context"


def action_history(actions: np.ndarray, H: int) -> np.ndarray:
    """The last H actions at each step of one rollout, newest first: (T, A) -> (T, H A), with
    zeros before the rollout's first step. The dynamics model sees them because an actuation
    latency of d steps makes o' depend on a_{t-d}, not on a_t alone."""
    T, A = actions.shape
    out = np.zeros((T, H * A), dtype=actions.dtype)
    for h in range(H):
        out[h:, h * A:(h + 1) * A] = actions[:T - h] if h else actions
    return out


def _normalize(x: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float, clip: float) -> np.ndarray:
    """clip((x - mean) / sqrt(var + eps), -clip, clip), as EmpiricalNormalizer."""
    return np.clip((x - mean) / np.sqrt(var + eps), -clip, clip)


class ContextStep:
    """The inner step of a ``cavia`` bundle (module docstring)."""

    def __init__(self, spec: dict[str, Any], where: str = "adaptation"):
        try:
            if spec.get("rule") != RULE:
                raise UserError(f"{where}.rule: expected {RULE!r}, got {spec.get('rule')!r}")
            f64 = lambda k: np.asarray(spec[k], dtype=np.float64)  # noqa: E731
            self.z0, self.rates = f64("z0"), f64("rates")
            self.steps = int(spec["steps"])
            self.history = int(spec["action_history"])
            self.obs_stats = (f64("obs_mean"), f64("obs_var"), float(spec["obs_eps"]),
                              float(spec["obs_clip"]))
            self.delta_stats = (f64("delta_mean"), f64("delta_var"), float(spec["delta_eps"]),
                                float(spec["delta_clip"]))
            self.layers = [(np.asarray(w["weight"], dtype=np.float64),
                            np.asarray(w["bias"], dtype=np.float64)) for w in spec["layers"]]
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: a malformed dynamics_context rule ({e!r}); "
                            "re-export the bundle") from e
        C = self.z0.shape[0]
        if self.rates.shape != (C,) or not self.layers or self.layers[0][0].shape[1] < C:
            raise UserError(f"{where}: the rule's z0, rates and first layer do not fit together; "
                            "re-export the bundle")
        self.context_dim = C

    def loss_and_grad(self, z: np.ndarray, obs: np.ndarray, actions: np.ndarray,
                      next_obs: np.ndarray) -> tuple[float, np.ndarray]:
        """L(z) and dL/dz over N transitions: obs, next_obs (N, obs_dim), actions (N, act_dim)."""
        N = obs.shape[0]
        if N == 0:
            return 0.0, np.zeros_like(self.z0)
        x = np.concatenate([_normalize(obs, *self.obs_stats), np.clip(actions, -1.0, 1.0),
                            np.broadcast_to(z, (N, self.context_dim))], axis=1)
        y = _normalize(next_obs - obs, *self.delta_stats)
        pre: list[np.ndarray] = []  # a_i = W_i h_i + b_i of the hidden layers
        h = x
        for i, (w, b) in enumerate(self.layers):
            a = h @ w.T + b
            if i < len(self.layers) - 1:
                pre.append(a)
                h = np.where(a > 0, a, np.expm1(np.minimum(a, 0.0)))  # elu
            else:
                h = a
        err = h - y
        loss = float(0.5 * (err**2).sum() / N)
        d = err / N  # dL/dpred
        for i in range(len(self.layers) - 1, -1, -1):
            d = d @ self.layers[i][0]  # dL/dh_i
            if i > 0:
                a = pre[i - 1]
                d = d * np.where(a > 0, 1.0, np.exp(np.minimum(a, 0.0)))
        return loss, d[:, -self.context_dim:].sum(0)

    def stack(self, rollouts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rollouts [(o (T, obs), a sent (T, act), o' (T, obs)), ...] -> the step's inputs
        (o, action histories, o'), each concatenated over the rollouts."""
        if not rollouts:
            raise ValueError("no rollouts")
        return (np.concatenate([r[0] for r in rollouts]),
                np.concatenate([action_history(np.asarray(r[1], float), self.history) for r in rollouts]),
                np.concatenate([r[2] for r in rollouts]))

    def adapt(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
              z: np.ndarray | None = None) -> np.ndarray:
        """k steps from ``z`` (default z0) over the transitions given (``actions``: the action
        histories of :meth:`stack`); returns z' (C,)."""
        z = self.z0.copy() if z is None else np.asarray(z, dtype=np.float64).copy()
        obs, actions, next_obs = (np.asarray(v, dtype=np.float64) for v in (obs, actions, next_obs))
        for _ in range(self.steps):
            _, g = self.loss_and_grad(z, obs, actions, next_obs)
            z = z - self.rates * g
        return z
