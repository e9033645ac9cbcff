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

from robot_meta.sim.randomize import FamilySpec, SpecError, nominal_params
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


def check_family(robot: RobotDef, family: FamilySpec) -> None:
    """Raise SpecError if a training range makes the robot unable to hold itself (module
    docstring). Cached per robot, family and ranges."""
    key = (robot.name, family.name, repr(sorted(family.train.items())))
    if key in _checked:
        return
    from robot_meta.sim.mujoco_backend import MujocoBackend

    backend = MujocoBackend(robot, 1, nthread=0)
    poses = _poses(robot)
    try:
        for name, dist in family.train.items():
            f = robot.factor(name)
            if f.kind in _WORST_HIGH:
                x = dist.high
            elif f.kind in _WORST_LOW:
                x = dist.low
            elif f.kind == "joint_force":
                x = dist.high if abs(dist.high) >= abs(dist.low) else dist.low
            else:
                continue
            p = nominal_params(robot)
            p[robot.factor_names.index(name)] = x
            backend.set_params(np.array([0]), p[None])
            need = np.abs(holding_torques(robot, backend.models[0], poses,
                                          backend.qfrc_applied[0]))  # (P, n_act)
            have = available_torques(robot, p)
            worst = np.argmax(need - have, axis=0)
            for k, j in enumerate(robot.actuated_joints):
                i = worst[k]
                if need[i, k] > have[k]:
                    unit = "N" if robot.hardware_map.joint(j).kind == "prismatic" else "N*m"
                    q = ", ".join(f"{jn}={v:.2f}" for jn, v in zip(robot.joints, poses[i], strict=True))
                    raise SpecError(
                        f"family {family.name!r} of {robot.name!r}: [{family.name}.train] {name} up "
                        f"to {x:g} {f.unit} is more than the servos can hold: joint {j!r} needs "
                        f"{need[i, k]:.2f} {unit} at pose ({q}) against gravity and applied "
                        f"forces, but gives at most {have[k]:.2f} {unit} (current limit x "
                        f"strength, and the stall torque at the "
                        f"supply voltage). Narrow the {name} range.")
    finally:
        backend.close()
    _checked.add(key)
