"""``robot-meta eval``: the adaptation table of a trained run."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _rollouts(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated counts like 1,3,5, got {text!r}") from None
    if not ks or ks[0] <= 0:
        raise argparse.ArgumentTypeError("rollout counts must be positive, e.g. 1,3,5")
    return ks


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "eval", help="adaptation table of a trained run (sim and PyBullet twin)",
        description="Evaluate a run: returns of the robust baseline, zero-shot, adapted after k "
                    "rollouts, and oracle, on held-out in-distribution tasks, OOD tasks and twin "
                    "parameter files. Writes eval.json and eval.png into the run dir.")
    p.add_argument("run_dir", help="a run directory written by robot-meta train")
    p.add_argument("--baseline", help="run dir of the robust (ppo) baseline, for the robust column")
    p.add_argument("--twin", action="append", default=[], metavar="PARAMS.toml",
                   help="a twin parameter file (repeatable): adds the setting twin:<file stem>")
    p.add_argument("--rollouts", type=_rollouts, help="adaptation rollout counts (default 1,3,5)")
    p.add_argument("--tasks", type=int, help="held-out tasks per sim setting (default from the run)")
    p.add_argument("--twin-trials", type=int, help="independent trials per twin file (default 2)")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (tasks, start states)")
    p.add_argument("--no-sim", action="store_true", help="skip in_dist and ood (twin only)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def _fmt(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    return f"{c['mean']:7.1f} [{c['ci95'][0]:.1f}, {c['ci95'][1]:.1f}]"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robot_meta.errors import UserError
    from robot_meta.learn.evaluate import evaluate_run

    if args.tasks is not None and args.tasks <= 0:
        raise UserError("--tasks must be > 0")
    if args.twin_trials is not None and args.twin_trials <= 0:
        raise UserError("--twin-trials must be > 0")
    for t in args.twin:
        if not Path(t).is_file():
            raise UserError(f"--twin {t}: no such file")
    settings = () if args.no_sim else ("in_dist", "ood")
    if not settings and not args.twin:
        raise UserError("--no-sim with no --twin: nothing to evaluate")
    table = evaluate_run(args.run_dir, baseline_dir=args.baseline, twins=args.twin,
                         rollouts=args.rollouts, tasks=args.tasks, seed=args.seed, settings=settings,
                         twin_trials=args.twin_trials)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for name, s in table.items():
        print(f"\n{name} (n={s['n_tasks']})")
        print(f"  robust     {_fmt(s['robust'])}")
        print(f"  zero_shot  {_fmt(s['zero_shot'])}")
        for k, c in s["adapted"].items():
            gap = s["gap_closed"][k]
            print(f"  adapted[{k}] {_fmt(c)}  frac_oracle {s['frac_oracle'][k]:.3f}  gap_closed "
                  f"{'-' if gap is None else f'{gap:.3f}'}")
        print(f"  oracle     {_fmt(s['oracle'])}")
    print(f"\nwrote {Path(args.run_dir) / 'eval.json'} and eval.png")
    return 0
