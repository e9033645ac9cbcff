"""The simulated overload shutdown: an episode ends where the emulated servo would latch."""

import math

import numpy as np
import pytest

from robot_meta.sim import make_vec_env
from robot_meta.sim.overload_monitor import OverloadMonitor
from robot_meta.sim.randomize import nominal_params
from robot_meta.sim.robots.robot_def import get_robot


def _push(shoulder: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold a constant shoulder action on a nominal arm2 for one episode: the arm swings up
    against its joint stop and stalls there. Returns (terminated, overload) per step (T,)."""
    robot = get_robot("arm2")
    env = make_vec_env(robot, "servo", 1, 0, params=nominal_params(robot), nthread=0)
    env.reset(seed=0)
    term, over = [], []
    for _ in range(env.episode_steps):
        _, _, t, _, info = env.step(np.array([[shoulder, 0.0]]))
        term.append(bool(t[0]))
        over.append(bool(info["overload"][0]))
        if info["done"][0]:
            break
    env.close()
    return np.array(term), np.array(over)


def test_stall_at_the_current_limit_ends_the_episode_after_the_servo_files_time() -> None:
    term, over = _push(1.0)
    assert term.any() and np.array_equal(term, over)  # terminal, and flagged as an overload
    ol = get_robot("arm2").hardware_map.joint("shoulder").servo.overload
    steps = math.ceil(ol.time_s / get_robot("arm2").control_dt - 1e-9)
    assert len(term) - 1 >= steps  # only after time_s of stall, not at the first stalled step
    assert term[-1] and not term[:-1].any()


def test_stall_below_the_overload_current_runs_the_whole_episode() -> None:
    term, over = _push(0.9)
    assert not term.any() and not over.any()
    assert len(term) == 200  # arm2 EPISODE_STEPS: truncated, not terminated


def test_counters_count_consecutive_steps_and_reset() -> None:
    robot = get_robot("arm2")
    mon = OverloadMonitor(robot, 2)
    assert mon.active
    steps = int(mon._steps[0])
    hot = np.array([[1.0, 0.0], [1.0, 0.0]])
    still = np.zeros((2, 2))
    moving = np.array([[0.0, 0.0], [1.0, 0.0]])  # env 1's shoulder turns: not a stall
    for _ in range(steps - 1):
        assert not mon.update(hot, still).any()
    assert mon.update(hot, moving).tolist() == [True, False]
    mon.reset(slice(0, 1))
    assert mon.stalled_steps.tolist() == [[0, 0], [0, 0]]
    assert not mon.update(np.array([[0.94, 0.0], [0.0, -0.96]]), still).any()
    assert mon.stalled_steps.tolist() == [[0, 0], [0, 1]]  # |a| >= 0.95 on either side counts


@pytest.mark.parametrize("name", ["arm2", "cartpole"])
def test_every_servo_joint_is_monitored(name: str) -> None:
    robot = get_robot(name)
    from robot_meta.sim.servo_physics import servo_joints

    assert OverloadMonitor(robot, 1).stalled_steps.shape[1] == len(servo_joints(robot)) > 0
