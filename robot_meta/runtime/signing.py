"""Ed25519 bundle signatures.

``manifest.sig`` holds ``{"public_key": hex, "signature": hex}``: the signature of the exact
bytes of ``manifest.json``. The manifest holds the SHA-256 of every other file, so one signature
covers the whole bundle. Keys are 32-byte raw values stored as hex: the private key file is
written with mode 0600, the public key next to it as ``<name>.pub``.

Needs the ``cryptography`` package (``pip install 'robot-meta[signing]'``), imported only when a
bundle is signed or a robot config lists trusted keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from robot_meta.errors import UserError
from robot_meta.runtime.atomic import write_atomic, write_json_atomic
from robot_meta.runtime.manifest import MANIFEST

SIGNATURE = "manifest.sig"


class SignatureError(UserError):
    """A bundle is unsigned, signed by an untrusted key, or its signature does not verify."""


def _crypto():  # type: ignore[no-untyped-def]
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise SignatureError("bundle signing needs the `cryptography` package: "
                             "pip install 'robot-meta[signing]'") from e
    return ed25519


def generate_key(path: str | Path) -> str:
    """Write a new private key to ``path`` (0600) and its public key to ``path.pub``; return
    the public key (hex) to list under ``trusted_keys`` in robot.toml."""
    from cryptography.hazmat.primitives import serialization as ser

    ed = _crypto()
    key = ed.Ed25519PrivateKey.generate()
    raw = key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    pub = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(raw.hex() + "\n")
    Path(str(path) + ".pub").write_text(pub + "\n")
    return pub


def sign_bundle(bundle_dir: str | Path, key_path: str | Path) -> str:
    """Sign a bundle's manifest with the private key in ``key_path``; return the public key."""
    from cryptography.hazmat.primitives import serialization as ser

    ed = _crypto()
    try:
        raw = bytes.fromhex(Path(key_path).read_text().strip())
        key = ed.Ed25519PrivateKey.from_private_bytes(raw)
    except (OSError, ValueError) as e:
        raise SignatureError(f"{key_path}: not a robot_meta ed25519 private key ({e}); make one "
                             "with `robot-meta export --keygen KEY`") from e
    manifest = (Path(bundle_dir) / MANIFEST).read_bytes()
    pub = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
    write_json_atomic(Path(bundle_dir) / SIGNATURE,
                      {"public_key": pub, "signature": key.sign(manifest).hex()})
    return pub


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
        sig = json.loads(sig_path.read_text())
        pub, signature = str(sig["public_key"]).lower(), bytes.fromhex(sig["signature"])
    except (ValueError, KeyError, TypeError) as e:
        raise SignatureError(f"{sig_path}: corrupt signature file ({e})") from e
    if pub not in {k.lower() for k in trusted_keys}:
        raise SignatureError(f"{bundle_dir}: signed by key {pub[:16]}..., which is not in this "
                             "robot's trusted_keys")
    ed = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        ed.Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub)).verify(
            signature, (Path(bundle_dir) / MANIFEST).read_bytes())
    except InvalidSignature as e:
        raise SignatureError(f"{bundle_dir}: the signature does not match manifest.json: the "
                             "manifest was changed after signing") from e
    return pub


__all__ = ["SignatureError", "generate_key", "sign_bundle", "verify_signature", "write_atomic"]
