"""Does one adaptation step carry task information? The step-cosine diagnostic.

    robot-meta bench step-info runs/arm2-servo-cavia --json
    robot-meta bench step-info runs/cartpole-all-maml --tasks 32 --rollouts 3

For a trained gradient-method run (maml, fomaml, reptile: a policy-gradient step on the policy's
weights; cavia: a step on the context z under a prediction loss), draw ``--tasks`` tasks from the
run's training family. For each task, collect two independent batches of K = ``--rollouts``
rollouts with the meta-policy, as the robot would (different start states and noise), and take
the inner step from each: d_i^A = adapt(theta, batch A of task i) - theta, and d_i^B likewise
(over the parameters the step moves). Then

    same-task cosine   c_same_i  = cos(d_i^A, d_i^B)
    other-task cosine  c_other_i = mean_{j != i} cos(d_i^A, d_j^B)

A step that carries task information points the same way for two batches of one task and
differently for another task: c_same > c_other. The table gives both means with 95 % CIs over
tasks, and the paired difference c_same_i - c_other_i with its CI, the number the issue asks to
exclude 0. ``step_norm`` is the mean |d|.

The raw cosine misses two things a step can carry. A drift common to every task (z0 or theta
not at the centre of the tasks) makes all cosines alike, and a low-dimensional step (cavia's z
has 4) can carry the task in its *length* along one direction, where every cosine is 1. So the
benchmark also reports:
* ``centered``: the same cosines after subtracting the mean step over tasks and batches,
  d - mean_{i, batch} d, i.e. cosines of what varies between tasks;
* ``signal_fraction``: per task, 1 - ||d_i^A - d_i^B||^2 / mean_{j != i} ||d_i^A - d_j^B||^2,
  the part of the step's between-task differences that two batches of one task agree on (1: the
  step identifies the task; 0: it is noise), with its CI over tasks.
``carries_task_information`` is true when the centered difference's CI or the signal fraction's
lies above 0. Deterministic for ``--seed``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_meta.launch.bench_cli import bench_main

if TYPE_CHECKING:
    import numpy as np

    from robot_meta.learn.algorithms.maml import MAML
    from robot_meta.sim.env_protocol import VecEnvLike

METHODS = ("maml", "fomaml", "reptile", "cavia")


def steps(algo: MAML, env: VecEnvLike) -> np.ndarray:
    """The inner steps d_i (M, D) of the M tasks set on ``env``, from one fresh batch of rollouts
    per task collected with the meta-policy (each call starts new episodes of the same tasks)."""
    import numpy as np
    import torch

    from robot_meta.learn.adaptation import stack_params
    from robot_meta.learn.algorithms.cavia import CAVIA, transitions

    if isinstance(algo, CAVIA):
        z0 = algo.z0().detach().expand(algo.M, -1)
        ctx_data = algo.act_with(env, z0)
        ctx_rule = algo.context_rule(detach=True)
        return (ctx_rule.adapt(z0, transitions(ctx_data, algo.M, algo.R, algo.cfg.meta.action_history))
                - z0).numpy()
    theta = {k: v.detach() for k, v in algo.theta().items()}
    data = algo.collect(env, stack_params([theta] * algo.M))
    rule = algo.rule(detach=True)
    names = sorted(rule.moved)
    out = []
    for i in range(algo.M):
        adapted = rule.adapt(theta, algo.task_rollouts(data, i))
        out.append(torch.cat([(adapted[k] - theta[k]).reshape(-1) for k in names]).detach().numpy())
    return np.stack(out)


def signal_fraction(a: Any, b: Any) -> Any:
    """Per task i: 1 - ||a_i - b_i||^2 / mean_{j != i} ||a_i - b_j||^2."""
    import numpy as np

    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # (M, M)
    M = len(d2)
    within = np.diag(d2).copy()
    across = (d2.sum(1) - within) / (M - 1)
    return 1.0 - within / np.maximum(across, 1e-24)


def cosines(a: Any, b: Any) -> tuple[Any, Any]:
    """Per task i: cos(a_i, b_i) and mean_{j != i} cos(a_i, b_j)."""
    import numpy as np

    na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    c = na @ nb.T
    M = len(c)
    same = np.diag(c).copy()
    other = (c.sum(1) - same) / (M - 1)
    return same, other


def measure(run: Path, tasks: int, rollouts: int, seed: int) -> dict[str, Any]:
    """The diagnostic for one run directory."""
    import numpy as np

    from robot_meta.errors import UserError
    from robot_meta.learn.algorithms.maml import MAML
    from robot_meta.learn.evaluate import ci95, load_run
    from robot_meta.learn.trainer import make_env
    from robot_meta.sim.randomize import sample_params

    cfg, algo = load_run(run)
    if cfg.run.algorithm not in METHODS or not isinstance(algo, MAML):  # cavia, Reptile subclass MAML
        raise UserError(f"{run}: a {cfg.run.algorithm} run; step-info measures the inner step of "
                        f"{', '.join(METHODS)} runs")
    if tasks < 2:
        raise UserError(f"--tasks: need at least 2 tasks to compare, got {tasks}")
    cfg.meta.meta_batch, cfg.meta.inner_rollouts = tasks, rollouts
    cfg.run.num_envs = tasks * rollouts
    algo.M, algo.R = tasks, rollouts
    import torch

    env = make_env(cfg, algo, seed=seed)
    algo.start_segment(env, env.reset(seed=seed), np.random.default_rng(seed),
                       torch.Generator().manual_seed(seed))
    # the tasks are set after the reset (a reset redraws them): both batches see the same tasks
    P = sample_params(env.robot, env.ranges, np.random.default_rng(seed), tasks)
    env.set_params(slice(None), np.repeat(P, rollouts, axis=0))
    a = steps(algo, env)
    b = steps(algo, env)
    if not np.array_equal(env.params, np.repeat(P, rollouts, axis=0)):
        raise RuntimeError("the env redrew the tasks between the two batches")
    env.close()
    same, other = cosines(a, b)
    mean_step = np.concatenate([a, b]).mean(0)
    c_same, c_other = cosines(a - mean_step, b - mean_step)

    def c(x: Any) -> dict[str, Any]:
        r = ci95(np.asarray(x))
        return {"mean": round(r["mean"], 4), "ci95": [round(v, 4) for v in r["ci95"]]}

    diff, c_diff, sig = c(same - other), c(c_same - c_other), c(signal_fraction(a, b))
    return {
        "run": str(run),
        "method": cfg.run.algorithm,
        "robot": cfg.run.robot,
        "family": str(cfg.run.family),
        "tasks": tasks,
        "rollouts": rollouts,
        "dims": int(a.shape[1]),
        "same_task_cosine": c(same),
        "other_task_cosine": c(other),
        "same_minus_other": diff,
        "centered": {"same_task_cosine": c(c_same), "other_task_cosine": c(c_other),
                     "same_minus_other": c_diff},
        "signal_fraction": sig,
        "carries_task_information": bool(c_diff["ci95"][0] > 0 or sig["ci95"][0] > 0),
        "step_norm": round(float(np.linalg.norm(np.concatenate([a, b]), axis=1).mean()), 6),
    }


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="trained run directories (maml, fomaml, reptile or cavia)")
    p.add_argument("--tasks", type=int, default=32, help="tasks drawn from the training family (default 32)")
    p.add_argument("--rollouts", type=int, default=3, help="rollouts per batch, K (default 3)")
    p.add_argument("--seed", type=int, default=0)


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> Any:
    results = [measure(Path(r), args.tasks, args.rollouts, args.seed) for r in args.runs]
    return results[0] if args.json and len(results) == 1 else results


def _text(results: list[dict[str, Any]]) -> None:
    print("| run | method | same-task cos | other-task cos | same - other | centered same - other "
          "| signal fraction | carries info | |d| |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        f = lambda x: f"{x['mean']:+.3f} [{x['ci95'][0]:+.3f}, {x['ci95'][1]:+.3f}]"  # noqa: E731
        print(f"| {r['run']} | {r['method']} | {f(r['same_task_cosine'])} | {f(r['other_task_cosine'])} | "
              f"{f(r['same_minus_other'])} | {f(r['centered']['same_minus_other'])} | "
              f"{f(r['signal_fraction'])} | {'yes' if r['carries_task_information'] else 'no'} | "
              f"{r['step_norm']:.3g} |")


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench step-info`` calls it with its arguments)."""
    return bench_main("step-info", __doc__, argv, _options, _measure, _text, json_help=None)


if __name__ == "__main__":
    sys.exit(main())
