"""The bundle format, shared by the writer (``robot_meta.export``) and the robot
(``robot_meta.runtime``): the manifest, the SHA-256 of every file, and the signature check.

A bundle is a directory of ONNX files and ``manifest.json``: what the bundle contains, for which
robot, and the hash of every file. ``manifest.json`` itself is not hashed inside; a bundle
signature (``manifest.sig``, Ed25519) covers its exact bytes, and through the hashes every file.

Plain JSON, read with the standard library and parsed by the project's one config loader
(:func:`robot_meta.toml_config.from_dict`: typed fields, "did you mean" on an unknown key), so
that the robot computer verifies a bundle without torch or onnx. Signature checks need the
``cryptography`` package, imported only when a robot lists trusted keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robot_meta.errors import UserError
from robot_meta.toml_config import from_dict

FORMAT = "robot_meta.bundle"
FORMAT_VERSION = 1  # the manifest versions this code reads (and the one it writes)
READABLE_VERSIONS = (1,)
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"

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


class SignatureError(UserError):
    """A bundle is unsigned, signed by an untrusted key, or its signature does not verify."""


def read_json_object(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """A JSON object from ``path``; anything else raises ``error`` ("corrupt <what>")."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: corrupt {what} ({e})") from e
    if not isinstance(data, dict):
        raise error(f"{path}: corrupt {what} (not a JSON object)")
    return data


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
        """Parse a manifest's JSON object: the format and version first, then every field by
        its type through the shared loader (a missing, mistyped or unknown field is named)."""
        if d.get("format") != FORMAT:
            raise BundleError(f"{where}: not a robot_meta bundle manifest (format = "
                              f"{d.get('format')!r}, expected {FORMAT!r})")
        version = d.get("format_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise BundleError(f"{where}: unknown manifest format_version {version!r}; this "
                              f"runtime reads version {FORMAT_VERSION}. Re-export the bundle "
                              "with a matching robot-meta, or upgrade the robot's robot-meta.")
        return from_dict(cls, d, where, BundleError)

    @classmethod
    def read(cls, bundle_dir: Path) -> Manifest:
        path = Path(bundle_dir) / MANIFEST
        if not path.exists():
            raise BundleError(f"{bundle_dir}: no {MANIFEST}; is this a bundle directory "
                              "(made by `robot-meta export RUN -o DIR`)?")
        return cls.from_dict(read_json_object(path, "manifest", BundleError), str(path))

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


def manifest_sha(bundle_dir: str | Path) -> str:
    """The SHA-256 of a bundle's ``manifest.json``: the bundle's identity (it covers every
    file through their hashes)."""
    return sha256_file(Path(bundle_dir) / MANIFEST)


def load_ed25519():  # type: ignore[no-untyped-def]
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise SignatureError("bundle signing needs the `cryptography` package: "
                             "pip install 'robot-meta[signing]'") from e
    return ed25519


def verify_signature(bundle_dir: str | Path, trusted_keys: tuple[str, ...] | list[str]) -> str | None:
    """Check a bundle's signature against trusted public keys (hex).

    With no trusted keys, nothing is required and None is returned. Otherwise an unsigned
    bundle, an untrusted signer or a bad signature raises :class:`SignatureError`; on success
    the signer's public key is returned.
    """
    if not trusted_keys:
        return None
    sig_path = Path(bundle_dir) / SIGNATURE
    if not sig_path.exists():
        raise SignatureError(f"{bundle_dir}: the bundle is unsigned, but this robot only accepts "
                             "bundles signed by its trusted keys (export with --sign KEY)")
    try:
        sig = read_json_object(sig_path, "signature file", SignatureError)
        pub, signature = str(sig["public_key"]).lower(), bytes.fromhex(sig["signature"])
    except (ValueError, KeyError, TypeError) as e:
        raise SignatureError(f"{sig_path}: corrupt signature file ({e})") from e
    if pub not in {k.lower() for k in trusted_keys}:
        raise SignatureError(f"{bundle_dir}: signed by key {pub[:16]}..., which is not in this "
                             "robot's trusted_keys")
    ed = load_ed25519()
    from cryptography.exceptions import InvalidSignature

    try:
        ed.Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub)).verify(
            signature, (Path(bundle_dir) / MANIFEST).read_bytes())
    except InvalidSignature as e:
        raise SignatureError(f"{bundle_dir}: the signature does not match manifest.json: the "
                             "manifest was changed after signing") from e
    return pub
