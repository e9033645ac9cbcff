"""Export round trips: torch and onnxruntime agree, the normalizer is baked in, the files are
self-contained, and a bad export writes nothing."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from robot_meta.export.exporter import ExportInfo, export_bundle
from robot_meta.export.onnx_export import ExportError
from robot_meta.runtime import load_bundle
from tests.bundle_fixtures import F


def _obs(n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(1)
    o = rng.normal(0, 1, (n, 12))
    o[:, 6:] *= 0.3  # target and error coordinates are tens of centimetres
    return o.astype(np.float32)


@pytest.mark.parametrize("method", ["ppo", "rma", "pearl"])
def test_round_trip_parity(bundles, method: str) -> None:  # type: ignore[no-untyped-def]
    path, mods = bundles[method]
    b = load_bundle(path, robot="arm2")
    obs = _obs()
    ac = mods["policy"]
    z = np.random.default_rng(2).uniform(-1, 1, (len(obs), ac.latent_dim)).astype(np.float32)
    with torch.no_grad():
        ref = ac(torch.from_numpy(obs), torch.from_numpy(z)).numpy()
    got = b.policy.act(obs, z if ac.latent_dim else None)
    assert np.abs(got - ref).max() <= 1e-5
    if method == "rma":
        hist = np.random.default_rng(3).normal(0, 1, (5, 50, 14)).astype(np.float32)
        with torch.no_grad():
            zr = mods["encoder"](torch.from_numpy(hist)).numpy()
        zo, var = b.encoder.infer(hist)
        assert var is None and np.abs(zo - zr).max() <= 1e-5
        e = np.random.default_rng(4).uniform(-1, 1, (5, F)).astype(np.float32)
        with torch.no_grad():
            zm = mods["privileged_encoder"](torch.from_numpy(e)).numpy()
        assert np.abs(b.privileged_encoder.infer(e) - zm).max() <= 1e-5
    if method == "pearl":
        c = np.random.default_rng(5).normal(0, 1, (3, 20, 27)).astype(np.float32)
        c[1] = c[0]  # the same transitions, half of them masked out
        mask = np.ones((3, 20), dtype=np.float32)
        mask[1, 10:] = 0
        with torch.no_grad():
            mr, vr = mods["encoder"](torch.from_numpy(c), torch.from_numpy(mask))
        mo, vo = b.encoder.infer(c, mask)
        assert np.abs(mo - mr.numpy()).max() <= 1e-5 and np.abs(vo - vr.numpy()).max() <= 1e-5
        # more transitions, smaller posterior variance (a product of Gaussians)
        assert np.all(vo[0] <= vo[1] + 1e-7)


def test_normalizer_is_baked_in(bundles) -> None:  # type: ignore[no-untyped-def]
    path, mods = bundles["ppo"]
    ac = mods["policy"]
    assert float(ac.obs_norm.count) > 0 and not torch.allclose(ac.obs_norm.mean, torch.zeros(12))
    obs = _obs(16)
    with torch.no_grad():
        full = ac(torch.from_numpy(obs), torch.zeros(16, 0)).numpy()  # normalize -> MLP -> clip
        # the same network fed pre-normalized inputs differs: the normalization matters
        skipped = torch.clamp(ac.actor(torch.from_numpy(obs)), -1, 1).numpy()
    got = load_bundle(path).policy.act(obs)  # raw observations in
    assert np.abs(got - full).max() <= 1e-5
    assert np.abs(got - skipped).max() > 1e-3


@pytest.mark.parametrize("method", ["ppo", "rma", "pearl"])
def test_files_are_self_contained_with_metadata(bundles, method: str) -> None:  # type: ignore[no-untyped-def]
    path, _ = bundles[method]
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(p.name for p in path.iterdir()) == {"manifest.json", *manifest["files"]}
    for name in manifest["files"]:
        model = onnx.load(str(path / name), load_external_data=False)
        for init in model.graph.initializer:
            assert init.data_location != onnx.TensorProto.EXTERNAL, f"{name}: external data"
        assert model.opset_import[0].version >= 17
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["robot_meta.robot"] == "arm2" and meta["robot_meta.method"] == method
        batch = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param  # a dynamic batch dimension
    assert manifest["robot"] == "arm2" and manifest["motor_ids"] == [1, 2]
    assert manifest["observation"][0] == {"name": "cos_shoulder", "unit": "1"}
    assert len(manifest["provenance"]["config_sha256"]) == 64


def test_failed_parity_writes_nothing(tmp_path: Path) -> None:
    class Unstable(torch.nn.Module):
        """A policy with noise in its graph: torch and onnxruntime draw different numbers."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((12, 2), 0.1))
            self.latent_dim = 0

        def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            a = obs @ self.w
            return a + torch.rand_like(a)

    info = ExportInfo("arm2", "ppo", "reach", "payload", 0)
    with pytest.raises(ExportError, match="disagree by .* Worst input: obs ="):
        export_bundle({"policy": Unstable()}, info, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []
