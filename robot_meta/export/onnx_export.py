"""Export torch modules to single-file ONNX with fixed names and a dynamic batch dimension,
check them, and compare them with torch in onnxruntime.

Every deployment module owns an ONNX-friendly ``forward`` on raw inputs (the observation
normalizer, action scaling and clipping inside). This module only wraps it with the fixed
input and output names of its role (see ``robot_meta.export.manifest.ROLES``).
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from robot_meta.export.bundle_writer import ExportError

OPSET = 18
PARITY_ATOL = 1e-5

__all__ = ["OPSET", "PARITY_ATOL", "ExportError", "RoleIO", "check_parity", "export_onnx", "wrap"]


class _Policy(nn.Module):
    def __init__(self, m: nn.Module, latent_dim: int):
        super().__init__()
        self.m, self.latent_dim = m, latent_dim

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.m(obs, z)


class _PolicyNoContext(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.m(obs, obs[:, :0])  # an empty context: z has zero width


class _OneInput(nn.Module):
    """history -> z, or factors -> z (a named single input, as torch.export wants)."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class _Posterior(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, context: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self.m(context, mask)
        return mean, var


class _Recurrent(nn.Module):
    """(obs, prev_action, prev_reward, prev_done, h) -> (action, h_out): one RL2 step."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
                prev_done: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        action, h_out = self.m(obs, prev_action, prev_reward, prev_done, h)
        return action, h_out


class _Float64(nn.Module):
    """A module computed in float64 behind float32 inputs and outputs (Cast nodes at the
    edges of the graph), for modules whose float32 rounding alone exceeds the parity limit.
    It goes inside a role wrapper (see :func:`widen`), whose signature torch.export reads."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = copy.deepcopy(m).double()

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.m(*[x.double() for x in xs])
        if isinstance(out, tuple | list):
            return tuple(o.float() for o in out)
        return out.float()


@dataclass
class RoleIO:
    """Example inputs of one role, used for tracing and for the parity check."""

    names: tuple[str, ...]
    outputs: tuple[str, ...]
    example: tuple[torch.Tensor, ...]  # a batch of 2, for tracing
    parity: list[tuple[np.ndarray, ...]]  # batches to compare torch and onnxruntime on
    dynamic: dict[str, dict[int, str]]  # input -> {axis: name} of dynamic axes


def wrap(role: str, module: nn.Module, latent_dim: int) -> nn.Module:
    """The module with the forward signature of its role."""
    if role == "policy":
        return _Policy(module, latent_dim) if latent_dim > 0 else _PolicyNoContext(module)
    if role == "posterior_encoder":
        return _Posterior(module)
    if role in ("history_encoder", "privileged_encoder"):
        return _OneInput(module)
    if role == "recurrent_policy":
        return _Recurrent(module)
    raise ExportError(f"no ONNX wrapper for role {role!r}")


def widen(wrapped: nn.Module) -> nn.Module:
    """A copy of a role wrapper (see :func:`wrap`) whose module computes in float64."""
    inner = wrapped.m
    assert isinstance(inner, nn.Module)
    wide = copy.copy(wrapped)  # a shallow copy: the role's signature, its own submodule dict
    wide._modules = dict(wrapped._modules)
    wide.m = _Float64(inner)
    return wide.eval()


def export_onnx(module: nn.Module, io: RoleIO, path: Path, metadata: dict[str, str]) -> str:
    """Export, embed metadata, check with ``onnx.checker`` (full check), and verify parity
    with torch in onnxruntime (max abs error <= 1e-5 on every parity batch).

    Returns the precision of the graph's arithmetic: ``float32``, or ``float64`` when the
    float32 module is itself further than the parity limit from the same module in float64
    (a trained network with large pre-activations, e.g. a saturated tanh encoder, rounds its
    way past 1e-5). Then no float32 graph can meet the contract, so the graph computes in
    float64 between float32 inputs and outputs, and parity is checked against the float64
    module. A float32 module that is accurate but disagrees with onnxruntime is an export
    bug, and is refused.

    Raises :class:`ExportError` naming the worst offending input when parity fails.
    """
    module = module.eval()
    _write_onnx(module, io, path, metadata | {"robot_meta.precision": "float32"})
    try:
        check_parity(module, path, io)
        return "float32"
    except ExportError:
        rounding = float32_rounding(module, io)
        if rounding <= PARITY_ATOL:
            raise
    wide = widen(module)
    try:
        _write_onnx(wide, io, path, metadata | {"robot_meta.precision": "float64"})
        check_parity(wide, path, io)
    except ExportError:
        raise
    except Exception as e:  # e.g. an operator onnxruntime has no float64 kernel for
        raise ExportError(f"{path.name}: float32 arithmetic alone moves this module's output "
                          f"by {rounding:.3g} (limit {PARITY_ATOL:g}), and a float64 graph "
                          f"could not be built or run: {e}") from e
    return "float64"


def _write_onnx(module: nn.Module, io: RoleIO, path: Path, metadata: dict[str, str]) -> None:
    """torch.onnx.export (dynamo) to one file, with metadata, passing onnx.checker."""
    dims = {name: torch.export.Dim(name, min=1, max=1 << 16) for ax in io.dynamic.values()
            for name in ax.values()}
    # positional, in input order (wrappers may take *args, so names cannot key them)
    dynamic_shapes = tuple({ax: dims[n] for ax, n in io.dynamic[k].items()} if k in io.dynamic
                           else None for k in io.names)
    quiet = logging.getLogger("torch.onnx")  # e.g. "torchvision is not installed. Skipping ..."
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, io.example, str(path), input_names=list(io.names),
                          output_names=list(io.outputs), dynamo=True, external_data=False,
                          dynamic_shapes=dynamic_shapes, opset_version=OPSET, verbose=False)
    quiet.setLevel(level)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in sorted(metadata.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{path.name}: onnx.checker rejects the export: {e}") from e


def float32_rounding(module: nn.Module, io: RoleIO) -> float:
    """Max abs difference between the module in float32 and in float64 over the parity
    batches: how far float32 arithmetic alone takes this module from its exact output."""
    wide = widen(module)
    worst = 0.0
    with torch.no_grad():
        for batch in io.parity:
            xs = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in batch]
            a, b = module(*xs), wide(*xs)
            for r, w in zip(a if isinstance(a, tuple | list) else (a,),
                            b if isinstance(b, tuple | list) else (b,), strict=True):
                err = np.nan_to_num(np.abs(r.numpy() - w.numpy()), nan=np.inf)
                worst = max(worst, float(err.max()) if err.size else 0.0)
    return worst


def check_parity(module: nn.Module, path: Path, io: RoleIO) -> float:
    """Max abs difference between torch and onnxruntime over the parity batches."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    worst, worst_at = 0.0, None
    for batch in io.parity:
        feed = {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(io.names, batch, strict=True)}
        got = sess.run(list(io.outputs), feed)
        with torch.no_grad():
            ref = module(*[torch.from_numpy(feed[n]) for n in io.names])
        refs = ref if isinstance(ref, tuple | list) else (ref,)
        for out_name, r, g in zip(io.outputs, refs, got, strict=True):
            err = np.nan_to_num(np.abs(r.numpy() - g), nan=np.inf)  # NaN counts as a failure
            if err.size and err.max() > worst:
                row = int(np.unravel_index(err.argmax(), err.shape)[0])
                worst = float(err.max())
                worst_at = (out_name, {n: feed[n][row] for n in io.names})
    if worst > PARITY_ATOL:
        assert worst_at is not None
        out_name, inputs = worst_at
        shown = "; ".join(f"{k} = {np.array2string(v, precision=4, threshold=20)}"
                          for k, v in inputs.items())
        raise ExportError(f"{path.name}: torch and onnxruntime disagree by {worst:.3g} on output "
                          f"{out_name!r} (limit {PARITY_ATOL:g}). Worst input: {shown}. "
                          "The bundle was not written.")
    return worst
