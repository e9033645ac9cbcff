"""The adaptation rules over ONNX bundles (no robot): PEARL posterior, RMA history, latent search."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from robot_meta.errors import UserError
from robot_meta.runtime.adapters import HistoryAdapter, PosteriorAdapter, make_adapter, resolve_method
from robot_meta.runtime.adapters.latent_search import LatentSearch
from robot_meta.runtime.bundle import load_bundle


def _transitions(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, float, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 0.5, 12), rng.uniform(-1, 1, 2), float(rng.uniform()), rng.normal(0, 0.5, 12))
            for _ in range(n)]


def test_posterior_narrows_with_data_and_round_trips(bundles: dict[str, Any]) -> None:
    b = load_bundle(bundles["pearl"][0])
    ad = PosteriorAdapter(b)
    ad.begin("prior")
    assert np.all(ad.z == 0) and ad.uncertainty() == pytest.approx(1.0)
    stds = []
    for k in range(3):
        ad.learning = True  # an adaptation rollout
        ad.begin("adapt")
        for o, a, r, o2 in _transitions(40, k):
            ad.observe(o, a, r, o2)
        ad.end(1.0)
        stds.append(ad.uncertainty())
    # product of Gaussians: each rollout adds precision, so the posterior std only shrinks
    assert stds[0] < 1.0 and stds[2] < stds[1] < stds[0]
    ad.learning = False  # an evaluation rollout acts with the posterior but does not grow it
    ad.begin("adapt")
    for o, a, r, o2 in _transitions(40, 7):
        ad.observe(o, a, r, o2)
    ad.end(1.0)
    assert ad.uncertainty() == pytest.approx(stds[2])
    ad.begin("prior")  # a prior rollout neither uses nor changes the posterior
    ad.end(0.0)
    assert ad.uncertainty() == pytest.approx(stds[2])
    state = ad.state()
    assert state["transitions"] == 120
    fresh = PosteriorAdapter(b)
    fresh.load_state(state)
    fresh.begin("adapt")
    np.testing.assert_allclose(fresh.z, state["z"], rtol=1e-6)


def test_history_is_oldest_first_and_online(bundles: dict[str, Any]) -> None:
    b = load_bundle(bundles["rma"][0])
    ad = HistoryAdapter(b)
    ad.begin("adapt")
    o = np.zeros(12)
    ad.act(o)
    np.testing.assert_allclose(ad.z, ad.z_prior, atol=1e-6)  # empty history at the start
    for k in range(3):
        ad.observe(o + k, np.full(2, 0.1 * k), 0.0, o)
    assert ad.hist[-1, 0] == 2 and ad.hist[-3, 0] == 0 and np.all(ad.hist[:-3] == 0)
    ad.act(o)
    assert not np.allclose(ad.z, ad.z_prior)  # z follows the history at every step
    ad.begin("prior")
    np.testing.assert_allclose(ad.z, ad.z_prior)
    assert np.all(ad.hist == 0)


def test_latent_search_climbs_a_return_landscape(bundles: dict[str, Any]) -> None:
    b = load_bundle(bundles["pearl"][0])
    z_star = np.linspace(-1.0, 1.0, b.manifest.latent_dim).astype(np.float32)
    ls = LatentSearch(b, rollouts=12, seed=3)
    first = None
    for _ in range(12):
        ls.begin("adapt")
        first = ls.z.copy() if first is None else first
        ls.end(-float(np.sum((ls.z - z_star) ** 2)))  # the "real return" of this candidate
    np.testing.assert_allclose(first, ls.m0)  # the zero-shot latent is candidate 0
    # 12 returns in 8-D: the elite mean moves well toward the optimum (it would move away if
    # the update ignored or inverted the returns)
    assert np.sum((ls.mean - z_star) ** 2) < 0.8 * np.sum((ls.m0 - z_star) ** 2)
    again = LatentSearch(b, rollouts=12, seed=3)
    again.begin("adapt")
    np.testing.assert_array_equal(again.z, first)  # seeded: a resumed session replays candidates
    ls.begin("adapt")  # the budget is spent: act with the search mean
    np.testing.assert_allclose(ls.z, ls.mean)


def test_method_resolution_names_what_is_missing(bundles: dict[str, Any]) -> None:
    pearl, rma, ppo = (load_bundle(bundles[m][0]) for m in ("pearl", "rma", "ppo"))
    assert resolve_method(pearl, "auto") == "context" and resolve_method(rma, "auto") == "rma"
    assert resolve_method(rma, "latent-search") == "latent-search"
    with pytest.raises(UserError, match="robust --baseline"):
        resolve_method(ppo, "auto")
    with pytest.raises(UserError, match="needs a maml, fomaml or reptile bundle"):
        resolve_method(pearl, "gradient")
    with pytest.raises(UserError, match="needs an rl2 bundle"):
        resolve_method(pearl, "rl2")
    with pytest.raises(UserError, match="needs a pearl bundle"):
        resolve_method(rma, "context")
    with pytest.raises(UserError, match="rollouts >= 5"):
        make_adapter(pearl, "latent-search", rollouts=3)
