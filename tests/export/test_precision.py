"""A module whose float32 rounding alone exceeds the parity limit is exported computing in
float64 (float32 at its edges), and checked against its float64 self; an accurate module stays
float32."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from robot_meta.export.onnx_export import PARITY_ATOL, RoleIO, export_onnx, float32_rounding, widen, wrap
from robot_meta.learn.models.privileged_encoder import PrivilegedEncoder


def _encoder(scale: float) -> tuple[torch.nn.Module, RoleIO]:
    """An RMA privileged encoder with its weights scaled: large pre-activations, as a trained
    encoder that drives its tanh towards saturation has."""
    torch.manual_seed(0)
    mu = PrivilegedEncoder(14, 8, (256, 256))
    with torch.no_grad():
        for p in mu.parameters():
            p.mul_(scale)
    f = np.random.default_rng(0).uniform(-2, 2, (256, 14)).astype(np.float32)
    io = RoleIO(("factors",), ("z",), (torch.from_numpy(f[:2]),), [(f,)], {"factors": {0: "batch"}})
    return wrap("privileged_encoder", mu, 8), io


def _run(path: Path, f: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(["z"], {"factors": f})[0]
    return out


def test_rounding_sensitive_module_is_exported_in_float64(tmp_path: Path) -> None:
    module, io = _encoder(10.0)
    (f,) = io.parity[0]
    assert float32_rounding(module, io) > PARITY_ATOL  # float32 cannot meet the contract
    assert export_onnx(module, io, tmp_path / "mu.onnx", {}) == "float64"
    model = onnx.load(str(tmp_path / "mu.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["robot_meta.precision"] == "float64"
    f32 = onnx.TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.elem_type == f32  # the interface is unchanged
    assert model.graph.output[0].type.tensor_type.elem_type == f32
    got = _run(tmp_path / "mu.onnx", f)
    assert got.dtype == np.float32
    with torch.no_grad():
        exact = widen(module)(torch.from_numpy(f)).numpy()
        single = module(torch.from_numpy(f)).numpy()
    assert np.abs(got - exact).max() <= PARITY_ATOL
    assert np.abs(single - exact).max() > PARITY_ATOL


def test_accurate_module_stays_float32(tmp_path: Path) -> None:
    module, io = _encoder(1.0)
    assert float32_rounding(module, io) < 1e-6
    assert export_onnx(module, io, tmp_path / "mu.onnx", {}) == "float32"
    model = onnx.load(str(tmp_path / "mu.onnx"))
    doubles = [n for n in model.graph.node if n.op_type == "Cast"
               and any(a.name == "to" and a.i == onnx.TensorProto.DOUBLE for a in n.attribute)]
    assert doubles == []
