"""``robot-meta adapt --robot R --rollouts K``: a few-shot adaptation session on the robot."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from robot_meta.launch.robot_args import add_calibration_arg, add_robot_args, load_config

if TYPE_CHECKING:
    from robot_meta.runtime.session import SessionResult


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "adapt", help="run a few-shot real-world adaptation session with the deployed bundle",
        description="Run K adaptation rollouts with the flashed bundle (each after a motor-driven "
                    "reset to the start state), update the adaptation after each, then evaluate "
                    "zero-shot (before) and adapted (after). Every rollout is saved atomically with "
                    "a journal: after a crash, --resume SESSION continues. The adapted state is "
                    "saved for `robot-meta run`; a Markdown report with plots is written into the "
                    "session directory.")
    add_robot_args(p)
    add_calibration_arg(p)
    p.add_argument("--rollouts", type=int, default=3, help="adaptation rollouts K (default 3)")
    p.add_argument("--method", default="auto",
                   choices=["auto", "context", "rma", "gradient", "context-step", "rl2", "latent-search",
                            "sysid"],
                   help="auto: the bundle's own (pearl -> context posterior, rma -> online, "
                        "rl2 -> the GRU state carried across rollouts, cavia -> context-step: a "
                        "gradient step on z under a dynamics loss); "
                        "latent-search: CEM over z scored by real returns (K >= 5); "
                        "sysid: identify the factors with mujoco.sysid from the K rollouts and "
                        "act with the teacher z = mu(e) (rma bundles, workstation stack)")
    p.add_argument("--eval-rollouts", type=int, default=1,
                   help="evaluation rollouts per column (before, after, oracle, robust; default 1)")
    p.add_argument("--episode-steps", type=int, default=0,
                   help="control steps per rollout (default: the task's episode length)")
    p.add_argument("--seed", type=int, default=0, help="seeds the task draws and the latent search")
    p.add_argument("--session", help="the session directory (default <deploy_dir>/sessions/<time>-<method>)")
    p.add_argument("--resume", metavar="SESSION",
                   help="continue an interrupted session (its settings come from its session.json)")
    p.add_argument("--oracle-params", metavar="PARAMS.toml",
                   help="emulator only: the true hidden parameters, for an oracle column")
    p.add_argument("--oracle-warmup", type=int, default=3,
                   help="PEARL oracle: rollouts whose posterior stands in for the oracle (default 3)")
    p.add_argument("--baseline", metavar="ROBUST_BUNDLE",
                   help="emulator only: a robust (ppo) bundle evaluated as a baseline column")
    p.add_argument("--overspeed-factor", type=float, default=2.0,
                   help="safety trip: torque off when a joint moves faster than this times its "
                        "velocity limit (default 2; 0 disables it, for the emulator only)")
    p.add_argument("--json", action="store_true",
                   help='print {"rollouts", "before", "after", "oracle", "robust", "session"}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_meta.errors import UserError
    from robot_meta.runtime.session import AdaptationSession, SessionSpec

    cfg = load_config(args)
    if args.resume and args.session:
        raise UserError("give either --resume SESSION or --session DIR, not both")
    spec = SessionSpec(method=args.method, rollouts=args.rollouts, eval_rollouts=args.eval_rollouts,
                       episode_steps=args.episode_steps, seed=args.seed,
                       oracle_params=args.oracle_params or "", oracle_warmup=args.oracle_warmup,
                       baseline=args.baseline or "", command=reproduce(args))

    def status(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    session = AdaptationSession(cfg, spec, session_dir=args.resume or args.session,
                                resume=bool(args.resume), status=status,
                                robot_kwargs={"overspeed_factor": args.overspeed_factor or None},
                                calibration=not args.no_calibration)
    status(f"session {session.store.root}: {session.method} on {cfg.robot} ({cfg.port}), "
           f"{len(session.plan)} rollouts planned")
    res = session.run()
    if args.json:
        print(json.dumps(res.public()))
        return 0
    print_table(res)
    return 0


def reproduce(args: argparse.Namespace) -> str:
    """The command line that reproduces this session (for the report)."""
    import shlex

    parts = ["robot-meta", "adapt", "--robot", args.robot]
    for opt in ("port", "baud", "deploy_dir", "method", "rollouts", "eval_rollouts", "episode_steps",
                "seed", "oracle_params", "oracle_warmup", "baseline", "overspeed_factor"):
        v = getattr(args, opt)
        if v not in (None, "", 0) or opt == "overspeed_factor" and v == 0:
            parts += [f"--{opt.replace('_', '-')}", str(v)]
    if getattr(args, "no_calibration", False):
        parts.append("--no-calibration")
    return " ".join(shlex.quote(p) for p in parts)


def print_table(r: SessionResult) -> None:
    """The before/after table of a session result."""
    def f(x: float | None) -> str:
        return "      -" if x is None else f"{x:7.2f}"

    print(f"\nadaptation rollouts ({r.method}): " + ", ".join(f"{x:.2f}" for x in r.rollouts))
    print(f"{'before (zero-shot)':20s} {f(r.before)}")
    print(f"{'after adaptation':20s} {f(r.after)}")
    print(f"{'oracle':20s} {f(r.oracle)}")
    print(f"{'robust baseline':20s} {f(r.robust)}")
    d = r.deadlines
    print(f"deadlines met: {d['met']}/{d['cycles']} ({100 * d['fraction_met']:.3f} %), "
          f"{d['skipped']} skipped")
    print(f"report: {r.report}")
