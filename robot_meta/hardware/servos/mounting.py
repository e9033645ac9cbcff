"""How each servo is mounted, as the emulator hides it: encoder offsets and reversed servos.

A servo bolted to its link with the horn at another spline tooth, or its encoder zeroed
elsewhere, reports every position shifted by a constant; a servo mounted the other way round
turns the other way for the same command and reports every position, velocity and current with
the opposite sign. Before calibration, what such a servo reports (in joint units, through the
hardware map as designed) is

    q_reported  = s * q + o * r        s = -1 if reversed else +1
    dq_reported = s * dq               o = the encoder offset [rad at the servo's shaft]
    I_reported  = s * I                r = the joint's transmission (1 for a direct drive)

and a commanded current I (in the frame the HAL believes) pushes the joint with the effort
s * K_t * I / r. In a hidden-parameter file they are the keys ``<joint>_encoder_offset`` (rad)
and ``<joint>_reversed`` (0 or 1) of the ``[params]`` table; missing joints are mounted as
designed. ``robot-meta calibrate`` finds them (:mod:`robot_meta.calibration`).

Stdlib only: the robot computer imports ``robot_meta.hardware``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from robot_meta.hardware.servos.servo_model import ServoSpecError

OFFSET_SUFFIX = "_encoder_offset"
REVERSED_SUFFIX = "_reversed"
MAX_ENCODER_OFFSET = math.pi  # rad: an offset is defined modulo one turn


@dataclass(frozen=True)
class Mounting:
    """Hidden encoder offsets [rad at the shaft] and reversed servos, by joint name."""

    encoder_offset: dict[str, float] = field(default_factory=dict)
    reversed: dict[str, bool] = field(default_factory=dict)

    def offset(self, joint: str) -> float:
        """The encoder offset of a joint [rad at the servo's shaft] (0 when not given)."""
        return float(self.encoder_offset.get(joint, 0.0))

    def sign(self, joint: str) -> int:
        """-1 for a reversed servo, else +1."""
        return -1 if self.reversed.get(joint, False) else 1

    @property
    def any(self) -> bool:
        """True when some joint is not mounted as designed."""
        return any(v != 0.0 for v in self.encoder_offset.values()) or any(self.reversed.values())

    def as_params(self) -> dict[str, float]:
        """The ``[params]`` keys that give this mounting (for writing a hidden-params file)."""
        out: dict[str, float] = {}
        for j, v in self.encoder_offset.items():
            out[j + OFFSET_SUFFIX] = float(v)
        for j, rev in self.reversed.items():
            out[j + REVERSED_SUFFIX] = int(rev)
        return out

    @classmethod
    def split(cls, values: Mapping[str, Any], joints: Iterable[str], where: str
              ) -> tuple[Mounting, dict[str, Any]]:
        """Take the mounting keys out of a ``[params]`` table: returns the mounting and the
        remaining {factor: value}. Errors name the key and the allowed values."""
        names = tuple(joints)
        offsets: dict[str, float] = {}
        rev: dict[str, bool] = {}
        rest: dict[str, Any] = {}
        for key, v in values.items():
            for suffix in (OFFSET_SUFFIX, REVERSED_SUFFIX):
                if key.endswith(suffix):
                    joint = key[:-len(suffix)]
                    break
            else:
                rest[key] = v
                continue
            if joint not in names:
                raise ServoSpecError(f"{where}.{key}: no joint {joint!r}; joints: {', '.join(names)}")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ServoSpecError(f"{where}.{key}: expected a finite number, got {v!r}")
            if suffix == OFFSET_SUFFIX:
                if abs(v) > MAX_ENCODER_OFFSET:
                    raise ServoSpecError(f"{where}.{key}: an encoder offset lies in "
                                         f"[-pi, pi] rad, got {v:g}")
                offsets[joint] = float(v)
            else:
                if v not in (0, 1):
                    raise ServoSpecError(f"{where}.{key}: expected 0 or 1, got {v!r}")
                rev[joint] = bool(v)
        return cls(offsets, rev), rest
