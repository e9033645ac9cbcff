"""Servo models as data: one TOML file per model in this folder, loaded into a :class:`ServoModel`.

The file is the one source of truth for a servo's constants. The hardware map takes its unit
conversions and velocity limit from it, the MuJoCo model's ``<dcmotor>`` is checked against it,
the PyBullet twin and the emulated servo drive their joints through :meth:`ServoModel.envelope`,
and safety takes its current and PWM limits from it.

The actuator envelope, at the output shaft (torque tau, speed w, supply voltage V). A DC motor
behind a voltage-limited driver can deliver

    tau_s(V) (-1 - w / w0(V))  <=  tau  <=  tau_s(V) (1 - w / w0(V)),
    tau_s(V) = tau_s V / V_n,   w0(V) = w0 V / V_n,

the torque-speed line of the e-Manual's performance graph: stall torque at rest, nothing left at
the no-load speed, braking beyond it. The current limit clamps it further, |tau| <= K_t I_max,
with K_t = tau_s / I_s. A motor-strength scale s (a unit whose motor constant differs from the
datasheet's by s) multiplies tau_s and K_t and divides w0. In PWM mode (Operating Mode 16) the
driver applies a voltage d V for a duty d in [-1, 1], and tau = tau_s(V) (d - w / w0(V)),
clamped by the current limit.

Stdlib and numpy only: the robot computer imports this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from robot_meta.errors import UserError
from robot_meta.toml_config import from_dict, read_toml

SERVO_DIR = Path(__file__).parent


class ServoSpecError(UserError, ValueError):
    """A servo file is missing or invalid; the message names the file and the field."""


@dataclass(frozen=True)
class MotorSpec:
    """The motor and gearbox constants at the output shaft (see the module docstring)."""

    gear_ratio: float
    nominal_voltage: float  # V
    voltage_range: tuple[float, float]  # V
    stall_torque: float  # N*m at nominal_voltage
    stall_current: float  # A at nominal_voltage
    no_load_speed: float  # rad/s at nominal_voltage
    armature: float  # kg*m^2, reflected rotor inertia

    @property
    def torque_constant(self) -> float:
        """K_t = tau_s / I_s [N*m/A]: output torque per ampere of motor current."""
        return self.stall_torque / self.stall_current

    def stall_torque_at(self, voltage: npt.ArrayLike) -> np.ndarray:
        """tau_s(V) = tau_s V / V_n [N*m]."""
        return self.stall_torque * np.asarray(voltage) / self.nominal_voltage

    def no_load_speed_at(self, voltage: npt.ArrayLike) -> np.ndarray:
        """w0(V) = w0 V / V_n [rad/s]."""
        return self.no_load_speed * np.asarray(voltage) / self.nominal_voltage


@dataclass(frozen=True)
class GearboxSpec:
    """Typical friction and play of one unit's gearbox, at the output shaft."""

    coulomb_friction: float  # N*m
    viscous_friction: float  # N*m*s/rad
    stiction: float  # N*m above the Coulomb level
    backlash: float  # rad, total play


@dataclass(frozen=True)
class OverloadSpec:
    """The servo's overload shutdown (Hardware Error Status bit 5, "persistent load beyond the
    maximum output"): it latches when |I| >= current_fraction * I_limit with the output shaft
    slower than stall_speed, continuously for time_s. The simulators end an episode there
    (:class:`robot_meta.sim.overload_monitor.OverloadMonitor`) and the emulated servo shuts
    down, from these same numbers."""

    current_fraction: float  # of the Current Limit register's value
    time_s: float  # s
    stall_speed: float  # rad/s at the output shaft


@dataclass(frozen=True)
class ServoModel:
    """One servo (or passive encoder) model, as its data file describes it."""

    model: str
    model_number: int
    control_table: str
    ticks_per_rev: int
    velocity_unit_rad_s: float  # rad/s per Present Velocity unit
    current_unit_a: float  # A per Goal/Present Current unit
    pwm_unit: float  # duty (fraction of the supply) per Goal/Present PWM unit
    voltage_unit_v: float  # V per Present Input Voltage unit
    motor: MotorSpec | None = None
    gearbox: GearboxSpec | None = None
    overload: OverloadSpec | None = None
    current_limit_raw: int = 0
    pwm_limit_raw: int = 0
    registers: dict[str, RegisterOverride] = field(default_factory=dict, compare=False)
    source: str = ""

    @property
    def has_motor(self) -> bool:
        return self.motor is not None

    def _motor(self) -> MotorSpec:
        if self.motor is None:
            raise ValueError(f"servo model {self.model!r} has no motor ({self.source})")
        return self.motor

    @property
    def torque_constant(self) -> float:
        """K_t [N*m/A] (see MotorSpec)."""
        return self._motor().torque_constant

    @property
    def max_current_a(self) -> float:
        """The largest current the Current Limit register allows [A]."""
        return self.current_limit_raw * self.current_unit_a

    @property
    def no_load_speed(self) -> float:
        """w0 at the nominal voltage [rad/s]: the fastest the motor turns under its own power."""
        return self._motor().no_load_speed

    @property
    def nominal_voltage(self) -> float:
        return self._motor().nominal_voltage

    def torque_bounds(self, omega: npt.ArrayLike, voltage: npt.ArrayLike,
                      strength: npt.ArrayLike = 1.0
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The voltage-limited torque range at output speed omega [rad/s] and supply V:
        s tau_s(V) (-1 - s w / w0(V)) <= tau <= s tau_s(V) (1 - s w / w0(V))."""
        m = self._motor()
        s = np.asarray(strength, dtype=float)
        ts = s * m.stall_torque_at(voltage)
        x = s * np.asarray(omega) / m.no_load_speed_at(voltage)  # w / w0'(V), w0' = w0(V) / s
        return ts * (-1.0 - x), ts * (1.0 - x)

    def envelope(self, torque: npt.ArrayLike, omega: npt.ArrayLike, voltage: npt.ArrayLike,
                 max_torque: npt.ArrayLike, strength: npt.ArrayLike = 1.0) -> np.ndarray:
        """The torque a current command delivers: the commanded torque, clipped to the
        voltage-limited range at (omega, V) and to |tau| <= max_torque (the current limit)."""
        lo, hi = self.torque_bounds(omega, voltage, strength)
        t = np.minimum(np.maximum(np.asarray(torque, dtype=float), lo), hi)
        cap = np.asarray(max_torque, dtype=float)
        return np.minimum(np.maximum(t, -cap), cap)

    def pwm_torque(self, duty: npt.ArrayLike, omega: npt.ArrayLike, voltage: npt.ArrayLike,
                   max_torque: npt.ArrayLike, strength: npt.ArrayLike = 1.0) -> np.ndarray:
        """The torque of PWM (voltage) control: tau = s tau_s(V) (d - s w / w0(V)), |d| <= 1,
        clipped to |tau| <= max_torque."""
        m = self._motor()
        s = np.asarray(strength, dtype=float)
        d = np.clip(np.asarray(duty, dtype=float), -1.0, 1.0)
        x = s * np.asarray(omega) / m.no_load_speed_at(voltage)
        t = s * m.stall_torque_at(voltage) * (d - x)
        cap = np.asarray(max_torque, dtype=float)
        return np.minimum(np.maximum(t, -cap), cap)


def _all_positive(spec: object, where: str) -> None:
    """Every field of a spec must be > 0."""
    for name, v in vars(spec).items():
        if v <= 0:
            raise ServoSpecError(f"{where}.{name}: must be > 0, got {v!r}")


def data_file(folder: Path, name: str, kind: str) -> Path:
    """``folder/<name>.toml``; a missing one raises :class:`ServoSpecError` listing the known
    names of that ``kind`` ("servo model", "control table")."""
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.toml"))
        raise ServoSpecError(f"unknown {kind} {name!r}; known: {', '.join(known)} "
                             f"(add one as {folder}/<name>.toml)")
    return path


@dataclass(frozen=True)
class UnitsSpec:
    """The ``[units]`` table: raw register units in SI."""

    ticks_per_rev: int
    velocity_rpm: float  # rev/min per Present Velocity unit
    current_a: float  # A per Goal/Present Current unit
    pwm_percent: float  # % duty per Goal/Present PWM unit
    voltage_v: float  # V per Present Input Voltage unit

    def validate(self, where: str) -> None:
        _all_positive(self, where)


@dataclass(frozen=True)
class LimitsSpec:
    """The ``[limits]`` table: the raw Current Limit and PWM Limit that mean 100 %."""

    current_limit: int
    pwm_limit: int

    def validate(self, where: str) -> None:
        _all_positive(self, where)


@dataclass(frozen=True)
class RegisterOverride:
    """A ``[registers]`` entry: this model's initial value or range of a register of its
    control-table family (e.g. the XM430-W210's Velocity Limit default)."""

    default: int | None = None
    range: tuple[int, int] | None = None


@dataclass(frozen=True)
class ServoFile:
    """A servo file as written (``xm430-w350.toml``), before the unit conversions."""

    model: str
    model_number: int
    control_table: str  # the control-table family (a bus driver's table file)
    units: UnitsSpec
    motor: MotorSpec | None = None
    limits: LimitsSpec | None = None
    gearbox: GearboxSpec | None = None
    overload: OverloadSpec | None = None
    registers: dict[str, RegisterOverride] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for key in ("model", "control_table"):
            if not getattr(self, key):
                raise ServoSpecError(f"{where}.{key}: expected a non-empty string")
        if self.motor is None:
            return
        for key in ("limits", "gearbox", "overload"):
            if getattr(self, key) is None:
                raise ServoSpecError(f"{where}: missing table [{key}] (a servo with a [motor] needs it)")


def _check_motor(m: MotorSpec, where: str) -> None:
    lo, hi = m.voltage_range
    if not 0 < lo <= hi:
        raise ServoSpecError(f"{where}.voltage_range: expected [low, high] volts, got {[lo, hi]!r}")
    for name in ("gear_ratio", "nominal_voltage", "stall_torque", "stall_current", "no_load_speed"):
        if getattr(m, name) <= 0:
            raise ServoSpecError(f"{where}.{name}: must be > 0, got {getattr(m, name)!r}")
    if m.armature < 0:
        raise ServoSpecError(f"{where}.armature: must be >= 0, got {m.armature!r}")
    if not lo <= m.nominal_voltage <= hi:
        raise ServoSpecError(f"{where}.nominal_voltage: {m.nominal_voltage:g} V lies outside "
                             f"voltage_range {[lo, hi]}")


def _check_gearbox(g: GearboxSpec, where: str) -> None:
    for name, v in g.__dict__.items():
        if v < 0:
            raise ServoSpecError(f"{where}.{name}: must be >= 0, got {v!r}")


def _check_overload(o: OverloadSpec, where: str) -> None:
    if not 0.0 < o.current_fraction <= 1.0:
        raise ServoSpecError(f"{where}.current_fraction: expected a fraction in (0, 1], got "
                             f"{o.current_fraction!r}")
    for name in ("time_s", "stall_speed"):
        if getattr(o, name) <= 0:
            raise ServoSpecError(f"{where}.{name}: must be > 0, got {getattr(o, name)!r}")


def parse_servo(data: dict[str, Any], where: str) -> ServoModel:
    """Validate a servo file's contents (see ``xm430-w350.toml``) with the shared TOML loader
    (:func:`robot_meta.toml_config.from_dict`: unknown keys get "did you mean ...")."""
    f = from_dict(ServoFile, data, where, ServoSpecError)
    if f.motor is not None:
        _check_motor(f.motor, f"{where}.motor")
    if f.gearbox is not None:
        _check_gearbox(f.gearbox, f"{where}.gearbox")
    if f.overload is not None:
        _check_overload(f.overload, f"{where}.overload")
    u = f.units
    return ServoModel(
        model=f.model, model_number=f.model_number, control_table=f.control_table,
        ticks_per_rev=u.ticks_per_rev,
        velocity_unit_rad_s=u.velocity_rpm * 2.0 * math.pi / 60.0,
        current_unit_a=u.current_a, pwm_unit=u.pwm_percent / 100.0, voltage_unit_v=u.voltage_v,
        motor=f.motor, gearbox=f.gearbox, overload=f.overload,
        current_limit_raw=f.limits.current_limit if f.limits else 0,
        pwm_limit_raw=f.limits.pwm_limit if f.limits else 0,
        registers=f.registers, source=where)


@cache
def load_servo(model: str) -> ServoModel:
    """The servo model named ``model`` (a file ``<model>.toml`` in this folder)."""
    path = data_file(SERVO_DIR, model, "servo model")
    servo = parse_servo(read_toml(path, ServoSpecError), str(path))
    if servo.model != model:
        raise ServoSpecError(f"{path}.model: {servo.model!r} differs from the file name {model!r}")
    return servo


def servo_models() -> tuple[str, ...]:
    """The names of every servo file in this folder (``xm430-w350``, ``encoder``, ...)."""
    return tuple(sorted(p.stem for p in SERVO_DIR.glob("*.toml")))


def describe_model_number(model_number: int) -> str:
    """A model number as text, e.g. ``xm430-w350 (1020)``, from the servo files."""
    for name in servo_models():
        if load_servo(name).model_number == model_number:
            return f"{name} ({model_number})"
    return f"unknown model number {model_number}"
