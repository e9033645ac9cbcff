"""``robot-meta emulate``: a robot without hardware (see robot_meta.hardware.emulation.emulator)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "emulate",
        help="serve the PyBullet twin (hidden dynamics) as Dynamixel servos on a pty or local socket",
        description="Serve a robot's joints as emulated Dynamixel servos. "
                    "`robot-meta emulate --help` lists the options.")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Normally unreached: robot_meta.launch.cli forwards `emulate ...` to the emulator's main.
    from robot_meta.hardware.emulation.emulator import main

    return main(args.args)
