"""Safety: no limit violation ever reaches the wire; torque off on exceptions and signals."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robot_meta.hardware import Robot, SafetyLimits, open_bus
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.dynamixel.serial_bus import SerialBus
from robot_meta.hardware.emulation.emulated_robot import EmulatedRobot, StaticPlant
from robot_meta.hardware.emulation.emulator import Emulator
from robot_meta.hardware.emulation.loopback import LoopbackSerial
from robot_meta.hardware.hardware_map import load_hardware_map
from robot_meta.hardware.safety import ServoLimitError, TorqueGuard


def _goal_currents_on_wire(wire: bytes) -> list[dict[int, int]]:
    """Every sync write of goal current (address 102) found in the captured bytes."""
    out = []
    for pkt in p.iter_packets(wire):
        if pkt.instruction == p.SYNC_WRITE and p.from_le(pkt.params[0:2]) == 102:
            n = p.from_le(pkt.params[2:4])
            body = pkt.params[4:]
            out.append({body[k]: p.from_le(body[k + 1:k + 1 + n], signed=True)
                        for k in range(0, len(body), n + 1)})
    return out


@pytest.mark.parametrize("robot_name, n", [("arm2", 10_000), ("cartpole", 2_000)])
def test_random_commands_never_violate_limits_on_the_wire(robot_name: str, n: int) -> None:
    """10k random commands (huge, tiny, inf, nan) at random states (inside, at and beyond
    the position and velocity limits): every goal current on the wire respects the limits for
    the state the robot read, and the returned command is what was sent."""
    hw = load_hardware_map(robot_name)
    plant = StaticPlant(hw.joint_names)
    emulated = EmulatedRobot(hw, plant)
    wire = LoopbackSerial(emulated)
    robot = Robot(SerialBus(wire), hw, handle_signals=False, overspeed_factor=None,
                  health_period_s=math.inf)
    robot.connect()
    robot.enable()
    limits = robot.limits
    act = [k for k, j in enumerate(hw.joints) if j.actuated]
    rng = np.random.default_rng(0)
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    wire.written.clear()
    for _ in range(n):
        # State: anywhere from well inside to 30 % beyond the limits.
        q = np.zeros(len(hw.joints))
        dq = np.zeros(len(hw.joints))
        for k, j in enumerate(hw.joints):
            lo, hi = j.position_limits
            if math.isfinite(lo):
                q[k] = rng.uniform(lo * 1.3, hi * 1.3) if rng.random() < 0.7 else \
                    rng.choice([lo, hi])
            else:
                q[k] = rng.uniform(-10, 10)
            dq[k] = rng.uniform(-1.5, 1.5) * j.velocity_limit
        plant.set_state(q, dq)
        emulated._refresh(0.0)
        state = robot.read_state()
        kind = rng.random()
        if kind < 0.05:
            cmd = np.full(len(act), rng.choice([np.inf, -np.inf, np.nan]))
        elif kind < 0.5:
            cmd = rng.normal(0.0, 10.0, len(act))  # mostly far beyond the current limit
        else:
            cmd = rng.uniform(-1.0, 1.0, len(act)) * [hw.joints[k].max_current_a for k in act]
        sent = robot.write_currents(cmd)
        seen.append((state.q[act], state.dq[act], sent))
    writes = _goal_currents_on_wire(bytes(wire.written))
    assert len(writes) == n
    violations = 0
    for (q, dq, sent), w in zip(seen, writes, strict=True):
        for k, motor in enumerate(robot.actuated_ids):
            raw = w[motor]
            violations += limits.violation(raw, k, float(q[k]), float(dq[k])) is not None
            assert raw * limits.joints[k].current_unit_a == pytest.approx(sent[k])
    assert violations == 0
    robot.close()


def test_wire_limits_through_the_real_emulator() -> None:
    """The same check through the pty, on the packets the emulator received."""
    emu = Emulator("arm2", log_packets=True).start()
    try:
        # the longest watchdog: this test is about limits, and a scheduler stall of the 2-core CI
        # machine must not trip the 100 ms default (test_robot_emulated tests the watchdog)
        robot = Robot(open_bus(emu.port), load_hardware_map("arm2"), handle_signals=False,
                      overspeed_factor=None, watchdog_ms=2540)
        robot.connect()
        robot.enable()
        rng = np.random.default_rng(1)
        for _ in range(300):
            s = robot.read_state()
            robot.write_currents(rng.normal(0.0, 5.0, 2) - 3.0 * s.q - 0.5 * s.dq)
        robot.close()
        assert emu.packets is not None
        wire = b"".join(pkt.encode() for pkt in emu.packets)
        writes = _goal_currents_on_wire(wire)
        assert len(writes) >= 300
        max_raw = robot.limits.joints[0].max_raw
        assert max(abs(v) for w in writes for v in w.values()) <= max_raw
    finally:
        emu.close()


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(-1e9, 1e9)), min_size=2, max_size=2),
       st.lists(st.floats(-10, 10), min_size=2, max_size=2),
       st.lists(st.floats(-20, 20), min_size=2, max_size=2))
def test_clamp_is_safe_for_any_input(cmd: list[float], q: list[float], dq: list[float]) -> None:
    limits = SafetyLimits.from_hardware_map(load_hardware_map("arm2"))
    raw, sent = limits.clamp_currents(cmd, np.array(q), np.array(dq))
    for k in range(2):
        assert limits.violation(int(raw[k]), k, q[k], dq[k]) is None
        assert abs(sent[k]) <= limits.joints[k].max_current_a


def test_clamp_rules() -> None:
    limits = SafetyLimits.from_hardware_map(load_hardware_map("arm2"))
    z = np.zeros(2)
    raw, sent = limits.clamp_currents([5.0, -5.0], z, z)
    assert raw.tolist() == [743, -743] and sent[0] <= 2.0  # 2.0 A / 2.69 mA, toward zero
    raw, _ = limits.clamp_currents([1.0, -1.0], np.array([2.7, -2.6]), z)
    assert raw.tolist() == [0, 0]  # pushing outward at the limits
    raw, _ = limits.clamp_currents([-1.0, 1.0], np.array([2.7, -2.6]), z)
    assert raw[0] < 0 < raw[1]  # pushing back inside is allowed
    raw, _ = limits.clamp_currents([1.0, 1.0], z, np.array([8.0, -8.0]))
    assert raw[0] == 0 and raw[1] > 0  # no acceleration beyond the velocity limit
    assert limits.clamp_positions([3.0, -9.0]).tolist() == [2.7, -2.5]
    scaled = SafetyLimits.from_hardware_map(load_hardware_map("arm2"), current_scale=0.5)
    assert scaled.clamp_currents([5.0, 5.0], z, z)[0].tolist() == [371, 371]


def test_exception_in_a_command_turns_torque_off(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    robot = Robot(open_bus(emu.port), load_hardware_map("arm2"), handle_signals=False)
    robot.connect()
    robot.enable()
    assert emu.torque_enabled() == {1: True, 2: True}
    with pytest.raises(ValueError, match="expected 2 currents"):
        robot.write_currents([0.1, 0.2, 0.3])
    assert emu.torque_enabled() == {1: False, 2: False}
    robot.close()


@pytest.mark.parametrize("inherited", ["python_default", "ignored"])
def test_torque_guard_runs_on_signal_then_chains(inherited: str) -> None:
    """Ctrl-C turns torque off, then raises KeyboardInterrupt, also when SIGINT was inherited
    as ignored (a background job): never torque off and carry on with the rollout."""
    before = signal.signal(
        signal.SIGINT, signal.default_int_handler if inherited == "python_default" else signal.SIG_IGN
    )
    calls = []
    guard = TorqueGuard(lambda: calls.append(1))
    try:
        guard.install()
        try:
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
            assert calls == [1]
        finally:
            guard.uninstall()
        expected = signal.default_int_handler if inherited == "python_default" else signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is expected
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("how", ["sigterm", "exit"])
def test_torque_off_when_the_controller_process_dies(how: str) -> None:
    """A controller process with torque on gets SIGTERM, or exits without closing: the
    emulator sees torque go off."""
    with Emulator("arm2", port="tcp:0") as emu:
        code = textwrap.dedent(f"""
            import sys
            from robot_meta.hardware import Robot, open_bus, load_hardware_map
            robot = Robot(open_bus({emu.port!r}), load_hardware_map("arm2"), watchdog_ms=0)
            robot.connect()
            robot.enable()
            robot.write_currents([0.2, 0.2])
            print("on", flush=True)
            sys.stdin.readline()  # SIGTERM arrives here, or the go-ahead to exit
            sys.exit(0)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stdin=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "on"
        time.sleep(0.05)
        assert emu.torque_enabled() == {1: True, 2: True}
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            proc.stdin.write("\n")
            proc.stdin.flush()
        rc = proc.wait(timeout=10)
        assert rc == (128 + signal.SIGTERM if how == "sigterm" else 0)
        assert emu.torque_enabled() == {1: False, 2: False}


def _loopback_robot(robot_name: str = "arm2") -> tuple[Robot, EmulatedRobot, LoopbackSerial]:
    hw = load_hardware_map(robot_name)
    emulated = EmulatedRobot(hw, StaticPlant(hw.joint_names))
    wire = LoopbackSerial(emulated)
    robot = Robot(SerialBus(wire), hw, handle_signals=False, overspeed_factor=None,
                  health_period_s=math.inf)
    return robot, emulated, wire


def test_connect_writes_and_verifies_the_servo_limits() -> None:
    """Current Limit = floor(max_current_a / unit), PWM Limit = the servo file's, written with
    torque off, read back; values left by another program are overwritten, and values already
    right are not written again (EEPROM wears)."""
    robot, emulated, wire = _loopback_robot()
    for d in emulated.devices.values():
        d.set("current_limit", 1193)
        d.set("pwm_limit", 300)
    robot.connect()
    for j in robot.hw.actuated:
        d = emulated.device(j.motor_id)
        assert d.get("current_limit") == int(j.max_current_a / j.current_unit_a) == 743
        assert d.get("pwm_limit") == j.servo.pwm_limit_raw == 885
        assert not d.torque_enabled
    assert robot.verify_servo_limits() == {1: {"current_limit": 743, "pwm_limit": 885},
                                           2: {"current_limit": 743, "pwm_limit": 885}}
    # The limits are read, written after the torque-off write (EEPROM), then read back, each
    # time in one read of addresses 36..39 (PWM Limit, Current Limit).
    packets = list(p.iter_packets(bytes(wire.written)))
    order = [(pkt.id, pkt.instruction, p.from_le(pkt.params[0:2])) for pkt in packets
             if pkt.instruction in (p.WRITE, p.READ)]
    reads = [pkt for pkt in packets if pkt.instruction == p.READ
             and p.from_le(pkt.params[0:2]) == 36]
    assert reads and all(p.from_le(pkt.params[2:4]) == 4 for pkt in reads)
    for i in (1, 2):
        mine = [x for x in order if x[0] == i]
        back = len(mine) - 1 - mine[::-1].index((i, p.READ, 36))  # the read-back after the writes
        assert mine.index((i, p.WRITE, 64)) < mine.index((i, p.WRITE, 38)) < back
        assert mine.index((i, p.WRITE, 64)) < mine.index((i, p.WRITE, 36)) < back
    # Connecting again finds the limits right and writes no EEPROM.
    robot.close()
    n = len(wire.written)
    robot.connect()
    again = list(p.iter_packets(bytes(wire.written)[n:]))
    assert not [pkt for pkt in again if pkt.instruction == p.WRITE
                and p.from_le(pkt.params[0:2]) in (36, 38)]
    # Somebody changes a limit behind the robot's back: the check names the joint and ID.
    emulated.device(2).set("current_limit", 1000)
    with pytest.raises(ServoLimitError, match=r"joint 'elbow' \(motor ID 2\): current_limit "
                                              r"reads back 1000, not the 743"):
        robot.verify_servo_limits()
    robot.close()


@pytest.mark.parametrize("how", ["refused", "altered"])
def test_a_servo_that_does_not_take_its_limit_is_refused(how: str) -> None:
    """A device that refuses the PWM Limit write, or stores another value: connect raises a
    ServoLimitError naming the joint and motor ID, and torque stays off."""
    robot, emulated, _ = _loopback_robot()
    dev = emulated.device(2)
    dev.set("pwm_limit", 300)  # left by another program: connect must write it
    original_check, original_apply = dev._check_write, dev._apply_write

    def refuse(r: Any, v: int) -> int:
        return p.ERR_DATA_RANGE if r.name == "pwm_limit" else original_check(r, v)

    def alter(r: Any, v: int, now: float) -> None:
        original_apply(r, v - 100 if r.name == "pwm_limit" else v, now)

    if how == "refused":
        dev._check_write = refuse  # type: ignore[method-assign]
        match = r"joint 'elbow' \(motor ID 2\): writing pwm_limit = 885 failed"
    else:
        dev._apply_write = alter  # type: ignore[method-assign]
        match = r"joint 'elbow' \(motor ID 2\): pwm_limit reads back 785, not the 885 written"
    with pytest.raises(ServoLimitError, match=match) as info:
        robot.connect()
    assert (info.value.dxl_id, info.value.joint) == (2, "elbow")
    assert not any(d.torque_enabled for d in emulated.devices.values())
    robot.close()
