"""cavia meta-training: a short run makes the context step informative (the adapted z predicts a
task's other rollouts better than z0), checkpoints round-trip, and the agent adapts from its own
rollouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robot_meta.learn.config import load_config
from robot_meta.learn.trainer import Trainer


def test_short_cartpole_run_learns_an_informative_step(tmp_path: Path) -> None:
    cfg = load_config("cartpole-all-cavia")
    cfg.run.minutes = 0.0
    cfg.run.steps = 300_000  # 7 meta-iterations of 32 tasks x 3 rollouts, pre and post
    trainer = Trainer(cfg, tmp_path / "run", progress=False, tensorboard=False)
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-2:]
    prior = np.mean([r["model/loss_prior"] for r in last])
    adapted = np.mean([r["model/loss_adapted"] for r in last])
    # the step from a task's pre-update rollouts predicts its post-update rollouts better than z0
    assert adapted < 0.85 * prior, (prior, adapted)
    assert rows[0]["model/loss_prior"] - rows[0]["model/loss_adapted"] < 0.05 * rows[0]["model/loss_prior"]

    # the checkpoint restores the dynamics model, z0 and the rates exactly
    from robot_meta.learn.evaluate import load_run

    _, algo = load_run(tmp_path / "run")
    a = trainer.algo
    for x, y in ((a.dyn.state_dict(), algo.dyn.state_dict()), (a.ctx.state_dict(), algo.ctx.state_dict())):
        for k in x:
            assert torch.equal(x[k], y[k]), k

    # the deployment agent: z0 in prior and explore rollouts, a moved z after an explore rollout
    from robot_meta.learn.trainer import make_env

    env = make_env(cfg, num_envs=4, seed=3)
    agent = algo.agent(4)
    obs = env.reset(seed=3)
    agent.reset_task()
    for mode in ("prior", "explore", "adapt"):
        agent.begin_episode(mode)
        z = agent.context()
        for _ in range(50):
            act = agent.act(obs, env.factors)
            nxt, rew, _, _, info = env.step(act)
            agent.observe(obs, np.clip(act, -1, 1), rew, nxt, np.ones(4, bool))
            obs = nxt
        agent.end_episode()
        if mode != "adapt":
            np.testing.assert_allclose(z, algo.z0().detach().expand(4, -1).numpy())
    assert np.abs(z - algo.z0().detach().numpy()).max() > 1e-4
    env.close()
