"""The ``--robot`` / ``--port`` / ``--baud`` / ``--deploy-dir`` options shared by the robot-side
commands (flash, adapt, run)."""

from __future__ import annotations

import argparse
from typing import Any


def add_robot_args(p: argparse.ArgumentParser) -> None:
    """Add the robot config options to a parser."""
    p.add_argument("--robot", required=True,
                   help="robot config: a config path, a robot folder, or a robot name (its "
                        "bundled example config)")
    p.add_argument("--port", help="override the config's port (device path or pyserial URL, "
                                  "e.g. /dev/pts/5 or socket://127.0.0.1:5555)")
    p.add_argument("--baud", type=int, help="override the config's baud rate")
    p.add_argument("--deploy-dir", help="override the config's deploy directory")


def load_config(args: argparse.Namespace) -> Any:
    """The robot config with the command-line overrides applied."""
    from robot_meta.runtime.robot_config import load_robot_config

    return load_robot_config(args.robot).with_overrides(args.port, args.baud, args.deploy_dir)


def add_calibration_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--no-calibration`` (flash, adapt, run refuse an uncalibrated robot without it)."""
    p.add_argument("--no-calibration", action="store_true",
                   help="run on the hardware map as designed, without the robot's "
                        "calibration.json (only for servos mounted exactly as designed; by "
                        "default an uncalibrated robot is refused: run `robot-meta calibrate`)")
