"""The description of one robot: files, names, timing, randomizable factors and tasks."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from robot_meta.hardware.hardware_map import ROBOT_NAMES, HardwareMap

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

        return load_hardware_map(self.name)

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


def get_robot(name: str) -> RobotDef:
    """Return the definition of a bundled robot (``cartpole`` or ``arm2``)."""
    if name not in ROBOT_NAMES:
        raise ValueError(f"unknown robot {name!r}; known robots: {', '.join(ROBOT_NAMES)}")
    module = importlib.import_module(f"robot_meta.sim.robots.{name}")
    robot: RobotDef = module.ROBOT
    return robot


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
