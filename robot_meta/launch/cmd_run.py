"""``robot-meta run --robot R [--duration S]``: run the deployed, adapted policy."""

from __future__ import annotations

import argparse
import json
import sys

from robot_meta.launch.robot_args import add_calibration_arg, add_robot_args, load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run", help="run the deployed (adapted) policy in a fixed-rate control loop",
        description="Run the bundle installed by `robot-meta flash`, conditioned on the state saved "
                    "by `robot-meta adapt` (zero-shot if there is none), at the bundle's control "
                    "rate with deadline monitoring (overruns skip cycles, never catch up) and the "
                    "hardware safety layer. Episodes of the bundle's task follow each other, each "
                    "after a motor-driven reset. Ctrl-C turns torque off.")
    add_robot_args(p)
    add_calibration_arg(p)
    p.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    p.add_argument("--episode-steps", type=int, default=0,
                   help="control steps per episode (default: the task's episode length)")
    p.add_argument("--seed", type=int, default=0, help="seeds the task draws (e.g. reach targets)")
    p.add_argument("--zero-shot", action="store_true", help="ignore the adapted state")
    p.add_argument("--overspeed-factor", type=float, default=2.0,
                   help="safety trip at this times the velocity limit (0 disables; emulator only)")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_meta.runtime.deployed_run import RunSpec, run_deployed

    cfg = load_config(args)
    tty = sys.stderr.isatty()
    shown = []  # a progress line is on the terminal (ended with a newline at the end)

    def progress(line: str) -> None:
        shown.append(True)
        print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    spec = RunSpec(duration=args.duration, episode_steps=args.episode_steps, seed=args.seed,
                   zero_shot=args.zero_shot, overspeed_factor=args.overspeed_factor or None,
                   calibration=not args.no_calibration, robot_arg=str(args.robot))
    try:
        out = run_deployed(cfg, spec, progress=progress, note=lambda msg: print(msg, file=sys.stderr))
    finally:
        if tty and shown:
            print(file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    else:
        d = out["deadlines"]
        returns = out["returns"]
        print(f"ran {out['bundle']} ({out['method']}{', adapted' if out['adapted'] else ', zero-shot'}): "
              f"{len(returns)} episode(s), returns {', '.join(f'{r:.1f}' for r in returns)}; deadlines "
              f"met {d['met']}/{d['cycles']} ({100 * d['fraction_met']:.3f} %), {d['skipped']} skipped")
    return 0
