"""`robot-meta bench step-info RUN --json`: the same-task vs other-task step-cosine diagnostic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robot_meta.launch.cli import main
from robot_meta.launch.cmd_bench import load


def test_cosines_separate_informative_steps_from_noise() -> None:
    mod = load("step-info")
    rng = np.random.default_rng(0)
    task_dirs = rng.normal(size=(16, 20))
    a = task_dirs + 0.3 * rng.normal(size=(16, 20))
    b = task_dirs + 0.3 * rng.normal(size=(16, 20))
    same, other = mod.cosines(a, b)
    assert same.mean() > 0.8 and abs(other.mean()) < 0.2
    assert mod.signal_fraction(a, b).mean() > 0.8
    noise_a, noise_b = rng.normal(size=(16, 20)), rng.normal(size=(16, 20))
    same, other = mod.cosines(noise_a, noise_b)
    assert abs(same.mean() - other.mean()) < 0.3
    assert abs(mod.signal_fraction(noise_a, noise_b).mean()) < 0.3
    # a step that carries the task in its length only: raw cosines are all 1, the signal fraction sees it
    u = rng.normal(size=20)
    gains = np.linspace(0.5, 2.0, 16)[:, None]
    a, b = gains * u + 0.01 * rng.normal(size=(16, 20)), gains * u + 0.01 * rng.normal(size=(16, 20))
    same, other = mod.cosines(a, b)
    assert same.mean() - other.mean() < 0.01
    assert mod.signal_fraction(a, b).mean() > 0.9


@pytest.mark.parametrize("algorithm", ["cavia", "maml"])
def test_step_info_json_contract(algorithm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robot_meta.learn.trainer import Trainer
    from tests.run_fixtures import tiny_config

    cfg = tiny_config(algorithm)
    cfg.run.steps = 2 * cfg.run.num_envs * 250  # one meta-iteration
    trainer = Trainer(cfg, tmp_path / "run", progress=False, tensorboard=False)
    trainer.train()
    argv = ["bench", "step-info", str(tmp_path / "run"), "--tasks", "4", "--rollouts", "2", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["method"] == algorithm and r["tasks"] == 4 and r["rollouts"] == 2
    for k in ("same_task_cosine", "other_task_cosine", "same_minus_other"):
        for block in (r, r["centered"]):
            lo, hi = block[k]["ci95"]
            assert -1.0 - 1e-6 <= block[k]["mean"] <= 1.0 + 1e-6 and lo <= hi
    assert r["signal_fraction"]["mean"] <= 1.0 and isinstance(r["carries_task_information"], bool)
    assert r["step_norm"] > 0
    if algorithm == "cavia":  # the step moves z only
        assert r["dims"] == cfg.model.latent_dim
    else:  # the step moves the policy tensors the rule adapts
        algo = trainer.algo
        assert r["dims"] == sum(algo.theta()[k].numel() for k in algo.rule().moved)


def test_step_info_refuses_other_methods(tmp_path: Path) -> None:
    from robot_meta.errors import UserError
    from robot_meta.learn.trainer import Trainer
    from tests.run_fixtures import tiny_config

    cfg = tiny_config("ppo")
    cfg.run.steps = 32 * 16
    Trainer(cfg, tmp_path / "ppo", progress=False, tensorboard=False).train()
    with pytest.raises(UserError, match="step-info measures"):
        load("step_info").main([str(tmp_path / "ppo")])
