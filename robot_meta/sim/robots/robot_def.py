"""The description of one robot: files, names, timing, randomizable factors and tasks."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_meta.hardware.hardware_map import HardwareMap
from robot_meta.robot_registry import (
    UnknownRobotError,
    builtin_robots,
    register_robot,
    robot_folder,
)
from robot_meta.robot_toml import (
    RobotToml,
    RobotTomlError,
    hardware_map_from_toml,
    load_folder_module,
    load_robot_toml,
)
from robot_meta.toml_config import read_toml

if TYPE_CHECKING:
    from robot_meta.sim.task import Task

# How a factor acts. Physics kinds are applied by the physics backend (MuJoCo or PyBullet);
# sensing and actuation-timing kinds are applied by the env core, identically for both.
PHYSICS_KINDS = (
    "dof_damping",  # viscous joint damping: tau = -d * qdot
    "dof_frictionloss",  # Coulomb joint friction: |tau| <= f opposing motion
    "mass_scale",  # multiplies a body's mass and rotational inertia
    "payload_mass",  # point mass of the payload body
    "payload_offset",  # payload COM shift along the robot's payload axis
    "motor_strength",  # multiplies an actuator's gain (effort per unit action)
    "supply_voltage",  # the servos' supply voltage: scales stall torque and no-load speed
    "joint_force",  # a constant generalized force on one joint: tau = x (a rail not level, a
    #                 cable carrier's pull); calibration cannot see it, a policy must hold it
)
CORE_KINDS = (
    "latency_steps",  # the action applied at step t is the one commanded at t - L
    "pos_noise",  # std of white noise on every measured joint position
    "vel_noise",  # std of white noise on every measured joint velocity
    "obs_bias",  # constant offset of one joint's position reading (encoder zero error)
)


@dataclass(frozen=True)
class FactorDef:
    """One randomizable factor.

    ``bounds`` are the physically valid values (a spec that reaches outside is refused).
    ``norm_range`` maps to [-1, 1] in the privileged factor vector:
    e = 2 (x - lo) / (hi - lo) - 1, so the ``all`` family's training range spans [-1, 1] and
    out-of-distribution values land outside it.
    """

    name: str
    kind: str
    target: str
    unit: str
    nominal: float
    bounds: tuple[float, float]
    norm_range: tuple[float, float]
    doc: str
    integer: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PHYSICS_KINDS + CORE_KINDS:
            raise ValueError(f"factor {self.name!r}: unknown kind {self.kind!r}")

    @property
    def is_physics(self) -> bool:
        return self.kind in PHYSICS_KINDS


@dataclass(frozen=True)
class RobotDef:
    """Everything the env, the twin and the exporter need to know about one robot."""

    name: str
    folder: Path
    joints: tuple[str, ...]  # observed joints, in order
    actuated_joints: tuple[str, ...]
    actuators: tuple[str, ...]  # in action order
    links: tuple[str, ...]
    payload_body: str
    payload_axis: tuple[float, float, float]
    physics_dt: float
    control_dt: float
    factors: tuple[FactorDef, ...]
    tasks: dict[str, type[Task]] = field(default_factory=dict)
    default_task: str = ""

    # "servo": actuated joints whose hardware map says servo_physics get the servo's envelope
    # and armature (robot_meta.sim.servo_physics); "ideal": the MJCF's ideal effort sources,
    # the model before issue 20 (kept for side-by-side benchmarks).
    actuator_model: str = "servo"

    # Where each joint settles with the motors off (robot.toml ``rest``): the emulator's start.
    rest_pose: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, path: str | Path) -> RobotDef:
        """Build a robot from its folder: ``robot.toml`` (names, timing, motors, nominal
        friction, rest pose), ``families.toml`` (the ``all`` family's training ranges are the
        factors' ``norm_range``), ``tasks.py`` (its ``TASKS`` dict) and an optional
        ``randomize.py`` whose ``extra_factors(spec)`` returns more :class:`FactorDef`."""
        folder = Path(path).resolve()
        return _from_folder(folder)

    @property
    def model_path(self) -> Path:
        return self.folder / "model.xml"

    @property
    def twin_path(self) -> Path:
        return self.folder / "twin.urdf"

    @property
    def families_path(self) -> Path:
        return self.folder / "families.toml"

    @property
    def substeps(self) -> int:
        n = round(self.control_dt / self.physics_dt)
        assert abs(n * self.physics_dt - self.control_dt) < 1e-9, "control_dt must be k*physics_dt"
        return n

    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    @property
    def hardware_map(self) -> HardwareMap:
        from robot_meta.hardware.hardware_map import load_hardware_map

        return load_hardware_map(self.folder)

    def factor(self, name: str) -> FactorDef:
        for f in self.factors:
            if f.name == name:
                return f
        raise KeyError(
            f"robot {self.name!r} has no factor {name!r}; factors: {', '.join(self.factor_names)}"
        )

    def task(self, name: str | None = None) -> Task:
        """Instantiate a task by name (the robot's default when None)."""
        name = name or self.default_task
        if name not in self.tasks:
            raise ValueError(
                f"robot {self.name!r} has no task {name!r}; tasks: {', '.join(self.tasks)}"
            )
        return self.tasks[name](self)


def get_robot(name_or_path: str | Path) -> RobotDef:
    """The definition of a robot given by registered name (bundled, installed through the
    ``robot_meta.robots`` entry points, or :func:`register_robot`) or by folder path."""
    return _from_folder(robot_folder(name_or_path))


ROBOT_NAMES = tuple(builtin_robots())  # the bundled robots


@functools.cache
def _from_folder(folder: Path) -> RobotDef:
    spec = load_robot_toml(folder)
    where = str(folder / "robot.toml")
    hardware_map_from_toml(spec, folder)  # motors, limits and servo models: fail early
    units = {j.name: j.unit for j in spec.joints}
    nominal: dict[str, float] = {}
    for j in spec.joints:
        nominal[f"{j.name}_damping"] = j.damping
        nominal[f"{j.name}_frictionloss"] = j.frictionloss
    factors = standard_factors(
        joints=spec.joint_names, actuated=spec.actuated_joints, links=spec.links,
        payload_body=spec.payload.body, nominal=nominal, norm=_NormRanges(spec, folder),
        units=units, supply_voltage=spec.supply_voltage)
    randomize = load_folder_module(folder, "randomize")
    if randomize is not None and hasattr(randomize, "extra_factors"):
        factors = factors + tuple(randomize.extra_factors(spec))
    tasks_module = load_folder_module(folder, "tasks")
    tasks = getattr(tasks_module, "TASKS", None)
    if not isinstance(tasks, dict) or not tasks:
        raise RobotTomlError(f"{folder}/tasks.py: must define TASKS = {{name: TaskClass, ...}}")
    if spec.default_task not in tasks:
        raise RobotTomlError(f"{where}.default_task: {spec.default_task!r} is not in tasks.py's "
                             f"TASKS ({', '.join(tasks)})")
    robot = RobotDef(
        name=spec.name, folder=folder, joints=spec.joint_names,
        actuated_joints=spec.actuated_joints, actuators=spec.actuators, links=spec.links,
        payload_body=spec.payload.body, payload_axis=spec.payload.axis,
        physics_dt=spec.physics_dt, control_dt=spec.control_dt, factors=factors,
        tasks=dict(tasks), default_task=spec.default_task, rest_pose=spec.rest_pose)
    return robot


class _NormRanges(dict[str, tuple[float, float]]):
    """factor -> norm_range: the ``all`` family's training range in families.toml, else the
    robot.toml ``[norm_range]`` entry, else (supply_voltage) the servos' input voltage range."""

    def __init__(self, spec: RobotToml, folder: Path):
        super().__init__()
        path = folder / "families.toml"
        train: dict[str, Any] = read_toml(path, RobotTomlError).get("all", {}).get("train", {})
        for name, d in train.items():
            if isinstance(d, dict):  # fixed: value; uniform, loguniform, randint: low, high
                lo: float = d["low"] if "low" in d else d.get("value", 0.0)
                hi: float = d["high"] if "high" in d else d.get("value", 0.0)
                if float(lo) < float(hi):  # a fixed value spans nothing: [norm_range] or error
                    self[name] = (float(lo), float(hi))
        self.update(spec.norm_range)
        self.spec, self.path = spec, path

    def __missing__(self, name: str) -> tuple[float, float]:
        if name == "supply_voltage":
            from robot_meta.hardware.servos import load_servo

            models = [j.model for j in self.spec.joints if j.actuated]
            motor = load_servo(models[0]).motor
            assert motor is not None, f"{models[0]} has no motor"
            lo, hi = motor.voltage_range
            return (float(lo), float(hi))
        raise RobotTomlError(f"{self.path}: factor {name!r} has no normalization range: list it "
                             "in the `all` family's [all.train] with low < high, or give it in "
                             "robot.toml's [norm_range]")


__all__ = ["FactorDef", "RobotDef", "ROBOT_NAMES", "UnknownRobotError", "get_robot",
           "register_robot", "standard_factors"]


def standard_factors(
    *,
    joints: tuple[str, ...],
    actuated: tuple[str, ...],
    links: tuple[str, ...],
    payload_body: str,
    nominal: dict[str, float],
    norm: dict[str, tuple[float, float]],
    units: dict[str, str],
    supply_voltage: float | None = None,
) -> tuple[FactorDef, ...]:
    """Build the standard factor list of a robot from its joint, link and actuator names.

    ``units`` maps each joint to "rad" or "m"; ``nominal`` and ``norm`` are keyed by factor name
    (missing nominals default to the neutral value: 1 for scales, 0 otherwise).
    ``supply_voltage``: the nominal supply [V] of a robot whose servos are simulated with their
    torque-speed envelope; it adds the ``supply_voltage`` factor.
    """
    inf = float("inf")
    out: list[FactorDef] = []

    def add(name: str, kind: str, target: str, unit: str, neutral: float,
            bounds: tuple[float, float], doc: str, integer: bool = False) -> None:
        out.append(FactorDef(name, kind, target, unit, nominal.get(name, neutral), bounds,
                             norm[name], doc, integer))

    for j in joints:
        lin = units[j] == "m"
        add(f"{j}_damping", "dof_damping", j, "N*s/m" if lin else "N*m*s/rad", 0.0, (0.0, inf),
            f"viscous damping of joint {j}")
        add(f"{j}_frictionloss", "dof_frictionloss", j, "N" if lin else "N*m", 0.0, (0.0, inf),
            f"Coulomb friction of joint {j}")
    for b in links:
        add(f"{b}_mass_scale", "mass_scale", b, "x", 1.0, (0.05, 20.0),
            f"scale of the mass and inertia of body {b}")
    add("payload_mass", "payload_mass", payload_body, "kg", 0.0, (0.0, inf),
        "point mass at the end of the last link")
    add("payload_offset", "payload_offset", payload_body, "m", 0.0, (-0.5, 0.5),
        "payload position along the last link, beyond its tip")
    for j in actuated:
        add(f"{j}_strength", "motor_strength", j, "x", 1.0, (0.0, 10.0),
            f"motor gain scale on joint {j} (effort per amp)")
    if supply_voltage is not None:
        add("supply_voltage", "supply_voltage", "", "V", supply_voltage, (1.0, 30.0),
            "servo supply voltage: stall torque and no-load speed scale with it")
    add("latency_steps", "latency_steps", "", "control steps", 0.0, (0.0, 10.0),
        "actuation delay", integer=True)
    add("pos_noise", "pos_noise", "", "rad or m", 0.0, (0.0, 1.0),
        "std of white noise on each joint position reading")
    add("vel_noise", "vel_noise", "", "rad/s or m/s", 0.0, (0.0, 10.0),
        "std of white noise on each joint velocity reading")
    for j in joints:
        add(f"{j}_bias", "obs_bias", j, units[j], 0.0, (-1.0, 1.0),
            f"constant offset of the joint {j} position reading")
    return tuple(out)
