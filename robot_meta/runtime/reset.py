"""Drive the robot back to the task's start state with its own motors (no teleporting).

Each actuated joint follows a rate-limited reference r(t) that moves from where the joint is
to its start position at ``max_speed``, under PID on the motor current:

    tau = Kp (r - q) - Kd dq + Ki integral(r - q) dt,   |Ki integral| <= 0.3 effort_limit
    Kp = effort_limit / full_effort_error,   Kd = damping_time * Kp

so a joint never sees a large step (the safety layer also clamps every command). Passive joints
(the cartpole's pole) cannot be driven: the reset waits for them to settle where gravity leaves
them. A start pose gravity cannot reach, the cartpole ``balance`` task's upright pole, is
reached by swinging the pole up instead (:mod:`robot_meta.runtime.swing_up`, called by the
robot folder's ``reset.py``); :func:`make_reset` picks the right controller and :func:`park`
leaves the robot at rest before torque goes off.

The reset ends when every joint is within ``pos_tol`` of its start and moves slower than
``vel_tol`` for ``hold_s`` seconds; it raises :class:`ResetError` after ``timeout_s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.control_loop import ControlLoop

if TYPE_CHECKING:
    from robot_meta.hardware.hardware_map import HardwareMap
    from robot_meta.hardware.robot import Robot


class ResetError(UserError):
    """The robot could not be brought back to its start state."""


@dataclass
class ResetResult:
    """How the reset went."""

    seconds: float
    steps: int
    q: list[float]
    error: list[float]


def _wrap(x: np.ndarray) -> np.ndarray:
    """Angles to (-pi, pi]."""
    return np.asarray((x + math.pi) % (2 * math.pi) - math.pi)


def revolute_mask(hw: HardwareMap) -> np.ndarray:
    """True for the revolute joints of a hardware map (their errors wrap)."""
    return np.array([j.kind == "revolute" for j in hw.joints])


def pose_error(revolute: np.ndarray, q_start: np.ndarray, q: np.ndarray) -> np.ndarray:
    """q_start - q per joint, revolute joints (``revolute_mask``) wrapped to (-pi, pi]."""
    e = q_start - q
    return np.where(revolute, _wrap(e), e)


def settle_loop(robot: Robot, period_s: float, hold_s: float, timeout_s: float,
                cycle: Callable[[Any], tuple[bool, np.ndarray]],
                timed_out: Callable[[Any, np.ndarray], str]) -> ResetResult:
    """The loop every reset shares: turn torque on if it is off, then every ``period_s`` read
    the joints and call ``cycle(state) -> (settled, pose error)``, which writes the command.
    Returns once ``cycle`` has reported settled for ``hold_s`` without a break; raises
    :class:`ResetError` with ``timed_out(state, error)`` after ``timeout_s``."""
    if not robot.torque_on:  # the previous rollout ended with torque off
        robot.enable()
    loop = ControlLoop(period_s)
    settled_since: float | None = None
    t = 0.0
    steps = 0
    loop.start()
    while True:
        s = robot.read_state()
        ok, err = cycle(s)
        if ok:
            settled_since = t if settled_since is None else settled_since
            if t - settled_since >= hold_s:
                return ResetResult(t, steps, s.q.tolist(), err.tolist())
        else:
            settled_since = None
        if t > timeout_s:
            raise ResetError(timed_out(s, err))
        loop.wait()
        steps += 1
        t = steps * period_s


def upright_passive(hw: HardwareMap, q_start: np.ndarray) -> list[int]:
    """Passive revolute joints whose start is away from where gravity leaves them (pi)."""
    return [k for k, j in enumerate(hw.joints) if not j.actuated and j.kind == "revolute"
            and abs(float(_wrap(np.array(q_start[k] - math.pi)))) > 0.3]


def folder_reset(hw: HardwareMap) -> Any:
    """The ``reset.py`` module of a robot's folder (None when the robot has none)."""
    from robot_meta.robot_registry import robot_folder
    from robot_meta.robot_toml import load_folder_module

    folder = getattr(hw, "folder", None) or robot_folder(hw.robot)
    return load_folder_module(folder, "reset")


# The PID reset's default gains (ResetController). A robot folder's reset.py may set its own
# RESET_GAINS with any of these keys.
RESET_GAINS = {"full_effort_error": 0.9, "damping_time": 0.1, "integral_rate": 1.0}


def reset_gains(hw: HardwareMap, **given: float | None) -> dict[str, float]:
    """The reset's gains for a robot: :data:`RESET_GAINS`, then the robot folder's
    ``RESET_GAINS``, then the ``given`` values that are not None."""
    gains = dict(RESET_GAINS)
    folder_gains = getattr(folder_reset(hw), "RESET_GAINS", {})
    unknown = set(folder_gains) - set(RESET_GAINS)
    if unknown:
        raise UserError(f"the robot folder's reset.py: RESET_GAINS has unknown keys "
                        f"{sorted(unknown)}; the keys are {sorted(RESET_GAINS)}")
    gains.update(folder_gains)
    gains.update({k: v for k, v in given.items() if v is not None})
    return gains


def make_reset(robot: Robot, q_start: np.ndarray) -> Any:
    """The reset controller for ``q_start``: the robot folder's special reset when its
    ``reset.py`` defines ``make_reset(robot, q_start)`` and that returns one (the cartpole's
    swing-up when its pole must start upright), else :class:`ResetController`. Both have
    ``run() -> ResetResult``."""
    q_start = np.asarray(q_start, dtype=float)
    hook = folder_reset(robot.hw)
    if hook is not None and hasattr(hook, "make_reset"):
        special = hook.make_reset(robot, q_start)
        if special is not None:
            return special
    return ResetController(robot, q_start)


def park(robot: Robot, q_start: np.ndarray) -> ResetResult:
    """Leave the robot at rest in range before torque goes off: drive the actuated joints to
    their start positions. Passive joints are not waited for: an upright pole would fall at
    torque off anyway, and a freely swinging one takes long to come to rest."""
    q = np.asarray(q_start, dtype=float).copy()
    for k in upright_passive(robot.hw, q):
        q[k] = math.pi  # where gravity leaves it; only keeps the constructor's check happy
    return ResetController(robot, q, settle_passive=False).run()


class ResetController:
    """PID-to-start-pose reset for a :class:`~robot_meta.hardware.Robot` (current mode).

    Args:
        robot: a connected robot with torque enabled.
        q_start: the start position of every joint (hardware-map order).
        period_s: the reset's control period: faster than the policy's (default 5 ms), since
            PD on a light link (the arm2 elbow, about 3e-3 kg m^2) is only stable at 50 Hz with
            gains too low to hold a payload.
        full_effort_error: the position error [rad or m] at which Kp alone gives the full
            effort limit.
        damping_time: Kd / Kp [s].
        integral_rate: Ki / Kp [1/s].
            These three default to :data:`RESET_GAINS`, updated by the robot folder's
            ``reset.py`` when it defines ``RESET_GAINS`` (gains that suit its inertias and
            latencies); arguments given here win.
        max_speed: the speed of the reference [rad/s or m/s].
        settle_passive: wait for passive joints to settle too (False: actuated joints only).
    """

    def __init__(self, robot: Robot, q_start: np.ndarray, period_s: float = 0.005, *,
                 full_effort_error: float | None = None, damping_time: float | None = None,
                 integral_rate: float | None = None, max_speed: float = 1.5, pos_tol: float = 0.04,
                 vel_tol: float = 0.15, hold_s: float = 0.2, timeout_s: float = 10.0,
                 passive_timeout_s: float = 30.0, settle_passive: bool = True):
        hw = robot.hw
        self.robot = robot
        self.q_start = np.asarray(q_start, dtype=float)
        self.period_s = period_s
        self.act = [k for k, j in enumerate(hw.joints) if j.actuated]
        self.passive = [k for k, j in enumerate(hw.joints) if not j.actuated]
        self.revolute = revolute_mask(hw)
        self.effort_limit = np.array([hw.joints[k].effort_limit for k in self.act])
        gains = reset_gains(hw, full_effort_error=full_effort_error, damping_time=damping_time,
                            integral_rate=integral_rate)
        self.kp = self.effort_limit / gains["full_effort_error"]
        self.kd = gains["damping_time"] * self.kp
        self.ki = gains["integral_rate"] * self.kp
        self.max_speed = max_speed
        self.pos_tol, self.vel_tol, self.hold_s = pos_tol, vel_tol, hold_s
        self.watched = list(range(len(hw.joints))) if settle_passive else self.act
        self.timeout_s = (max(timeout_s, passive_timeout_s) if self.passive and settle_passive
                          else timeout_s)
        for k in upright_passive(hw, self.q_start):
            # gravity leaves a passive revolute joint hanging at pi (the cartpole's pole; 0 is up)
            raise ResetError(f"joint {hw.joints[k].joint!r} is passive and its start position "
                             f"{self.q_start[k]:.2f} is not where gravity leaves it; PID on the "
                             "motors cannot reach it (a robot folder's reset.py can, e.g. a swing-up). "
                             "Reset it by hand or pick another task")

    def run(self) -> ResetResult:
        """Drive to the start state; returns when settled, raises ResetError on timeout."""
        goal = self.q_start[self.act]
        w = self.watched
        step = self.max_speed * self.period_s
        lim = 0.3 * self.effort_limit / self.ki
        ref: np.ndarray | None = None  # the reference r, starting where the joints are
        integ = np.zeros(len(self.act))

        def cycle(s: Any) -> tuple[bool, np.ndarray]:
            nonlocal ref, integ
            ref = s.q[self.act].copy() if ref is None else ref
            # r moves toward the goal at max_speed: r += clip(goal - r, -v T, v T)
            ref = ref + np.clip(goal - ref, -step, step)
            e_ref = ref - s.q[self.act]
            integ = np.clip(integ + e_ref * self.period_s, -lim, lim)
            tau = self.kp * e_ref - self.kd * s.dq[self.act] + self.ki * integ
            self.robot.write_efforts(np.clip(tau, -self.effort_limit, self.effort_limit))
            err = pose_error(self.revolute, self.q_start, s.q)
            return bool(np.all(np.abs(err[w]) < self.pos_tol)
                        and np.all(np.abs(s.dq[w]) < self.vel_tol)), err

        def timed_out(s: Any, err: np.ndarray) -> str:
            names = [j.joint for j in self.robot.hw.joints]
            worst = int(np.argmax(np.abs(err) / self.pos_tol + np.abs(s.dq) / self.vel_tol))
            return (f"reset did not settle in {self.timeout_s:g} s: joint {names[worst]!r} is at "
                    f"{s.q[worst]:.3f} (start {self.q_start[worst]:.3f}) moving at "
                    f"{s.dq[worst]:.3f}. Check that nothing blocks it and the calibration")

        return settle_loop(self.robot, self.period_s, self.hold_s, self.timeout_s, cycle, timed_out)
