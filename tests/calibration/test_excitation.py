"""Safe excitation on an emulated robot (in-process bus, manual clock)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_meta.calibration.excitation import ExcitationRunner, default_config
from robot_meta.calibration.session_logs import load_recordings
from robot_meta.hardware import Robot
from robot_meta.hardware.emulation.mock_bus import MockBus
from robot_meta.runtime.session_store import SessionStore
from robot_meta.sim.robots.robot_def import get_robot


def _robot(name="arm2"):
    rdef = get_robot(name)
    bus = MockBus(name, plant="mujoco", clock="manual")
    robot = Robot(bus, rdef.hardware_map, mode="current", watchdog_ms=0, overspeed_factor=None)
    robot.connect()
    return rdef, bus, robot


def _cfg(hw, seconds=1.0):
    cfg = default_config(hw)
    cfg.seconds = seconds
    return cfg


def test_excitation_stays_safe_and_saves_every_rollout(tmp_path):
    rdef, bus, robot = _robot()
    runner = ExcitationRunner(robot, tmp_path / "ex", dt=rdef.control_dt, cfg=_cfg(robot.hw),
                              wait=lambda: bus.advance(rdef.control_dt))
    res = runner.run()
    assert res["rollouts"] == len(runner.plan) == 4 and res["robot_seconds"] == pytest.approx(4.0)
    assert not robot.torque_on
    fit, held = load_recordings([tmp_path / "ex"], rdef)
    assert len(fit) == 3 and len(held) == 1
    lo = np.array([j.position_limits[0] for j in robot.hw.joints])
    hi = np.array([j.position_limits[1] for j in robot.hw.joints])
    for r in fit + held:
        assert np.all(np.abs(r.action) <= runner.cfg.a_max + 1e-9)
        assert np.all((r.q > lo) & (r.q < hi))
        assert np.ptp(r.q, axis=0).max() > 0.1  # it moved


def test_ctrl_c_leaves_torque_off_and_rollouts_intact(tmp_path):
    rdef, bus, robot = _robot()
    calls = {"n": 0}

    def wait():
        calls["n"] += 1
        if calls["n"] == 120:  # inside the second rollout (reset + 50 steps each)
            raise KeyboardInterrupt
        bus.advance(rdef.control_dt)

    runner = ExcitationRunner(robot, tmp_path / "ex", dt=rdef.control_dt, cfg=_cfg(robot.hw),
                              wait=wait)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    assert not robot.torque_on
    done = SessionStore(tmp_path / "ex").completed()
    assert [e["index"] for e in done] == [0]
    first = SessionStore(tmp_path / "ex").load_rollout(done[0])
    assert len(first["q"]) == len(first["action"]) + 1
    resumed = ExcitationRunner(robot, tmp_path / "ex", dt=rdef.control_dt, resume=True,
                               wait=lambda: bus.advance(rdef.control_dt))
    res = resumed.run()
    assert res["rollouts"] == 4
    again = SessionStore(tmp_path / "ex").load_rollout(SessionStore(tmp_path / "ex").completed()[0])
    assert np.array_equal(again["q"], first["q"])  # the saved rollout was not redone


def test_resume_refuses_another_robots_session(tmp_path):
    rdef, bus, robot = _robot()
    SessionStore.create(tmp_path / "ex", {"robot": "cartpole", "kind": "sysid-excitation"})
    with pytest.raises(Exception, match="not a sysid excitation session of 'arm2'"):
        ExcitationRunner(robot, tmp_path / "ex", dt=rdef.control_dt, resume=True)
