"""Refuse task families the robot's servos cannot carry out: a payload gravity makes unliftable.

For a family's training ranges, each factor that adds load is set alone to its worst extreme
(the others nominal): the high end of ``payload_mass``, ``payload_offset`` and ``*_mass_scale``,
the low end of ``*_strength`` and ``supply_voltage``, and the end of a ``joint_force`` range
with the larger magnitude. At every pose of a grid over the joints' position limits, the torque
that holds the robot still against gravity and an applied joint force f is

    tau_g(q) = qfrc_bias(q, qdot = 0) - f     (MuJoCo's inverse dynamics at rest),

and each actuated joint k must be able to give it:

    |tau_g,k(q)| <= min(s_k g_k, s_k tau_s(V) / r_k)

with g_k the effort at the current limit, s_k the motor strength, and tau_s(V) / r_k the
servo's stall torque at the supply voltage (joints with servo physics only). A range that
breaks this is refused with an error naming the factor, the joint, the pose, the torque needed
and the limit. Joint extremes of several factors at once are rarer corners and are not refused;
the out-of-distribution ranges are not checked, since probing beyond what the servo can do is
what they are for.
"""

from __future__ import annotations

import itertools
import math

import mujoco
import numpy as np

from robot_meta.sim.randomize import Distribution, FamilySpec, SpecError, nominal_params
from robot_meta.sim.robots.robot_def import RobotDef

_GRID = 25  # poses per joint
_WORST_HIGH = ("payload_mass", "payload_offset", "mass_scale")
_WORST_LOW = ("motor_strength", "supply_voltage")
_checked: set[tuple[str, str, str]] = set()


def _poses(robot: RobotDef) -> np.ndarray:
    """A grid of joint positions over the hardware map's position limits (P, nq)."""
    hw = robot.hardware_map
    axes = []
    for j in robot.joints:
        lo, hi = hw.joint(j).position_limits
        lo, hi = max(lo, -math.pi), min(hi, math.pi)
        axes.append(np.linspace(lo, hi, _GRID))
    return np.array(list(itertools.product(*axes)))


def holding_torques(robot: RobotDef, model: mujoco.MjModel, poses: np.ndarray,
                    applied: np.ndarray | None = None) -> np.ndarray:
    """tau_g(q) of the actuated joints at each pose (P, n_actuated): gravity at rest, less
    the applied generalized force ``applied`` (nv,) when given."""
    d = mujoco.MjData(model)
    dofs = [model.jnt_dofadr[model.joint(j).id] for j in robot.actuated_joints]
    out = np.empty((len(poses), len(dofs)))
    for i, q in enumerate(poses):
        d.qpos[:] = q
        d.qvel[:] = 0.0
        mujoco.mj_forward(model, d)
        out[i] = d.qfrc_bias[dofs]
    if applied is not None:
        out -= applied[dofs]
    return out


def available_torques(robot: RobotDef, params: np.ndarray) -> np.ndarray:
    """The largest holding effort of each actuated joint under params (n_actuated,)."""
    from robot_meta.sim.servo_physics import servo_joints

    hw = robot.hardware_map
    names = robot.factor_names
    val = dict(zip(names, params.tolist(), strict=True))
    servo = {j for j, _ in servo_joints(robot)}
    out = []
    for j in robot.actuated_joints:
        h = hw.joint(j)
        s = val.get(f"{j}_strength", 1.0)
        limit = s * h.gear
        if j in servo and h.servo.motor is not None:
            v = val.get("supply_voltage", h.servo.nominal_voltage)
            limit = min(limit, s * float(h.servo.motor.stall_torque_at(v)) / h.transmission)
        out.append(limit)
    return np.array(out)


def _worst_end(robot: RobotDef, name: str, dist: Distribution) -> tuple[float, float] | None:
    """(worst end, other end) of a load-adding factor's range, or None for other factors."""
    kind = robot.factor(name).kind
    if kind in _WORST_HIGH:
        return dist.high, dist.low
    if kind in _WORST_LOW:
        return dist.low, dist.high
    if kind == "joint_force":
        return ((dist.high, dist.low) if abs(dist.high) >= abs(dist.low)
                else (dist.low, dist.high))
    return None


class _Checker:
    """Holding torque against the servos' limit with one factor set, the others nominal."""

    def __init__(self, robot: RobotDef) -> None:
        from robot_meta.sim.mujoco_backend import MujocoBackend

        self.robot = robot
        self.backend = MujocoBackend(robot, 1, nthread=0)
        self.poses = _poses(robot)

    def shortfall(self, name: str, x: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(need (P, n_act), have (n_act,), worst pose index per joint) with name = x."""
        r = self.robot
        p = nominal_params(r)
        p[r.factor_names.index(name)] = x
        self.backend.set_params(np.array([0]), p[None])
        need = np.abs(holding_torques(r, self.backend.models[0], self.poses,
                                      self.backend.qfrc_applied[0]))
        have = available_torques(r, p)
        return need, have, np.argmax(need - have, axis=0)

    def holds(self, name: str, x: float) -> bool:
        need, have, worst = self.shortfall(name, x)
        return bool(np.all(need[worst, np.arange(len(have))] <= have))

    def close(self) -> None:
        self.backend.close()


def clip_to_feasible(robot: RobotDef, dists: dict[str, Distribution]
                     ) -> tuple[dict[str, Distribution], dict[str, tuple[float, float]]]:
    """``dists`` with each load-adding range's worst end pulled in to the last value the servos
    can hold (found by bisection between the range's two ends, to 1e-4 of its width), so that
    :func:`check_family` accepts it. Returns the ranges and, per clipped factor, (requested
    end, clipped end). A range whose other end is infeasible too collapses onto that end."""
    out = dict(dists)
    clipped: dict[str, tuple[float, float]] = {}
    chk: _Checker | None = None
    try:
        for name, d in dists.items():
            ends = _worst_end(robot, name, d)
            if ends is None or d.dist not in ("uniform", "loguniform"):
                continue
            worst, other = ends
            chk = chk or _Checker(robot)
            if chk.holds(name, worst):
                continue
            good, bad = other, worst  # bisection: holds at `good`, fails at `bad`
            if chk.holds(name, other):
                for _ in range(40):
                    if abs(bad - good) <= 1e-4 * abs(worst - other):
                        break
                    mid = 0.5 * (good + bad)
                    good, bad = (mid, bad) if chk.holds(name, mid) else (good, mid)
            lo, hi = (other, good) if worst == d.high else (good, other)
            out[name] = Distribution(d.dist, lo, hi)
            clipped[name] = (worst, good)
    finally:
        if chk is not None:
            chk.close()
    return out, clipped


def check_family(robot: RobotDef, family: FamilySpec) -> None:
    """Raise SpecError if a training range makes the robot unable to hold itself (module
    docstring). Cached per robot, family and ranges."""
    key = (robot.name, family.name, repr(sorted(family.train.items())))
    if key in _checked:
        return
    chk = _Checker(robot)
    try:
        for name, dist in family.train.items():
            ends = _worst_end(robot, name, dist)
            if ends is None:
                continue
            x = ends[0]
            f = robot.factor(name)
            need, have, worst = chk.shortfall(name, x)
            for k, j in enumerate(robot.actuated_joints):
                i = worst[k]
                if need[i, k] > have[k]:
                    unit = "N" if robot.hardware_map.joint(j).kind == "prismatic" else "N*m"
                    q = ", ".join(f"{jn}={v:.2f}" for jn, v in zip(robot.joints, chk.poses[i],
                                                                    strict=True))
                    raise SpecError(
                        f"family {family.name!r} of {robot.name!r}: [{family.name}.train] {name} up "
                        f"to {x:g} {f.unit} is more than the servos can hold: joint {j!r} needs "
                        f"{need[i, k]:.2f} {unit} at pose ({q}) against gravity and applied "
                        f"forces, but gives at most {have[k]:.2f} {unit} (current limit x "
                        f"strength, and the stall torque at the "
                        f"supply voltage). Narrow the {name} range.")
    finally:
        chk.close()
    _checked.add(key)
