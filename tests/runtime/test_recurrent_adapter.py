"""The RL2 adaptation rule on the robot (no robot): the GRU state carries across rollouts, prior
rollouts leave it alone, it round-trips through state()/load_state(), replaying recorded
transitions rebuilds it, and it acts exactly like the training-side RL2 agent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from robot_meta.errors import UserError
from robot_meta.runtime.adapters import make_adapter, resolve_method
from robot_meta.runtime.adapters.recurrent_adapter import RecurrentAdapter
from robot_meta.runtime.bundle import load_bundle
from tests.bundle_fixtures import RL2_HIDDEN, F


def _rollout(ad: RecurrentAdapter, n: int, seed: int, act: bool = True) -> list[tuple[Any, ...]]:
    """n steps of made-up observations; returns the transitions (o, a, r, o2)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(0, 0.5, (n + 1, 12))
    out = []
    for t in range(n):
        a = ad.act(obs[t]) if act else rng.uniform(-1, 1, 2)
        r = float(rng.uniform())
        ad.observe(obs[t], a, r, obs[t + 1])
        out.append((obs[t], a, r, obs[t + 1]))
    return out


def test_hidden_state_carries_across_rollouts_and_round_trips(rl2_bundle) -> None:  # type: ignore[no-untyped-def]
    b = load_bundle(rl2_bundle[0], robot="arm2")
    assert b.policy is None and b.recurrent is not None and b.recurrent.hidden_size == RL2_HIDDEN
    assert resolve_method(b, "auto") == "rl2" and resolve_method(b, "rl2") == "rl2"
    ad = make_adapter(b, "rl2")
    assert isinstance(ad, RecurrentAdapter) and np.all(ad.h_task == 0)
    states = []
    for k in range(2):
        ad.begin("adapt")
        np.testing.assert_array_equal(ad.h, states[-1] if states else np.zeros(RL2_HIDDEN))
        _rollout(ad, 20, k)
        ad.end(1.0)
        states.append(ad.h_task.copy())
    assert not np.allclose(states[0], 0) and not np.allclose(states[1], states[0])
    # a prior (zero-shot) rollout starts from h = 0 and leaves the adapted state alone
    ad.begin("prior")
    assert np.all(ad.h == 0)
    _rollout(ad, 20, 5)
    ad.end(0.0)
    np.testing.assert_array_equal(ad.h_task, states[1])
    # an evaluation rollout (no end(): the session's learn=False) does not change it either
    ad.begin("adapt")
    _rollout(ad, 20, 6)
    np.testing.assert_array_equal(ad.h_task, states[1])

    state = ad.state()
    assert state["kind"] == "recurrent" and state["rollouts"] == 2 and len(state["h"]) == RL2_HIDDEN
    fresh = make_adapter(load_bundle(rl2_bundle[0]), "rl2")
    fresh.load_state(state)
    assert fresh.mode == "adapt"
    ad.begin("adapt")
    o = np.full(12, 0.1)
    np.testing.assert_allclose(fresh.act(o), ad.act(o), atol=1e-6)
    with pytest.raises(UserError, match="size"):
        fresh.load_state({**state, "h": [0.0] * 3})
    with pytest.raises(UserError, match="kind"):
        fresh.load_state({"kind": "posterior", "z": []})


def test_replayed_transitions_rebuild_the_state(rl2_bundle) -> None:  # type: ignore[no-untyped-def]
    """Session resume folds saved transitions back with observe() only (no act()): the GRU
    steps are recomputed and give the same hidden state."""
    b = load_bundle(rl2_bundle[0])
    live, replayed = RecurrentAdapter(b), RecurrentAdapter(b)
    for k in range(2):
        live.begin("adapt")
        tr = _rollout(live, 15, k)
        live.end(0.0)
        replayed.begin("adapt")
        for o, a, r, o2 in tr:
            replayed.observe(o, a, r, o2)
        replayed.end(0.0)
    np.testing.assert_allclose(replayed.h_task, live.h_task, atol=1e-6)


def test_robot_rule_matches_the_training_agent(rl2_bundle) -> None:  # type: ignore[no-untyped-def]
    """Over two rollouts of one task, the ONNX adapter and the torch RL2 agent (the evaluator's)
    act the same: same inputs at episode starts, same hidden state carried."""
    from robot_meta.learn.algorithms.rl2 import RL2Agent

    path, ac = rl2_bundle
    ad = RecurrentAdapter(load_bundle(path))
    agent = RL2Agent(ac.eval(), 1, torch.device("cpu"))
    agent.reset_task()
    rng = np.random.default_rng(3)
    for mode in ("adapt", "adapt", "prior"):
        ad.begin(mode)
        agent.begin_episode(mode)
        for _ in range(12):
            o = rng.normal(0, 0.5, 12)
            a_rt = ad.act(o)
            a_tr = agent.act(o[None], np.zeros((1, F)))[0]
            np.testing.assert_allclose(a_rt, a_tr, atol=1e-5)
            r = float(rng.uniform())
            ad.observe(o, a_rt, r, o)
            agent.observe(o[None], a_tr[None], np.array([r]), o[None], np.ones(1, bool))
        ad.end(0.0)
        agent.end_episode()
        np.testing.assert_allclose(ad.h_task, agent.h_task[0].numpy(), atol=1e-5)


def test_wrong_method_on_rl2_bundle_is_a_clear_error(rl2_bundle) -> None:  # type: ignore[no-untyped-def]
    b = load_bundle(rl2_bundle[0])
    with pytest.raises(UserError, match="pearl bundle"):
        resolve_method(b, "context")
    with pytest.raises(UserError, match="latent"):
        resolve_method(b, "latent-search")
    with pytest.raises(UserError, match="--method rl2"):
        make_adapter(b, "fixed")  # no feed-forward policy: points to rl2
