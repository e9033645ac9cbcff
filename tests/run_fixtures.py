"""Shared fixtures (tests/learn, tests/export): tiny configs and a tiny trained run (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from robot_meta.learn.config import META_BATCH_METHODS, TrainConfig, load_config


def tiny_config(algorithm: str = "ppo", robot: str = "cartpole", **run: object) -> TrainConfig:
    """A small, step-budgeted config for tests."""
    cfg = load_config(f"{'cartpole-all' if robot == 'cartpole' else 'arm2-payload'}-{algorithm}")
    cfg.run.num_envs = 32
    cfg.run.minutes = 0.0
    cfg.run.steps = 32 * 16 * 4
    cfg.run.checkpoint_every = 2
    cfg.ppo.horizon = 16
    cfg.ppo.minibatches = 2
    cfg.ppo.epochs = 2
    cfg.model.hidden = [32, 32]
    cfg.model.encoder_hidden = [32]
    cfg.rma.history = 16
    cfg.rma.batch_size = 128
    cfg.pearl.context_size = 8
    cfg.pearl.target_size = 8
    cfg.pearl.task_memory = 64
    cfg.pearl.encoder_updates = 2
    cfg.eval.tasks = 4
    cfg.eval.oracle_rollouts = 2
    cfg.meta.meta_batch, cfg.meta.inner_rollouts = 4, 2
    if algorithm in META_BATCH_METHODS:
        cfg.run.num_envs = 8
        cfg.run.steps = 2 * 8 * 250 * 4  # 4 meta-iterations (pre- and post-update episodes)
    for k, v in run.items():
        setattr(cfg.run, k, v)
    return cfg


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny trained run per algorithm (cartpole)."""
    from robot_meta.learn.trainer import Trainer

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for alg in ("ppo", "rma", "pearl"):
        cfg = tiny_config(alg)
        if alg == "rma":
            cfg.rma.phase2_fraction = 0.5
        Trainer(cfg, root / alg, progress=False, tensorboard=False).train()
        out[alg] = root / alg
    return out
