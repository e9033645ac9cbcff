"""The shared PPO epoch loop: epochs x minibatches, the KL early stop, rejected steps, averaging."""

from __future__ import annotations

import numpy as np
import torch

from robot_meta.learn.algorithms.ppo import LOSS_STATS, MinibatchLoss, ppo_epochs, ppo_loss
from robot_meta.learn.config import PPOConfig


def _loss(kl: float, pg: float = 1.0) -> MinibatchLoss:
    t = torch.tensor
    return ppo_loss(PPOConfig(), t(pg), t(2.0), t(3.0), kl, 0.5)


def test_runs_every_epoch_and_minibatch_and_averages() -> None:
    cfg = PPOConfig(epochs=3, minibatches=4, max_kl=0.05)
    draws: list[int] = []
    seen: list[int] = []

    def minibatches() -> list[int]:
        draws.append(1)  # one shuffled split per epoch
        return [0, 1, 2, 3]

    def update(mb: int) -> MinibatchLoss:
        seen.append(mb)
        return _loss(0.01, pg=float(mb))

    stats, n = ppo_epochs(cfg, minibatches, update)
    assert n == 12 and len(draws) == 3 and seen == [0, 1, 2, 3] * 3
    assert set(stats) == set(LOSS_STATS)
    assert np.isclose(stats["loss/policy"], 1.5) and np.isclose(stats["loss/value"], 2.0)
    assert np.isclose(stats["kl"], 0.01) and np.isclose(stats["clip_frac"], 0.5)


def test_stops_after_the_first_minibatch_over_max_kl() -> None:
    cfg = PPOConfig(epochs=5, max_kl=0.05)
    kls = iter([0.01, 0.2, 0.01])
    stats, n = ppo_epochs(cfg, lambda: range(2), lambda mb: _loss(next(kls)))
    assert n == 2  # the update over the limit counts, nothing after it runs
    assert np.isclose(stats["kl"], (0.01 + 0.2) / 2)
    # max_kl = 0 or early_stop=False: every update runs
    assert ppo_epochs(PPOConfig(epochs=2, max_kl=0.0), lambda: range(3), lambda mb: _loss(1.0))[1] == 6
    assert ppo_epochs(cfg, lambda: range(3), lambda mb: _loss(1.0), early_stop=False)[1] == 15


def test_a_rejected_step_ends_the_epochs_uncounted() -> None:
    out = iter([_loss(0.01), None, _loss(0.01)])
    stats, n = ppo_epochs(PPOConfig(epochs=3), lambda: range(2), lambda mb: next(out))
    assert n == 1 and np.isclose(stats["kl"], 0.01)
    stats, n = ppo_epochs(PPOConfig(), lambda: range(2), lambda mb: None)
    assert n == 0 and all(v == 0.0 for v in stats.values())  # no update: zeros, not a division by 0


def test_ppo_loss_composes_the_terms() -> None:
    cfg = PPOConfig(value_coef=0.5, entropy_coef=0.01)
    t = torch.tensor
    mb = ppo_loss(cfg, t(1.0), t(2.0), t(3.0), 0.0, 0.0, extra=t(4.0))
    assert np.isclose(float(mb.loss), 1.0 + 0.5 * 2.0 - 0.01 * 3.0 + 4.0)
