"""GAE against a hand-computed example."""

import torch

from robot_meta.learn.storage.rollout_buffer import compute_gae


def test_gae_matches_hand_computation() -> None:
    gamma, lam = 0.9, 0.8
    # One env, T = 3; the episode ends after step 1 (d_1 = 1); V(s_3) = 2.
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [1.5]])
    d = torch.tensor([[0.0], [1.0], [0.0]])
    last = torch.tensor([2.0])
    adv, ret = compute_gae(r, v, d, last, gamma, lam)
    # Step 2: delta_2 = 3 + 0.9*2 - 1.5 = 3.3;  A_2 = 3.3
    # Step 1 (episode end): delta_1 = 2 + 0 - 1.0 = 1.0;  A_1 = 1.0 (no carry across the end)
    # Step 0: delta_0 = 1 + 0.9*1.0 - 0.5 = 1.4;  A_0 = 1.4 + 0.9*0.8*1.0 = 2.12
    expected = torch.tensor([[2.12], [1.0], [3.3]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + v, atol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value() -> None:
    gamma = 0.95
    r = torch.rand(6, 3)
    v = torch.rand(6, 3)
    d = torch.zeros(6, 3)
    last = torch.rand(3)
    adv, _ = compute_gae(r, v, d, last, gamma, 1.0)
    g = last.clone()
    for t in range(5, -1, -1):
        g = r[t] + gamma * g
        assert torch.allclose(adv[t], g - v[t], atol=1e-5)
