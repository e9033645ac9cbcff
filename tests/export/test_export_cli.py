"""`robot-meta export` on trained runs: the bundle's ONNX policy acts like the run's agent."""

from pathlib import Path

import numpy as np
import pytest
import torch

from robot_meta.launch.cli import main
from robot_meta.learn.evaluate import load_run
from robot_meta.runtime import load_bundle


@pytest.mark.parametrize("alg", ["ppo", "rma", "pearl"])
def test_export_trained_run(tiny_runs, tmp_path: Path, alg: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_runs[alg]), "-o", str(out)]) == 0
    b = load_bundle(out, robot="cartpole")
    assert b.manifest.method == alg and b.manifest.task == "balance"
    assert (b.encoder is not None) == (alg != "ppo")
    assert (b.privileged_encoder is not None) == (alg == "rma")
    _, algo = load_run(tiny_runs[alg])
    ac = algo.deployment_modules()["policy"]
    obs = np.random.default_rng(0).normal(0, 1, (32, 5)).astype(np.float32)
    z = np.random.default_rng(1).uniform(-1, 1, (32, b.manifest.latent_dim)).astype(np.float32)
    with torch.no_grad():
        ref = ac(torch.from_numpy(obs), torch.from_numpy(z)).numpy()
    got = b.policy.act(obs, z if b.manifest.latent_dim else None)
    assert np.abs(got - ref).max() <= 1e-5
    # exporting over an existing bundle needs --force
    assert main(["export", str(tiny_runs[alg]), "-o", str(out)]) == 2
