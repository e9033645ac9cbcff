"""The bundle manifest: what a bundle contains, for which robot, and the hash of every file.

Plain JSON, read and written with the standard library only, so that the robot computer can
verify a bundle without torch or onnx. ``manifest.json`` itself is not hashed inside; a bundle
signature (``manifest.sig``) covers its exact bytes, and through the hashes every file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robot_meta.errors import UserError

FORMAT = "robot_meta.bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# Roles of ONNX files and their fixed input/output names (batch dimension first, dynamic).
ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # action = pi(obs, z); `z` is absent for methods without a context (ppo, MAML family)
    "policy": (("obs", "z"), ("action",)),
    # z = phi(last H steps of (obs, action)): the RMA history adaptation module
    "history_encoder": (("history",), ("z",)),
    # q(z | context) = N(z_mean, z_var): the PEARL posterior over a set of transitions
    "posterior_encoder": (("context", "mask"), ("z_mean", "z_var")),
    # z = mu(e): the privileged encoder (oracle evaluation only, when true factors are known)
    "privileged_encoder": (("factors",), ("z",)),
    # (action, h') = pi(obs, prev_action, prev_reward, prev_done, h): the RL2 recurrent policy
    "recurrent_policy": (("obs", "prev_action", "prev_reward", "prev_done", "h"), ("action", "h_out")),
}


class BundleError(UserError):
    """A bundle is missing, corrupt, tampered with, of an unknown version or for another robot."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class FileEntry:
    """One file of the bundle."""

    sha256: str
    role: str = ""  # one of ROLES for ONNX files, "" for others
    inputs: dict[str, list[int | str]] = field(default_factory=dict)
    outputs: dict[str, list[int | str]] = field(default_factory=dict)
    precision: str = "float32"  # the graph's arithmetic; inputs and outputs are float32 always


@dataclass
class Manifest:
    """Everything the runtime and ``flash`` need to know about a bundle."""

    robot: str
    joints: list[str]
    motor_ids: list[int]
    actuated_joints: list[str]
    observation: list[dict[str, str]]  # [{"name": ..., "unit": ...}] in observation order
    action: dict[str, Any]  # semantics, unit, low/high, max_current_a, effort_limit per joint
    control_dt: float
    method: str  # the adaptation method: ppo, rma, pearl, maml, fomaml, reptile, rl2
    latent_dim: int
    history_length: int
    task: str
    family: str
    provenance: dict[str, Any]
    files: dict[str, FileEntry]
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    # ---- (de)serialization -------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Manifest:
        if d.get("format") != FORMAT:
            raise BundleError(f"{where}: not a robot_meta bundle manifest (format = "
                              f"{d.get('format')!r}, expected {FORMAT!r})")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"{where}: unknown manifest format_version {version!r}; this "
                              f"runtime reads version {FORMAT_VERSION}. Re-export the bundle "
                              "with a matching robot-meta, or upgrade the robot's robot-meta.")
        names = set(cls.__dataclass_fields__)
        missing = sorted(n for n in names if n not in d and n not in ("extra",))
        if missing:
            raise BundleError(f"{where}: manifest lacks field(s) {missing}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise BundleError(f"{where}: manifest has unknown field(s) {unknown}")
        files = {}
        for name, e in d["files"].items():
            if not isinstance(e, dict) or "sha256" not in e:
                raise BundleError(f"{where}: files.{name} needs a sha256")
            files[name] = FileEntry(**e)
        return cls(**{**d, "files": files})

    @classmethod
    def read(cls, bundle_dir: Path) -> Manifest:
        path = Path(bundle_dir) / MANIFEST
        if not path.exists():
            raise BundleError(f"{bundle_dir}: no {MANIFEST}; is this a bundle directory "
                              "(made by `robot-meta export RUN -o DIR`)?")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{path}: corrupt manifest ({e})") from e
        if not isinstance(data, dict):
            raise BundleError(f"{path}: corrupt manifest (not a JSON object)")
        return cls.from_dict(data, str(path))

    # ---- verification ------------------------------------------------------------------
    def verify_files(self, bundle_dir: Path) -> None:
        """Check that every listed file exists and has its recorded SHA-256."""
        for name, entry in self.files.items():
            p = Path(bundle_dir) / name
            if not p.exists():
                raise BundleError(f"{bundle_dir}: missing file {name} listed in the manifest; "
                                  "the bundle is incomplete: re-export or re-copy it")
            digest = sha256_file(p)
            if digest != entry.sha256:
                raise BundleError(f"{p}: SHA-256 mismatch (manifest {entry.sha256[:12]}..., file "
                                  f"{digest[:12]}...): the file was modified after export. "
                                  "Do not run it; re-export the bundle.")

    def role_file(self, role: str) -> str | None:
        """The file name holding a role, if any."""
        for name, e in self.files.items():
            if e.role == role:
                return name
        return None
