"""The ``robot-meta`` command line.

Each subcommand lives in its own module ``robot_meta/launch/cmd_<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func``. Modules are imported only
when listed here, and heavy imports (torch, mujoco, pybullet) happen inside ``func``, so that
``robot-meta --help`` is fast and the robot-side commands work without the training stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robot_meta.errors import UserError

# Order is the order shown in --help.
COMMANDS = (
    "train",
    "eval",
    "export",
    "emulate",
    "calibrate",
    "flash",
    "adapt",
    "sysid",
    "run",
    "demo",
    "sim",
    "robot",
    "bench",
)

DESCRIPTION = """\
robot_meta: take a policy from simulation to a real robot whose dynamics differ.

The three jobs:
  1. meta-train in simulation      robot-meta train LAUNCH
  2. flash the policy to the robot robot-meta export RUN -o BUNDLE; robot-meta flash BUNDLE --robot R
  3. adapt on the robot, few-shot  robot-meta adapt --robot R --rollouts 3

Without hardware, `robot-meta emulate ROBOT` serves a PyBullet twin with hidden dynamics as
Dynamixel servos, and `robot-meta demo` runs everything against it.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available subcommand registered."""
    parser = argparse.ArgumentParser(prog="robot-meta", description=DESCRIPTION,
                                     formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"robot_meta.launch.cmd_{name}")
        except ModuleNotFoundError as e:
            if e.name == f"robot_meta.launch.cmd_{name}":
                continue  # not part of this install yet
            raise
        module.register(sub)
    return parser


# Commands whose module parses its own arguments: ``robot-meta NAME ...`` calls
# ``module.main(rest)`` (their --help is their own).
FORWARDED = {"emulate": "robot_meta.hardware.emulation.emulator"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robot-meta`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FORWARDED:
        return int(importlib.import_module(FORWARDED[argv[0]]).main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2 if args.command is None else 0
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `robot-meta ... --json | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
