"""Write a verified ONNX bundle: the policy, the context encoder(s), and ``manifest.json``.

    export_bundle(modules, info, out_dir)

``modules`` maps a bundle role name to a torch module with an ONNX-friendly ``forward`` on raw
inputs: ``policy`` (obs, z) -> action, ``encoder`` (an RMA history module or a PEARL posterior),
``privileged_encoder`` (e) -> z, ``recurrent_policy``. Each is exported to one self-contained
``.onnx`` (no external data, opset 18, dynamic batch), checked with ``onnx.checker`` (full
check), and compared with torch in onnxruntime on random inputs and on observations recorded
from the simulator: a max abs error above 1e-5 refuses the whole bundle. The bundle directory
is written to a temporary sibling and renamed into place, so a failed export leaves nothing.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robot_meta.export.bundle_writer import BundleWriter
from robot_meta.export.manifest import FORMAT_VERSION, ROLES, FileEntry, Manifest
from robot_meta.export.onnx_export import ExportError, RoleIO, export_onnx, wrap

FILE_NAMES = {"policy": "policy.onnx", "history_encoder": "encoder.onnx",
              "posterior_encoder": "encoder.onnx", "privileged_encoder": "privileged_encoder.onnx",
              "recurrent_policy": "policy.onnx"}


@dataclass
class ExportInfo:
    """What the bundle says about where its networks come from."""

    robot: str
    method: str
    task: str
    family: str
    latent_dim: int
    history_length: int = 0
    seed: int = 0
    config_text: str = ""  # the resolved training config, hashed into the provenance
    run_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimRecord:
    """Transitions recorded from the simulator, used as realistic parity inputs."""

    obs: np.ndarray  # (T, B, obs_dim)
    actions: np.ndarray  # (T, B, act_dim)
    rewards: np.ndarray  # (T, B)
    next_obs: np.ndarray  # (T, B, obs_dim)
    factors: np.ndarray  # (B, F)


def record_sim(robot: str, family: str, task: str | None, steps: int = 120, num_envs: int = 16,
               seed: int = 0) -> SimRecord:
    """Run random actions in the batched env and keep the transitions."""
    from robot_meta.sim import make_vec_env

    env = make_vec_env(robot, family, num_envs, seed=seed, task=task, nthread=0)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    rec: dict[str, list[np.ndarray]] = {"o": [], "a": [], "r": [], "o2": []}
    for _ in range(steps):
        a = np.clip(rng.normal(0, 0.6, (num_envs, env.action_dim)), -1, 1)
        o2, r, _, _, info = env.step(a)
        rec["o"].append(obs)
        rec["a"].append(a)
        rec["r"].append(r)
        rec["o2"].append(info["final_obs"] if info["done"].any() else o2)
        obs = o2
    factors = env.factors.copy()
    env.close()
    return SimRecord(np.array(rec["o"]), np.array(rec["a"]), np.array(rec["r"]),
                     np.array(rec["o2"]), factors)


def _role_of(name: str, module: nn.Module) -> str:
    if name == "encoder":
        return "posterior_encoder" if hasattr(module, "transition_dim") else "history_encoder"
    if name not in ROLES:
        raise ExportError(f"unknown deployment module {name!r}; expected one of "
                          "policy, encoder, privileged_encoder, recurrent_policy")
    return name


def _role_io(role: str, module: nn.Module, info: ExportInfo, rec: SimRecord,
             rng: np.random.Generator) -> RoleIO:
    """Tracing example and parity batches for a role: recorded sim data and random inputs."""
    T, B, n_o = rec.obs.shape
    n_a = rec.actions.shape[-1]
    L = info.latent_dim
    obs = rec.obs.reshape(-1, n_o)
    scale = np.maximum(np.abs(obs).max(0), 1e-3)
    rand_obs = rng.normal(0, 1, (256, n_o)) * scale  # random, at the recorded magnitudes

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32))

    if role == "policy":
        z_rec, z_rand = rng.uniform(-1, 1, (len(obs), L)), rng.normal(0, 1.5, (256, L))
        if L > 0:
            return RoleIO(("obs", "z"), ("action",), (t(obs[:2]), t(z_rec[:2])),
                          [(obs, z_rec), (rand_obs, z_rand)], {"obs": {0: "batch"}, "z": {0: "batch"}})
        return RoleIO(("obs",), ("action",), (t(obs[:2]),), [(obs,), (rand_obs,)], {"obs": {0: "batch"}})
    if role == "privileged_encoder":
        f = rec.factors
        return RoleIO(("factors",), ("z",), (t(f[:2]),),
                      [(f,), (rng.uniform(-2, 2, (256, f.shape[1])),)], {"factors": {0: "batch"}})
    if role == "history_encoder":
        H = int(getattr(module, "history", info.history_length))
        oa = np.concatenate([rec.obs, rec.actions], -1).transpose(1, 0, 2)  # (B, T, d)
        hist = np.stack([oa[b, s:s + H] for b in range(B) for s in range(0, T - H, 7)])
        hist[: len(hist) // 4, : H // 2] = 0.0  # episode starts: zero-padded history
        rand = rng.normal(0, 1, (64, H, n_o + n_a)) * np.concatenate([scale, np.ones(n_a)])
        return RoleIO(("history",), ("z",), (t(hist[:2]),), [(hist,), (rand,)],
                      {"history": {0: "batch"}})
    if role == "posterior_encoder":
        c = np.concatenate([rec.obs, rec.actions, rec.rewards[..., None], rec.next_obs], -1)
        c = c.transpose(1, 0, 2)  # (B, T, D): each env's transitions are one context
        mask = (rng.random(c.shape[:2]) < 0.8).astype(np.float32)
        mask[0] = 0.0  # an empty context gives the prior
        c_small = c[:, :10]
        return RoleIO(("context", "mask"), ("z_mean", "z_var"), (t(c[:2, :5]), t(mask[:2, :5])),
                      [(c, mask), (c_small, np.ones(c_small.shape[:2]))],
                      {"context": {0: "batch", 1: "transitions"}, "mask": {0: "batch", 1: "transitions"}})
    if role == "recurrent_policy":
        return _recurrent_io(module, rec, rng, rand_obs)
    raise ExportError(f"no exporter for role {role!r} yet")


def _recurrent_io(module: nn.Module, rec: SimRecord, rng: np.random.Generator,
                  rand_obs: np.ndarray) -> RoleIO:
    """Inputs of an RL2 step: the recorded steps with the hidden states the module itself
    reaches over them (each env one trial, episode boundaries marked by prev_done), and random
    inputs with h ~ U(-1, 1) (the range of a GRU state)."""
    T, B, n_o = rec.obs.shape
    H = getattr(module, "hidden_size", None)
    if not isinstance(H, int):
        raise ExportError("a recurrent_policy module needs an integer hidden_size (the size of h)")
    prev_a = np.concatenate([np.zeros_like(rec.actions[:1]), rec.actions[:-1]])  # a_{t-1}
    prev_r = np.concatenate([np.zeros_like(rec.rewards[:1]), rec.rewards[:-1]])[..., None]
    prev_d = np.zeros((T, B, 1))
    prev_d[0] = 1.0
    prev_d[T // 2] = 1.0  # an episode boundary inside the trial
    prev_a[T // 2] = 0.0
    prev_r[T // 2] = 0.0
    hs = np.zeros((T, B, H))
    h = torch.zeros(B, H)
    with torch.no_grad():
        for k in range(T):
            hs[k] = h.numpy()
            inputs = (torch.as_tensor(x[k], dtype=torch.float32) for x in (rec.obs, prev_a, prev_r, prev_d))
            _, h = module(*inputs, h)
    flat = [x.reshape(T * B, -1) for x in (rec.obs, prev_a, prev_r, prev_d, hs)]
    n, n_a = len(rand_obs), rec.actions.shape[-1]
    rand = (rand_obs, rng.uniform(-1, 1, (n, n_a)), rng.uniform(0, 1, (n, 1)),
            (rng.random((n, 1)) < 0.2).astype(np.float64), rng.uniform(-1, 1, (n, H)))
    names = ("obs", "prev_action", "prev_reward", "prev_done", "h")
    example = tuple(torch.as_tensor(np.asarray(x[:2], dtype=np.float32)) for x in flat)
    return RoleIO(names, ("action", "h_out"), example, [tuple(flat), rand],
                  {k: {0: "batch"} for k in names})


def _git_rev() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_manifest(info: ExportInfo, files: dict[str, FileEntry]) -> Manifest:
    """The manifest of a bundle for ``info.robot``, from the robot's hardware map and task."""
    import hashlib

    from robot_meta.sim.robots import get_robot

    rdef = get_robot(info.robot)
    hw = rdef.hardware_map
    task = rdef.task(info.task)
    layout = []
    for s in task.obs_names:
        name, _, unit = s.partition(" [")
        layout.append({"name": name, "unit": unit.rstrip("]")})
    act = hw.actuated
    return Manifest(
        robot=rdef.name,
        joints=list(hw.joint_names),
        motor_ids=list(hw.motor_ids),
        actuated_joints=[j.joint for j in act],
        observation=layout,
        action={
            "semantics": "normalized_current",
            "unit": "fraction of max current: current [A] = action * max_current_a",
            "low": -1.0, "high": 1.0,
            "max_current_a": [j.max_current_a for j in act],
            "effort_limit": [j.effort_limit for j in act],
            "effort_unit": ["N" if j.kind == "prismatic" else "N*m" for j in act],
        },
        control_dt=rdef.control_dt,
        method=info.method,
        latent_dim=info.latent_dim,
        history_length=info.history_length,
        task=task.name,
        family=info.family,
        provenance={
            "config_sha256": hashlib.sha256(info.config_text.encode()).hexdigest(),
            "git_rev": _git_rev(),
            "seed": info.seed,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_dir": info.run_dir,
        },
        files=files,
        extra=info.extra,
    )


def export_bundle(modules: dict[str, nn.Module], info: ExportInfo, out_dir: str | Path, *,
                  record: SimRecord | None = None, overwrite: bool = False, seed: int = 0) -> Manifest:
    """Export, verify and write a bundle to ``out_dir`` (atomically, through
    :class:`~robot_meta.export.bundle_writer.BundleWriter`). Returns its manifest."""
    writer = BundleWriter(out_dir, overwrite=overwrite)
    rec = record or record_sim(info.robot, info.family, info.task, seed=seed)
    rng = np.random.default_rng(seed)
    with writer:
        for name, module in modules.items():
            role = _role_of(name, module)
            io = _role_io(role, module, info, rec, rng)
            wrapped = wrap(role, module, info.latent_dim)
            fname = FILE_NAMES[role]
            meta = {"robot_meta.format_version": str(FORMAT_VERSION), "robot_meta.robot": info.robot,
                    "robot_meta.method": info.method, "robot_meta.role": role,
                    "robot_meta.latent_dim": str(info.latent_dim),
                    "robot_meta.history_length": str(info.history_length),
                    "robot_meta.task": info.task, "robot_meta.family": info.family,
                    "robot_meta.inputs": ",".join(io.names), "robot_meta.outputs": ",".join(io.outputs)}
            precision = export_onnx(wrapped, io, writer.path(fname), meta)
            shapes: dict[str, list[int | str]] = {
                n: ["batch", *x.shape[1:]] for n, x in zip(io.names, io.parity[0], strict=True)}
            writer.add_file(fname, role=role, inputs=shapes, outputs={n: [] for n in io.outputs},
                            precision=precision)
        return writer.commit(build_manifest(info, {}))
