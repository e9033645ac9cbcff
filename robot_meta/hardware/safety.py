"""Safety: joint limits enforced on every command, and torque off on signals and at exit.

Limits come from the hardware map (:class:`~robot_meta.hardware.hardware_map.JointHardware`).
For a current command I on a joint at position q moving at dq, with joint effort
tau = current_to_effort(I) (its sign says which way it pushes):

1. non-finite commands become 0;
2. |I| <= max_current_a (and the servo's current limit register is set to the same value);
3. position limits: at or beyond the upper limit, tau > 0 is cut to 0; at or beyond the
   lower limit, tau < 0 is cut to 0 (the command may only push back inside);
4. velocity limit: at |dq| >= velocity_limit, an effort that accelerates further
   (tau * dq > 0) is cut to 0;
5. the result is quantised toward zero to the register unit, so the raw value on the wire never
   exceeds the limit.

Position commands are clipped into the position limits. :class:`TorqueGuard` turns torque off
on SIGINT, SIGTERM and interpreter exit, then lets the signal do what it did before.

The servos enforce limits of their own, as a second line behind this one: each actuated
servo's current_limit register holds floor(max_current_a / current_unit) and its pwm_limit the
servo file's ``pwm_limit`` (:func:`servo_limit_values`). :func:`write_servo_limits` writes them
with torque off (they are EEPROM) and reads them back; ``Robot.connect`` calls it (so do flash
and every session, which connect), and flash verifies them again with
:func:`verify_servo_limits`. A value that does not read back raises :class:`ServoLimitError`.
"""

from __future__ import annotations

import atexit
import math
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.hardware.errors import SafetyError, StatusError
from robot_meta.hardware.hardware_map import HardwareMap, JointHardware

if TYPE_CHECKING:
    from robot_meta.hardware.bus import MotorBus

SERVO_LIMIT_REGISTERS = ("current_limit", "pwm_limit")  # the servo's own limits, by register name


class ServoLimitError(SafetyError, UserError):
    """A servo's own limit register does not hold the value safety requires (the write was
    refused, or it reads back different)."""


@dataclass(frozen=True)
class JointLimits:
    """The limits of one actuated joint, in joint units."""

    joint: str
    position: tuple[float, float]
    velocity: float
    max_current_a: float
    current_unit_a: float

    @property
    def max_raw(self) -> int:
        """The largest goal_current magnitude allowed on the wire (register units)."""
        return int(self.max_current_a / self.current_unit_a)


@dataclass(frozen=True)
class SafetyLimits:
    """Per-joint limits of a robot's actuated joints, in action order."""

    joints: tuple[JointLimits, ...]
    hardware: tuple[JointHardware, ...]

    @classmethod
    def from_hardware_map(cls, hw: HardwareMap, *, current_scale: float = 1.0) -> SafetyLimits:
        """Limits from a hardware map; ``current_scale`` <= 1 lowers every current limit (for
        a cautious first run)."""
        if not 0.0 < current_scale <= 1.0:
            raise ValueError(f"current_scale must lie in (0, 1], got {current_scale}")
        joints = tuple(
            JointLimits(j.joint, j.position_limits, j.velocity_limit,
                        j.max_current_a * current_scale, j.current_unit_a)
            for j in hw.actuated)
        return cls(joints, hw.actuated)

    def clamp_currents(self, amps: Sequence[float] | np.ndarray, q: np.ndarray, dq: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Apply rules 1-5 of the module docstring.

        Args:
            amps: commanded currents [A], one per actuated joint.
            q, dq: the actuated joints' measured positions and velocities.

        Returns:
            (raw goal_current values as int64, the currents they mean [A]).
        """
        a = np.asarray(amps, dtype=float).reshape(-1)
        if a.shape[0] != len(self.joints):
            raise ValueError(f"expected {len(self.joints)} currents (one per actuated joint: "
                             f"{', '.join(j.joint for j in self.joints)}), got {a.shape[0]}")
        raw = np.zeros(len(self.joints), dtype=np.int64)
        for k, (lim, hw) in enumerate(zip(self.joints, self.hardware, strict=True)):
            i = float(a[k])
            if not math.isfinite(i):
                i = 0.0
            i = max(-lim.max_current_a, min(lim.max_current_a, i))
            tau = hw.current_to_effort(i)
            qk, dqk = float(q[k]), float(dq[k])
            lo, hi = lim.position
            beyond = (qk >= hi and tau > 0.0) or (qk <= lo and tau < 0.0)
            overspeed = math.isfinite(dqk) and abs(dqk) >= lim.velocity and tau * dqk > 0.0
            untrusted = not (math.isfinite(qk) and math.isfinite(dqk))  # no state to trust
            if beyond or overspeed or untrusted:
                i = 0.0
            # Quantise toward zero: |raw| * unit <= |i| <= max_current_a.
            r = int(i / lim.current_unit_a)
            raw[k] = max(-lim.max_raw, min(lim.max_raw, r))
        sent = raw * np.array([j.current_unit_a for j in self.joints])
        return raw, sent

    def clamp_positions(self, q_goal: Sequence[float] | np.ndarray) -> np.ndarray:
        """Clip position goals into the position limits (non-finite goals raise)."""
        g = np.asarray(q_goal, dtype=float).reshape(-1)
        if g.shape[0] != len(self.joints):
            raise ValueError(f"expected {len(self.joints)} positions, got {g.shape[0]}")
        if not np.all(np.isfinite(g)):
            raise ValueError(f"position goals must be finite, got {g.tolist()}")
        lo = np.array([j.position[0] for j in self.joints])
        hi = np.array([j.position[1] for j in self.joints])
        result: np.ndarray = np.clip(g, lo, hi)
        return result

    def violation(self, raw: int, k: int, q: float, dq: float) -> str | None:
        """Whether a raw goal_current on joint k at state (q, dq) breaks a limit; returns a
        description or None. Used by tests on the bytes that reached the wire."""
        lim, hw = self.joints[k], self.hardware[k]
        if abs(raw) > lim.max_raw:
            return f"|{raw}| > {lim.max_raw}"
        tau = hw.current_to_effort(raw * lim.current_unit_a)
        lo, hi = lim.position
        if q >= hi and tau > 0.0:
            return f"pushes beyond the upper position limit at q={q:g}"
        if q <= lo and tau < 0.0:
            return f"pushes beyond the lower position limit at q={q:g}"
        if abs(dq) >= lim.velocity and tau * dq > 0.0:
            return f"accelerates beyond the velocity limit at dq={dq:g}"
        return None


def servo_limit_values(joint: JointHardware, bus: MotorBus) -> dict[str, int]:
    """The raw values an actuated joint's servo must hold in its limit registers:
    Current Limit = floor(max_current_a / current_unit) (the policy's action +1, never more)
    and PWM Limit = the servo file's ``pwm_limit`` (100 % duty), each within the register's
    range. Registers the servo does not have are left out."""
    i = joint.motor_id
    values: dict[str, int] = {}
    if bus.has_register(i, "current_limit"):
        values["current_limit"] = min(bus.register_range(i, "current_limit")[1],
                                      int(joint.max_current_a / joint.current_unit_a))
    if bus.has_register(i, "pwm_limit") and joint.servo.pwm_limit_raw:
        values["pwm_limit"] = min(bus.register_range(i, "pwm_limit")[1],
                                  joint.servo.pwm_limit_raw)
    return values


def verify_servo_limits(bus: MotorBus, joint: JointHardware) -> dict[str, int]:
    """Read back the limit registers of a joint's servo (in one read where the bus can,
    :meth:`MotorBus.read_many`); raise :class:`ServoLimitError`, naming the joint and motor ID,
    if one differs from :func:`servo_limit_values`. Returns {register: value read}."""
    expected = servo_limit_values(joint, bus)
    if not expected:
        return {}
    found = bus.read_many(joint.motor_id, list(expected))
    for name, want in expected.items():
        if found[name] != want:
            raise ServoLimitError(
                f"joint {joint.joint!r} (motor ID {joint.motor_id}): {name} reads back "
                f"{found[name]}, not the {want} written; the servo would not enforce its own "
                f"limit. Check that nothing else configures it (its EEPROM lock, another "
                f"controller on the bus), power-cycle it and connect again",
                joint.motor_id, joint.joint)
    return found


def write_servo_limits(bus: MotorBus, joint: JointHardware) -> dict[str, int]:
    """Turn the joint's servo's torque off (the limits are EEPROM), write those of its limit
    registers (:func:`servo_limit_values`) that differ, and read them all back
    (:func:`verify_servo_limits`). A refused write or a different read-back raises
    :class:`ServoLimitError` naming the joint and motor ID. Returns {register: value read}."""
    if bus.has_register(joint.motor_id, "torque_enable"):
        bus.write(joint.motor_id, "torque_enable", 0)
    expected = servo_limit_values(joint, bus)
    present = bus.read_many(joint.motor_id, list(expected)) if expected else {}
    for name, value in expected.items():
        if present[name] == value:
            continue  # EEPROM wears with writes: only a different value is written
        try:
            bus.write(joint.motor_id, name, value)
        except StatusError as e:
            raise ServoLimitError(
                f"joint {joint.joint!r} (motor ID {joint.motor_id}): writing {name} = {value} "
                f"failed ({e}); the servo would not enforce its own limit. Check its control "
                "table and firmware, power-cycle it and connect again",
                joint.motor_id, joint.joint) from e
    return verify_servo_limits(bus, joint)


class TorqueGuard:
    """Call ``torque_off`` on SIGINT, SIGTERM and at interpreter exit.

    After turning torque off in a signal handler, the previous handler runs (so Ctrl-C still
    raises KeyboardInterrupt, and SIGTERM still ends the process with SystemExit). A signal the
    process inherited as ignored (a background job of a non-interactive shell ignores SIGINT)
    stops it all the same: torque off and then carrying on would run the rest of a rollout with
    limp motors and record it as if nothing happened. Signal handlers can only be installed
    from the main thread; elsewhere only the exit hook is.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, torque_off: Callable[[], None]):
        self._torque_off = torque_off
        # What signal.signal returned: a handler, SIG_DFL/SIG_IGN, or None (not set from Python).
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        self._installed = False
        self._busy = threading.Lock()

    def install(self) -> None:
        """Register the signal handlers and the exit hook."""
        if self._installed:
            return
        atexit.register(self._safe_off)
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        self._installed = True

    def uninstall(self) -> None:
        """Restore the previous signal handlers and drop the exit hook."""
        if not self._installed:
            return
        atexit.unregister(self._safe_off)
        if threading.current_thread() is threading.main_thread():
            for s, h in self._previous.items():
                if signal.getsignal(s) == self._handler:
                    signal.signal(s, h)
        self._previous.clear()
        self._installed = False

    def _safe_off(self) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            self._torque_off()
        except Exception:  # noqa: BLE001 - best effort: the port may be gone already
            pass
        finally:
            self._busy.release()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self._safe_off()
        prev = self._previous.get(signum, signal.SIG_DFL)
        if callable(prev):
            prev(signum, frame)
        elif signum == signal.SIGINT:  # SIG_DFL or SIG_IGN: stop, as Python's default does
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)
