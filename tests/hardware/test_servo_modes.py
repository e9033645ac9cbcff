"""The emulated XM430 honours its operating modes and limit registers, seen through the official
ROBOTIS ``dynamixel_sdk`` driving the arm2 emulator (PyBullet twin) over a real pty.

The elbow runs free across its range while the shoulder holds in position mode. With its gearbox
friction and damping set to 0, the only load on the elbow is gravity on link 2,

    tau_L(q) = m2 g l_c sin(q1 + q2)      (angles 0 hanging down, positive toward +x),

and the servo's torque-speed line tau_s(V) (d - w / w0(V)) = tau_L gives the steady speed

    w(q) = w0(V) (d - tau_L(q) / tau_s(V)),

with d the PWM duty (1 for a current request beyond the stall torque: the envelope's upper
line). |tau_L| <= 0.196 N*m is under 5 % of the 4.1 N*m stall torque, so at full duty the
speed is the servo file's no-load speed within 5 %, and within 2 % of w(q).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest
from dynamixel_sdk import COMM_SUCCESS, GroupSyncRead, PacketHandler, PortHandler

from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.emulation.emulator import Emulator
from robot_meta.hardware.servos import load_servo
from robot_meta.sim.robots.arm2 import constants as C

SERVO = load_servo("xm430-w350")
MOTOR = SERVO.motor
T = ct.XM430_W350
SHOULDER, ELBOW = 1, 2
# Link 2 alone loads the elbow: no gearbox friction or damping, no payload.
FREE_ELBOW = {"elbow_damping": 0.0, "elbow_frictionloss": 0.0, "payload_mass": 0.0}
START = -2.3  # rad: the elbow starts near its lower stop and sweeps up through the range
BLOCK = (T["present_pwm"].address, 12)  # present PWM, current, velocity, position
RETRIES = 5


def _signed(v: int, size: int) -> int:
    return v - (1 << (8 * size)) if v >= 1 << (8 * size - 1) else v


class Sdk:
    """The vendor SDK on the emulator's port, with the few calls these tests make."""

    def __init__(self, port_name: str):
        self.port = PortHandler(port_name)
        self.ph = PacketHandler(2.0)
        assert self.port.openPort() and self.port.setBaudRate(1_000_000)
        self.block = GroupSyncRead(self.port, self.ph, *BLOCK)
        for i in (SHOULDER, ELBOW):
            assert self.block.addParam(i)

    def write(self, dxl_id: int, name: str, value: int) -> int:
        """Write a register; returns the servo's error number (0: written)."""
        r = T[name]
        raw = value & ((1 << (8 * r.size)) - 1)
        fn = {1: self.ph.write1ByteTxRx, 2: self.ph.write2ByteTxRx, 4: self.ph.write4ByteTxRx}
        for _ in range(RETRIES):  # an answer that times out on a busy machine: ask again
            result, error = fn[r.size](self.port, dxl_id, r.address, raw)
            if result == COMM_SUCCESS:
                return int(error) & 0x7F
        raise AssertionError(f"write {name} to ID {dxl_id}: {self.ph.getTxRxResult(result)}")

    def read(self, dxl_id: int, name: str) -> int:
        r = T[name]
        fn = {1: self.ph.read1ByteTxRx, 2: self.ph.read2ByteTxRx, 4: self.ph.read4ByteTxRx}
        for _ in range(RETRIES):
            value, result, error = fn[r.size](self.port, dxl_id, r.address)
            if result == COMM_SUCCESS:
                assert error == 0
                return _signed(int(value), r.size) if r.signed else int(value)
        raise AssertionError(f"read {name} of ID {dxl_id}: {self.ph.getTxRxResult(result)}")

    def sweep(self, timeout: float = 4.0) -> np.ndarray:
        """Sync-read the state block every ~5 ms until the elbow has rested against its upper
        stop for 0.1 s (or ``timeout`` s): rows (q1, q2, elbow speed [rad/s], elbow present
        PWM, elbow present current, supply [V]). A sync read that times out on a busy
        machine is skipped (the tests ask for enough samples)."""
        volts = self.read(ELBOW, "present_input_voltage") * SERVO.voltage_unit_v
        rows: list[tuple[float, ...]] = []
        lost = 0
        t0 = time.perf_counter()
        at_stop = math.inf
        while time.perf_counter() - t0 < timeout and time.perf_counter() - at_stop < 0.1:
            time.sleep(0.005)
            if self.block.txRxPacket() != COMM_SUCCESS:
                lost += 1
                continue
            g = self.block.getData
            q = [(g(i, 132, 4) - 2048) * 2.0 * math.pi / SERVO.ticks_per_rev for i in (1, 2)]
            vel = _signed(g(ELBOW, 128, 4), 4) * SERVO.velocity_unit_rad_s
            rows.append((*q, vel, _signed(g(ELBOW, 124, 2), 2), _signed(g(ELBOW, 126, 2), 2),
                         volts))
            if q[1] > C.ELBOW_RANGE[1] - 0.02 and at_stop == math.inf:
                at_stop = time.perf_counter()
        assert lost < len(rows), f"{lost} sync reads lost, {len(rows)} answered"
        return np.array(rows)

    def close(self) -> None:
        self.port.closePort()


@pytest.fixture
def sdk() -> Iterator[tuple[Emulator, Sdk]]:
    """The arm2 emulator with a free elbow near its lower stop, and the SDK on its port; the
    shoulder holds its position (factory mode 3, torque on)."""
    with Emulator("arm2", params=FREE_ELBOW, qpos0={C.ELBOW: START}) as emu:
        s = Sdk(emu.port)
        try:
            assert s.write(SHOULDER, "torque_enable", 1) == 0
            yield emu, s
        finally:
            s.close()


def _steady_speed(rows: np.ndarray, duty: float) -> np.ndarray:
    """w(q) = w0(V) (d - tau_L(q) / tau_s(V)) for each sample (module docstring)."""
    assert MOTOR is not None
    q1, q2, volts = rows[:, 0], rows[:, 1], rows[:, 5]
    load = C.LINK2_MASS * 9.81 * (C.LINK2_LENGTH / 2.0) * np.sin(q1 + q2)
    return MOTOR.no_load_speed_at(volts) * (duty - load / MOTOR.stall_torque_at(volts))


def _cruise(rows: np.ndarray) -> np.ndarray:
    """The samples in mid-sweep: past the acceleration, before the upper stop."""
    return rows[(rows[:, 1] > START + 0.5) & (rows[:, 1] < 2.0)]


def test_pwm_full_duty_runs_at_the_no_load_speed(sdk: tuple[Emulator, Sdk]) -> None:
    emu, s = sdk
    assert MOTOR is not None
    w0 = SERVO.no_load_speed
    assert s.write(ELBOW, "operating_mode", ct.MODE_PWM) == 0
    assert s.write(ELBOW, "torque_enable", 1) == 0
    assert s.write(ELBOW, "goal_pwm", SERVO.pwm_limit_raw) == 0  # 885: 100 %
    rows = s.sweep()
    cruise = _cruise(rows)
    assert len(cruise) >= 20
    speed = cruise[:, 2]
    assert np.all(np.abs(speed - w0) <= 0.05 * w0), speed
    assert np.all(np.abs(speed - _steady_speed(cruise, 1.0)) <= 0.02 * w0)
    assert np.all(cruise[:, 3] == SERVO.pwm_limit_raw)  # Present PWM: the applied duty
    assert np.all(np.abs(cruise[:, 5] - MOTOR.nominal_voltage) < 0.05)  # no supply sag
    # Against the upper stop the shaft stalls and the motor draws its stall current.
    assert rows[-1, 1] == pytest.approx(C.ELBOW_RANGE[1], abs=0.02)
    stall_raw = MOTOR.stall_current / SERVO.current_unit_a
    assert rows[-1, 4] == pytest.approx(stall_raw, rel=0.05)
    assert emu.register(ELBOW, "hardware_error_status") == 0


def test_full_current_saturates_at_the_no_load_speed(sdk: tuple[Emulator, Sdk]) -> None:
    """A current request beyond the stall torque: the voltage-limited envelope, not the
    request, sets the speed, which settles on the same line as full PWM."""
    _, s = sdk
    w0 = SERVO.no_load_speed
    assert s.write(ELBOW, "operating_mode", ct.MODE_CURRENT) == 0
    assert s.write(ELBOW, "torque_enable", 1) == 0
    limit = s.read(ELBOW, "current_limit")
    assert limit == SERVO.current_limit_raw
    assert s.write(ELBOW, "goal_current", limit) == 0  # 3.2 A: 5.7 N*m asked, 4.1 N*m stall
    rows = s.sweep()
    cruise = _cruise(rows)
    assert len(cruise) >= 20
    assert np.max(np.abs(rows[:, 2])) <= 1.1 * w0  # it never runs away
    assert np.all(np.abs(cruise[:, 2] - w0) <= 0.05 * w0)
    assert np.all(np.abs(cruise[:, 2] - _steady_speed(cruise, 1.0)) <= 0.02 * w0)
    # The actual current is what the envelope leaves (near 0 at the no-load speed), not the
    # 1193 units requested.
    assert np.all(np.abs(cruise[:, 4]) < 0.1 * limit)


def test_limit_registers_bound_the_goals_and_the_pwm_limit_the_speed(
        sdk: tuple[Emulator, Sdk]) -> None:
    _, s = sdk
    assert MOTOR is not None
    w0 = SERVO.no_load_speed
    # Current Limit (38) bounds Goal Current (102): data limit error 6, nothing written.
    assert s.write(ELBOW, "operating_mode", ct.MODE_CURRENT) == 0
    assert s.write(ELBOW, "current_limit", 600) == 0
    assert s.read(ELBOW, "current_limit") == 600
    assert s.write(ELBOW, "goal_current", 601) == p.ERR_DATA_LIMIT
    assert s.write(ELBOW, "goal_current", -601) == p.ERR_DATA_LIMIT
    assert s.write(ELBOW, "goal_current", -600) == 0
    assert s.read(ELBOW, "goal_current") == -600
    assert s.write(ELBOW, "goal_current", 0) == 0
    # PWM Limit (36) bounds Goal PWM (100), and lowers the top speed in PWM mode.
    half = SERVO.pwm_limit_raw // 2
    assert s.write(ELBOW, "operating_mode", ct.MODE_PWM) == 0
    assert s.write(ELBOW, "pwm_limit", half) == 0
    assert s.write(ELBOW, "goal_pwm", half + 1) == p.ERR_DATA_LIMIT
    assert s.write(ELBOW, "goal_pwm", -half - 1) == p.ERR_DATA_LIMIT
    assert s.write(ELBOW, "goal_pwm", half) == 0
    assert s.write(ELBOW, "torque_enable", 1) == 0
    assert s.write(ELBOW, "pwm_limit", SERVO.pwm_limit_raw) == p.ERR_ACCESS  # EEPROM, torque on
    rows = s.sweep()
    cruise = _cruise(rows)
    assert len(cruise) >= 20
    duty = half * SERVO.pwm_unit
    assert np.all(np.abs(cruise[:, 2] - _steady_speed(cruise, duty)) <= 0.02 * w0)
    assert np.max(rows[:, 2]) < 0.6 * w0
    assert np.all(cruise[:, 3] == half)
