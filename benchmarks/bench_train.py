"""Training throughput against stable-baselines3, and time for RMA to reach 90 % of oracle.

    robot-meta bench train --robot cartpole --json
    python benchmarks/bench_train.py --robot cartpole --json

In one run:
* ``ours_sps``: env steps per second of our trainer (collection + PPO updates + logging), running
  the robot's bundled RMA launch file (teacher phase) for ``--seconds``;
* ``sb3_sps``: stable-baselines3 PPO with default settings on our Gymnasium adapter of the same
  env and task family, for ``--seconds``;
* ``ratio`` = ours_sps / sb3_sps;
* ``minutes_to_90pct_oracle``: RMA runs of increasing wall-clock budget (``--budgets``, minutes)
  on the robot's launch file, each evaluated on held-out in-distribution tasks; the first budget
  whose frac_oracle after 3 rollouts is >= 0.9 (null if none, or with ``--no-oracle``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from robot_meta.launch.bench_cli import Done, bench_main

LAUNCH = {"cartpole": "cartpole-all-rma", "arm2": "arm2-payload-rma"}


def ours_sps(launch: str, seconds: float, out: Path) -> dict[str, Any]:
    """Train the launch file for ``seconds`` and return steps/s (updates included)."""
    from robot_meta.learn.config import load_config
    from robot_meta.learn.trainer import Trainer

    cfg = load_config(launch)
    cfg.run.minutes = seconds / 60.0
    cfg.run.steps = 0
    cfg.rma.phase2_fraction = 0.0  # measure the PPO (teacher) phase throughout
    s = Trainer(cfg, out, progress=False, tensorboard=False).train()
    return {"steps": s["steps"], "seconds": s["minutes"] * 60, "sps": s["steps_per_second"],
            "num_envs": cfg.run.num_envs}


def sb3_sps(robot: str, family: str, task: str, seconds: float) -> dict[str, Any]:
    """stable-baselines3 PPO (defaults) on the Gymnasium adapter for ``seconds``."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from robot_meta.sim import make_gym_env

    torch.set_num_threads(1)  # SB3's own default on CPU is also effectively single-process

    class StopAfter(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            return time.perf_counter() - self.t0 < seconds

    env = make_gym_env(robot, family, seed=0, task=task or None)
    model = PPO("MlpPolicy", env, seed=0, verbose=0, device="cpu")
    cb = StopAfter()
    model.learn(total_timesteps=10**9, callback=cb)
    dt = time.perf_counter() - cb.t0
    return {"steps": int(model.num_timesteps), "seconds": dt, "sps": model.num_timesteps / dt}


def minutes_to_90(launch: str, budgets: list[float], root: Path, tasks: int) -> dict[str, Any]:
    """Train RMA with each budget and evaluate; the first budget reaching frac_oracle >= 0.9."""
    from robot_meta.learn.config import load_config
    from robot_meta.learn.evaluate import evaluate_run
    from robot_meta.learn.trainer import Trainer

    trials = []
    for m in budgets:
        cfg = load_config(launch)
        cfg.run.minutes, cfg.run.steps = m, 0
        out = root / f"rma_{m:g}min"
        s = Trainer(cfg, out, progress=False, tensorboard=False).train()
        t = evaluate_run(out, rollouts=[3], tasks=tasks, settings=("in_dist",), plot=False)
        frac = t["in_dist"]["frac_oracle"]["3"]
        trials.append({"budget_minutes": m, "train_minutes": s["minutes"], "frac_oracle_3": frac})
        if frac is not None and frac >= 0.9:
            return {"minutes": s["minutes"], "trials": trials}
    return {"minutes": None, "trials": trials}


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="cartpole", choices=sorted(LAUNCH))
    p.add_argument("--seconds", type=float, default=60.0, help="measuring time per trainer")
    p.add_argument("--budgets", default="2,4", help="RMA budgets in minutes for minutes_to_90pct_oracle")
    p.add_argument("--tasks", type=int, default=64, help="held-out tasks for the oracle check")
    p.add_argument("--no-oracle", action="store_true", help="skip minutes_to_90pct_oracle")


def _text(result: dict[str, Any]) -> str:
    return (f"ours {result['ours_sps']:,.0f} steps/s, SB3 PPO {result['sb3_sps']:,.0f} steps/s, "
            f"ratio {result['ratio']:.1f}x; minutes to 90% oracle (RMA): "
            f"{result['minutes_to_90pct_oracle']}")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any] | Done:
    try:
        budgets = [float(x) for x in args.budgets.split(",") if x.strip()]
    except ValueError:
        print(f"error: --budgets: expected minutes like 2,4, got {args.budgets!r}", file=sys.stderr)
        return Done(2)
    from robot_meta.learn.config import load_config

    launch = LAUNCH[args.robot]
    cfg = load_config(launch)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = Path(tmp)
        ours = ours_sps(launch, args.seconds, root / "ours")
        sb3 = sb3_sps(cfg.run.robot, cfg.run.family, cfg.run.task, args.seconds)
        result: dict[str, Any] = {
            "robot": args.robot, "launch": launch,
            "ours_sps": round(ours["sps"], 1), "sb3_sps": round(sb3["sps"], 1),
            "ratio": round(ours["sps"] / sb3["sps"], 2),
            "minutes_to_90pct_oracle": None,
            "details": {"ours": ours, "sb3": sb3},
        }
        if not args.no_oracle:
            m = minutes_to_90(launch, budgets, root, args.tasks)
            result["minutes_to_90pct_oracle"] = m["minutes"]
            result["details"]["oracle_trials"] = m["trials"]
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench train`` calls it with its arguments)."""
    return bench_main("train", __doc__, argv, _options, _measure, _text)


if __name__ == "__main__":
    sys.exit(main())
