"""A robot = a bus + the robot's hardware map + the safety layer.

It reads joint state in SI units and writes joint commands after the safety layer, returning
the command actually sent. It speaks only the vendor-free bus contract
(:class:`~robot_meta.hardware.bus.MotorBus`: registers by name, and the bus's answers about
each device), so any registered driver serves it. On connect it checks every servo (ID
answers, model number matches its servo file), configures the actuated ones (operating mode,
return delay 0, and the servo's own current and PWM limits, written with torque off and read
back by :func:`~robot_meta.hardware.safety.write_servo_limits`), asks the bus to gather the
state and health registers into one block (``MotorBus.map_registers``; Dynamixel does it with
indirect addressing, so that each cycle is one sync read + one sync write, and every read also
checks torque enable and hardware errors) and arms the servos' own watchdog; torque goes off
on any exception inside its methods, on SIGINT/SIGTERM, on exit and when the ``with`` block
ends.

    with Robot(open_bus(port), load_hardware_map("arm2")) as robot:
        robot.enable()
        state = robot.read_state()
        sent = robot.write_currents([0.1, -0.2])     # amperes actually sent after clamping
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from robot_meta.hardware.bus import MotorBus
from robot_meta.hardware.errors import (
    HardwareAlertError,
    ModelMismatchError,
    OverspeedError,
    SafetyError,
    ServoNotFoundError,
    TorqueLostError,
)
from robot_meta.hardware.hardware_map import HardwareMap
from robot_meta.hardware.safety import (
    SafetyLimits,
    TorqueGuard,
    verify_servo_limits,
    write_servo_limits,
)
from robot_meta.hardware.servos import describe_model_number

STATE_REGISTERS = ("present_current", "present_velocity", "present_position")
# What each cycle's one read returns when the bus can gather registers into one block
# (MotorBus.map_registers; Dynamixel: indirect addressing): the state and the health flags, so
# that every read_state also checks torque enable and hardware errors.
STATE_LAYOUT = (*STATE_REGISTERS, "hardware_error_status", "torque_enable")
# Robot mode -> the named value of the servo's operating_mode register (its control table).
MODES = {"current": "current", "position": "position", "current_position": "current_position"}


@dataclass(frozen=True)
class JointState:
    """One reading of every joint, in hardware-map order.

    ``q`` [rad or m], ``dq`` [rad/s or m/s], ``current`` [A] (0 for passive joints), ``t`` the
    ``time.perf_counter()`` when the answer arrived, ``raw`` the register values
    {ID: {name: value}}.
    """

    t: float
    q: np.ndarray
    dq: np.ndarray
    current: np.ndarray
    raw: dict[int, dict[str, int]]


class Robot:
    """A robot on a bus.

    Args:
        bus: the bus (connected or not).
        hardware_map: which joint is which ID and model, conversions and limits.
        mode: ``current`` (default: goal current, the policies' action), ``position`` or
            ``current_position``.
        watchdog_ms: bus watchdog armed on connect (20 ms steps, 20..2540 ms; 0 disables).
        limits: the safety limits (default: from the hardware map).
        fast_sync_read: read state with Fast Sync Read (one answer packet).
        use_indirect: when every device supports indirect addressing, map the state and the
            health flags (torque enable, hardware error) into one block, so that each
            ``read_state`` checks torque with no extra transaction.
        health_period_s: without indirect addressing, how often ``read_state`` also reads
            torque enable and hardware error status (one extra sync read).
        overspeed_factor: raise OverspeedError (a SafetyError; torque off) if an actuated joint
            moves faster than this times its velocity limit; None disables.
        handle_signals: install the SIGINT/SIGTERM/exit torque-off guard on connect.
    """

    def __init__(self, bus: MotorBus, hardware_map: HardwareMap, *, mode: str = "current",
                 watchdog_ms: int = 100, limits: SafetyLimits | None = None,
                 fast_sync_read: bool = False, use_indirect: bool = True,
                 health_period_s: float = 0.1,
                 overspeed_factor: float | None = 2.0, handle_signals: bool = True):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if watchdog_ms and not 20 <= watchdog_ms <= 127 * 20:
            raise ValueError(f"watchdog_ms must be 0 or lie in [20, 2540], got {watchdog_ms}")
        self.bus = bus
        self.hw = hardware_map
        self.mode = mode
        self.watchdog_ms = watchdog_ms
        self.limits = limits or SafetyLimits.from_hardware_map(hardware_map)
        self.fast_sync_read = fast_sync_read
        self.use_indirect = use_indirect
        self._state_block: object | None = None  # MotorBus.map_registers' handle
        self.health_period_s = health_period_s
        self.overspeed_factor = overspeed_factor
        self.ids = [j.motor_id for j in hardware_map.joints]
        self.actuated_ids = [j.motor_id for j in hardware_map.actuated]
        self._act_index = [k for k, j in enumerate(hardware_map.joints) if j.actuated]
        self.connected = False
        self.torque_on = False
        self.last_state: JointState | None = None
        self.last_sent: np.ndarray = np.zeros(len(self.actuated_ids))
        self._last_health = -math.inf
        self._guard = TorqueGuard(self._torque_off_quietly) if handle_signals else None

    # ---- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """Torque off on any exception, then re-raise it."""
        try:
            yield
        except BaseException:
            self._torque_off_quietly()
            raise

    def connect(self) -> None:
        """Check and configure every servo, arm the watchdog. Torque stays off (see enable).

        Raises :class:`~robot_meta.hardware.safety.ServoLimitError` (torque off) when a servo's
        Current Limit or PWM Limit does not take the value safety requires."""
        bus = self.bus
        if not bus.is_connected:
            bus.connect()
        for j in self.hw.joints:
            bus.names[j.motor_id] = j.joint
        with self._guarded():
            for j in self.hw.joints:
                expected = j.servo.model_number
                try:
                    found = bus.ping(j.motor_id)
                except ServoNotFoundError as e:
                    raise ServoNotFoundError(
                        f"joint {j.joint!r}: no {j.model} answered at ID {j.motor_id} on "
                        f"{bus.port_name}. Check its power and cable, that its ID is "
                        f"{j.motor_id} and its baud rate matches; bus.scan() lists the IDs "
                        "that answer", j.motor_id, j.joint) from e
                if found != expected:
                    raise ModelMismatchError(
                        f"joint {j.joint!r} (ID {j.motor_id}): the hardware map expects "
                        f"{describe_model_number(expected)} but the device reports "
                        f"{describe_model_number(found)}. Fix the ID wiring or the hardware map",
                        j.motor_id, j.joint)
                bus.set_model(j.motor_id, j.model)
            for j in self.hw.joints:
                bits = bus.hardware_error(j.motor_id)
                if bits:
                    raise HardwareAlertError(
                        f"joint {j.joint!r} (ID {j.motor_id}) reports a hardware error: "
                        f"{bus.describe_hardware_error(bits)}; fix the cause, then reboot it "
                        f"(bus.reboot({j.motor_id}))", j.motor_id, j.joint, bits)
            for j in self.hw.joints:
                i = j.motor_id
                if bus.has_register(i, "torque_enable"):
                    bus.write(i, "torque_enable", 0)
                if bus.has_register(i, "return_delay_time"):
                    bus.write(i, "return_delay_time", 0)  # answer at once
                if not j.actuated:
                    continue
                bus.write(i, "operating_mode", bus.named_value(i, "operating_mode",
                                                               MODES[self.mode]))
                write_servo_limits(bus, j)
                if self.mode == "position":
                    lo, hi = sorted(j.position_to_ticks(x) for x in j.position_limits)
                    bus.write(i, "min_position_limit",
                              max(bus.register_range(i, "min_position_limit")[0], lo))
                    bus.write(i, "max_position_limit",
                              min(bus.register_range(i, "max_position_limit")[1], hi))
            self._state_block = (bus.map_registers(self.ids, STATE_LAYOUT)
                                 if self.use_indirect else None)
            self._arm_watchdog()
        self.connected = True
        if self._guard is not None:
            self._guard.install()

    def verify_servo_limits(self) -> dict[int, dict[str, int]]:
        """Read back every actuated servo's Current Limit and PWM Limit; raise
        :class:`~robot_meta.hardware.safety.ServoLimitError` (torque off) if one differs from
        what ``connect`` wrote. Returns {motor ID: {register: value}}."""
        with self._guarded():
            return {j.motor_id: verify_servo_limits(self.bus, j) for j in self.hw.actuated}

    def _arm_watchdog(self) -> None:
        for i in self.actuated_ids:
            self.bus.arm_watchdog(i, self.watchdog_ms)

    def enable(self) -> None:
        """Re-arm the watchdog and turn torque on (commands start at zero current)."""
        with self._guarded():
            self._arm_watchdog()
            if self.mode == "current":
                self.bus.sync_write("goal_current", dict.fromkeys(self.actuated_ids, 0))
            self.bus.torque(self.actuated_ids, True)
            self.torque_on = True
            self._last_health = time.perf_counter()

    def disable(self) -> None:
        """Turn torque off on every actuated servo (acknowledged writes)."""
        self.torque_on = False
        self.bus.sync_write("torque_enable", dict.fromkeys(self.actuated_ids, 0))
        self.bus.torque(self.actuated_ids, False)

    def _torque_off_quietly(self) -> None:
        """Emergency stop: one broadcast sync write, then acknowledged writes; never raises."""
        self.torque_on = False
        bus = self.bus
        if not bus.is_connected:
            return
        with contextlib.suppress(Exception):
            bus.sync_write("torque_enable", dict.fromkeys(self.actuated_ids, 0))
        for i in self.actuated_ids:
            with contextlib.suppress(Exception):
                bus.write(i, "torque_enable", 0)

    def estop(self) -> None:
        """Emergency stop: torque off now, whatever state the bus is in."""
        self._torque_off_quietly()

    def close(self) -> None:
        """Torque off, remove the signal guard, close the bus."""
        self._torque_off_quietly()
        if self._guard is not None:
            self._guard.uninstall()
        self.connected = False
        self.bus.close()

    # ---- state ------------------------------------------------------------------------------
    def read_state(self) -> JointState:
        """One sync read of present current, velocity and position of every joint -> SI.

        With indirect addressing the same packet carries each servo's torque enable and
        hardware error status, checked on every call; otherwise they are read every
        ``health_period_s``."""
        with self._guarded():
            block = self._state_block
            if block is not None:
                raw = self.bus.read_mapped(block, self.ids, fast=self.fast_sync_read)
            else:
                raw = self.bus.sync_read_many(STATE_REGISTERS, self.ids,
                                              fast=self.fast_sync_read)
            t = time.perf_counter()
            n = len(self.hw.joints)
            q, dq, cur = np.zeros(n), np.zeros(n), np.zeros(n)
            for k, j in enumerate(self.hw.joints):
                r = raw[j.motor_id]
                q[k] = j.ticks_to_position(r["present_position"])
                dq[k] = j.raw_to_velocity(r["present_velocity"])
                cur[k] = j.raw_to_current(r["present_current"]) if j.actuated else 0.0
            state = JointState(t, q, dq, cur, raw)
            self.last_state = state
            if block is not None:
                self._check_flags({i: raw[i] for i in self.actuated_ids})
            elif self.torque_on and t - self._last_health >= self.health_period_s:
                self.check_health()
            self._check_overspeed(state)
            return state

    def _check_overspeed(self, state: JointState) -> None:
        if self.overspeed_factor is None:
            return
        for k in self._act_index:
            j = self.hw.joints[k]
            if abs(state.dq[k]) > self.overspeed_factor * j.velocity_limit:
                raise OverspeedError(
                    f"joint {j.joint!r} (ID {j.motor_id}) moves at {state.dq[k]:.3g}, more "
                    f"than {self.overspeed_factor:g} x its velocity limit {j.velocity_limit:g}; "
                    "torque is off. Check the controller gains and the hardware map's "
                    "direction and transmission", j.motor_id, j.joint)

    def check_health(self) -> None:
        """Read torque enable and hardware error status of every servo; raise if a servo lost
        torque unexpectedly or reports a hardware error."""
        self._last_health = time.perf_counter()
        regs = self.bus.sync_read_many(("torque_enable", "hardware_error_status"),
                                       self.actuated_ids)
        self._check_flags(regs)

    def _check_flags(self, regs: dict[int, dict[str, int]]) -> None:
        for i, r in regs.items():
            j = self.hw.by_motor_id(i)
            bits = r["hardware_error_status"]
            if bits:
                self._torque_off_quietly()
                raise HardwareAlertError(
                    f"joint {j.joint!r} (ID {i}) reports a hardware error: "
                    f"{self.bus.describe_hardware_error(bits)}; torque is off. Fix the cause, then "
                    f"reboot it (bus.reboot({i})) and call robot.enable()", i, j.joint, bits)
            if self.torque_on and not r["torque_enable"]:
                why = (f"the bus watchdog ({self.watchdog_ms} ms) expired: the controller sent "
                       "nothing for longer than that" if self.bus.watchdog_expired(i) else
                       "the servo rebooted or browned out (check the supply)")
                self._torque_off_quietly()
                raise TorqueLostError(
                    f"joint {j.joint!r} (ID {i}): torque went off: {why}. Call robot.enable() "
                    "to re-arm", i, j.joint)

    # ---- commands ---------------------------------------------------------------------------
    def _state_for_limits(self) -> JointState:
        s = self.last_state
        if s is None or time.perf_counter() - s.t > self.health_period_s:
            s = self.read_state()
        return s

    def write_currents(self, amps: Sequence[float] | np.ndarray) -> np.ndarray:
        """Command motor currents [A] (action order) after the safety clamp; returns the
        currents actually sent (quantised to 2.69 mA)."""
        if self.mode != "current":
            raise SafetyError(f"write_currents needs mode='current' (this robot is in "
                              f"{self.mode!r} mode)")
        with self._guarded():
            s = self._state_for_limits()
            raw, sent = self.limits.clamp_currents(amps, s.q[self._act_index],
                                                   s.dq[self._act_index])
            self.bus.sync_write("goal_current", {
                i: int(v) for i, v in zip(self.actuated_ids, raw, strict=True)})
            self.last_sent = sent
            return sent

    def write_efforts(self, effort: Sequence[float] | np.ndarray) -> np.ndarray:
        """Command joint efforts [N*m or N] (action order); returns the efforts actually sent."""
        e = np.asarray(effort, dtype=float).reshape(-1)
        joints = self.hw.actuated
        amps = [j.effort_to_current(float(x)) for j, x in zip(joints, e, strict=True)]
        sent = self.write_currents(amps)
        return np.array([j.current_to_effort(float(i)) for j, i in zip(joints, sent,
                                                                        strict=True)])

    def write_action(self, action: Sequence[float] | np.ndarray) -> np.ndarray:
        """Command a normalized policy action a in [-1, 1]: the joint effort a * gear (the MJCF
        gear convention), i.e. the motor current direction * a * max_current_a (a servo
        mounted reversed, direction -1, needs the opposite current for the same effort);
        returns the action actually sent."""
        a = np.asarray(action, dtype=float).reshape(-1)
        # current per unit action, signed: I = direction * a * I_max
        scale = np.array([j.direction * j.max_current_a for j in self.hw.actuated])
        sent = self.write_currents(a * scale)
        result: np.ndarray = sent / scale
        return result

    def write_positions(self, q_goal: Sequence[float] | np.ndarray) -> np.ndarray:
        """Command joint positions (position modes) clipped into the limits; returns the
        positions actually sent (quantised to encoder ticks)."""
        if self.mode == "current":
            raise SafetyError("write_positions needs mode='position' or 'current_position'")
        with self._guarded():
            g = self.limits.clamp_positions(q_goal)
            ticks = {j.motor_id: j.position_to_ticks(float(x))
                     for j, x in zip(self.hw.actuated, g, strict=True)}
            self.bus.sync_write("goal_position", ticks)
            return np.array([j.ticks_to_position(ticks[j.motor_id]) for j in self.hw.actuated])

    def reboot(self, joint: str) -> None:
        """Reboot the servo of a joint (clears hardware errors) and reconfigure it."""
        j = self.hw.joint(joint)
        self.bus.reboot(j.motor_id)
        self.torque_on = False
        self.connect()

