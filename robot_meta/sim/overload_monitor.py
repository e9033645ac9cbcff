"""The servos' overload shutdown, in simulation: an episode ends where a real servo would latch.

A Dynamixel servo shuts its torque off with an overload error when it carries nearly its full
current with the shaft stalled for a while (the servo file's ``[overload]``, which the emulated
servo reads too). A policy that holds a pose its motor cannot reach, or pushes against an end
stop, does exactly that, and on the robot the session dies there. The simulator therefore ends
the episode on the same condition, as a terminal state (no bootstrapped value after it): the
return the rest of the episode would have earned is the cost the policy learns to avoid.

Per actuated servo joint k of env i, after each control step:

    stalled_ik = |a_ik| >= f_k  and  |qdot_ik| < w_k r_k        (a: the applied action, the
                                                                  current as a fraction of the
                                                                  limit; r_k: transmission)
    n_ik       = (n_ik + 1) * stalled_ik                         (consecutive stalled steps)
    overload_i = any_k  n_ik * control_dt >= T_k

with f, w, T the servo file's ``current_fraction``, ``stall_speed`` and ``time_s``. The servo
measures its actual current every physics step; the simulator checks the commanded current once
per control step. At a stall the two agree unless the supply cannot drive the commanded current
through the winding, where the simulator trips first: the conservative side.
"""

from __future__ import annotations

import math

import numpy as np

from robot_meta.sim.robots.robot_def import RobotDef
from robot_meta.sim.servo_physics import servo_joints


def _columns(idx: list[int]) -> slice | np.ndarray:
    """Column indices as a slice when they are consecutive (a view per step, not a copy)."""
    if idx and idx == list(range(idx[0], idx[-1] + 1)):
        return slice(idx[0], idx[-1] + 1)
    return np.array(idx, dtype=np.intp)


class OverloadMonitor:
    """Counts each env's consecutive stalled, saturated control steps per servo joint."""

    def __init__(self, robot: RobotDef, num_envs: int):
        hw = robot.hardware_map
        act, dof, frac, speed, steps = [], [], [], [], []
        for joint, actuator in servo_joints(robot):
            hj = hw.joint(joint)
            ol = hj.servo.overload
            if ol is None:
                continue
            act.append(robot.actuators.index(actuator))
            dof.append(robot.joints.index(joint))
            frac.append(ol.current_fraction)
            speed.append(ol.stall_speed * hj.transmission)
            # the first whole control step at which n * control_dt >= T (1e-9: float slack)
            steps.append(math.ceil(ol.time_s / robot.control_dt - 1e-9))
        self.active = bool(act)
        self._act = _columns(act)
        self._dof = _columns(dof)
        self._frac = np.array(frac)
        self._speed = np.array(speed)
        self._steps = np.array(steps, dtype=np.int64)
        self.stalled_steps = np.zeros((num_envs, len(act)), dtype=np.int64)

    def update(self, applied: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Advance the counters by one control step; returns the envs that overload now (B,).
        ``applied``: the actions that reached the motors (B, nu); ``qvel``: velocities (B, nv)."""
        n = self.stalled_steps
        stalled = np.abs(applied[:, self._act]) >= self._frac
        stalled &= np.abs(qvel[:, self._dof]) < self._speed
        n += 1
        n *= stalled
        tripped = np.any(n >= self._steps, axis=1)
        return np.asarray(tripped)

    def reset(self, rows: np.ndarray | slice) -> None:
        """Zero the counters of envs rows (a new episode, a servo rebooted)."""
        self.stalled_steps[rows] = 0
