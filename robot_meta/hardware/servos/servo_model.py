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
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

SERVO_DIR = Path(__file__).parent


class ServoSpecError(ValueError):
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

    def stall_torque_at(self, voltage: Any) -> Any:
        """tau_s(V) = tau_s V / V_n [N*m]."""
        return self.stall_torque * np.asarray(voltage) / self.nominal_voltage

    def no_load_speed_at(self, voltage: Any) -> Any:
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
    current_limit_raw: int = 0
    pwm_limit_raw: int = 0
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

    def torque_bounds(self, omega: Any, voltage: Any, strength: Any = 1.0
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The voltage-limited torque range at output speed omega [rad/s] and supply V:
        s tau_s(V) (-1 - s w / w0(V)) <= tau <= s tau_s(V) (1 - s w / w0(V))."""
        m = self._motor()
        s = np.asarray(strength, dtype=float)
        ts = s * m.stall_torque_at(voltage)
        x = s * np.asarray(omega) / m.no_load_speed_at(voltage)  # w / w0'(V), w0' = w0(V) / s
        return ts * (-1.0 - x), ts * (1.0 - x)

    def envelope(self, torque: Any, omega: Any, voltage: Any, max_torque: Any,
                 strength: Any = 1.0) -> np.ndarray:
        """The torque a current command delivers: the commanded torque, clipped to the
        voltage-limited range at (omega, V) and to |tau| <= max_torque (the current limit)."""
        lo, hi = self.torque_bounds(omega, voltage, strength)
        t = np.minimum(np.maximum(np.asarray(torque, dtype=float), lo), hi)
        cap = np.asarray(max_torque, dtype=float)
        return np.minimum(np.maximum(t, -cap), cap)

    def pwm_torque(self, duty: Any, omega: Any, voltage: Any, max_torque: Any,
                   strength: Any = 1.0) -> np.ndarray:
        """The torque of PWM (voltage) control: tau = s tau_s(V) (d - s w / w0(V)), |d| <= 1,
        clipped to |tau| <= max_torque."""
        m = self._motor()
        s = np.asarray(strength, dtype=float)
        d = np.clip(np.asarray(duty, dtype=float), -1.0, 1.0)
        x = s * np.asarray(omega) / m.no_load_speed_at(voltage)
        t = s * m.stall_torque_at(voltage) * (d - x)
        cap = np.asarray(max_torque, dtype=float)
        return np.minimum(np.maximum(t, -cap), cap)


def _table(data: dict[str, Any], key: str, where: str, required: bool) -> dict[str, Any] | None:
    t = data.get(key)
    if t is None:
        if required:
            raise ServoSpecError(f"{where}: missing table [{key}]")
        return None
    if not isinstance(t, dict):
        raise ServoSpecError(f"{where}: [{key}] must be a table")
    return t


def _num(t: dict[str, Any], key: str, where: str, positive: bool = True) -> float:
    if key not in t:
        raise ServoSpecError(f"{where}.{key}: missing")
    v = t[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ServoSpecError(f"{where}.{key}: expected a finite number, got {v!r}")
    if (positive and v <= 0) or v < 0:
        raise ServoSpecError(f"{where}.{key}: must be {'> 0' if positive else '>= 0'}, got {v!r}")
    return float(v)


def _known(t: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(t) - allowed
    if unknown:
        raise ServoSpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def parse_servo(data: dict[str, Any], where: str) -> ServoModel:
    """Validate a servo file's contents (see ``xm430-w350.toml``)."""
    _known(data, {"model", "model_number", "control_table", "motor", "limits", "units", "gearbox"},
           where)
    for key in ("model", "control_table"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ServoSpecError(f"{where}.{key}: expected a non-empty string")
    if not isinstance(data.get("model_number"), int):
        raise ServoSpecError(f"{where}.model_number: expected an integer")
    units = _table(data, "units", where, True)
    assert units is not None
    _known(units, {"ticks_per_rev", "velocity_rpm", "current_a", "pwm_percent", "voltage_v"},
           f"{where} [units]")
    u = f"{where} [units]"
    motor = gearbox = None
    cur_lim = pwm_lim = 0
    mt = _table(data, "motor", where, False)
    if mt is not None:
        m = f"{where} [motor]"
        _known(mt, {"gear_ratio", "nominal_voltage", "voltage_range", "stall_torque", "stall_current",
                    "no_load_speed", "armature"}, m)
        vr = mt.get("voltage_range")
        if not (isinstance(vr, list) and len(vr) == 2 and all(isinstance(x, int | float) for x in vr)
                and 0 < vr[0] <= vr[1]):
            raise ServoSpecError(f"{m}.voltage_range: expected [low, high] volts, got {vr!r}")
        motor = MotorSpec(_num(mt, "gear_ratio", m), _num(mt, "nominal_voltage", m),
                          (float(vr[0]), float(vr[1])), _num(mt, "stall_torque", m),
                          _num(mt, "stall_current", m), _num(mt, "no_load_speed", m),
                          _num(mt, "armature", m, positive=False))
        if not vr[0] <= motor.nominal_voltage <= vr[1]:
            raise ServoSpecError(f"{m}.nominal_voltage: {motor.nominal_voltage:g} V lies outside "
                                 f"voltage_range {vr}")
        lt = _table(data, "limits", where, True)
        assert lt is not None
        _known(lt, {"current_limit", "pwm_limit"}, f"{where} [limits]")
        cur_lim = int(_num(lt, "current_limit", f"{where} [limits]"))
        pwm_lim = int(_num(lt, "pwm_limit", f"{where} [limits]"))
        gt = _table(data, "gearbox", where, True)
        assert gt is not None
        g = f"{where} [gearbox]"
        _known(gt, {"coulomb_friction", "viscous_friction", "stiction", "backlash"}, g)
        gearbox = GearboxSpec(*(_num(gt, k, g, positive=False) for k in
                                ("coulomb_friction", "viscous_friction", "stiction", "backlash")))
    return ServoModel(
        model=data["model"], model_number=data["model_number"],
        control_table=data["control_table"],
        ticks_per_rev=int(_num(units, "ticks_per_rev", u)),
        velocity_unit_rad_s=_num(units, "velocity_rpm", u) * 2.0 * math.pi / 60.0,
        current_unit_a=_num(units, "current_a", u),
        pwm_unit=_num(units, "pwm_percent", u) / 100.0,
        voltage_unit_v=_num(units, "voltage_v", u),
        motor=motor, gearbox=gearbox, current_limit_raw=cur_lim, pwm_limit_raw=pwm_lim,
        source=where)


@cache
def load_servo(model: str) -> ServoModel:
    """The servo model named ``model`` (a file ``<model>.toml`` in this folder)."""
    path = SERVO_DIR / f"{model}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in SERVO_DIR.glob("*.toml"))
        raise ServoSpecError(f"unknown servo model {model!r}; known models: {', '.join(known)} "
                             f"(add one as {SERVO_DIR}/<model>.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ServoSpecError(f"{path}: malformed TOML: {e}") from e
    servo = parse_servo(data, str(path))
    if servo.model != model:
        raise ServoSpecError(f"{path}.model: {servo.model!r} differs from the file name {model!r}")
    return servo
