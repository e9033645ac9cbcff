"""``robot-meta flash BUNDLE --robot R``: verify a bundle against the robot and install it."""

from __future__ import annotations

import argparse
import json

from robot_meta.launch.robot_args import add_calibration_arg, add_robot_args, load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "flash", help="verify a bundle against the robot's hardware and install it",
        description="Verify the bundle (hashes, version, robot type, signature when the robot "
                    "config lists trusted keys), check the hardware through the servo bus (IDs, "
                    "model numbers, operating mode, joints and limits), dry-run a few control "
                    "cycles with torque off, then install it atomically into the deploy directory "
                    "with version history. --rollback restores the previous version.")
    p.add_argument("bundle", nargs="?", help="the bundle directory (from robot-meta export)")
    add_robot_args(p)
    add_calibration_arg(p)
    p.add_argument("--rollback", action="store_true",
                   help="make the previously installed bundle current again (no bundle argument)")
    p.add_argument("--dry-run-cycles", type=int, default=25,
                   help="torque-off control cycles to check observations and actions (default 25)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_meta.errors import UserError
    from robot_meta.runtime.flash import flash, rollback

    cfg = load_config(args)
    if args.rollback:
        if args.bundle:
            raise UserError("--rollback takes no bundle: it restores the previously installed one")
        path = rollback(cfg)
        out = {"rolled_back_to": path.name, "deploy_dir": str(cfg.deploy_dir)}
        print(json.dumps(out) if args.json else f"rolled back: {path.name} is current in {cfg.deploy_dir}")
        return 0
    if not args.bundle:
        raise UserError("give the bundle directory to flash (or --rollback)")
    if args.dry_run_cycles < 0:
        raise UserError("--dry-run-cycles must be >= 0")
    res = flash(args.bundle, cfg, dry_run_cycles=args.dry_run_cycles,
                calibration=not args.no_calibration)
    if args.json:
        print(json.dumps(res.as_dict(), indent=2))
        return 0
    hw = res.hardware
    print(f"bundle verified{' (signed by ' + res.signer[:16] + '...)' if res.signer else ''}; "
          f"hardware matches: {len(hw['servos'])} servo(s) {', '.join(hw['joints'])} at "
          f"{hw['control_hz']:g} Hz")
    if hw.get("note"):
        print(f"note: {hw['note']}")
    print(f"dry run with torque off: {res.dry_run['cycles']} cycles, observations in range")
    print(f"installed {res.version} -> {res.installed}")
    print(f"next: robot-meta adapt --robot {args.robot} --rollouts 3")
    return 0
