"""`robot-meta export` of an RL2 run: a recurrent policy.onnx whose steps (with the hidden state
carried) match torch, and a manifest that says what the runtime needs."""

from pathlib import Path

import numpy as np
import pytest
import torch

from robot_meta.launch.cli import main
from robot_meta.learn.evaluate import load_run
from robot_meta.learn.trainer import Trainer
from robot_meta.runtime import load_bundle
from tests.run_fixtures import tiny_config


@pytest.fixture(scope="module")
def rl2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tiny_config("rl2", steps=32 * 16 * 2)
    cfg.rl2.bptt, cfg.rl2.hidden_size, cfg.rl2.episodes_per_trial = 8, 16, 2
    run = tmp_path_factory.mktemp("rl2") / "run"
    Trainer(cfg, run, progress=False, tensorboard=False).train()
    return run


def test_export_rl2_run(rl2_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    assert main(["export", str(rl2_run), "-o", str(out)]) == 0
    b = load_bundle(out, robot="cartpole")
    m = b.manifest
    assert m.method == "rl2" and m.task == "balance" and m.latent_dim == 0 and m.history_length == 0
    assert m.extra == {"hidden_size": 16, "episodes_per_trial": 2}
    assert b.policy is None and b.encoder is None and b.recurrent is not None
    assert list(m.files) == ["policy.onnx"] and m.files["policy.onnx"].role == "recurrent_policy"
    assert m.files["policy.onnx"].inputs["h"] == ["batch", 16]
    assert b.recurrent.hidden_size == 16

    _, algo = load_run(rl2_run)
    ac = algo.deployment_modules()["recurrent_policy"].eval()
    assert float(ac.obs_norm.count) > 0  # the normalizer is baked in: trained statistics
    # 30 steps of 8 envs with h carried, an episode boundary at step 15 (prev_done = 1)
    rng = np.random.default_rng(0)
    B = 8
    h_ort = b.recurrent.initial_state(B)
    h_pt = torch.zeros(B, 16)
    a_prev, r_prev = np.zeros((B, 1), np.float32), np.zeros(B, np.float32)
    for t in range(30):
        obs = (rng.normal(0, 1, (B, 5)) * [0.3, 0.1, 0.3, 1.0, 2.0] + [0, 1, 0, 0, 0]).astype(np.float32)
        done = np.full(B, float(t in (0, 15)), np.float32)
        if t == 15:
            a_prev[:], r_prev[:] = 0.0, 0.0
        a_ort, h_ort = b.recurrent.step(obs, h_ort, a_prev, r_prev, done)
        with torch.no_grad():
            a_pt, h_pt = ac(*(torch.from_numpy(x) for x in (obs, a_prev, r_prev[:, None], done[:, None])),
                            h_pt)
        assert np.abs(a_ort - a_pt.numpy()).max() <= 1e-5, t
        assert np.abs(h_ort - h_pt.numpy()).max() <= 1e-5, t
        h_ort = h_pt.numpy()  # no drift: compare each step from the same state
        a_prev, r_prev = a_ort.astype(np.float32), rng.uniform(0, 1, B).astype(np.float32)
    assert np.abs(h_ort).max() > 1e-3  # the state moved
    # a single observation (one robot) works too
    a1, h1 = b.recurrent.step(obs[0], h_ort[:1], a_prev[:1], r_prev[0], 0.0)
    assert a1.shape == (1,) and h1.shape == (1, 16)
