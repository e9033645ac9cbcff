"""``--method latent-search``: a cross-entropy search over the policy's latent z, scored by the
returns of real rollouts. ONNX only: no gradients, no torch, works with any bundle whose
policy takes a z (PEARL, RMA).

Each adaptation rollout evaluates one candidate z with the policy conditioned on it. Candidates
come in generations of P; generation 0 starts with the search mean m0 itself (so the zero-shot
z is always among them). After each generation, with every candidate evaluated so far:

    elites  = the top n_e = max(2, ceil(rho n)) candidates by return  (rho = 0.3)
    m      <- mean(elites)
    s      <- max(0.5 s + 0.5 std(elites), s_min)     (smoothed, floored at 5 % of s0)

and candidates of the next generation are z ~ N(m, diag(s^2)), clipped to m0 +/- 3 s0. The
adapted z is the final m. The initial distribution is the latent's training distribution:
N(0, I) for PEARL (its prior), and the spread of mu(e) over e ~ U[-1, 1]^F (the normalized
training ranges) for RMA. Draws are seeded per generation, so a resumed session replays
exactly the same candidates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle

MIN_ROLLOUTS = 5


@register_adapter
class LatentSearch(Adapter):
    """Cross-entropy search over z (see the module docstring)."""

    kind = "latent-search"
    method = "latent-search"
    same_task = True  # candidates are compared by return: every one gets the same task

    @classmethod
    def create(cls, bundle: Bundle, *, rollouts: int = 5, seed: int = 0) -> LatentSearch:
        return cls(bundle, rollouts=rollouts, seed=seed)

    @classmethod
    def check_bundle(cls, bundle: Bundle) -> None:
        if bundle.manifest.latent_dim == 0:
            raise UserError(f"--method latent-search needs a policy with a latent z; this "
                            f"{bundle.manifest.method} bundle has none")

    def __init__(self, bundle: Bundle, rollouts: int = MIN_ROLLOUTS, seed: int = 0,
                 population: int | None = None, elite_fraction: float = 0.3):
        super().__init__(bundle)
        if self.latent_dim == 0:
            raise UserError(f"{bundle.path}: latent-search needs a policy with a latent z")
        self.seed = seed
        self.rho = elite_fraction
        self.m0, self.s0 = self._initial(bundle, seed)
        self.mean, self.std = self.m0.copy(), self.s0.copy()
        self.configure(rollouts, population)

    def configure(self, rollouts: int, population: int | None = None) -> None:
        """Set the budget K (>= 5) and the generation size P (default 3 for K < 9, else 4)."""
        if rollouts < MIN_ROLLOUTS:
            raise UserError(f"latent-search needs --rollouts >= {MIN_ROLLOUTS} (got {rollouts}): "
                            "a search scored by returns needs several candidates. Use --method "
                            "context or rma for fewer rollouts")
        self.K = rollouts
        self.P = population or (3 if rollouts < 9 else 4)
        self.evaluated: list[tuple[np.ndarray, float]] = []
        self.mean, self.std = self.m0.copy(), self.s0.copy()
        self._generation: list[np.ndarray] = self._draw(0)
        self._candidate: np.ndarray | None = None

    @staticmethod
    def _initial(bundle: Bundle, seed: int) -> tuple[np.ndarray, np.ndarray]:
        L = bundle.manifest.latent_dim
        if bundle.privileged_encoder is not None:
            rng = np.random.default_rng([seed, 7])
            n_f = int(bundle.privileged_encoder.session.get_inputs()[0].shape[-1])
            zs = bundle.privileged_encoder.infer(rng.uniform(-1, 1, (256, n_f)).astype(np.float32))
            return zs.mean(0).astype(np.float32), np.maximum(zs.std(0), 1e-3).astype(np.float32)
        return np.zeros(L, np.float32), np.ones(L, np.float32)

    def _draw(self, g: int) -> list[np.ndarray]:
        """The P candidates of generation g: z ~ N(m, s^2), clipped to m0 +/- 3 s0."""
        rng = np.random.default_rng([self.seed, 1000 + g])
        z = self.mean + self.std * rng.standard_normal((self.P, self.latent_dim))
        z = np.clip(z, self.m0 - 3 * self.s0, self.m0 + 3 * self.s0).astype(np.float32)
        if g == 0:
            z[0] = self.m0  # the zero-shot latent is always a candidate
        return list(z)

    def begin(self, mode: str) -> None:
        super().begin(mode)
        if mode == "adapt":
            if len(self.evaluated) >= self.K:  # the budget is spent: act with the result
                self._candidate = None
                self.z = self.mean.astype(np.float32)
                return
            i = len(self.evaluated) % self.P
            self._candidate = self._generation[i]
            self.z = self._candidate
        elif mode == "prior":
            self._candidate = None
            self.z = self.m0
        else:
            assert self.oracle_z is not None
            self._candidate = None
            self.z = self.oracle_z

    def replayed_latent(self) -> np.ndarray:
        """The candidate the plan gives this rollout (seeded draws): a replayed rollout must
        have been run with it."""
        return self.z

    def end(self, ret: float) -> None:
        if self.mode != "adapt" or self._candidate is None:
            return
        self.evaluated.append((self._candidate, float(ret)))
        self._candidate = None
        n = len(self.evaluated)
        if n % self.P == 0 or n == self.K:
            self._update()
            self._generation = self._draw(math.ceil(n / self.P))

    def _update(self) -> None:
        zs = np.stack([z for z, _ in self.evaluated])
        rs = np.array([r for _, r in self.evaluated])
        n_e = min(len(rs), max(2, math.ceil(self.rho * len(rs))))
        elite = zs[np.argsort(-rs)[:n_e]]
        self.mean = elite.mean(0).astype(np.float32)
        self.std = np.maximum(0.5 * self.std + 0.5 * elite.std(0), 0.05 * self.s0).astype(np.float32)

    def uncertainty(self) -> float:
        """The mean search standard deviation (how unsettled the search still is)."""
        return float(self.std.mean())

    def state(self) -> dict[str, Any]:
        best = max(self.evaluated, key=lambda e: e[1]) if self.evaluated else None
        return {"kind": self.kind, "z": self.mean.tolist(), "search_std": self.std.tolist(),
                "evaluated": len(self.evaluated),
                "best_return": None if best is None else best[1],
                "best_z": None if best is None else best[0].tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.mean = self.z.copy()
        self.evaluated = [(self.z, 0.0)] * self.K  # the budget is spent: `adapt` acts with z
