"""Adaptation rules on the robot, one per method, over an ONNX bundle (no torch).

An adapter owns the latent z that conditions the policy and how it changes with experience.
A session drives it as:

    adapter.begin(mode)                  # "prior" (zero-shot), "adapt" or "oracle"
    loop: a = adapter.act(o); ...; adapter.observe(o, a, r, o2)
    adapter.end(ret)                     # fold the rollout into the adaptation state

and the state after adaptation is ``adapter.state()`` (plain JSON), which ``robot-meta run``
loads with :func:`make_adapter` + ``load_state``. The rules mirror the training side
(robot_meta/learn/agent.py):

* ``PosteriorAdapter`` (PEARL): z = the mean of q(z | every transition of every adaptation
  rollout so far), the product of the per-transition Gaussian factors and the N(0, I) prior,
  computed by the exported posterior encoder; z is fixed within a rollout. Its variance is the
  reported uncertainty.
* ``HistoryAdapter`` (RMA): z = phi(last H (o, a) pairs, oldest first, zero-padded at the
  rollout start), recomputed at every control step: RMA adapts online, within a rollout.
  ``prior`` holds z = phi(zero history); ``oracle`` holds z = mu(e) of the true factors.
* ``FixedPolicy``: a bundle without a latent (PPO, the robust baseline).
* ``RecurrentAdapter`` (RL2, robot_meta/runtime/recurrent_adapter.py): the GRU hidden state of
  the recurrent policy, carried across the adaptation rollouts.
* ``GradientAdapter`` (MAML, FOMAML, Reptile; robot_meta/runtime/gradient_adapter.py): a
  policy-gradient step on the adaptation rollouts, which writes an adapted ONNX policy.
* ``ContextStepAdapter`` (CAVIA; robot_meta/runtime/context_adapter.py): a gradient step on the
  policy's context z under a transition-prediction loss, in numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.bundle import Bundle

MODES = ("prior", "adapt", "oracle")


class Adapter:
    """Base class: a policy with a latent z and an adaptation rule."""

    kind = ""
    uses_policy = True  # acts with bundle.policy (False: the subclass brings its own network)

    def __init__(self, bundle: Bundle):
        if self.uses_policy and bundle.policy is None:
            hint = "; use --method rl2 (or auto)" if bundle.recurrent is not None else ""
            raise UserError(f"{bundle.path}: this bundle has no feed-forward policy (method "
                            f"{bundle.manifest.method!r}){hint}")
        self.bundle = bundle
        self.policy = bundle.policy
        self.latent_dim = bundle.manifest.latent_dim
        self.z = np.zeros(self.latent_dim, dtype=np.float32)
        self.mode = "prior"
        self.oracle_z: np.ndarray | None = None
        self.learning = False  # set per rollout: whether the rollout feeds the adaptation

    def begin(self, mode: str) -> None:
        """Start a rollout in ``mode``."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
        if mode == "oracle" and self.oracle_z is None:
            raise UserError("oracle mode needs the true parameters (--oracle-params)")
        self.mode = mode

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The normalized action for one observation (obs_dim,)."""
        assert self.policy is not None
        return np.asarray(self.policy.act(obs, self.z if self.latent_dim else None), dtype=float)

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        """Record one transition (the action actually sent)."""

    def end(self, ret: float) -> None:
        """Fold the finished rollout (return ``ret``) into the adaptation state."""

    def replay(self, arrays: dict[str, np.ndarray], ret: float) -> None:
        """Fold a saved rollout (``obs``, ``action`` sent, ``reward``, ``next_obs``, ...) back in,
        as if it had just run (``adapt --resume``); call after ``begin``."""
        for o, a, r, o2 in zip(arrays["obs"], arrays["action"], arrays["reward"], arrays["next_obs"],
                               strict=True):
            self.observe(o, a, float(r), o2)
        self.end(ret)

    def uncertainty(self) -> float | None:
        """The mean posterior standard deviation of z, for methods that have one."""
        return None

    def state(self) -> dict[str, Any]:
        """The adapted state as plain JSON (what ``run`` uses)."""
        return {"kind": self.kind, "z": self.z.tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` for deployment (``run``): act as after adaptation."""
        if state.get("kind") != self.kind:
            raise UserError(f"adapted state of kind {state.get('kind')!r} does not fit a "
                            f"{self.kind!r} adapter; run `robot-meta adapt` again")
        z = np.asarray(state.get("z", []), dtype=np.float32)
        if z.shape != (self.latent_dim,):
            raise UserError(f"adapted state has z of size {z.size}, the bundle needs "
                            f"{self.latent_dim}; run `robot-meta adapt` again")
        self.z = z
        self.mode = "adapt"


class FixedPolicy(Adapter):
    """A policy without a latent (PPO / the robust baseline): nothing adapts."""

    kind = "fixed"


class PosteriorAdapter(Adapter):
    """PEARL: the posterior q(z | all adaptation transitions), mean conditions the policy."""

    kind = "posterior"

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


class HistoryAdapter(Adapter):
    """RMA: z = phi(the last H (o, a) pairs) at every step; resets with each rollout."""

    kind = "history"

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


def oracle_latent(bundle: Bundle, factors_normalized: np.ndarray) -> np.ndarray:
    """z = mu(e) from the bundle's privileged encoder, e the normalized true factors."""
    if bundle.privileged_encoder is None:
        raise UserError(f"{bundle.path}: no privileged encoder in this {bundle.manifest.method} "
                        "bundle")
    return np.asarray(bundle.privileged_encoder.infer(np.asarray(factors_normalized, np.float32)),
                      dtype=np.float32)


METHODS_BY_BUNDLE = {"pearl": "context", "rma": "rma", "ppo": "fixed", "rl2": "rl2",
                     "maml": "gradient", "fomaml": "gradient", "reptile": "gradient",
                     "cavia": "context-step"}


def resolve_method(bundle: Bundle, method: str) -> str:
    """The adaptation method for ``--method`` (auto picks the bundle's own)."""
    bm = bundle.manifest.method
    if method == "auto":
        method = METHODS_BY_BUNDLE.get(bm, "")
        if method == "fixed":
            raise UserError(f"{bundle.path}: a ppo bundle has no latent to adapt; use it as the "
                            "robust --baseline of a pearl or rma session")
        if not method:
            raise UserError(f"{bundle.path}: unknown method {bm!r}")
        return method
    if method == "context" and bm != "pearl":
        raise UserError(f"--method context needs a pearl bundle (posterior encoder); this one is "
                        f"{bm}. Use --method auto")
    if method == "rma" and bm != "rma":
        raise UserError(f"--method rma needs an rma bundle (history encoder); this one is {bm}")
    if method == "gradient" and METHODS_BY_BUNDLE.get(bm) != "gradient":
        raise UserError(f"--method gradient needs a maml, fomaml or reptile bundle (a policy-gradient "
                        f"adaptation rule); this one is {bm}. Use --method auto")
    if method == "context-step" and bm != "cavia":
        raise UserError(f"--method context-step needs a cavia bundle (a context step on a dynamics "
                        f"loss); this one is {bm}. Use --method auto")
    if method == "rl2" and bm != "rl2":
        raise UserError(f"--method rl2 needs an rl2 bundle (recurrent policy); this one is {bm}. "
                        "Use --method auto")
    if method == "latent-search" and bundle.manifest.latent_dim == 0:
        raise UserError(f"--method latent-search needs a policy with a latent z; this {bm} bundle "
                        "has none")
    if method == "sysid" and bundle.privileged_encoder is None:
        raise UserError(f"--method sysid needs a bundle with a privileged encoder mu(e) (rma); "
                        f"this one is {bm}")
    if method not in ("context", "rma", "latent-search", "rl2", "gradient", "context-step", "sysid"):
        raise UserError(f"unknown --method {method!r}; use auto, context, rma, gradient, "
                        "context-step, rl2, latent-search or sysid")
    return method


def make_adapter(bundle: Bundle, method: str, *, rollouts: int = 5, seed: int = 0) -> Adapter:
    """The adapter of a resolved method (``fixed`` for latent-free bundles); ``rollouts`` and
    ``seed`` configure the latent search."""
    if method == "context":
        return PosteriorAdapter(bundle)
    if method == "rma":
        return HistoryAdapter(bundle)
    if method == "latent-search":
        from robot_meta.runtime.latent_search import LatentSearch

        return LatentSearch(bundle, rollouts=rollouts, seed=seed)
    if method == "gradient":
        from robot_meta.runtime.gradient_adapter import GradientAdapter

        return GradientAdapter(bundle, seed=seed)
    if method == "context-step":
        from robot_meta.runtime.context_adapter import ContextStepAdapter

        return ContextStepAdapter(bundle, seed=seed)
    if method == "rl2":
        from robot_meta.runtime.recurrent_adapter import RecurrentAdapter

        return RecurrentAdapter(bundle)
    if method == "sysid":
        from robot_meta.runtime.sysid_adapter import SysidAdapter

        return SysidAdapter(bundle)
    if method == "fixed":
        return FixedPolicy(bundle)
    raise UserError(f"unknown adaptation method {method!r}")
