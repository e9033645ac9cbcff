"""On-robot gradient adaptation over a MAML bundle: the same step as meta-training, an adapted
bundle that verifies and runs in onnxruntime, a state that ``run`` restores, and exact replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from robot_meta.runtime.adapters.gradient_adapter import GradientAdapter
from robot_meta.runtime.bundle import load_bundle


def run_rollout(ad: GradientAdapter, seed: int, T: int = 40) -> dict[str, np.ndarray]:
    """A synthetic adaptation rollout: observations near the normalizer's mean, reward favouring
    positive first actions (so the gradient step has a direction)."""
    rng = np.random.default_rng(seed)
    ad.learning = True
    ad.begin("adapt")
    obs, cmd, rew = [], [], []
    mean = np.asarray(ad.spec["obs_mean"])
    for _ in range(T):
        o = mean + rng.normal(0, 0.3, mean.shape)
        a = ad.act(o)
        r = float(np.clip(a[0], -1, 1))
        ad.observe(o, np.clip(a, -1, 1), r, o)
        obs.append(o)
        cmd.append(a)
        rew.append(r)
    ad.end(float(sum(rew)))
    return {"obs": np.array(obs), "commanded": np.array(cmd), "reward": np.array(rew)}


def test_adaptation_matches_the_training_rule_and_writes_a_verified_bundle(
    maml_bundle: tuple[Path, Any], tmp_path: Path
) -> None:
    from robot_meta.learn.adaptation import Rollouts, action_mean, log_prob, policy_params

    path, algo = maml_bundle
    ad = GradientAdapter(load_bundle(path), seed=1)
    ad.out_dir = tmp_path / "adapted"
    arrays = [run_rollout(ad, s) for s in range(3)]
    assert ad.adapted_bundle() == tmp_path / "adapted"  # written after each rollout (torque off)
    b = load_bundle(tmp_path / "adapted")  # hashes verified
    assert b.manifest.extra["adapted"]["rollouts"] == 3

    # The learn-side rule on the same data. Every rollout was sampled by theta (the inner
    # loop's exploration policy), so the behavior log-probs are theta's.
    theta = {k: v.detach() for k, v in policy_params(algo.ac).items()}
    rule = algo.rule()
    assert ad.model()[1].adapt_std is rule.adapt_std is False  # the manifest carries the flag
    params, logps = theta, []
    for j, arr in enumerate(arrays):
        o = torch.as_tensor(arr["obs"], dtype=torch.float32)[None]
        a = torch.as_tensor(arr["commanded"], dtype=torch.float32)[None]
        logps.append(log_prob(algo.ac, theta, o, a)[0].detach())
        seen = arrays[: j + 1]
        stack = lambda k, seen=seen: torch.stack([torch.as_tensor(x[k], dtype=torch.float32) for x in seen])  # noqa: E731
        ro = Rollouts(
            stack("obs"), stack("commanded"), stack("reward"), torch.ones(j + 1, 40), torch.stack(logps)
        )
        params = rule.adapt(theta, ro)
    probe = np.asarray(ad.spec["obs_mean"]) + np.random.default_rng(9).normal(
        0, 0.3, (16, len(ad.spec["obs_mean"]))
    )
    with torch.no_grad():
        want = torch.clamp(
            action_mean(algo.ac, params, torch.as_tensor(probe, dtype=torch.float32)), -1, 1
        ).numpy()
    np.testing.assert_allclose(b.policy.act(probe), want, atol=1e-5)
    assert np.abs(b.policy.act(probe) - load_bundle(path).policy.act(probe)).max() > 1e-4  # it moved

    # Evaluation rollouts act deterministically with the adapted policy (prior: with theta).
    ad.learning = False
    ad.begin("adapt")
    np.testing.assert_allclose(ad.act(probe[0]), b.policy.act(probe[0]))
    ad.begin("prior")
    np.testing.assert_allclose(ad.act(probe[0]), load_bundle(path).policy.act(probe[0]))

    # `run` restores the adapted policy from the saved state, with onnxruntime only.
    fresh = GradientAdapter(load_bundle(path))
    fresh.load_state(ad.state())
    fresh.begin("adapt")
    np.testing.assert_allclose(fresh.act(probe[0]), b.policy.act(probe[0]))

    # A resumed session replays the saved rollouts into the same adapted policy.
    replayed = GradientAdapter(load_bundle(path), seed=123)
    replayed.out_dir = tmp_path / "replayed"
    for arr in arrays:
        replayed.begin("adapt")
        replayed.replay(arr, float(arr["reward"].sum()))
    replayed.adapted_bundle()
    np.testing.assert_allclose(
        load_bundle(tmp_path / "replayed").policy.act(probe), b.policy.act(probe), atol=1e-6
    )


def test_a_bundle_that_adapts_the_output_bias_shifts_every_action_by_one_offset(tmp_path: Path) -> None:
    """The manifest's adapt_params reaches the robot: an output_bias bundle's adapted policy is the
    meta-policy plus one constant offset, and that offset is the training rule's."""
    from tests.bundle_fixtures import export_maml_bundle

    path, algo = export_maml_bundle(tmp_path / "maml_ob", adapt_params="output_bias")
    ad = GradientAdapter(load_bundle(path), seed=1)
    ad.out_dir = tmp_path / "adapted"
    assert ad.model()[1].moved == {"actor.4.bias"} == set(algo.rule().moved)
    for s in range(3):
        run_rollout(ad, s)
    probe = np.asarray(ad.spec["obs_mean"]) + np.random.default_rng(9).normal(
        0, 0.3, (16, len(ad.spec["obs_mean"]))
    )
    ad.adapted_bundle()
    before, after = load_bundle(path).policy.act(probe), load_bundle(tmp_path / "adapted").policy.act(probe)
    inside = (np.abs(before) < 0.9).all(1) & (np.abs(after) < 0.9).all(1)  # away from the +-1 clip
    assert inside.sum() >= 8
    shift = after[inside] - before[inside]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), atol=1e-5)
    assert np.abs(shift).max() > 1e-4


def test_a_bundle_without_an_adaptation_rule_is_refused(bundles: dict[str, Any]) -> None:
    from robot_meta.errors import UserError

    with pytest.raises(UserError, match="adaptation rule"):
        GradientAdapter(load_bundle(bundles["ppo"][0]))


def test_auto_picks_gradient_adaptation_for_a_maml_bundle(maml_bundle: tuple[Path, Any]) -> None:
    from robot_meta.runtime.adapters import make_adapter, resolve_method

    b = load_bundle(maml_bundle[0])
    assert resolve_method(b, "auto") == "gradient" == resolve_method(b, "gradient")
    assert isinstance(make_adapter(b, "gradient"), GradientAdapter)


def test_exploration_samples_from_theta(maml_bundle: tuple[Path, Any], tmp_path: Path) -> None:
    """Learning rollouts draw a ~ N(mu_theta, sigma_theta^2) whatever theta' is: the data the
    inner loop was meta-trained on, and the density the recorded behaviour log-prob scores."""
    path, _ = maml_bundle
    ad = GradientAdapter(load_bundle(path), seed=3)
    ad.out_dir = tmp_path / "adapted"
    from robot_meta.learn.adaptation import action_mean, policy_params

    theta = policy_params(ad.model()[0])
    ad._params = {k: v.detach().clone() for k, v in theta.items()}
    ad._params["log_std"] = torch.full_like(ad._params["log_std"], -3.0)  # an adapted sigma of 0.05
    o = np.asarray(ad.spec["obs_mean"])
    ad.learning = True
    ad.begin("adapt")
    draws = np.array([ad.act(o) for _ in range(400)])
    sigma = theta["log_std"].detach().exp().numpy()
    with torch.no_grad():
        mu = action_mean(ad.model()[0], theta, torch.as_tensor(o[None], dtype=torch.float32)).numpy()[0]
    assert np.allclose(draws.std(0), sigma, rtol=0.15)
    assert np.all(np.abs(draws.mean(0) - mu) < 4 * sigma / np.sqrt(400))


def test_a_non_finite_step_keeps_the_previous_policy(maml_bundle: tuple[Path, Any], tmp_path: Path) -> None:
    path, _ = maml_bundle
    ad = GradientAdapter(load_bundle(path), seed=1)
    ad.out_dir = tmp_path / "adapted"
    run_rollout(ad, 0)
    before = {k: v.clone() for k, v in ad._params.items()}
    ad.model()[1].lr = float("nan")  # any step is NaN
    with pytest.warns(RuntimeWarning, match="not finite"):
        run_rollout(ad, 1)
    assert all(torch.equal(before[k], ad._params[k]) for k in before)
    ad.adapted_bundle()
    assert load_bundle(tmp_path / "adapted").manifest.extra["adapted"]["rollouts"] == 1
