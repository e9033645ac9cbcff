"""The cavia inner step: a gradient step on z under a prediction loss. Its numpy twin on the robot
computes the same step; on a 1-D system with an unknown gain, the meta-learned step moves the
prediction toward the true gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_meta.learn.context_adaptation import ContextAdaptation, Transitions, context_step_spec
from robot_meta.learn.models.dynamics_model import DynamicsModel
from robot_meta.learn.models.normalizer import EmpiricalNormalizer
from robot_meta.runtime.context_step import ContextStep

DT = 0.1


def _rule(obs_dim: int, act_dim: int, C: int, seed: int = 0, steps: int = 1,
          rate: float = 0.5) -> tuple[ContextAdaptation, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    dyn = DynamicsModel(obs_dim, act_dim, C, (16, 16), generator=gen)
    norm = EmpiricalNormalizer(obs_dim)
    x = torch.randn(500, obs_dim, generator=gen) * 2 + 1
    norm.update(x)
    dyn.delta_norm.update(torch.randn(500, obs_dim, generator=gen) * 0.3)
    rates = torch.full((C,), rate) * torch.linspace(0.5, 1.5, C)
    return ContextAdaptation(dyn, norm, rates, steps), 0.1 * torch.randn(C, generator=gen)


def test_numpy_step_matches_torch() -> None:
    """The robot's numpy step (manifest weights, hand-written back-propagation) equals autograd."""
    rule, z0 = _rule(obs_dim=5, act_dim=2, C=3, steps=2)
    gen = torch.Generator().manual_seed(1)
    N = 120
    tr = Transitions(torch.randn(1, N, 5, generator=gen), 1.5 * torch.randn(1, N, 2, generator=gen),
                     torch.randn(1, N, 5, generator=gen), torch.ones(1, N))
    z_torch = rule.adapt(z0[None], tr)[0].double().numpy()
    step = ContextStep(context_step_spec(rule, z0, 3))
    z_np = step.adapt(tr.obs[0].numpy(), tr.actions[0].numpy(), tr.next_obs[0].numpy())
    assert np.abs(z_np - z0.numpy()).max() > 1e-3  # the step moved z
    np.testing.assert_allclose(z_np, z_torch, rtol=1e-4, atol=1e-6)
    # the loss agrees too, and padding (mask 0) is ignored by the torch side
    loss_np, _ = step.loss_and_grad(z0.double().numpy(), tr.obs[0].numpy(), tr.actions[0].numpy(),
                                    tr.next_obs[0].numpy())
    padded = Transitions(*(torch.cat([x, torch.zeros_like(x[:, :7])], 1) for x in (tr.obs, tr.actions,
                                                                                   tr.next_obs)),
                         torch.cat([tr.mask, torch.zeros(1, 7)], 1))
    with torch.no_grad():
        assert float(rule.loss(z0[None], padded)[0]) == pytest.approx(loss_np, rel=1e-5)


def test_malformed_rule_is_refused() -> None:
    from robot_meta.errors import UserError

    rule, z0 = _rule(3, 1, 2)
    spec = context_step_spec(rule, z0, 3)
    with pytest.raises(UserError, match="rule"):
        ContextStep({**spec, "rule": "policy_gradient"})
    bad = dict(spec)
    del bad["layers"]
    with pytest.raises(UserError, match="re-export"):
        ContextStep(bad)


def _gain_task(k: torch.Tensor, n: int, gen: torch.Generator) -> Transitions:
    """x' = x + k a dt for M tasks with gains k (M,): n transitions each."""
    M = k.shape[0]
    x = torch.randn(M, n, 1, generator=gen)
    a = torch.rand(M, n, 1, generator=gen) * 2 - 1
    return Transitions(x, a, x + k[:, None, None] * a * DT, torch.ones(M, n))


def test_step_moves_toward_the_true_gain() -> None:
    """Meta-train g, z0 and the rates on x' = x + k a dt, k ~ U(0.5, 2), then adapt from one
    task's transitions: the adapted model predicts the task's gain, the prior does not."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    rule, _ = _rule(obs_dim=1, act_dim=1, C=2, rate=1.0)
    norm = rule.obs_norm
    norm.update(torch.randn(1000, 1, generator=gen))
    rule.dynamics.delta_norm.update((torch.rand(1000, 1, generator=gen) * 2 - 1) * 1.25 * DT)
    z0 = torch.nn.Parameter(torch.zeros(2))
    log_rates = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([*rule.dynamics.parameters(), z0, log_rates], lr=3e-3)
    for _ in range(400):
        k = torch.rand(16, generator=gen) * 1.5 + 0.5
        train, test = _gain_task(k, 20, gen), _gain_task(k, 20, gen)
        rule.rates = log_rates.exp()
        loss = rule.loss(rule.adapt(z0.expand(16, -1), train, create_graph=True), test).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rule.rates = log_rates.detach().exp()
    gains = torch.tensor([0.6, 1.0, 1.4, 1.9])
    data = _gain_task(gains, 30, gen)  # a few rollouts' worth of transitions
    z_prior = z0.detach().expand(4, -1)
    z_adapted = rule.adapt(z_prior, data)
    # predicted gain: the model's response to a = +1 at x = 0, in units of dt
    x0 = torch.zeros(4, 1, 1)
    a1 = torch.ones(4, 1, 1)

    def gain(z: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            dn = rule.dynamics.delta_norm
            y = rule.dynamics(norm(x0), a1, z[:, None]) * torch.sqrt(dn.var + dn.eps) + dn.mean
            y0 = rule.dynamics(norm(x0), -a1, z[:, None]) * torch.sqrt(dn.var + dn.eps) + dn.mean
        return ((y - y0) / (2 * DT)).reshape(4).numpy()

    before, after = gain(z_prior), gain(z_adapted)
    err_before = np.abs(before - gains.numpy())
    err_after = np.abs(after - gains.numpy())
    assert np.all(np.diff(after) > 0), after  # ordered as the true gains
    print("gain before", before, "after", after)
    assert err_after.mean() < 0.5 * err_before.mean(), (before, after)
    assert err_after.max() < 0.25, after
    held_out = _gain_task(gains, 30, gen)
    assert (rule.loss(z_adapted, held_out) < rule.loss(z_prior, held_out)).all()


def test_action_history_is_the_same_on_both_sides() -> None:
    """The robot stacks each rollout's last H actions exactly as training does (zeros before the
    rollout starts, newest first)."""
    from robot_meta.learn.context_adaptation import action_history as torch_history
    from robot_meta.runtime.context_step import action_history as numpy_history

    a = np.arange(12, dtype=np.float64).reshape(6, 2)
    h = numpy_history(a, 3)
    assert h.shape == (6, 6)
    np.testing.assert_array_equal(h[0], [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(h[3], [6, 7, 4, 5, 2, 3])
    t = torch_history(torch.as_tensor(a)[None], 3)[0].numpy()
    np.testing.assert_array_equal(h, t)
