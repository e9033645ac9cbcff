"""RL2: the hidden state carries across the episodes of a trial and is reset between tasks (in
training and in the agent), a short run improves post-adaptation return, resume is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robot_meta.learn.algorithms.rl2 import RL2, RL2Agent
from robot_meta.learn.trainer import Trainer, build_algorithm, make_env
from tests.run_fixtures import tiny_config

EP = 10  # episode length forced on the env in the collection test


def _algo(K: int = 2, **run: object) -> RL2:
    cfg = tiny_config("rl2", **run)
    cfg.rl2.episodes_per_trial, cfg.rl2.hidden_size, cfg.rl2.bptt = K, 16, 8
    algo = build_algorithm(cfg)
    assert isinstance(algo, RL2)
    return algo


def test_training_carries_h_within_a_trial_and_resets_it_between_tasks() -> None:
    algo = _algo(K=2, num_envs=4)
    algo.cfg.ppo.horizon = 4 * EP
    env = make_env(algo.cfg, algo, num_envs=4, seed=3, nthread=0)
    env.episode_steps = EP  # short episodes: a trial is 2 x 10 steps (cartpole balance rarely falls in 10)
    algo.start_segment(env, env.reset(seed=3), np.random.default_rng(0), torch.Generator().manual_seed(0))
    algo.ep_in_trial[:] = 0  # every env at the start of a trial
    d = algo.collect(env)
    # (seeded: no env terminates early, so every boundary is where the time limit puts it)
    assert int(d["dones"].sum()) == 2 * 4 and not torch.any(d["trial_start"][1:EP])
    h, first, start = d["h"], d["prev_done"][..., 0], d["trial_start"]
    for t in (EP, 3 * EP):  # the second episode of a trial: d = 1, h carried (not zero), same task
        assert torch.all(first[t] == 1) and not torch.any(start[t])
        assert torch.all(h[t].abs().sum(-1) > 0)
        torch.testing.assert_close(d["priv"][t], d["priv"][t - 1])
        assert torch.all(d["dones"][t - 1] == 0)  # GAE flows on across the episode boundary
        assert torch.all(d["prev_action"][t] == 0) and torch.all(d["prev_reward"][t] == 0)
    for t in (2 * EP,):  # a new trial: h = 0 and a new task
        assert torch.all(first[t] == 1) and torch.all(start[t]) and torch.all(h[t] == 0)
        assert torch.all((d["priv"][t] - d["priv"][t - 1]).abs().sum(-1) > 0)
        assert torch.all(d["dones"][t - 1] == 1)  # ... and the GAE recursion stops
    inner = [t for t in range(1, 4 * EP) if t % EP]
    assert torch.all(first[inner] == 0) and torch.all(h[inner].abs().sum(-1) > 0)
    # The update replays chunks from the recorded start states: before any step, it reproduces
    # the log-probabilities of collection exactly (ratio = 1).
    seq = algo.sequences(d)
    o_n, hs = algo.replay(seq)
    logp = algo.ac.distribution(o_n, hs).log_prob(seq["actions"]).sum(-1)
    torch.testing.assert_close(logp, seq["logp"], atol=1e-5, rtol=0)
    env.close()


def test_agent_carries_h_across_rollouts_and_resets_per_task() -> None:
    from robot_meta.learn.evaluate import run_episode

    algo = _algo()
    algo.ac.actor[-1].weight.data.mul_(100.0)  # make the action depend visibly on h
    env = make_env(algo.cfg, num_envs=3, seed=1, nthread=0, fixed_tasks=True)
    agent = algo.agent(3)
    assert isinstance(agent, RL2Agent) and agent.oracle_warmup == algo.cfg.eval.oracle_rollouts
    agent.reset_task()
    run_episode(env, agent, "adapt", 5)
    h1 = agent.h_task.clone()
    assert torch.all(h1.abs().sum(-1) > 0)
    agent.begin_episode("adapt")  # episode 2 of the trial starts from the carried state
    torch.testing.assert_close(agent.h, h1)
    obs = env.reset(seed=6)
    a_adapt = agent.act(obs, env.factors)
    agent.begin_episode("prior")  # zero-shot: a fresh state, same inputs otherwise
    assert torch.all(agent.h == 0)
    assert np.abs(agent.act(obs, env.factors) - a_adapt).max() > 1e-4
    agent.end_episode()
    torch.testing.assert_close(agent.h_task, h1)  # a prior rollout leaves the task state alone
    run_episode(env, agent, "adapt", 7)
    assert not torch.allclose(agent.h_task, h1)
    agent.reset_task()  # the next task
    assert torch.all(agent.h_task == 0)
    # rows whose episode is over (mask false) keep their state
    agent.begin_episode("adapt")
    agent.act(obs, env.factors)
    agent.observe(obs, np.zeros((3, 1)), np.ones(3), obs, np.array([True, False, True]))
    assert torch.all(agent.h[1] == 0) and torch.all(agent.h[[0, 2]].abs().sum(-1) > 0)
    env.close()


def _adapted_return(algo: RL2, n: int = 16, seed: int = 11) -> float:
    """Mean return of the third rollout of a trial (after 2 adaptation rollouts) on n fixed
    held-out arm2 payload tasks."""
    from robot_meta.learn.evaluate import run_episode
    from robot_meta.sim import make_vec_env
    from robot_meta.sim.randomize import load_family, sample_params

    fam = load_family("arm2", "payload")
    env = make_vec_env("arm2", fam, n, seed, task="reach", nthread=0)
    env.set_tasks(sample_params(env.robot, fam.ranges("train"), np.random.default_rng(seed), n))
    agent = algo.agent(n)
    agent.reset_task()
    for j in range(2):
        run_episode(env, agent, "adapt", seed + j)
    ret = run_episode(env, agent, "adapt", seed + 2)
    env.close()
    return float(ret.mean())


@pytest.mark.slow
def test_short_training_improves_post_adaptation_return(tmp_path: Path) -> None:
    from robot_meta.learn.evaluate import load_run

    cfg = tiny_config("rl2", robot="arm2", num_envs=64, steps=64 * 50 * 30, checkpoint_every=50)
    cfg.ppo.horizon, cfg.rl2.bptt, cfg.rl2.hidden_size, cfg.rl2.episodes_per_trial = 50, 25, 32, 3
    cfg.model.hidden = [64, 64]
    cfg.ppo.minibatches, cfg.ppo.epochs = 4, 4
    # pinned here, independent of the launch file
    cfg.ppo.max_lr, cfg.ppo.desired_kl, cfg.ppo.entropy_coef = 1e-2, 0.02, 0.0
    before = _adapted_return(build_algorithm(cfg))
    Trainer(cfg, tmp_path / "run", progress=False, tensorboard=False).train()
    after = _adapted_return(load_run(tmp_path / "run")[1])
    # Return (max 200) of the third rollout of a trial on the same held-out tasks and targets.
    # Measured: about 41 before, 86 after 96k steps.
    assert after > before + 25.0, (before, after)


def test_init_depends_only_on_the_run_seed() -> None:
    torch.manual_seed(1)
    a = _algo().state_dict()["ac"]
    torch.manual_seed(2)  # the global RNG must not matter
    b = _algo().state_dict()["ac"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_horizon_must_be_a_multiple_of_bptt() -> None:
    from robot_meta.errors import UserError

    cfg = tiny_config("rl2")
    cfg.ppo.horizon, cfg.rl2.bptt = 16, 5
    with pytest.raises(UserError, match="multiple"):
        build_algorithm(cfg)
