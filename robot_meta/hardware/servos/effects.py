"""Servo effects the simulators' training model leaves out, as plain data.

The PyBullet twin (:mod:`robot_meta.sim.twin`) stands in for the real robot, so it carries the
effects of a real servo that the MuJoCo model does not: each one is set in the ``[servo]`` table
of a hidden-parameter file, and each defaults to 0 / off (the twin is then the servo of the
envelope and armature only). Their physical sources and how the twin realises them are in the
twin's module docstring; units are at the servo's output shaft.

* ``stiction`` [N*m]: breakaway torque above the Coulomb friction;
* ``backlash`` [rad]: total play of the gearbox;
* ``encoder_quantization``: observations rounded to the encoder tick and velocity unit;
* ``current_lag`` [s]: time constant of the current loop;
* ``supply_resistance`` [ohm]: resistance of the supply and its cable (supply sag).

Stdlib and numpy only: the robot computer imports ``robot_meta.hardware``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from robot_meta.hardware.servos.servo_model import ServoSpecError


@dataclass(frozen=True)
class ServoEffects:
    """Unmodeled servo effects of the twin (module docstring); the defaults turn all off."""

    stiction: float = 0.0  # N*m at the output, above the Coulomb friction
    backlash: float = 0.0  # rad at the output, total play
    encoder_quantization: bool = False  # observations in encoder ticks and velocity units
    current_lag: float = 0.0  # s, first-order time constant of the current loop
    supply_resistance: float = 0.0  # ohm, V = V_supply - R_s * sum_k |I_k|

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "encoder_quantization":
                if not isinstance(v, bool):
                    raise ServoSpecError(f"ServoEffects.{f.name}: expected true or false, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ServoSpecError(f"ServoEffects.{f.name}: expected a finite number >= 0, got {v!r}")

    @property
    def any(self) -> bool:
        """True when at least one effect is on."""
        return self != ServoEffects()

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str) -> ServoEffects:
        """Validate a ``[servo]`` table. Errors name the field, ``<where>.<field>: ...``;
        unknown keys are refused with the list of allowed ones."""
        if not isinstance(table, dict):
            raise ServoSpecError(f"{where}: expected a table of servo effects")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ServoSpecError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")
        values: dict[str, Any] = {}
        for key, v in table.items():
            if key == "encoder_quantization":
                if not isinstance(v, bool):
                    raise ServoSpecError(f"{where}.{key}: expected true or false, got {v!r}")
                values[key] = v
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ServoSpecError(f"{where}.{key}: expected a number, got {type(v).__name__} {v!r}")
            if not math.isfinite(v):
                raise ServoSpecError(f"{where}.{key}: expected a finite number, got {v!r}")
            if v < 0:
                raise ServoSpecError(f"{where}.{key}: must be >= 0, got {v:g}")
            values[key] = float(v)
        return cls(**values)
