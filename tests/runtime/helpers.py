"""Helpers for the runtime tests: robot configs pointing at an emulator, CLI calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from robot_meta.runtime.robot_config import RobotConfig, load_robot_config


def robot_toml(tmp: Path, port: str, *, name: str = "robot.toml", watchdog_ms: int = 100,
               trusted_keys: list[str] | None = None, motor_ids: dict[str, int] | None = None) -> Path:
    """Write an arm2 robot.toml for ``port`` with its deploy dir under ``tmp``."""
    lines = ['robot = "arm2"', f'port = "{port}"', f'deploy_dir = "{tmp / "deploy"}"',
             "control_hz = 50.0", f"watchdog_ms = {watchdog_ms}",
             f"trusted_keys = {json.dumps(trusted_keys or [])}"]
    if motor_ids:
        lines.append("[motor_ids]")
        lines += [f"{k} = {v}" for k, v in motor_ids.items()]
    p = tmp / name
    p.write_text("\n".join(lines) + "\n")
    return p


def config(tmp: Path, port: str, **kw: Any) -> RobotConfig:
    return load_robot_config(robot_toml(tmp, port, **kw))


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``robot-meta ARGS`` in a child process."""
    return subprocess.run([sys.executable, "-m", "robot_meta.launch.cli", *args], capture_output=True,
                          text=True, timeout=timeout)
