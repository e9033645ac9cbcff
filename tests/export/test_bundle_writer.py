"""The one bundle write transaction (robot_meta.export.bundle_writer): hashes in the manifest,
verification before the rename, nothing left behind on failure, and no torch needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robot_meta.export.bundle_writer import BundleWriter, ExportError, copy_bundle
from robot_meta.export.manifest import MANIFEST, SIGNATURE, Manifest, manifest_sha, sha256_file
from robot_meta.runtime import BundleError, load_bundle
from tests.test_import_isolation import run_blocked


def _rewrite(src: Path, out: Path, **kw: Any) -> Manifest:
    """Write the bundle at ``src`` again to ``out`` through a writer (its files as bytes)."""
    m = Manifest.read(src)
    with BundleWriter(out, **kw) as w:
        for name, e in m.files.items():
            w.add_file(name, (src / name).read_bytes(), role=e.role, inputs=e.inputs,
                       outputs=e.outputs, precision=e.precision)
        return w.commit(m)


def test_a_written_bundle_lists_every_file_with_its_hash_and_loads(bundles: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    src = bundles["rma"][0]
    m = _rewrite(src, tmp_path / "b")
    assert set(m.files) == {"policy.onnx", "encoder.onnx", "privileged_encoder.onnx"}
    for name, e in m.files.items():
        assert e.sha256 == sha256_file(tmp_path / "b" / name)
    assert manifest_sha(tmp_path / "b") == manifest_sha(src)  # same files, same manifest bytes
    assert load_bundle(tmp_path / "b").encoder is not None
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temporary directory left


def test_failures_leave_the_old_bundle_in_place(bundles: dict[str, Any], tmp_path: Path) -> None:
    src, out = bundles["ppo"][0], tmp_path / "b"
    _rewrite(src, out)
    before = manifest_sha(out)
    with pytest.raises(ExportError, match="exists; choose another -o directory or pass --force"):
        BundleWriter(out)
    m = Manifest.read(src)
    with pytest.raises(ExportError, match="unexpected file policy.onnx.data"), \
            BundleWriter(out, overwrite=True) as w:  # an external-data file
        w.add_file("policy.onnx", (src / "policy.onnx").read_bytes(), role="policy")
        w.path("policy.onnx.data").write_bytes(b"weights")
        w.commit(m)
    with pytest.raises(BundleError, match="onnxruntime cannot load"), \
            BundleWriter(out, overwrite=True) as w:  # verified before the rename
        w.add_file("policy.onnx", b"not onnx", role="policy")
        w.commit(m)
    with pytest.raises(ExportError, match="nothing was written"), BundleWriter(out, overwrite=True) as w:
        w.add_file("policy.onnx", role="policy")
    with pytest.raises(ExportError, match="plain name"), BundleWriter(out, overwrite=True) as w:
        w.add_file(MANIFEST, b"{}")
    assert manifest_sha(out) == before and load_bundle(out).policy is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_copy_bundle_verifies_the_source(bundles: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "src"
    _rewrite(bundles["ppo"][0], src)
    (src / MANIFEST).write_text(json.dumps(json.loads((src / MANIFEST).read_text())))  # other bytes
    (src / SIGNATURE).write_text('{"public_key": "ab", "signature": "cd"}')
    copy_bundle(src, tmp_path / "dst")
    assert manifest_sha(tmp_path / "dst") == manifest_sha(src)  # byte for byte: a signature holds
    assert (tmp_path / "dst" / SIGNATURE).read_text() == (src / SIGNATURE).read_text()
    with pytest.raises(ExportError, match="exists"):
        copy_bundle(src, tmp_path / "dst", overwrite=False)
    m = json.loads((src / MANIFEST).read_text())
    m["files"]["policy.onnx"]["sha256"] = "0" * 64
    (src / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="SHA-256 mismatch"):
        copy_bundle(src, tmp_path / "dst")
    assert load_bundle(tmp_path / "dst").policy is not None


def test_the_writer_and_the_bundle_format_need_no_torch(bundles: dict[str, Any], tmp_path: Path) -> None:
    run_blocked(f"""
        from robot_meta.export.bundle_writer import copy_bundle
        from robot_meta.export.manifest import verify_signature
        copy_bundle({str(bundles["ppo"][0])!r}, {str(tmp_path / "c")!r})
        assert verify_signature({str(tmp_path / "c")!r}, ()) is None
    """)
