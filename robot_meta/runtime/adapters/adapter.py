"""The base class of the adaptation rules on the robot (no torch).

An adapter owns the latent z that conditions the policy and how it changes with experience.
A session drives it as:

    adapter.begin(mode)                  # "prior" (zero-shot), "adapt" or "oracle"
    loop: a = adapter.act(o); ...; adapter.observe(o, a, r, o2)
    adapter.end(ret)                     # fold the rollout into the adaptation state
    adapter.add_rollout(arrays)          # the saved rollout, for rules that refit on it (sysid)

and the state after adaptation is ``adapter.state()`` (plain JSON), which ``robot-meta run``
loads with :func:`~robot_meta.runtime.adapters.registry.make_adapter` + ``load_state``.

Each rule is one subclass in its own file of this package, registered by its adaptation method
(``--method``) with :func:`~robot_meta.runtime.adapters.registry.register_adapter`; the class
attributes below say which bundles it adapts and how a session plans around it, and the hooks
(``create``, ``check_bundle``, ``set_artifact_dir``, ``publish``, ``add_rollout``,
``replayed_latent``) are what the session and ``run`` call, so neither needs to know a method by
name. The rules mirror the training side (robot_meta/learn/agent.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.bundle import Bundle

MODES = ("prior", "adapt", "oracle")


class Adapter:
    """Base class: a policy with a latent z and an adaptation rule."""

    kind = ""  # the ``kind`` of its saved state
    uses_policy = True  # acts with bundle.policy (False: the subclass brings its own network)
    # ---- registration (see robot_meta.runtime.adapters.registry) ----
    # the adaptation method, as ``adapt --method`` names it
    method: ClassVar[str] = ""
    # the bundle methods (manifest ``method``) whose ``--method auto`` rule this is
    bundle_methods: ClassVar[tuple[str, ...]] = ()
    # what an explicit ``--method`` needs, for the error message
    needs: ClassVar[str] = ""
    # offered as ``adapt --method`` (False: only chosen by the runtime, e.g. ``fixed``)
    selectable: ClassVar[bool] = True
    # ---- how sessions and ``run`` use it ----
    # adapts within a rollout: ``run`` acts in adapt mode even without a session's state
    online: ClassVar[bool] = False
    # every adaptation rollout gets the same task (candidates compared by their returns)
    same_task: ClassVar[bool] = False
    # without a privileged encoder, this rule after W warm-up rollouts is the oracle column
    warmup_oracle: ClassVar[bool] = False

    @classmethod
    def create(cls, bundle: Bundle, *, rollouts: int = 5, seed: int = 0) -> Adapter:
        """A new adapter for ``bundle``; ``rollouts`` is the session's adaptation budget and
        ``seed`` seeds its exploration (rules that use neither ignore them)."""
        return cls(bundle)

    @classmethod
    def check_bundle(cls, bundle: Bundle) -> None:
        """Refuse (UserError) a bundle this rule cannot adapt, when ``--method`` names it."""
        bm = bundle.manifest.method
        if bm not in cls.bundle_methods:
            raise UserError(f"--method {cls.method} needs {cls.needs}; this one is {bm}. "
                            "Use --method auto")

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

    def add_rollout(self, arrays: dict[str, np.ndarray]) -> None:
        """Hook: a finished adaptation rollout as saved (``q``, ``dq``, ``action``, ...), after
        :meth:`end`; for rules that refit on whole recordings (sysid). Default: nothing."""

    def set_artifact_dir(self, path: Path) -> None:
        """Hook: the session directory where this adapter may write files (an adapted bundle).
        Default: it writes none."""

    def publish(self, dest: Path) -> None:
        """Hook: install what the adapted state needs besides :meth:`state` (an adapted bundle)
        at ``dest`` in the deploy dir, for ``run``. Default: nothing."""

    def replayed_latent(self) -> np.ndarray | None:
        """Hook: the latent a replayed adaptation rollout must have been run with (session
        resume checks it against the saved one), or None when it is not determined by the
        session's plan alone. Call after ``begin``."""
        return None

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


def oracle_latent(bundle: Bundle, factors_normalized: np.ndarray) -> np.ndarray:
    """z = mu(e) from the bundle's privileged encoder, e the normalized true factors."""
    if bundle.privileged_encoder is None:
        raise UserError(f"{bundle.path}: no privileged encoder in this {bundle.manifest.method} "
                        "bundle")
    return np.asarray(bundle.privileged_encoder.infer(np.asarray(factors_normalized, np.float32)),
                      dtype=np.float32)


