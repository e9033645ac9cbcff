"""The Robot (bus + hardware map + safety) on the emulator: configuration, SI state, hidden
dynamics, the bus watchdog, and a control loop under packet loss and corruption."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from robot_meta.hardware import (
    HardwareAlertError,
    Robot,
    ServoTimeoutError,
    TorqueLostError,
    load_hardware_map,
    open_bus,
)
from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.emulation.emulator import Emulator, Faults


def _robot(port: str, name: str = "arm2", **kw: object) -> Robot:
    robot = Robot(open_bus(port, **kw.pop("bus", {})),  # type: ignore[arg-type]
                  load_hardware_map(name), handle_signals=False, **kw)  # type: ignore[arg-type]
    robot.connect()
    return robot


def _spin(robot: Robot, seconds: float) -> None:
    """Keep reading state (which feeds the bus watchdog) for a while."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        robot.read_state()
        time.sleep(0.005)


def test_connect_configures_servos(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    robot = _robot(emu.port, watchdog_ms=100)
    for i in (1, 2):
        assert emu.register(i, "operating_mode") == ct.MODE_CURRENT
        assert emu.register(i, "return_delay_time") == 0
        assert emu.register(i, "current_limit") == 743  # 2.0 A / 2.69 mA
        assert emu.register(i, "bus_watchdog") == 5  # 100 ms / 20 ms
        assert emu.register(i, "torque_enable") == 0
    robot.enable()
    assert emu.torque_enabled() == {1: True, 2: True}
    robot.close()
    assert emu.torque_enabled() == {1: False, 2: False}


def test_state_in_si_units_and_the_command_actually_sent(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    with _robot(emu.port) as robot:
        robot.enable()
        s = robot.read_state()
        q_true, _ = emu.true_state()
        assert np.allclose(s.q, q_true, atol=2 * 2 * math.pi / 4096)  # within two ticks
        sent = robot.write_action([2.0, -0.25])  # beyond +1 on the first joint
        assert sent[0] == pytest.approx(1.0, abs=0.002) and sent[0] <= 1.0
        assert sent[1] == pytest.approx(-0.25, abs=0.002)
        eff = robot.write_efforts([1.0, 0.0])
        assert eff[0] == pytest.approx(1.0, abs=0.005)
        # The arm accelerates under the shoulder effort.
        _spin(robot, 0.1)
        s2 = robot.read_state()
        assert s2.q[0] > s.q[0] + 0.01
        assert s2.current[0] == pytest.approx(robot.last_sent[0], abs=0.003)


def test_cartpole_servo_and_passive_encoder(cartpole_emulator: Emulator) -> None:
    emu = cartpole_emulator
    with _robot(emu.port, "cartpole") as robot:
        assert robot.actuated_ids == [1]
        s = robot.read_state()  # one sync read spans the servo and the encoder
        assert s.q[1] == pytest.approx(math.pi, abs=0.01)  # the pole hangs down at rest
        robot.enable()
        assert emu.torque_enabled() == {1: True}
        sent = robot.write_action([0.5])
        assert sent[0] == pytest.approx(0.5, abs=0.01)
        _spin(robot, 0.1)
        assert robot.read_state().q[0] > 0.001  # the cart moves right


def test_hidden_bias_and_latency() -> None:
    """The emulated robot has the twin env's hidden sensing and timing factors."""
    params = {"shoulder_bias": 0.1, "latency_steps": 2.0}  # 2 * 20 ms of actuation delay
    with Emulator("arm2", params=params) as emu, _robot(emu.port) as robot:
        s = robot.read_state()
        q_true, _ = emu.true_state()
        assert s.q[0] - q_true[0] == pytest.approx(0.1, abs=0.002)
        robot.enable()
        robot.write_currents([0.5, 0.0])
        t0 = time.perf_counter()
        while robot.read_state().current[0] < 0.4:
            assert time.perf_counter() - t0 < 1.0
        delay = time.perf_counter() - t0
        assert 0.035 < delay < 0.08


@pytest.mark.parametrize("indirect", [True, False])
def test_watchdog_turns_torque_off_when_the_controller_stalls(arm2_emulator: Emulator,
                                                             indirect: bool) -> None:
    """With indirect addressing the state read itself carries torque enable; without it a
    periodic health check reads it."""
    emu = arm2_emulator
    robot = _robot(emu.port, watchdog_ms=100, use_indirect=indirect, health_period_s=0.0)
    assert (robot._state_block is not None) == indirect
    robot.enable()
    for _ in range(50):  # a healthy loop
        s = robot.read_state()
        robot.write_currents(-0.5 * s.q)
        time.sleep(0.004)
    assert emu.torque_enabled() == {1: True, 2: True}
    time.sleep(0.3)  # the controller stalls for 300 ms > 100 ms
    assert emu.torque_enabled() == {1: False, 2: False}
    assert emu.register(1, "bus_watchdog") == -1
    with pytest.raises(TorqueLostError, match=r"joint 'shoulder' \(ID 1\).*bus watchdog \(100 ms\)"
                       ):
        robot.read_state()
    robot.enable()  # re-arm: clears the watchdog error, torque back on
    assert emu.torque_enabled() == {1: True, 2: True}
    assert emu.register(1, "bus_watchdog") == 5
    robot.close()


def test_hardware_error_is_raised_with_the_joint(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    robot = _robot(emu.port)
    robot.enable()
    emu.inject_hardware_error(2, ct.HW_OVERLOAD)
    with pytest.raises(HardwareAlertError, match=r"ID 2 \(joint 'elbow'\).*overload.*reboot"):
        robot.read_state()
    assert emu.torque_enabled() == {1: False, 2: False}  # every joint, not only the faulty one
    robot.reboot("elbow")
    assert emu.register(2, "hardware_error_status") == 0
    robot.enable()
    robot.read_state()
    robot.close()


def test_lost_servo_mid_loop(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    robot = _robot(emu.port, bus={"retries": 1})
    robot.enable()
    robot.read_state()
    emu.disconnect(2)
    with pytest.raises(ServoTimeoutError, match=r"ID 2 \(joint 'elbow'\) did not answer"):
        robot.read_state()
    assert emu.torque_enabled()[1] is False
    robot.close()


def test_loop_survives_drop_and_corruption_and_counts_retries() -> None:
    faults = Faults.parse("drop=0.01,corrupt=0.01")
    with Emulator("arm2", faults=faults, seed=3) as emu:
        robot = _robot(emu.port, bus={"retries": 5})
        robot.enable()
        n = 1500
        for _ in range(n):
            s = robot.read_state()
            robot.write_currents(-1.0 * s.q - 0.1 * s.dq)
        st = robot.bus.stats
        robot.close()
    # ~1 % of packets are lost and ~1 % corrupted, in each direction.
    assert emu.stats.dropped > 5 and emu.stats.corrupted > 5
    assert st.retries > 5 and st.failures == 0
    assert st.timeouts + st.crc_errors + st.status_crc_errors >= st.retries
    print(f"\n{n} cycles under drop=1%, corrupt=1%: {st.retries} retries "
          f"({st.timeouts} timeouts, {st.crc_errors} corrupted answers, "
          f"{st.status_crc_errors} CRC-error statuses), 0 failures")


def test_delay_fault_and_timeouts() -> None:
    """Answers held back 20 ms: a 5 ms timeout gives up (counted), a 50 ms one waits."""
    with Emulator("arm2", faults="delay_ms=20", plant="none") as emu:
        with open_bus(emu.port, retries=1) as bus:
            with pytest.raises(ServoTimeoutError):
                bus.ping(1)
            assert bus.stats.timeouts == 2 and bus.stats.retries == 1
        time.sleep(0.1)  # let the late answers drain
        with open_bus(emu.port, latency_ms=50) as bus:
            t = time.perf_counter()
            assert bus.ping(1) == 1020
            assert time.perf_counter() - t >= 0.020
        assert emu.stats.delayed >= 3


def test_fast_sync_read_robot(arm2_emulator: Emulator) -> None:
    with _robot(arm2_emulator.port, fast_sync_read=True) as robot:
        s = robot.read_state()
        assert s.q.shape == (2,) and np.all(np.isfinite(s.q))


def test_position_mode(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    with _robot(emu.port, mode="position") as robot:
        assert emu.register(1, "operating_mode") == ct.MODE_POSITION
        robot.enable()
        sent = robot.write_positions([0.5, 9.0])
        assert sent[1] == pytest.approx(2.5, abs=0.002)  # clipped into the limit
        robot.write_positions([0.5, 0.0])
        _spin(robot, 0.8)
        assert robot.read_state().q[0] == pytest.approx(0.5, abs=0.15)


def test_emulate_cli_prints_the_port_first() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_meta.hardware.emulation.emulator", "arm2", "--port", "tcp:0",
         "--faults", "drop=0.0", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        with open_bus(url) as bus:
            assert bus.ping(2) == 1020
    finally:
        proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_emulate_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from robot_meta.hardware.emulation.emulator import main

    assert main(["arm2", "--faults", "drop=2"]) == 2
    assert "drop: must lie in [0, 1]" in capsys.readouterr().err
    assert main(["nosuchrobot"]) == 2
    assert "unknown robot" in capsys.readouterr().err
    assert main(["arm2", "--port", "com3"]) == 2


def test_faults_parse() -> None:
    f = Faults.parse("drop=0.01, corrupt=0.02,delay_ms=5,disconnect=2@1.5")
    assert (f.drop, f.corrupt, f.delay, f.delay_ms) == (0.01, 0.02, 1.0, 5.0)
    assert f.disconnect == ((2, 1.5),)
    with pytest.raises(ValueError, match="unknown fault 'jitter'"):
        Faults.parse("jitter=1")
