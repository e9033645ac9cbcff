"""A robot config: how to reach one physical (or emulated) robot and where to deploy on it
(not the robot folder's ``robot.toml``, which describes the robot itself).

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

from dataclasses import dataclass, field, replace
from pathlib import Path

from robot_meta.errors import UserError
from robot_meta.hardware.hardware_map import load_hardware_map
from robot_meta.robot_registry import ROBOT_FILE, UnknownRobotError, robot_folder, robot_name, robot_names
from robot_meta.toml_config import from_dict, read_toml

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


@dataclass
class RobotConfigFile:
    """The keys of a robot config file, as written (loaded by :mod:`robot_meta.toml_config`)."""

    robot: str
    port: str
    baud: int = 1_000_000
    deploy_dir: str = ""  # default ~/.robot_meta/<robot>; relative to the file
    control_hz: float = 50.0
    watchdog_ms: int = 100
    calibration: str = ""
    trusted_keys: list[str] = field(default_factory=list)
    motor_ids: dict[str, int] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.baud <= 0:
            raise RobotConfigError(f"{where}.baud: must be positive, got {self.baud}")
        if not 1.0 <= self.control_hz <= 2000.0:
            raise RobotConfigError(f"{where}.control_hz: must lie in [1, 2000], got {self.control_hz}")
        if not 20 <= self.watchdog_ms <= 2540:
            raise RobotConfigError(f"{where}.watchdog_ms: must lie in [20, 2540] (20 ms units), "
                                   f"got {self.watchdog_ms}")
        for joint, mid in self.motor_ids.items():
            if not 0 <= mid <= 252:
                raise RobotConfigError(f"{where}.motor_ids.{joint}: must be an integer ID in [0, 252]")
        for i, k in enumerate(self.trusted_keys):
            if len(k) != 64 or any(c not in "0123456789abcdef" for c in k.lower()):
                raise RobotConfigError(f"{where}.trusted_keys[{i}]: expected a 64-hex-digit ed25519 "
                                       "public key (as printed by `robot-meta export --sign`)")


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
    data = read_toml(p, RobotConfigError)
    if "joints" in data and p.name == ROBOT_FILE:  # a robot folder's robot.toml: the folder
        return load_robot_config(p.parent)
    f = from_dict(RobotConfigFile, data, str(p), RobotConfigError)
    try:  # a robot folder path is relative to the config file
        robot = robot_name(f.robot, base=p.parent)
    except UnknownRobotError as e:
        raise RobotConfigError(f"{p}.robot: {e}") from e
    hw = load_hardware_map(robot)
    for joint in f.motor_ids:
        if joint not in hw.joint_names:
            raise RobotConfigError(f"{p}.motor_ids.{joint}: robot {robot!r} has no such "
                                   f"joint; joints: {', '.join(hw.joint_names)}")
    deploy_path = Path(f.deploy_dir or f"~/.robot_meta/{robot}").expanduser()
    if not deploy_path.is_absolute():
        deploy_path = (p.parent / deploy_path).resolve()
    return RobotConfig(
        robot=robot, port=f.port, baud=f.baud, deploy_dir=deploy_path, control_hz=f.control_hz,
        watchdog_ms=f.watchdog_ms, calibration=f.calibration,
        trusted_keys=tuple(k.lower() for k in f.trusted_keys), motor_ids=dict(f.motor_ids),
        source=str(p),
    )
