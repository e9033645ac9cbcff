"""Load a verified ONNX bundle and run it with onnxruntime (no torch, no mujoco).

    bundle = load_bundle("bundle/", robot="arm2")
    z, var = bundle.encoder.infer(history_or_context)     # the context encoder, if any
    action = bundle.policy.act(obs, z)                    # obs: raw observations, unnormalized
    action, h = bundle.recurrent.step(obs, h, ...)        # RL2 bundles

The observation normalizer, action scaling and clipping are baked into the ONNX graphs, so the
runtime feeds raw observations and gets motor-ready normalized currents in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_meta.export.manifest import ROLES, BundleError, Manifest


def _session(path: Path, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # a control loop wants 1 thread: lowest jitter
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise BundleError(f"{path}: onnxruntime cannot load it ({e})") from e


class OnnxModel:
    """One ONNX file with fixed input and output names; float32 in, float32 out."""

    def __init__(self, path: Path, role: str, threads: int = 1):
        self.path, self.role = path, role
        self.session = _session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        allowed_in, allowed_out = ROLES[role]
        if not set(self.input_names) <= set(allowed_in) or self.output_names != list(allowed_out):
            raise BundleError(f"{path}: a {role} must take {allowed_in} and give {allowed_out}; "
                              f"it takes {self.input_names} and gives {self.output_names}")

    def run(self, **inputs: np.ndarray) -> list[np.ndarray]:
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()
                if k in self.input_names}
        out: list[np.ndarray] = self.session.run(self.output_names, feed)
        return out


class Policy(OnnxModel):
    """action = pi(obs, z), both batched (B, .) ; a 1-D obs is treated as a batch of one."""

    def act(self, obs: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        single = np.ndim(obs) == 1
        o = np.atleast_2d(obs)
        feed = {"obs": o}
        if "z" in self.input_names:
            if z is None:
                raise BundleError(f"{self.path}: this policy needs a context z (latent input)")
            feed["z"] = np.atleast_2d(z)
        a = self.run(**feed)[0]
        return a[0] if single else a


class ContextEncoder(OnnxModel):
    """The context encoder: RMA history module (z from the last H steps) or the PEARL posterior
    (z mean and variance from a set of transitions)."""

    def infer(self, x: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """z (and its variance for a posterior) from a history (B, H, d) or context (B, N, d)."""
        x = np.asarray(x)
        single = x.ndim == 2
        x3 = x[None] if single else x
        if self.role == "posterior_encoder":
            m = np.ones(x3.shape[:2]) if mask is None else np.asarray(mask).reshape(x3.shape[:2])
            mean, var = self.run(context=x3, mask=m)
            return (mean[0], var[0]) if single else (mean, var)
        z = self.run(history=x3)[0]
        return (z[0] if single else z), None


class PrivilegedEncoder(OnnxModel):
    """z = mu(e) from the normalized true factor vector (oracle evaluation only)."""

    def infer(self, factors: np.ndarray) -> np.ndarray:
        e = np.atleast_2d(factors)
        z = self.run(factors=e)[0]
        return z[0] if np.ndim(factors) == 1 else z


class RecurrentPolicy(OnnxModel):
    """(action, h') = pi(obs, previous action, reward and done flag, h) for RL2 bundles."""

    @property
    def hidden_size(self) -> int:
        shape = next(i.shape for i in self.session.get_inputs() if i.name == "h")
        return int(shape[-1])

    def initial_state(self, batch: int = 1) -> np.ndarray:
        return np.zeros((batch, self.hidden_size), dtype=np.float32)

    def step(self, obs: np.ndarray, h: np.ndarray, prev_action: np.ndarray,
             prev_reward: np.ndarray | float, prev_done: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """One step from raw obs (B, obs_dim) or (obs_dim,), h (B, H), the previous action
        (B, act_dim), reward and done flag (B,) or scalars. Returns (action, h')."""
        o = np.atleast_2d(obs)
        B = o.shape[0]
        a, h2 = self.run(obs=o, h=np.atleast_2d(h), prev_action=np.atleast_2d(prev_action),
                         prev_reward=np.reshape(prev_reward, (B, 1)),
                         prev_done=np.reshape(prev_done, (B, 1)))
        return (a[0], h2) if np.ndim(obs) == 1 else (a, h2)


_CLASSES = {"policy": Policy, "history_encoder": ContextEncoder,
            "posterior_encoder": ContextEncoder, "privileged_encoder": PrivilegedEncoder,
            "recurrent_policy": RecurrentPolicy}


@dataclass
class Bundle:
    """A verified bundle: its manifest and ONNX Runtime sessions by role."""

    path: Path
    manifest: Manifest
    policy: Policy | None
    encoder: ContextEncoder | None
    privileged_encoder: PrivilegedEncoder | None
    recurrent: RecurrentPolicy | None


def load_bundle(path: str | Path, robot: str | None = None, threads: int = 1) -> Bundle:
    """Read, verify and open a bundle.

    Checks the manifest format and version, the SHA-256 of every file, and (when ``robot`` is
    given) that the bundle was made for that robot. Raises :class:`BundleError` with a message
    that says what is wrong and what to do.
    """
    p = Path(path)
    if not p.is_dir():
        raise BundleError(f"{p}: no such bundle directory")
    m = Manifest.read(p)
    if robot is not None and m.robot != robot:
        raise BundleError(f"{p}: this bundle was made for robot {m.robot!r}, not {robot!r}; "
                          "export one from a run trained on this robot")
    m.verify_files(p)
    models: dict[str, OnnxModel] = {}
    for name, entry in m.files.items():
        if entry.role:
            if entry.role not in ROLES:
                raise BundleError(f"{p}: file {name} has unknown role {entry.role!r}")
            models[entry.role] = _CLASSES[entry.role](p / name, entry.role, threads)
    enc = models.get("history_encoder") or models.get("posterior_encoder")
    return Bundle(p, m, models.get("policy"), enc,  # type: ignore[arg-type]
                  models.get("privileged_encoder"), models.get("recurrent_policy"))  # type: ignore[arg-type]
