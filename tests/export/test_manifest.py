"""The manifest parses through the shared config loader: typed fields, named errors with "did you
mean", and every manifest the earlier parser accepted (optional fields absent)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from robot_meta.export.manifest import BundleError, Manifest


@pytest.fixture
def raw(bundles: dict[str, Any]) -> dict[str, Any]:
    return json.loads((bundles["rma"][0] / "manifest.json").read_text())


def test_a_manifest_round_trips(raw: dict[str, Any]) -> None:
    m = Manifest.from_dict(copy.deepcopy(raw), "m")
    assert json.loads(m.to_json()) == raw
    assert m.files["policy.onnx"].inputs["obs"] == ["batch", 12]


def test_optional_fields_may_be_absent(raw: dict[str, Any]) -> None:
    del raw["extra"]
    for e in raw["files"].values():  # version-1 entries without the later fields
        for k in ("precision", "inputs", "outputs", "role"):
            e.pop(k)
    m = Manifest.from_dict(raw, "m")
    assert m.extra == {} and m.files["policy.onnx"].precision == "float32"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(latnet_dim=8), r"m\.latnet_dim: unknown key; did you mean 'latent_dim'\?"),
    (lambda d: d.pop("control_dt"), r"m\.control_dt: missing \(required\)"),
    (lambda d: d.update(control_dt="fast"), r"m\.control_dt: expected a number"),
    (lambda d: d["files"]["policy.onnx"].pop("sha256"), r"m\.files\.policy\.onnx\.sha256: missing"),
    (lambda d: d["files"]["policy.onnx"].update(sha=""),
     r"files\.policy\.onnx\.sha: unknown key; did you mean 'sha256'"),
    (lambda d: d.update(motor_ids=[1, "two"]), r"m\.motor_ids\[1\]: expected an integer"),
    (lambda d: d.update(format_version=True), r"unknown manifest format_version True"),
    (lambda d: d.update(format="onnx"), r"not a robot_meta bundle manifest"),
])
def test_bad_fields_are_named(raw: dict[str, Any], edit: Any, message: str) -> None:
    edit(raw)
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(raw, "m")
