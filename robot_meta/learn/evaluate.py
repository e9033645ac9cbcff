"""The adaptation table: robust, zero-shot, adapted after k rollouts, and oracle returns, on
held-out in-distribution tasks, OOD tasks and PyBullet twin parameter files."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.errors import UserError
from robot_meta.learn.agent import Agent
from robot_meta.learn.algorithms.base import Algorithm
from robot_meta.learn.checkpoint import FILENAME, load_checkpoint
from robot_meta.learn.config import TrainConfig, load_config
from robot_meta.learn.trainer import CONFIG_NAME, build_algorithm, derive_seed
from robot_meta.sim.robots.robot_def import get_robot

if TYPE_CHECKING:
    from robot_meta.sim.env_protocol import VecEnvLike

# Student-t 97.5 % quantiles for small samples (df = n - 1); the normal 1.96 beyond.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def ci95(x: np.ndarray) -> dict[str, Any]:
    """{"mean": m, "ci95": [lo, hi]}: m -/+ t_{0.975, n-1} s / sqrt(n) (a point when n = 1)."""
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return {"mean": m, "ci95": [m, m]}
    df = len(x) - 1
    t = next((v for k, v in sorted(_T975.items()) if k >= df), 1.96) if df <= 30 else 1.96
    h = t * float(x.std(ddof=1)) / math.sqrt(len(x))
    return {"mean": m, "ci95": [m - h, m + h]}


def load_run(run_dir: str | Path, device: torch.device | None = None) -> tuple[TrainConfig, Algorithm]:
    """The resolved config and the trained algorithm of a run directory."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_NAME
    if not cfg_path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG_NAME}); train one with robot-meta train")
    cfg = load_config(cfg_path)
    ck = load_checkpoint(run_dir / FILENAME, algorithm=cfg.run.algorithm, robot=cfg.run.robot)
    algo = build_algorithm(cfg, device or torch.device("cpu"))
    algo.load_state_dict(ck["state"])
    return cfg, algo


def run_episode(env: VecEnvLike, agent: Agent, mode: str, seed: int,
                overloads: list[np.ndarray] | None = None) -> np.ndarray:
    """One rollout per env from a fresh reset (same seed -> same start states and noise), acting
    with ``agent`` in ``mode``; each env's transitions count until its episode ends. Returns the
    episode returns (N,); appends to ``overloads``, when given, which envs' episodes a servo's
    overload shutdown ended (N,) bool."""
    obs = env.reset(seed=seed)
    agent.seed_episode(seed)
    agent.begin_episode(mode)
    N = obs.shape[0]
    active = np.ones(N, dtype=bool)
    ret = np.zeros(N)
    tripped = np.zeros(N, dtype=bool)
    for _ in range(env.episode_steps):
        priv = env.factors
        action = agent.act(obs, priv)
        next_obs, rew, _term, _trunc, info = env.step(action)
        done = info["done"]
        trans_next = next_obs
        if done.any():
            trans_next = next_obs.copy()
            trans_next[done] = info["final_obs"][done]
        agent.observe(obs, np.clip(action, -1.0, 1.0), rew, trans_next, active)
        ret += rew * active
        if "overload" in info:
            tripped |= info["overload"] & active
        active &= ~done
        obs = next_obs
        if not active.any():
            break
    agent.end_episode()
    if overloads is not None:
        overloads.append(tripped)
    return ret


@dataclass
class SettingResult:
    """Per-task returns of one setting."""

    robust: np.ndarray | None
    zero_shot: np.ndarray
    adapted: dict[int, np.ndarray]
    oracle: np.ndarray
    uncertainty: dict[int, float] | None = None
    zero_shot_paired: dict[int, np.ndarray] | None = None  # zero-shot with rollout k's seed
    overload: dict[str, float] | None = None  # per column, the fraction of episodes overloaded


def evaluate_setting(env: VecEnvLike, agent: Agent, baseline: Agent | None, rollouts: Sequence[int],
                     seed: int) -> SettingResult:
    """All columns on the env's fixed tasks. Rollout j of the adaptation sequence uses the
    state that rollouts 0..j-1 produced, so adapted[k] is the return of rollout k. For agents
    that learn from separate exploration rollouts (``explore_mode == "explore"``: the MAML
    family), the scored rollouts teach nothing: adapted[k] is the return, on rollout k's seed,
    of the policy adapted on k exploration rollouts, run in between on seeds of their own.

    The gain adapted[k] - zero-shot is paired (common random numbers): for each k a zero-shot
    rollout runs with rollout k's seed (same start states, sensor noise and agent noise), so the
    difference measures the adaptation, not the luck of two different rollouts."""
    kmax = max(rollouts)
    ol: dict[str, list[np.ndarray]] = {"robust": [], "zero_shot": [], "adapted": [], "oracle": []}
    s = lambda j: derive_seed(seed, j)  # noqa: E731 -- rollout j of every column shares start states
    robust = None
    if baseline is not None:
        baseline.reset_task()
        robust = run_episode(env, baseline, "prior", s(0), ol["robust"])
    agent.reset_task()
    zero = run_episode(env, agent, "prior", s(0), ol["zero_shot"])
    paired = {}
    for k in rollouts:
        agent.reset_task()
        paired[k] = zero if k == 0 else run_episode(env, agent, "prior", s(k))
    agent.reset_task()
    seq, unc = [], {}
    separate = agent.explore_mode != "adapt"
    for j in range(kmax + 1):
        u = agent.uncertainty()
        if u is not None:
            unc[j] = float(np.mean(u))
        seq.append(run_episode(env, agent, "adapt", s(j), ol["adapted"]))
        if separate and j < kmax:
            run_episode(env, agent, agent.explore_mode, s(200 + j))
    agent.reset_task()
    for j in range(agent.oracle_warmup):
        run_episode(env, agent, agent.explore_mode, s(100 + j))
    oracle = run_episode(env, agent, "oracle", s(0), ol["oracle"])
    overload = {col: float(flags[0].mean()) for col, flags in ol.items()
                if flags and col != "adapted"}
    overload.update({f"adapted_{k}": float(ol["adapted"][k].mean()) for k in rollouts})
    return SettingResult(robust, zero, {k: seq[k] for k in rollouts}, oracle, unc or None, paired,
                         overload)


def summarize(r: SettingResult) -> dict[str, Any]:
    """The JSON block of one setting (keys as specified by the eval command)."""
    ks = sorted(r.adapted)
    oracle_m = float(r.oracle.mean())
    robust_m = None if r.robust is None else float(r.robust.mean())
    out: dict[str, Any] = {
        "robust": None if r.robust is None else ci95(r.robust),
        "zero_shot": ci95(r.zero_shot),
        "adapted": {str(k): ci95(r.adapted[k]) for k in ks},
        "oracle": ci95(r.oracle),
        # paired with the zero-shot rollout of the same seed when available
        "gain": {str(k): ci95(r.adapted[k] - (r.zero_shot_paired or {}).get(k, r.zero_shot)) for k in ks},
        "gap_closed": {}, "frac_oracle": {},
        "n_tasks": len(r.zero_shot),
        # the fraction of each column's episodes that a servo's overload shutdown ended
        "overload_episodes": r.overload or {},
    }
    for k in ks:
        a = float(r.adapted[k].mean())
        # gap_closed = (adapted - robust) / (oracle - robust);  frac_oracle = adapted / oracle
        gap = None
        if robust_m is not None and abs(oracle_m - robust_m) > 1e-9:
            gap = (a - robust_m) / (oracle_m - robust_m)
        out["gap_closed"][str(k)] = gap
        out["frac_oracle"][str(k)] = a / oracle_m if oracle_m != 0 else None
    return out


def evaluate_run(run_dir: str | Path, *, baseline_dir: str | Path | None = None,
                 twins: Sequence[str | Path] = (), rollouts: Sequence[int] | None = None,
                 tasks: int | None = None, seed: int = 12345, settings: Sequence[str] = ("in_dist", "ood"),
                 twin_trials: int | None = None, plot: bool = True) -> dict[str, Any]:
    """Evaluate a run; writes ``eval.json``, ``eval_uncertainty.json`` (PEARL) and ``eval.png``
    into the run dir, and returns the table."""
    from robot_meta.sim import make_twin_env, make_vec_env
    from robot_meta.sim.randomize import load_family, load_params_file, sample_params

    run_dir = Path(run_dir)
    cfg, algo = load_run(run_dir)
    if cfg.run.torch_threads:
        # many small batches: extra intra-op threads only contend (as in training)
        torch.set_num_threads(cfg.run.torch_threads)
    base_agent_src = None
    if baseline_dir is not None:
        bcfg, balgo = load_run(baseline_dir)
        if bcfg.run.robot != cfg.run.robot:
            raise UserError(f"--baseline {baseline_dir} is a {bcfg.run.robot} run, but {run_dir} is "
                            f"{cfg.run.robot}")
        base_agent_src = balgo
    elif cfg.run.algorithm == "ppo":
        base_agent_src = algo  # a robust run is its own baseline
    rollouts = sorted(set(rollouts or cfg.eval.rollouts))
    if any(k <= 0 for k in rollouts):
        raise UserError("--rollouts: give positive counts, e.g. 1,3,5")
    n_tasks = tasks or cfg.eval.tasks
    trials = twin_trials or cfg.eval.twin_trials
    fam = load_family(cfg.run.robot, cfg.run.family)
    table: dict[str, Any] = {}
    uncert: dict[str, Any] = {}
    for i, split in enumerate(settings):
        split_name = "train" if split == "in_dist" else "ood"
        env0 = make_vec_env(cfg.run.robot, fam, 1, 0, task=cfg.run.task or None, nthread=0)
        rng = np.random.default_rng(derive_seed(seed, 10 + i))
        P = sample_params(env0.robot, fam.ranges(split_name), rng, n_tasks)
        env0.close()
        env = make_vec_env(cfg.run.robot, fam, n_tasks, seed, task=cfg.run.task or None, params=P)
        base = None if base_agent_src is None else base_agent_src.agent(n_tasks)
        res = evaluate_setting(env, algo.agent(n_tasks), base, rollouts, derive_seed(seed, 20 + i))
        env.close()
        table[split] = summarize(res)
        if res.uncertainty:
            uncert[split] = res.uncertainty
    for j, twin in enumerate(twins):
        rdef, p = load_params_file(twin)
        if rdef is not get_robot(cfg.run.robot):
            raise UserError(f"--twin {twin}: parameters for robot {rdef.name!r}, but the run is "
                            f"{cfg.run.robot!r}")
        env = make_twin_env(cfg.run.robot, np.asarray(p), task=cfg.run.task or None, num_envs=trials,
                            seed=seed)
        base = None if base_agent_src is None else base_agent_src.agent(trials)
        res = evaluate_setting(env, algo.agent(trials), base, rollouts, derive_seed(seed, 40 + j))
        env.close()
        key = f"twin:{Path(twin).stem}"
        table[key] = summarize(res)
        if res.uncertainty:
            uncert[key] = res.uncertainty
    (run_dir / "eval.json").write_text(json.dumps(table, indent=2) + "\n")
    if uncert:
        (run_dir / "eval_uncertainty.json").write_text(json.dumps(
            {"posterior_std_after_k_rollouts": uncert}, indent=2) + "\n")
    if plot:
        plot_table(table, run_dir / "eval.png", title=f"{cfg.run.name} ({cfg.run.algorithm})")
    return table


def plot_table(table: dict[str, Any], path: Path, title: str = "") -> None:
    """Return vs number of adaptation rollouts, one panel per setting, with reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(table)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (name, s) in zip(axes[0], table.items(), strict=True):
        ks = [int(k) for k in s["adapted"]]
        means = [s["adapted"][str(k)]["mean"] for k in ks]
        lo = [s["adapted"][str(k)]["ci95"][0] for k in ks]
        hi = [s["adapted"][str(k)]["ci95"][1] for k in ks]
        ax.plot([0, *ks], [s["zero_shot"]["mean"], *means], "o-", color="C0", label="adapted (0 = zero-shot)")
        ax.fill_between(ks, lo, hi, color="C0", alpha=0.2)
        ax.axhline(s["oracle"]["mean"], color="C2", ls="--", label="oracle")
        if s["robust"] is not None:
            ax.axhline(s["robust"]["mean"], color="C3", ls=":", label="robust")
        ax.set_title(f"{name} (n={s['n_tasks']})")
        ax.set_xlabel("adaptation rollouts k")
        ax.set_ylabel("episode return")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
