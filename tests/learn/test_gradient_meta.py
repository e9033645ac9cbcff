"""MAML, first-order MAML and Reptile: the meta-gradient against finite differences, the first-order
approximation, the Reptile update, the standalone adaptation step, and short learning runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robot_meta.learn.adaptation import GradientAdaptation, Rollouts, advantages, log_prob, policy_params
from robot_meta.learn.algorithms.base import EnvSpec
from tests.run_fixtures import tiny_config


def tiny_problem(algorithm: str = "maml", seed: int = 0, meta_sgd: bool = False, adapt_params: str = "all"):
    """A 2-observation, 1-action policy in float64 with fixed pre- and post-update data."""
    from robot_meta.learn.algorithms import algorithm_class

    cfg = tiny_config(algorithm)
    cfg.model.hidden = [5]
    cfg.run.num_envs = cfg.meta.meta_batch * cfg.meta.inner_rollouts
    cfg.meta.inner_lr = 0.3
    cfg.meta.meta_sgd = meta_sgd
    cfg.meta.adapt_params = adapt_params
    algo = algorithm_class(algorithm)(cfg, EnvSpec("cartpole", 2, 1, 3, 10), torch.device("cpu"))
    algo.ac.double()
    algo.log_lr.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in algo.ac.parameters():  # O(1) weights, so the curvature term is not negligible
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.7)
    theta = {k: v.detach() for k, v in policy_params(algo.ac).items()}

    def rollouts() -> Rollouts:
        obs = torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
        acts = torch.randn(3, 6, 1, generator=g, dtype=torch.float64)
        mask = torch.ones(3, 6, dtype=torch.float64)
        mask[0, 4:] = 0.0
        rew = torch.randn(3, 6, generator=g, dtype=torch.float64)
        # the behavior log-probs of the policy that acted: the meta-parameters
        return Rollouts(obs, acts, rew, mask, log_prob(algo.ac, theta, obs, acts).detach())

    pre, post = rollouts(), rollouts()
    adv_post = advantages(post, 0.9)

    def outer(params: dict[str, torch.Tensor]) -> torch.Tensor:
        # L_out = -mean(log pi_theta'(a | o) A) on the post-update data
        return (
            -(log_prob(algo.ac, params, post.obs, post.actions) * adv_post * post.mask).sum()
            / post.mask.sum()
        )

    return algo, pre, outer


def meta_objective(algo, pre, outer, theta):
    return outer(algo.adapt_task(algo.rule(), theta, pre, True))


@pytest.mark.parametrize("adapt_params", ["all", "output_bias"])
def test_maml_meta_gradient_matches_finite_differences(adapt_params: str) -> None:
    algo, pre, outer = tiny_problem("maml", adapt_params=adapt_params)
    names = list(policy_params(algo.ac))
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in policy_params(algo.ac).items()}
    grads = torch.autograd.grad(meta_objective(algo, pre, outer, theta), [theta[k] for k in names])
    h = 1e-6
    worst = 0.0
    for k, g in zip(names, grads, strict=True):
        flat = theta[k].detach().reshape(-1)
        for j in range(flat.numel()):

            def at(delta: float, k: str = k, j: int = j) -> float:
                th = {n: v.detach().clone() for n, v in theta.items()}
                th[k].view(-1)[j] += delta
                return float(meta_objective(algo, pre, outer, th).detach())

            fd = (at(h) - at(-h)) / (2 * h)  # central difference
            worst = max(worst, abs(fd - float(g.reshape(-1)[j])))
    assert worst < 1e-6, worst


def test_fomaml_equals_maml_without_the_second_order_term() -> None:
    """grad_MAML = (I - H_in diag(alpha)) grad L_out(theta'), so grad_FOMAML = grad_MAML + H_in (alpha v),
    alpha the per-tensor inner rates (0 for log_std: adapt_std = false)."""
    algo, pre, outer = tiny_problem("maml")
    names = list(policy_params(algo.ac))
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in policy_params(algo.ac).items()}
    g_maml = torch.autograd.grad(meta_objective(algo, pre, outer, theta), [theta[k] for k in names])
    algo.first_order = True  # FOMAML's switch
    g_fo = torch.autograd.grad(meta_objective(algo, pre, outer, theta), [theta[k] for k in names])
    algo.first_order = False
    # v = grad L_out at theta' (computed independently), then the Hessian-vector product H_in v
    adapted = {k: v.detach().requires_grad_(True) for k, v in algo.rule().adapt(theta, pre).items()}
    v = torch.autograd.grad(outer(adapted), [adapted[k] for k in names])
    from robot_meta.learn.adaptation import inner_loss

    gin = torch.autograd.grad(
        inner_loss(algo.ac, theta, pre, advantages(pre, algo.cfg.meta.gamma)),
        [theta[k] for k in names],
        create_graph=True,
    )
    rule = algo.rule()
    weight = next(k for k in names if k != "log_std")
    assert rule.rate("log_std") == 0.0 and rule.rate(weight) == algo.cfg.meta.inner_lr
    hv = torch.autograd.grad(  # H_in (alpha v), by the symmetry of H_in
        sum(rule.rate(k) * (a * b).sum() for k, a, b in zip(names, gin, v, strict=True)),
        [theta[k] for k in names],
    )
    for gm, gf, hvk, vk in zip(g_maml, g_fo, hv, v, strict=True):
        torch.testing.assert_close(gf, vk, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gf, gm + hvk, rtol=1e-8, atol=1e-10)
    assert any(float(h.abs().max()) > 1e-3 for h in hv)  # the dropped term is not negligible here


def test_reptile_update_moves_toward_the_adapted_weights() -> None:
    algo, pre, _ = tiny_problem("reptile")
    theta0 = {k: v.detach().clone() for k, v in policy_params(algo.ac).items()}
    g = torch.Generator().manual_seed(3)
    adapted = [
        {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in theta0.items()}
        for _ in range(4)
    ]
    target = {k: torch.stack([a[k] for a in adapted]).mean(0) for k in theta0}
    eps = algo.cfg.meta.reptile_step
    algo.meta_update(adapted)
    for k, p in policy_params(algo.ac).items():
        # theta_new - theta_old = eps (mean_i theta'_i - theta_old): toward the adapted weights
        torch.testing.assert_close(p.detach() - theta0[k], eps * (target[k] - theta0[k]))
        assert (
            float((p.detach() - target[k]).norm()) < float((theta0[k] - target[k]).norm())
            or float((theta0[k] - target[k]).norm()) == 0.0
        )


def test_adapt_is_a_gradient_step_that_improves_the_inner_objective() -> None:
    """adapt(params, rollouts) on recorded data: one step on L_in lowers L_in (the standalone step
    the robot runs), and it does not modify the parameters it was given."""
    algo, pre, _ = tiny_problem("maml")
    theta = {k: v.detach().clone() for k, v in policy_params(algo.ac).items()}
    rule = GradientAdaptation(algo.ac, 0.01, steps=1, gamma=0.9)
    adapted = rule.adapt(theta, pre)
    from robot_meta.learn.adaptation import inner_loss

    adv = advantages(pre, 0.9)
    assert float(inner_loss(algo.ac, adapted, pre, adv)) < float(inner_loss(algo.ac, theta, pre, adv))
    for k, v in policy_params(algo.ac).items():
        assert torch.equal(v.detach(), theta[k])
        assert not torch.equal(adapted[k], theta[k])


@pytest.mark.parametrize("adapt_params, moved", [
    ("all", {"actor.0.weight", "actor.0.bias", "actor.2.weight", "actor.2.bias"}),
    ("output", {"actor.2.weight", "actor.2.bias"}),
    ("output_bias", {"actor.2.bias"}),
])
def test_adapt_params_moves_only_the_selected_tensors(adapt_params: str, moved: set[str]) -> None:
    """[meta].adapt_params restricts the inner step; with the output bias alone the adapted mean is
    the meta-policy's plus one constant action offset, on every observation."""
    algo, pre, _ = tiny_problem("maml", meta_sgd=True, adapt_params=adapt_params)
    assert set(algo.adapted_names()) == moved and set(algo.log_lr) == {k.replace(".", "__") for k in moved}
    theta = {k: v.detach().clone() for k, v in policy_params(algo.ac).items()}
    adapted = algo.rule().adapt(theta, pre)
    assert {k for k in theta if not torch.equal(adapted[k], theta[k])} == moved
    if adapt_params == "output_bias":
        from robot_meta.learn.adaptation import action_mean

        obs = torch.randn(7, 2, dtype=torch.float64)
        shift = action_mean(algo.ac, adapted, obs) - action_mean(algo.ac, theta, obs)
        torch.testing.assert_close(shift, shift[:1].expand_as(shift))
        assert float(shift.abs().max()) > 1e-6


def test_reptile_must_adapt_every_actor_tensor() -> None:
    from robot_meta.learn.config import ConfigError, config_from_dict

    base = {"run": {"robot": "arm2", "algorithm": "reptile", "num_envs": 96}}
    with pytest.raises(ConfigError, match=r"\[meta\]\.adapt_params: Reptile"):
        config_from_dict({**base, "meta": {"adapt_params": "output"}})
    with pytest.raises(ConfigError, match=r"\[meta\]\.adapt_params: must be one of all, output, output_bias"):
        config_from_dict({**base, "meta": {"adapt_params": "head"}})


def test_linear_baseline_advantages_are_normalized_and_masked() -> None:
    _, pre, _ = tiny_problem("maml")
    adv = advantages(pre, 0.9)
    m = pre.mask.bool()
    assert torch.all(adv[~m] == 0)
    assert abs(float(adv[m].mean())) < 1e-9
    assert abs(float(adv[m].std(unbiased=False)) - 1.0) < 1e-6


def test_fomaml_learns_its_inner_rates_to_first_order() -> None:
    """With meta_sgd, FOMAML's theta' is the plain adapted value, d theta'/d theta = I, and the
    rates get the gradient of L_out(theta - alpha g): for one inner step g does not depend on
    alpha, so that gradient is exact and matches finite differences in log alpha."""
    algo, pre, outer = tiny_problem("fomaml", meta_sgd=True)
    assert algo.cfg.meta.inner_steps == 1
    names = list(policy_params(algo.ac))
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in policy_params(algo.ac).items()}
    rule = algo.rule()
    adapted = algo.adapt_task(rule, theta, pre, True)
    plain = rule.adapt(theta, pre)
    for k in names:
        torch.testing.assert_close(adapted[k].detach(), plain[k], rtol=1e-12, atol=1e-14)
    keys = list(algo.log_lr)
    loss = outer(adapted)
    g_theta = torch.autograd.grad(loss, [theta[k] for k in names], retain_graph=True)
    g_rate = torch.autograd.grad(loss, [algo.log_lr[k] for k in keys])
    v = torch.autograd.grad(outer({k: plain[k].requires_grad_(True) for k in names}),
                            [plain[k] for k in names])
    for gt, vk in zip(g_theta, v, strict=True):  # first order: grad L_out at theta'
        torch.testing.assert_close(gt, vk, rtol=1e-10, atol=1e-12)
    h = 1e-6
    for key, g in zip(keys, g_rate, strict=True):
        def at(delta: float, key: str = key) -> float:
            with torch.no_grad():
                algo.log_lr[key] += delta
            val = float(outer(algo.rule().adapt(theta, pre)).detach())
            with torch.no_grad():
                algo.log_lr[key] -= delta
            return val

        fd = (at(h) - at(-h)) / (2 * h)
        assert abs(fd - float(g)) < 1e-6, (key, fd, float(g))
    assert any(abs(float(g)) > 1e-4 for g in g_rate)  # the rates do get a learning signal


def test_num_envs_must_match_the_meta_batch() -> None:
    from robot_meta.learn.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"num_envs.*meta_batch"):
        config_from_dict(
            {
                "run": {"robot": "cartpole", "algorithm": "maml", "num_envs": 10},
                "meta": {"meta_batch": 4, "inner_rollouts": 3},
            }
        )
    with pytest.raises(ConfigError, match="meta_sgd"):
        config_from_dict(
            {
                "run": {"robot": "cartpole", "algorithm": "reptile", "num_envs": 12},
                "meta": {"meta_batch": 4, "inner_rollouts": 3, "meta_sgd": True},
            }
        )


def adaptation_return(algo, seed: int = 5, tasks: int = 12, k: int = 3) -> float:
    """Mean return of the policy adapted on k exploration rollouts, on fixed held-out cartpole
    tasks."""
    from robot_meta.learn.evaluate import run_episode
    from robot_meta.sim import make_vec_env
    from robot_meta.sim.randomize import load_family, sample_params

    env = make_vec_env("cartpole", "all", tasks, seed, task="balance")
    env.set_tasks(
        sample_params(
            env.robot, load_family("cartpole", "all").ranges("train"), np.random.default_rng(seed), tasks
        )
    )
    agent = algo.agent(tasks)
    agent.reset_task()
    for j in range(k):
        run_episode(env, agent, agent.explore_mode, seed + j)
    return float(run_episode(env, agent, "adapt", seed + k).mean())


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_short_training_improves_post_adaptation_return(tmp_path: Path, algorithm: str) -> None:
    from robot_meta.learn.evaluate import load_run
    from robot_meta.learn.trainer import Trainer, build_algorithm

    cfg = tiny_config(algorithm)
    cfg.model.hidden = [32, 32]
    cfg.meta.meta_batch, cfg.meta.inner_rollouts = 16, 2
    cfg.run.num_envs = 32
    cfg.run.steps = 32 * 250 * 2 * 16  # 16 MAML iterations (32 for Reptile: pre-update only)
    cfg.ppo.lr, cfg.ppo.max_lr = 1e-3, 3e-3  # pinned here, independent of the launch files
    before = adaptation_return(build_algorithm(cfg))
    Trainer(cfg, tmp_path / "run", progress=False, tensorboard=False).train()
    after = adaptation_return(load_run(tmp_path / "run")[1])
    # cartpole balance, return of the 4th rollout (max 250): an untrained policy drops the pole.
    # The evaluation is deterministic (fixed tasks and seeds), so an unchanged policy gives +0.
    # Measured on the servo-limited cart (XM430-W210 on a 10 cm drum, issue 20): maml 99.4 ->
    # 119.1, fomaml 99.4 -> 120.2, reptile 118.1 -> 123.8 (its untrained initialisation already
    # scores 118: the speed-limited cart with 0.41 kg of rotor drops the pole more slowly; +9.4
    # with 4x the budget). On the ideal 10 N cart all three gained +24..+30.
    print(f"{algorithm}: post-adaptation return {before:.1f} -> {after:.1f}")
    assert after > before + (4.0 if algorithm == "reptile" else 12.0), (before, after)


def test_batched_adaptation_equals_per_task_adaptation() -> None:
    """adapt_tasks (vmap over tasks, used by the evaluator) = rule.adapt on each task."""
    from robot_meta.learn.adaptation import adapt_tasks, stack_params

    algo, pre, _ = tiny_problem("maml")
    _, pre2, _ = tiny_problem("maml", seed=1)
    rule = GradientAdaptation(algo.ac, 0.2, steps=2, gamma=0.9)
    theta = {k: v.detach() for k, v in policy_params(algo.ac).items()}
    both = Rollouts(*(torch.stack([getattr(pre, f), getattr(pre2, f)]) for f in
                      ("obs", "actions", "rewards", "mask", "logp")))
    got = adapt_tasks(rule, stack_params([theta, theta]), both)
    for i, ro in enumerate((pre, pre2)):
        want = rule.adapt(theta, ro)
        for k in want:
            torch.testing.assert_close(got[k][i], want[k], rtol=1e-9, atol=1e-11)


def test_gradient_agent_learns_only_from_exploration_rollouts() -> None:
    """The MAML family adapts on rollouts of the pre-update policy theta, as its inner loop
    was meta-trained: ``explore`` rollouts act with theta and are recorded; ``adapt`` rollouts
    act with theta' and are not."""
    from robot_meta.learn.algorithms import algorithm_class
    from robot_meta.learn.evaluate import run_episode
    from robot_meta.sim import make_vec_env

    cfg = tiny_config("fomaml")
    cfg.meta.meta_batch, cfg.meta.inner_rollouts = 4, 1
    cfg.run.num_envs = 4
    env = make_vec_env("cartpole", "all", 4, 0, task="balance")
    spec = EnvSpec("cartpole", env.obs_dim, env.action_dim, env.factor_dim, env.episode_steps)
    agent = algorithm_class("fomaml")(cfg, spec, torch.device("cpu")).agent(4)
    assert agent.explore_mode == "explore"

    def acts_with_theta() -> bool:
        return all(torch.equal(agent.params[k], torch.stack([agent.theta[k]] * 4)) for k in agent.theta)

    agent.reset_task()
    run_episode(env, agent, "adapt", 1)
    assert agent.episodes == [] and acts_with_theta()
    run_episode(env, agent, "explore", 2)
    assert len(agent.episodes) == 1 and acts_with_theta()
    run_episode(env, agent, "adapt", 3)
    assert len(agent.episodes) == 1 and not acts_with_theta()  # theta' from the exploration
    run_episode(env, agent, "explore", 4)
    assert len(agent.episodes) == 2 and acts_with_theta()

    # exploration samples around the mean; scored rollouts act with the mean, as the robot does
    obs = env.reset(seed=5)
    for mode, same in (("explore", False), ("adapt", True), ("prior", True)):
        agent.begin_episode(mode)
        a1, a2 = agent.act(obs, env.factors), agent.act(obs, env.factors)
        assert np.array_equal(a1, a2) == same, mode
    agent.end_episode()
    env.close()
