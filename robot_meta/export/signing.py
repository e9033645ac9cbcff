"""Ed25519 bundle signing (the writer side; the check is
:func:`robot_meta.export.manifest.verify_signature`).

``manifest.sig`` holds ``{"public_key": hex, "signature": hex}``: the signature of the exact
bytes of ``manifest.json``. The manifest holds the SHA-256 of every other file, so one signature
covers the whole bundle. Keys are 32-byte raw values stored as hex: the private key file is
written with mode 0600, the public key next to it as ``<name>.pub``.

Needs the ``cryptography`` package (``pip install 'robot-meta[signing]'``), imported only when a
bundle is signed or a robot config lists trusted keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from robot_meta.export.manifest import MANIFEST, SIGNATURE, SignatureError, load_ed25519, verify_signature
from robot_meta.runtime.atomic import write_json_atomic


def generate_key(path: str | Path) -> str:
    """Write a new private key to ``path`` (0600) and its public key to ``path.pub``; return
    the public key (hex) to list under ``trusted_keys`` in robot.toml."""
    from cryptography.hazmat.primitives import serialization as ser

    ed = load_ed25519()
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

    ed = load_ed25519()
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


__all__ = ["SIGNATURE", "SignatureError", "generate_key", "sign_bundle", "verify_signature"]
