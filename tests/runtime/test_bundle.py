"""The runtime loader: hashes, versions, robot checks, and no torch needed."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from robot_meta.runtime import BundleError, load_bundle


@pytest.fixture
def rma_copy(bundles, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    dst = tmp_path / "b"
    shutil.copytree(bundles["rma"][0], dst)
    return dst


def test_tampered_byte_is_refused(rma_copy: Path) -> None:
    p = rma_copy / "policy.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="policy.onnx: SHA-256 mismatch .* modified after export"):
        load_bundle(rma_copy)


def test_missing_file_unknown_version_and_wrong_robot(rma_copy: Path) -> None:
    with pytest.raises(BundleError, match="made for robot 'arm2', not 'cartpole'"):
        load_bundle(rma_copy, robot="cartpole")
    m = json.loads((rma_copy / "manifest.json").read_text())
    m["format_version"] = 99
    (rma_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="unknown manifest format_version 99"):
        load_bundle(rma_copy)
    m["format_version"] = 1
    (rma_copy / "manifest.json").write_text(json.dumps(m))
    (rma_copy / "encoder.onnx").unlink()
    with pytest.raises(BundleError, match="missing file encoder.onnx"):
        load_bundle(rma_copy)
    with pytest.raises(BundleError, match="no such bundle directory"):
        load_bundle(rma_copy / "nope")
    (rma_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="corrupt manifest"):
        load_bundle(rma_copy)


def test_runtime_runs_with_torch_blocked(bundles) -> None:  # type: ignore[no-untyped-def]
    path = bundles["rma"][0]
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "mujoco", "pybullet", "onnx"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from robot_meta.runtime import load_bundle
        b = load_bundle({str(path)!r}, robot="arm2")
        z, _ = b.encoder.infer(np.zeros((50, 14)))
        a = b.policy.act(np.zeros(12), z)
        assert a.shape == (2,) and np.all(np.abs(a) <= 1)
        assert "torch" not in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_single_sample_and_batch_shapes(bundles) -> None:  # type: ignore[no-untyped-def]
    b = load_bundle(bundles["pearl"][0])
    z, var = b.encoder.infer(np.zeros((0, 27)))  # no data yet: the prior
    np.testing.assert_allclose(z, 0.0, atol=1e-6)
    np.testing.assert_allclose(var, 1.0, atol=1e-6)
    assert b.policy.act(np.zeros(12), z).shape == (2,)
    assert b.policy.act(np.zeros((7, 12)), np.zeros((7, 8))).shape == (7, 2)
