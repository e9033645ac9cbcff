"""``robot.toml``: how to reach one physical (or emulated) robot and where to deploy on it.

    robot = "arm2"                       # a registered robot, or a robot folder (relative path ok)
    port = "/dev/ttyUSB0"                # a device path or a pyserial URL (socket://127.0.0.1:PORT)
    baud = 1000000
    deploy_dir = "~/.robot_meta/arm2"    # bundles, version history, sessions
    control_hz = 50.0                    # must match the bundle's control_dt
    watchdog_ms = 100                    # servo bus watchdog (20 ms units on the wire)
    calibration = ""                     # calibration.json (default <deploy_dir>/calibration.json)
    trusted_keys = []                    # ed25519 public keys (hex); when set, flash needs a signature
    [motor_ids]                          # optional: joint = ID, defaults to the hardware map
    shoulder = 1

Every command that takes ``--robot`` accepts a config path, the name of a bundled example
(a robot with ``launch/robots/<name>.toml``), or a robot folder (its defaults: port
``/dev/ttyUSB0``, deploy dir ``~/.robot_meta/<name>``); ``--port``, ``--baud`` and
``--deploy-dir`` override the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from robot_meta.errors import UserError
from robot_meta.hardware.hardware_map import load_hardware_map
from robot_meta.robot_registry import ROBOT_FILE, UnknownRobotError, robot_folder, robot_name, robot_names

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "launch" / "robots"


class RobotConfigError(UserError):
    """A robot config file is missing or invalid; the message names the file and field."""


@dataclass(frozen=True)
class RobotConfig:
    """A validated ``robot.toml``."""

    robot: str
    port: str
    baud: int = 1_000_000
    deploy_dir: Path = Path("~/.robot_meta")
    control_hz: float = 50.0
    watchdog_ms: int = 100
    calibration: str = ""
    trusted_keys: tuple[str, ...] = ()
    motor_ids: dict[str, int] = field(default_factory=dict)
    source: str = ""

    @property
    def ids(self) -> dict[str, int]:
        """joint -> motor ID, hardware-map defaults overridden by the file."""
        hw = load_hardware_map(self.robot)
        return {j.joint: self.motor_ids.get(j.joint, j.motor_id) for j in hw.joints}

    def with_overrides(self, port: str | None = None, baud: int | None = None,
                       deploy_dir: str | Path | None = None) -> RobotConfig:
        """The config with command-line overrides applied."""
        return replace(
            self,
            port=port if port is not None else self.port,
            baud=baud if baud is not None else self.baud,
            deploy_dir=Path(deploy_dir).expanduser() if deploy_dir is not None else self.deploy_dir,
        )


_TYPES: dict[str, type | tuple[type, ...]] = {
    "robot": str, "port": str, "baud": int, "deploy_dir": str, "control_hz": (int, float),
    "watchdog_ms": int, "calibration": str, "trusted_keys": list, "motor_ids": dict,
}


def load_robot_config(name_or_path: str | Path) -> RobotConfig:
    """Load a robot config from a path, a bundled example by robot name, or a robot folder
    (a config with the defaults: port ``/dev/ttyUSB0``, to be overridden with ``--port``)."""
    p = Path(name_or_path)
    if p.is_dir() and (p / ROBOT_FILE).is_file():
        name = robot_name(p)
        return RobotConfig(robot=name, port="/dev/ttyUSB0",
                           deploy_dir=Path(f"~/.robot_meta/{name}").expanduser(), source=str(p))
    if not p.suffix and not p.exists() and str(name_or_path) in robot_names():
        p = EXAMPLES_DIR / f"{name_or_path}.toml"
        if not p.exists():  # a robot with no example config: its folder's defaults
            return load_robot_config(robot_folder(str(name_or_path)))
    if not p.exists():
        raise RobotConfigError(f"{name_or_path}: no such robot config; give a robot config path, "
                               f"a robot folder, or a known robot ({', '.join(robot_names())})")
    try:
        data: dict[str, Any] = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RobotConfigError(f"{p}: malformed TOML: {e}") from e
    if "joints" in data and p.name == ROBOT_FILE:  # a robot folder's robot.toml: the folder
        return load_robot_config(p.parent)
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise RobotConfigError(f"{p}: unknown key(s) {unknown}; allowed: {', '.join(_TYPES)}")
    for key, typ in _TYPES.items():
        if key in data and (not isinstance(data[key], typ) or isinstance(data[key], bool)):
            raise RobotConfigError(f"{p}: {key}: expected {getattr(typ, '__name__', 'a number')}, "
                                   f"got {type(data[key]).__name__} {data[key]!r}")
    for key in ("robot", "port"):
        if key not in data:
            raise RobotConfigError(f"{p}: missing `{key}`")
    try:  # a robot folder path is relative to the config file
        data["robot"] = robot_name(data["robot"], base=p.parent)
    except UnknownRobotError as e:
        raise RobotConfigError(f"{p}: robot: {e}") from e
    hw = load_hardware_map(data["robot"])
    ids = data.get("motor_ids", {})
    for joint, mid in ids.items():
        if joint not in hw.joint_names:
            raise RobotConfigError(f"{p}: motor_ids.{joint}: robot {data['robot']!r} has no such "
                                   f"joint; joints: {', '.join(hw.joint_names)}")
        if not isinstance(mid, int) or not 0 <= mid <= 252:
            raise RobotConfigError(f"{p}: motor_ids.{joint}: must be an integer ID in [0, 252]")
    if "baud" in data and data["baud"] <= 0:
        raise RobotConfigError(f"{p}: baud: must be positive, got {data['baud']}")
    if "control_hz" in data and not 1.0 <= data["control_hz"] <= 2000.0:
        raise RobotConfigError(f"{p}: control_hz: must lie in [1, 2000], got {data['control_hz']}")
    if "watchdog_ms" in data and not 20 <= data["watchdog_ms"] <= 2540:
        raise RobotConfigError(f"{p}: watchdog_ms: must lie in [20, 2540] (20 ms units), "
                               f"got {data['watchdog_ms']}")
    keys = data.get("trusted_keys", [])
    for i, k in enumerate(keys):
        if not isinstance(k, str) or len(k) != 64 or any(c not in "0123456789abcdef" for c in k.lower()):
            raise RobotConfigError(f"{p}: trusted_keys[{i}]: expected a 64-hex-digit ed25519 "
                                   "public key (as printed by `robot-meta export --sign`)")
    deploy = data.get("deploy_dir", f"~/.robot_meta/{data['robot']}")
    deploy_path = Path(deploy).expanduser()
    if not deploy_path.is_absolute():
        deploy_path = (p.parent / deploy_path).resolve()
    return RobotConfig(
        robot=data["robot"], port=data["port"], baud=data.get("baud", 1_000_000),
        deploy_dir=deploy_path, control_hz=float(data.get("control_hz", 50.0)),
        watchdog_ms=data.get("watchdog_ms", 100), calibration=data.get("calibration", ""),
        trusted_keys=tuple(k.lower() for k in keys), motor_ids=dict(ids), source=str(p),
    )
