"""On-robot gradient adaptation for MAML, first-order MAML and Reptile bundles.

The bundle's policy is the meta-parameters theta; ``manifest.extra["adaptation"]`` is the rule
meta-training used (:mod:`robot_meta.learn.adaptation`): k policy-gradient steps with rate
alpha on the task's rollouts, advantages from a linear feature baseline (rewards only, no
critic). A session:

* runs each adaptation rollout with the meta-parameters theta, *sampling* a ~ N(mu(o), sigma^2)
  with theta's sigma, as meta-training's inner loop collected its data (k rollouts of the
  pre-update policy, then a gradient step: theta and the meta-learned rates were fitted to
  steps on exactly such data), so that the recorded log pi_b(a | o) is the density the action
  was really drawn from (the policy gradient needs exploration; the importance weights need the
  true behaviour density; the safety layer still clamps what reaches the motors);
* after each rollout, with torque off, theta' = adapt(theta, every adaptation rollout so far),
  in torch, and the adapter writes an *adapted bundle* through the
  exporter and its one write transaction (:mod:`robot_meta.export.bundle_writer`): pi_theta'
  exported and checked as at export, a manifest with the new hash and the adaptation's
  provenance; evaluation rollouts and ``robot-meta run`` act deterministically with it through
  onnxruntime.

Adapting needs torch and onnx on the host that runs the session (``pip install
'robot-meta[train]'``); running the adapted bundle does not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.export.manifest import manifest_sha
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle, Policy, load_bundle

ACTOR_PREFIX = "m.actor."  # initializer names of the actor's weights in an exported policy
# (the robot rebuilds pi_theta from them and checks the result against onnxruntime)


def _need_torch() -> Any:
    try:
        import onnx  # noqa: F401
        import torch
    except ImportError as e:
        raise UserError(
            "gradient adaptation (MAML/FOMAML/Reptile bundles) runs the policy-gradient "
            "step in torch and rewrites the ONNX policy: install them on the host that "
            "runs the session (pip install 'robot-meta[train]'), or adapt on a "
            f"workstation connected to the robot ({e.name} is missing)"
        ) from e
    return torch


@register_adapter
class GradientAdapter(Adapter):
    """theta' = adapt(theta, rollouts) after every adaptation rollout (see the module doc)."""

    kind = "gradient"
    method = "gradient"
    bundle_methods = ("maml", "fomaml", "reptile")
    needs = "a maml, fomaml or reptile bundle (a policy-gradient adaptation rule)"
    warmup_oracle = True  # theta' after the warm-up rollouts (there is no privileged encoder)

    @classmethod
    def create(cls, bundle: Bundle, *, rollouts: int = 5, seed: int = 0) -> GradientAdapter:
        return cls(bundle, seed=seed)

    def __init__(self, bundle: Bundle, seed: int = 0):
        super().__init__(bundle)
        spec = bundle.manifest.extra.get("adaptation")
        if not isinstance(spec, dict) or spec.get("rule") != "policy_gradient":
            raise UserError(
                f"{bundle.path}: a {bundle.manifest.method} bundle without a policy-gradient "
                "adaptation rule in its manifest; export it again with this version"
            )
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.rollouts: list[dict[str, Any]] = []  # obs, actions, logp, rewards: tensors
        self.returns: list[float] = []
        self.adapted: Policy | None = None  # onnxruntime policy of theta'
        self._stale = False  # theta' changed since the adapted bundle was written
        self._used = 0  # rollouts theta' was computed from
        self.adapted_dir: Path | None = None
        self.out_dir: Path | None = None  # where the adapted bundle is written (a temp dir if None)
        self._model: Any = None  # (torch ActorCritic, rule), built on first use
        self._params: Any = None  # theta' as torch tensors (None: theta)

    # ---- torch side (adapting) -----------------------------------------------------------------
    def model(self) -> Any:
        """The torch policy pi_theta rebuilt from policy.onnx and the manifest, with its rule;
        checked against onnxruntime so a rebuilt policy never silently differs."""
        if self._model is not None:
            return self._model
        torch = _need_torch()
        import onnx
        from onnx import numpy_helper

        from robot_meta.learn.adaptation import GradientAdaptation
        from robot_meta.learn.models.actor_critic import ActorCritic

        assert self.policy is not None
        proto = onnx.load(str(self.policy.path))
        init = {
            t.name: numpy_helper.to_array(t)
            for t in proto.graph.initializer
            if t.name.startswith(ACTOR_PREFIX)
        }
        weights = sorted((k for k in init if k.endswith(".weight")), key=lambda k: int(k.split(".")[2]))
        for k in weights:  # the exporter folds away all-zero biases (an untrained layer)
            init.setdefault(k[: -len("weight")] + "bias", np.zeros(init[k].shape[0], np.float32))
        if not weights:
            raise UserError(f"{self.policy.path}: no actor weights ({ACTOR_PREFIX}*) in the policy graph")
        hidden = [int(init[k].shape[0]) for k in weights[:-1]]
        obs_dim, act_dim = int(init[weights[0]].shape[1]), int(init[weights[-1]].shape[0])
        ac = ActorCritic(obs_dim, act_dim, 0, 0, hidden)
        s = self.spec
        with torch.no_grad():
            for k, v in init.items():
                dict(ac.named_parameters())[k[len("m.") :]].copy_(torch.as_tensor(np.array(v)))
            ac.log_std.copy_(torch.as_tensor(s["log_std"], dtype=torch.float32))
            ac.obs_norm.mean.copy_(torch.as_tensor(s["obs_mean"], dtype=torch.float32))
            ac.obs_norm.var.copy_(torch.as_tensor(s["obs_var"], dtype=torch.float32))
        ac.obs_norm.eps, ac.obs_norm.clip = float(s["obs_eps"]), float(s["obs_clip"])
        probe = self.rng.normal(0.0, 1.0, (64, obs_dim)) * np.sqrt(np.asarray(s["obs_var"])) + np.asarray(
            s["obs_mean"]
        )
        with torch.no_grad():
            ours = ac(torch.as_tensor(probe, dtype=torch.float32), torch.zeros(64, 0)).numpy()
        err = float(np.abs(ours - self.policy.act(probe)).max())
        if err > 1e-4:
            raise UserError(
                f"{self.bundle.path}: the manifest's adaptation data does not reproduce "
                f"policy.onnx (max error {err:.2g}); export the bundle again"
            )
        lr = s["inner_lr"]
        rates = (
            float(lr) if isinstance(lr, int | float) else {k: torch.tensor(float(v)) for k, v in lr.items()}
        )
        rule = GradientAdaptation(
            ac, rates, steps=int(s["inner_steps"]), gamma=float(s["gamma"]), clip=float(s["clip"]),
            adapt_std=bool(s.get("adapt_std", True)),  # bundles before the flag adapted log_std
            adapt_params=str(s.get("adapt_params", "all")),
        )
        self._model = (ac, rule)
        return self._model

    def _sample(self, obs: np.ndarray) -> np.ndarray:
        """a ~ N(mu_theta(o), exp(log_std_theta)^2), unclipped: the exploration policy theta."""
        torch = _need_torch()
        from robot_meta.learn.adaptation import action_mean, policy_params

        ac, _ = self.model()
        params = policy_params(ac)
        with torch.no_grad():
            o = torch.as_tensor(np.atleast_2d(obs), dtype=torch.float32)
            mean = action_mean(ac, params, o).numpy()[0].astype(np.float64)
            std = params["log_std"].exp().numpy().astype(np.float64)
        return mean + std * self.rng.standard_normal(mean.shape)

    # ---- a rollout -------------------------------------------------------------------------------
    def begin(self, mode: str) -> None:
        super().begin(mode)
        self._obs: list[np.ndarray] = []
        self._act: list[np.ndarray] = []
        self._rew: list[float] = []
        self._sampled: np.ndarray | None = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.learning:
            a = self._sample(obs)  # exploration for the policy gradient
            self._sampled = a
            return a
        policy = self.adapted if (self.mode == "adapt" and self.adapted is not None) else self.policy
        assert policy is not None
        return np.asarray(policy.act(obs), dtype=float)

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        if not self.learning:
            return
        # the sampled action (before the safety layer clamps it) is what pi was asked for
        self._obs.append(np.asarray(obs, dtype=np.float32))
        self._act.append(np.asarray(self._sampled if self._sampled is not None else action, dtype=np.float32))
        self._rew.append(float(reward))

    def replay(self, arrays: dict[str, np.ndarray], ret: float) -> None:
        """Fold a saved adaptation rollout back in (resume): its commanded (sampled) actions."""
        self.learning = True
        for o, a, r in zip(arrays["obs"], arrays["commanded"], arrays["reward"], strict=True):
            self._obs.append(np.asarray(o, dtype=np.float32))
            self._act.append(np.asarray(a, dtype=np.float32))
            self._rew.append(float(r))
        self.end(ret)

    def end(self, ret: float) -> None:
        if not self.learning or not self._obs:
            return
        torch = _need_torch()
        from robot_meta.learn.adaptation import Rollouts, log_prob, policy_params

        ac, rule = self.model()
        behavior = policy_params(ac)  # theta acted (see _sample)
        obs = torch.as_tensor(np.stack(self._obs))[None]
        act = torch.as_tensor(np.stack(self._act))[None]
        with torch.no_grad():
            logp = log_prob(ac, behavior, obs, act)  # log pi_b(a | o) of the params that acted
        self.rollouts.append(
            {
                "obs": obs[0],
                "actions": act[0],
                "logp": logp[0],
                "rewards": torch.as_tensor(self._rew, dtype=torch.float32),
            }
        )
        self.returns.append(float(ret))
        T = max(len(r["rewards"]) for r in self.rollouts)

        def pad(x: Any) -> Any:
            return torch.nn.functional.pad(x, [0, 0] * (x.dim() - 1) + [0, T - x.shape[0]])

        ro = Rollouts(
            torch.stack([pad(r["obs"]) for r in self.rollouts]),
            torch.stack([pad(r["actions"]) for r in self.rollouts]),
            torch.stack([pad(r["rewards"]) for r in self.rollouts]),
            torch.stack([pad(torch.ones(len(r["rewards"]))) for r in self.rollouts]),
            torch.stack([pad(r["logp"]) for r in self.rollouts]),
        )
        theta = {k: v.detach() for k, v in policy_params(ac).items()}
        adapted = rule.adapt(theta, ro)  # theta' from theta, on every rollout so far
        if not all(bool(torch.isfinite(v).all()) for v in adapted.values()):
            # Never flash a NaN policy: keep the previous theta' (the rollout stays recorded, so
            # a later step may still use it).
            import warnings

            warnings.warn(f"the gradient step on {len(self.rollouts)} rollout(s) is not finite; "
                          "keeping the previous policy", RuntimeWarning, stacklevel=2)
            return
        self._params = adapted
        self._used = len(self.rollouts)  # theta' is the step from these rollouts
        self._stale = True
        # Written now, while the rollout's torque is off (rollout.py), not when theta' first acts:
        # an export of about a second inside a rollout, or between its reset and its first step,
        # would outlast the bus watchdog.
        self.adapted_bundle()

    def adapted_bundle(self) -> Path | None:
        """The adapted bundle of the latest theta', written now if it is not on disk yet (None
        before the first step)."""
        if self._stale:
            self.write_adapted(self.out_dir or Path(tempfile.mkdtemp(prefix="robot_meta_adapted_")))
            self._stale = False
        return self.adapted_dir

    # ---- the adapted bundle ---------------------------------------------------------------------
    def write_adapted(self, out: Path) -> None:
        """Write pi_theta' as the bundle's policy and open it. The export is the exporter's
        (:func:`~robot_meta.export.onnx_export.export_onnx`: the same graph inputs, outputs,
        opset and metadata, onnx.checker full check, parity with torch <= 1e-5 on this session's
        observations and on random ones), and the write is the one bundle transaction
        (:class:`~robot_meta.export.bundle_writer.BundleWriter`: hashes, manifest, verified as
        the robot loads it, renamed into place atomically)."""
        import copy
        import dataclasses

        torch = _need_torch()
        import onnx

        from robot_meta.export.bundle_writer import BundleWriter
        from robot_meta.export.onnx_export import RoleIO, export_onnx, wrap

        assert self.policy is not None and self._params is not None
        ac, _ = self.model()
        adapted = copy.deepcopy(ac)
        with torch.no_grad():
            named = dict(adapted.named_parameters())
            for k, v in self._params.items():
                named[k].copy_(v)
        obs = torch.cat([r["obs"] for r in self.rollouts])
        std = obs.std(0).clamp_min(1e-3)
        rand = obs.mean(0) + std * torch.randn(256, obs.shape[1], generator=torch.Generator().manual_seed(0))
        io = RoleIO(
            ("obs",), ("action",), (obs[:2],), [(obs.numpy(),), (rand.numpy(),)], {"obs": {0: "batch"}}
        )
        m = self.bundle.manifest
        pname = self.policy.path.name
        template = onnx.load(str(self.policy.path))  # the metadata the exporter gave theta's graph
        meta = {p.key: p.value for p in template.metadata_props}
        meta["robot_meta.adapted_rollouts"] = str(self._used)
        entry = m.files[pname]
        with BundleWriter(out, overwrite=True) as w:
            precision = export_onnx(wrap("policy", adapted, 0), io, w.path(pname), meta)
            w.add_file(pname, role=entry.role, inputs=entry.inputs, outputs=entry.outputs,
                       precision=precision)
            extra = {**m.extra, "adapted": {
                "from_bundle": str(self.bundle.path),
                "from_manifest_sha256": manifest_sha(self.bundle.path),
                "rollouts": self._used,
                "returns": self.returns[:self._used],
            }}
            w.commit(dataclasses.replace(m, extra=extra))  # the adapted policy alone
        self.adapted = load_bundle(out).policy
        self.adapted_dir = out

    def set_artifact_dir(self, path: Path) -> None:
        """Write the adapted bundle at ``path`` (in the session directory)."""
        self.out_dir = path

    def publish(self, dest: Path) -> None:
        """Copy the adapted bundle to ``dest`` (the deploy dir, for ``run``), verified and
        atomically (:func:`~robot_meta.export.bundle_writer.copy_bundle`)."""
        from robot_meta.export.bundle_writer import copy_bundle

        self.adapted_bundle()
        if self.adapted_dir is None or self.adapted_dir == dest:
            return
        copy_bundle(self.adapted_dir, dest)
        self.adapted_dir = dest
        self.adapted = load_bundle(dest).policy

    # ---- saved state ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        self.adapted_bundle()
        return {
            "kind": self.kind,
            "z": [],
            "bundle": str(self.adapted_dir) if self.adapted_dir else None,
            "rollouts": len(self.rollouts),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise UserError(
                f"adapted state of kind {state.get('kind')!r} does not fit a "
                f"{self.kind!r} adapter; run `robot-meta adapt` again"
            )
        path = state.get("bundle")
        if path:
            if not Path(path).is_dir():
                raise UserError(f"the adapted bundle {path} is missing; run `robot-meta adapt` again")
            self.adapted = load_bundle(path).policy
            self.adapted_dir = Path(path)
        self.mode = "adapt"
        self.learning = False
