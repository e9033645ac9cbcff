"""One emulated Dynamixel device: its control-table memory and how it answers instructions.

The device is pure Python and knows nothing about transport or physics. The emulated robot
(:mod:`robot_meta.hardware.emulation.emulated_robot`) asks it what its motor driver does
(:meth:`DynamixelDevice.drive`: a current request, or a PWM duty) and writes back the measured
joint state and the motor's actual current, duty and supply voltage
(:meth:`DynamixelDevice.update_present`); :class:`~robot_meta.hardware.dynamixel.network.DeviceNetwork`
feeds it decoded instruction packets. Every servo constant comes from the servo's data file
(``JointHardware.servo``); the torque-speed envelope (back-EMF, supply voltage) is the plant's.

Firmware behaviour emulated (XM430, e-Manual):

* EEPROM registers are writable only with torque off (else access error 7); values outside a
  register's range give data range error 4; goal values beyond a limit register (current limit,
  position limits in position mode) give data limit error 6. A failed write changes nothing.
* Bus watchdog (98): with torque on, if no instruction packet is heard for value * 20 ms the
  motor stops: torque enable is cleared, the register becomes -1, and goal registers become
  read-only until 0 is written to it. (The real firmware stops the motor but may leave torque
  enable at 1; clearing it is the conservative reading the HAL relies on.)
* Hardware errors (70) set the alert bit (0x80) of every status packet; the errors selected by
  shutdown (63) also turn torque off and keep it off until a reboot.
* Reboot answers, then the device is silent for ``REBOOT_TIME_S`` and comes back with RAM
  registers at their defaults.
* Operating Mode (11): current (0) drives Goal Current (102) clamped to Current Limit (38);
  PWM (16) drives a duty d = Goal PWM (100) * pwm_unit, Goal PWM being bounded by PWM Limit
  (36) on write; the position modes (3, 4, 5) and velocity mode (1) run their control law into
  a current request. PWM Limit bounds the driver's output in every mode: a current loop that
  needs more voltage than the limit allows saturates there (see :meth:`DynamixelDevice.drive`).
* Present Current (126), Present PWM (124), Present Velocity (128) and Present Input Voltage
  (144) report what the plant did: the motor's actual current, the applied duty, the output
  speed and the supply after sag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.hardware_map import JointHardware

REBOOT_TIME_S = 0.1  # silent period after a reboot instruction
WATCHDOG_UNIT_S = 0.020
GOAL_REGISTERS = ("goal_pwm", "goal_current", "goal_velocity", "goal_position")


class Drive(NamedTuple):
    """What a servo's motor driver does during one physics step, in the motor's frame.

    ``current_a``: the current request [A] of a current-based mode (the plant turns it into the
    effort K_t I / r and applies the torque-speed envelope); ``duty``: NaN in the current-based
    modes, else the PWM duty d in [-1, 1] of the applied voltage d * V (then ``current_a`` is 0).
    """

    current_a: float
    duty: float


DRIVE_OFF = Drive(0.0, math.nan)  # torque off: no current, no voltage


@dataclass(frozen=True)
class Reply:
    """What a device sends back: (error byte, data). ``None`` replies are silence."""

    dxl_id: int
    error: int
    data: bytes = b""


class DynamixelDevice:
    """An emulated Protocol 2.0 device.

    Args:
        dxl_id: the device ID.
        table: its control table.
        joint: the joint it drives or reads (unit conversions), or None for a bare device.
        baud_index: the baud rate register value (3 = 1 Mbps).
    """

    def __init__(self, dxl_id: int, table: ct.ControlTable, joint: JointHardware | None = None,
                 baud_index: int = 3):
        self.table = table
        self.joint = joint
        self.mem = bytearray(table.size)
        # name -> (address, size, signed, mask): the hot path avoids Register lookups.
        self._fmt = {r.name: (r.address, r.size, r.signed, (1 << (8 * r.size)) - 1)
                     for r in table.registers}
        self._torque_addr = table["torque_enable"].address if "torque_enable" in table else None
        self.online = True  # False: unplugged (silent, no torque)
        self.rebooting_until = -math.inf
        self.last_comm = 0.0
        self._stall_time = 0.0
        self._eeprom_defaults = {"id": dxl_id, "baud_rate": baud_index}
        self._factory_reset()

    # ---- memory -------------------------------------------------------------------------------
    def _factory_reset(self) -> None:
        for r in self.table.registers:
            self.mem[r.address:r.end] = r.encode(r.default)
        for name, value in self._eeprom_defaults.items():
            if name in self.table:
                self.set(name, value)

    def _reset_ram(self) -> None:
        for r in self.table.registers:
            if not r.eeprom:
                self.mem[r.address:r.end] = r.encode(r.default)

    def get(self, name: str) -> int:
        """A register's raw value (no access check)."""
        a, n, signed, _ = self._fmt[name]
        return int.from_bytes(self.mem[a:a + n], "little", signed=signed)

    def set(self, name: str, value: int) -> None:
        """Set a register's raw value (no access check): the firmware's own writes."""
        a, n, _, mask = self._fmt[name]
        self.mem[a:a + n] = (int(value) & mask).to_bytes(n, "little")

    @property
    def id(self) -> int:
        return self.get("id")

    @property
    def torque_enabled(self) -> bool:
        a = self._torque_addr
        return a is not None and self.mem[a] == 1

    @property
    def hardware_error(self) -> int:
        return self.get("hardware_error_status")

    @property
    def return_delay_s(self) -> float:
        """Return delay time (9): 2 us per unit."""
        return 2e-6 * self.get("return_delay_time")

    @property
    def baud(self) -> int:
        return ct.BAUD_RATES.get(self.get("baud_rate"), 1_000_000)

    def available(self, now: float) -> bool:
        """Whether the device is powered, plugged in, and not rebooting."""
        return self.online and now >= self.rebooting_until

    def status_error(self, code: int = 0) -> int:
        """The status error byte for error number ``code``, with the alert bit if needed."""
        return code | (p.ALERT_BIT if self.hardware_error else 0)

    def status_level(self) -> int:
        """Status return level (68): 0 ping only, 1 ping and read, 2 every instruction."""
        return self.get("status_return_level") if "status_return_level" in self.table else 2

    # ---- instructions -------------------------------------------------------------------------
    def hear(self, now: float) -> None:
        """An instruction packet was heard on the bus: feed the watchdog."""
        self.last_comm = now

    def ping(self) -> Reply:
        """Ping: model number (2 bytes) and firmware version (1 byte)."""
        data = p.le(self.table.model_number, 2) + bytes([self.get("firmware_version")])
        return Reply(self.id, self.status_error(), data)

    def read(self, address: int, length: int, unicast: bool = True) -> Reply | None:
        """Read ``length`` bytes from ``address``; reserved bytes read as 0, indirect data
        bytes read the byte their indirect address points at."""
        if unicast and self.status_level() < 1:
            return None
        if length <= 0:
            return Reply(self.id, self.status_error(p.ERR_DATA_LENGTH))
        if address < 0 or address + length > self.table.size:
            return Reply(self.id, self.status_error(p.ERR_ACCESS))
        data = bytearray(self.mem[address:address + length])
        for a, target in self._indirect_targets(address, length):
            data[a - address] = self.mem[target] if target < len(self.mem) else 0
        return Reply(self.id, self.status_error(), bytes(data))

    def _indirect_targets(self, address: int, length: int) -> list[tuple[int, int]]:
        """(indirect data address, target address) for the indirect bytes in a span."""
        ind = self.table.indirect
        if ind is None:
            return []
        a0, d0, n = ind
        lo, hi = max(address, d0), min(address + length, d0 + n)
        return [(a, int.from_bytes(self.mem[a0 + 2 * (a - d0):a0 + 2 * (a - d0) + 2], "little"))
                for a in range(lo, hi)]

    def write(self, address: int, data: bytes, now: float) -> int:
        """Write ``data`` at ``address``; returns the error number (0 when written).

        Every byte must belong to a writable register, each register touched must be covered
        entirely, and each value must pass its range and limit checks; otherwise nothing is
        written.
        """
        if not data:
            return p.ERR_DATA_LENGTH
        end = address + len(data)
        if address < 0 or end > self.table.size:
            return p.ERR_ACCESS
        targets = self._indirect_targets(address, len(data))
        if targets:
            # Through indirect data: the bytes must all be indirect and point at one contiguous
            # span, which is then written like a direct write (same checks).
            addrs = [t for _, t in targets]
            if len(targets) != len(data) or addrs != list(range(addrs[0], addrs[0] + len(data))):
                return p.ERR_ACCESS
            if self.table.indirect and addrs[0] >= self.table.indirect[1]:
                return p.ERR_ACCESS  # an indirect byte pointing into the indirect data
            return self.write(addrs[0], data, now)
        regs: list[tuple[ct.Register, int]] = []
        a = address
        while a < end:
            r = self.table.at(a)
            if r is None or not r.writable or r.address != a:
                return p.ERR_ACCESS
            if r.end > end:
                return p.ERR_DATA_LENGTH
            regs.append((r, r.decode(data[a - address:r.end - address])))
            a = r.end
        for r, v in regs:
            err = self._check_write(r, v)
            if err:
                return err
        for r, v in regs:
            self._apply_write(r, v, now)
        return 0

    def _check_write(self, r: ct.Register, v: int) -> int:
        if r.eeprom and self.torque_enabled:
            return p.ERR_ACCESS
        if not r.low <= v <= r.high:
            return p.ERR_DATA_RANGE
        if r.name in GOAL_REGISTERS and "bus_watchdog" in self.table \
                and self.get("bus_watchdog") == -1:
            return p.ERR_ACCESS  # goal values are read-only after a watchdog error
        if r.name == "bus_watchdog" and v == -1:
            return p.ERR_DATA_RANGE  # -1 is a status the firmware sets, not a setting
        if r.name == "torque_enable" and v == 1 and self.hardware_error & self.get("shutdown"):
            return p.ERR_RESULT_FAIL  # shut down by a hardware error: reboot first
        if r.limit:
            names = r.limit.split(",")
            if len(names) == 1:
                lim = self.get(names[0])
                if abs(v) > lim:
                    return p.ERR_DATA_LIMIT
            elif r.name == "goal_position" and self.get("operating_mode") == ct.MODE_POSITION:
                lo, hi = self.get(names[0]), self.get(names[1])
                if not lo <= v <= hi:
                    return p.ERR_DATA_LIMIT
        return 0

    def _apply_write(self, r: ct.Register, v: int, now: float) -> None:
        if r.name == "torque_enable" and v == 1 and not self.torque_enabled:
            # Torque on: the position goal starts at the present position (firmware behaviour).
            self.set("goal_position", self.get("present_position"))
            self.last_comm = now
        self.set(r.name, v)

    def reboot(self, now: float) -> Reply:
        """Answer, then go silent for REBOOT_TIME_S and come back with RAM at defaults."""
        reply = Reply(self.id, self.status_error())
        self._reset_ram()
        self.rebooting_until = now + REBOOT_TIME_S
        self._stall_time = 0.0
        return reply

    # ---- firmware: watchdog, faults, motor --------------------------------------------------
    def check_watchdog(self, now: float) -> bool:
        """Stop the motor if the bus watchdog expired; returns True when it fires now."""
        if "bus_watchdog" not in self.table or not self.torque_enabled:
            return False
        wd = self.get("bus_watchdog")
        if wd <= 0:
            return False
        if now - self.last_comm > wd * WATCHDOG_UNIT_S:
            self.set("torque_enable", 0)
            self.set("bus_watchdog", -1)
            return True
        return False

    def raise_hardware_error(self, bits: int) -> None:
        """Set hardware error bits; the ones selected by shutdown (63) cut the torque."""
        self.set("hardware_error_status", self.hardware_error | bits)
        if "shutdown" in self.table and bits & self.get("shutdown"):
            self.set("torque_enable", 0)

    def unplug(self) -> None:
        """Disconnect the device: it goes silent and its motor loses power."""
        self.online = False
        if "torque_enable" in self.table:
            self.set("torque_enable", 0)

    def plug(self, now: float) -> None:
        """Reconnect: the device powers up again (RAM at defaults)."""
        self.online = True
        self._reset_ram()
        self.last_comm = now

    def supply_v(self) -> float:
        """The supply voltage the firmware measures, Present Input Voltage (144) [V]."""
        assert self.joint is not None
        return self.get("present_input_voltage") * self.joint.servo.voltage_unit_v

    def drive(self) -> Drive:
        """What the motor driver does now, from the operating mode and the goal registers.

        * torque off, or a passive device: :data:`DRIVE_OFF`.
        * current mode (0): I = goal_current * current_unit, clamped to the current limit.
        * PWM mode (16): d = goal_pwm * pwm_unit, |goal_pwm| <= pwm_limit.
        * position modes (3, 4, 5): a PD law on the encoder, I = Kp * e - Kd * v with
          Kp = P / 128 and Kd = D / 16 in current units per tick (per velocity unit for Kd);
          mode 5 clamps to goal_current.
        * velocity mode (1): I = (velocity_p_gain / 128) * (goal_velocity - present_velocity).

        Current requests are clamped to the current limit. PWM Limit (36) bounds the voltage in
        every mode: a current I at motor speed w needs the duty d = I / I_s(V) + w / w0(V)
        (V d = R I + k_e w, with I_s(V) = V / R and w0(V) = V / k_e); when the limit was lowered
        below the servo file's and |d| exceeds it, the loop saturates at that duty.

        A joint whose simulators give no servo envelope (``servo_physics`` False: an ideal
        effort source) gets it here instead, once per physics step at the measured speed: the
        position modes subtract the back-EMF current I_s(V) w / w0(V), and PWM mode becomes the
        current I = I_s(V) (d - w / w0(V)), clamped to the current limit.
        """
        j = self.joint
        if not self.table.torque or not self.torque_enabled or j is None:
            return DRIVE_OFF
        servo = j.servo
        motor = servo.motor
        if motor is None:
            return DRIVE_OFF
        unit = j.current_unit_a
        limit = self.get("current_limit")
        mode = self.get("operating_mode")
        pwm_limit = self.get("pwm_limit")
        volts = self.supply_v()
        if volts <= 0.0:  # no supply: the driver has nothing to drive with
            return DRIVE_OFF
        # Motor output speed w [rad/s], its no-load speed w0(V) and stall current I_s(V).
        omega = self.get("present_velocity") * j.velocity_unit_rad_s
        w0 = float(motor.no_load_speed_at(volts))
        i_stall = motor.stall_current * volts / motor.nominal_voltage
        if mode == ct.MODE_PWM:
            goal = max(-pwm_limit, min(pwm_limit, self.get("goal_pwm")))
            duty = goal * servo.pwm_unit
            if j.servo_physics:
                return Drive(0.0, duty)
            raw = i_stall * (duty - omega / w0) / unit
        elif mode == ct.MODE_CURRENT:
            raw = float(self.get("goal_current"))
        elif mode in (ct.MODE_POSITION, ct.MODE_EXTENDED_POSITION, ct.MODE_CURRENT_POSITION):
            err = self.get("goal_position") - self.get("present_position")
            vel = self.get("present_velocity")
            raw = (self.get("position_p_gain") / 128.0) * err \
                - (self.get("position_d_gain") / 16.0) * vel
            if not j.servo_physics:
                raw -= i_stall * omega / w0 / unit
            if mode == ct.MODE_CURRENT_POSITION:
                limit = min(limit, abs(self.get("goal_current")))
        elif mode == ct.MODE_VELOCITY:
            err = self.get("goal_velocity") - self.get("present_velocity")
            raw = (self.get("velocity_p_gain") / 128.0) * err
        else:  # a mode the XM430 does not have: the motor is left unpowered
            return DRIVE_OFF
        amps = max(-limit, min(limit, raw)) * unit
        if j.servo_physics and pwm_limit < servo.pwm_limit_raw:
            need = amps / i_stall + omega / w0  # the duty this current needs at speed w
            d_max = pwm_limit * servo.pwm_unit
            if abs(need) > d_max:
                return Drive(0.0, math.copysign(d_max, need))
        return Drive(amps, math.nan)

    def update_present(self, q_meas: float, dq_meas: float, current_a: float, now: float,
                       dt: float, duty: float = math.nan, supply_v: float = math.nan) -> None:
        """Write the measured joint state into the present registers and run the overload
        check over the last ``dt`` seconds. ``q_meas`` and ``dq_meas`` are in joint units;
        ``current_a`` is the motor's actual current [A], ``duty`` the applied PWM duty (NaN: a
        current-based mode, whose duty is the one the current needs, see :meth:`drive`) and
        ``supply_v`` the supply voltage [V] after sag (NaN: unchanged)."""
        if self.joint is None:
            return
        j = self.joint
        fmt = self._fmt
        if math.isfinite(q_meas):
            # Present position = actual position + homing offset (e-Manual).
            ticks = j.position_to_ticks(q_meas) + (self.get("homing_offset")
                                                   if "homing_offset" in fmt else 0)
            self.set("present_position", max(-(2**31), min(2**31 - 1, ticks)))
        vel_raw = 0
        if math.isfinite(dq_meas):
            vel_raw = max(-(2**31), min(2**31 - 1, j.velocity_to_raw(dq_meas)))
            self.set("present_velocity", vel_raw)
        if "realtime_tick" in fmt:
            self.set("realtime_tick", int(now * 1000.0) % 32768)
        if not self.table.torque:
            return
        raw_i = int(round(current_a / j.current_unit_a))
        self.set("present_current", max(-32768, min(32767, raw_i)))
        servo = j.servo
        if math.isfinite(supply_v):
            self.set("present_input_voltage", max(0, min(0xFFFF, round(supply_v
                                                                        / servo.voltage_unit_v))))
        self.set("present_pwm", self._present_pwm(current_a, duty, vel_raw))
        if "moving" in fmt:
            self.set("moving", int(abs(vel_raw) > self.get("moving_threshold")))
        # Overload (the servo file's [overload]): a stalled shaft at (nearly) full current for
        # time_s.
        ol = servo.overload
        if ol is None or current_a == 0.0 or not self.torque_enabled:
            self._stall_time = 0.0
            return
        limit_a = self.get("current_limit") * j.current_unit_a
        stalled = abs(dq_meas) < ol.stall_speed * max(j.transmission, 1e-9)
        if limit_a > 0 and abs(current_a) >= ol.current_fraction * limit_a and stalled:
            self._stall_time += dt
            if self._stall_time >= ol.time_s:
                self.raise_hardware_error(ct.HW_OVERLOAD)
                self._stall_time = 0.0
        else:
            self._stall_time = 0.0

    def _present_pwm(self, current_a: float, duty: float, vel_raw: int) -> int:
        """Present PWM (124): the applied duty in PWM units; in a current-based mode the duty
        the current loop applies, d = I / I_s(V) + w / w0(V) (see :meth:`drive`), within the
        PWM limit; 0 with torque off."""
        j = self.joint
        assert j is not None
        motor = j.servo.motor
        if not self.torque_enabled or motor is None:
            return 0
        if not math.isfinite(duty):
            volts = self.supply_v()
            if volts <= 0.0:
                return 0
            omega = vel_raw * j.velocity_unit_rad_s
            duty = (current_a / (motor.stall_current * volts / motor.nominal_voltage)
                    + omega / float(motor.no_load_speed_at(volts)))
        lim = self.get("pwm_limit")
        return max(-lim, min(lim, round(duty / j.servo.pwm_unit)))
