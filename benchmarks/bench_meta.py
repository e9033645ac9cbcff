"""Cost of the gradient and recurrent meta-RL methods: time per meta-iteration, peak memory, and
the wall time of one adaptation step from 3 recorded rollouts.

    robot-meta bench meta --robot cartpole --json
    python benchmarks/bench_meta.py --robot arm2 --json

In one run, for each method (maml, fomaml, reptile, rl2; the robot's bundled launch files):
* ``iteration_s``: median wall time of one meta-iteration (collection + update), after one
  warm-up iteration, over ``--iterations``; ``steps_per_iteration`` and ``sps`` with it;
* ``peak_rss_mb``: peak resident memory of a fresh process that builds the method and runs
  those iterations (each method runs in its own child process, so the peaks do not mix);
* for the gradient methods, from 3 rollouts of one task recorded with the meta-policy:
  - ``adapt_step_s``: the deployment adaptation step theta' = adapt(theta, rollouts) (median);
  - ``meta_gradient_s``: one task's meta-gradient through that step: second order for maml
    (create_graph=True), first order for fomaml, and for reptile the k-step displacement;
  - ``robot_adapt_s``: the on-robot path after a rollout, :class:`GradientAdapter.end`: the
    torch step from every rollout so far, then theta' written as a verified adapted bundle (the
    exporter's ONNX export, checker and parity, and the bundle writer), with torque off; it
    runs once per adaptation rollout, not per step.
The target is ``adapt_step_s`` <= 2 s for every gradient method on this CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_meta.launch.bench_cli import Done, add_methods_option, bench_main, split_methods

if TYPE_CHECKING:
    from collections.abc import Callable

    from robot_meta.learn.adaptation import Rollouts
    from robot_meta.learn.algorithms.maml import MAML
    from robot_meta.learn.config import TrainConfig
    from robot_meta.sim.env_protocol import VecEnvLike

METHODS = ("maml", "fomaml", "reptile", "rl2")
FAMILY = {"cartpole": "all", "arm2": "payload"}


def _rollouts(algo: MAML, env: VecEnvLike) -> Rollouts:
    """3 rollouts of one task with the meta-policy theta (sampled actions), as recorded data."""
    import numpy as np
    import torch

    from robot_meta.learn.adaptation import Rollouts, stack_params
    from robot_meta.sim.randomize import sample_params

    algo.start_segment(env, env.reset(seed=5), np.random.default_rng(5), torch.Generator().manual_seed(5))
    P = sample_params(env.robot, env.ranges, np.random.default_rng(6), 1)
    env.set_params(slice(None), np.repeat(P, env.num_envs, axis=0))
    theta = {k: v.detach() for k, v in algo.theta().items()}
    d = algo.collect(env, stack_params([theta] * algo.M))
    s = slice(0, 3)
    return Rollouts(d["obs"][s], d["actions"][s], d["rewards"][s], d["mask"][s], d["logp"][s])


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def measure(launch: str, iterations: int, repeats: int) -> dict[str, Any]:
    """One method, in this process (the parent runs it in a child for a clean peak RSS)."""
    import numpy as np
    import torch

    from robot_meta.learn.algorithms.maml import MAML
    from robot_meta.learn.config import GRADIENT_METHODS, load_config
    from robot_meta.learn.trainer import build_algorithm, make_env

    cfg = load_config(launch)
    torch.set_num_threads(max(1, cfg.run.torch_threads))
    algo = build_algorithm(cfg)
    env = make_env(cfg, algo, seed=1)
    algo.start_segment(env, env.reset(seed=1), np.random.default_rng(0), torch.Generator().manual_seed(0))
    times, steps = [], 0
    for i in range(iterations + 1):
        t0 = time.perf_counter()
        m = algo.iterate(env, algo.phase_at(0.0))
        if i > 0:  # the first iteration warms up caches and allocators
            times.append(time.perf_counter() - t0)
            steps = int(m["steps"])
    it = statistics.median(times)
    out: dict[str, Any] = {
        "launch": launch,
        "num_envs": cfg.run.num_envs,
        "iteration_s": round(it, 3),
        "steps_per_iteration": steps,
        "sps": round(steps / it, 1),
    }
    if cfg.run.algorithm in GRADIENT_METHODS:
        assert isinstance(algo, MAML)  # FOMAML and Reptile subclass MAML
        ro = _rollouts(algo, env)
        rule = algo.rule()
        theta = {k: v.detach() for k, v in algo.theta().items()}
        out["adapt_step_s"] = round(_median_time(lambda: rule.adapt(theta, ro), repeats), 4)

        def meta_grad() -> None:
            live = algo.theta()
            adapted = algo.adapt_task(rule, live, ro, cfg.run.algorithm != "reptile")
            if cfg.run.algorithm == "reptile":
                return  # Reptile's meta-update is the displacement theta' - theta itself
            loss = torch.stack([(v * v).sum() for v in adapted.values()]).sum()  # any scalar of theta'
            torch.autograd.grad(loss, list(live.values()), allow_unused=True)

        out["meta_gradient_s"] = round(_median_time(meta_grad, repeats), 4)
        out["adapt_transitions"] = int(ro.mask.sum())
        out["robot_adapt_s"] = round(_robot_adapt(algo, cfg, ro), 3)
    env.close()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _robot_adapt(algo: MAML, cfg: TrainConfig, ro: Rollouts) -> float:
    """GradientAdapter.end() on the third recorded rollout (step + export + verification)."""
    import numpy as np

    from robot_meta.export.exporter import ExportInfo, export_bundle
    from robot_meta.runtime.adapters.gradient_adapter import GradientAdapter
    from robot_meta.runtime.bundle import load_bundle

    with tempfile.TemporaryDirectory(prefix="bench_meta_") as tmp:
        f = algo.export_fields()
        info = ExportInfo(
            cfg.run.robot, cfg.run.algorithm, cfg.run.task, str(cfg.run.family), 0, 0, extra=f["extra"]
        )
        export_bundle(algo.deployment_modules(), info, Path(tmp) / "b")
        ad = GradientAdapter(load_bundle(Path(tmp) / "b"))
        ad.out_dir = Path(tmp) / "adapted"
        ad.model()
        t = 0.0
        for i in range(3):
            n = int(ro.mask[i].sum())
            ad.begin("adapt")
            arrays = {
                "obs": ro.obs[i, :n].numpy(),
                "commanded": ro.actions[i, :n].numpy(),
                "reward": ro.rewards[i, :n].numpy().astype(np.float64),
            }
            t0 = time.perf_counter()
            ad.replay(arrays, float(arrays["reward"].sum()))
            t = time.perf_counter() - t0
        return t


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="cartpole", choices=sorted(FAMILY))
    add_methods_option(p, METHODS)
    p.add_argument("--iterations", type=int, default=3, help="timed meta-iterations per method")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each adaptation step")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure one launch file


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any] | Done:
    if args.child:
        print(json.dumps(measure(args.child, args.iterations, args.repeats)))
        return Done(0)
    methods, error = split_methods(args.methods, METHODS)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return Done(2)
    result: dict[str, Any] = {"robot": args.robot, "methods": {}}
    for m in methods:
        launch = f"{args.robot}-{FAMILY[args.robot]}-{m}"
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                launch,
                "--iterations",
                str(args.iterations),
                "--repeats",
                str(args.repeats),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"error: {launch} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return Done(1)
        result["methods"][m] = json.loads(proc.stdout.strip().splitlines()[-1])
    grads = [v["adapt_step_s"] for v in result["methods"].values() if "adapt_step_s" in v]
    result["max_adapt_step_s"] = max(grads) if grads else None
    result["adapt_step_target_s"] = 2.0
    return result


def _text(result: dict[str, Any]) -> None:
    for m, v in result["methods"].items():
        extra = (
            f", adapt step {v['adapt_step_s']:.3f} s, meta-gradient {v['meta_gradient_s']:.3f} s, "
            f"on-robot step + adapted bundle {v['robot_adapt_s']:.2f} s"
            if "adapt_step_s" in v
            else ""
        )
        print(
            f"{m:8s} {v['iteration_s']:.2f} s/iteration ({v['sps']:,.0f} steps/s), "
            f"peak {v['peak_rss_mb']:.0f} MB{extra}"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench meta`` calls it with its arguments)."""
    return bench_main("meta", __doc__, argv, _options, _measure, _text)


if __name__ == "__main__":
    sys.exit(main())
