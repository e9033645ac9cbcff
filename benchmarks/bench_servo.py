"""``robot-meta bench servo``: the servo envelope as each physics engine delivers it.

For every servo-driven joint of a robot, in MuJoCo (the training simulator) and in the PyBullet
twin (the "real robot"), side by side in one run:

1. **Torque-speed curve.** The joint is held at speed w = f * w0 (f = 0, 0.5, 0.9 of the servo
   file's no-load speed w0 at the supply voltage) with the other joints at rest, and commanded
   full current (+1). The engine's delivered joint torque is read where each engine applies it
   (MuJoCo: ``qfrc_actuator`` after ``mj_forward``; twin: the torque of its next 1 ms step)
   and compared with the servo file's envelope, ``ServoModel.envelope``:

       tau(w) = min(s tau_s(V) (1 - s w / w0(V)), s K_t I_max).

   Also at a low supply (10 V), where the stall torque 3.42 N*m falls below the current limit's
   3.57 N*m, so the line itself binds at rest.
2. **Top speed under full effort.** From hanging at rest, each joint is driven at full current,
   reversing every 0.6 s, for 3 s of simulated time; the peak |qdot| / w0 is reported per engine,
   and for the model before issue 20 (ideal effort sources) for contrast. A policy cannot exceed
   what this shows, because the physics cannot.

Errors are relative to the servo file's value: |measured - file| / file.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.launch.bench_cli import bench_main

if TYPE_CHECKING:
    from robot_meta.sim.mujoco_backend import MujocoBackend
    from robot_meta.sim.robots.robot_def import RobotDef
    from robot_meta.sim.twin import TwinBackend

os.environ.setdefault("MUJOCO_GL", "disable")

FRACTIONS = (0.0, 0.5, 0.9)
VOLTAGES = (12.0, 10.0)
RUN_S, REVERSE_S = 3.0, 0.6


def _params(robot: RobotDef, voltage: float) -> np.ndarray:
    from robot_meta.sim.randomize import params_from_dict

    return params_from_dict(robot, {"supply_voltage": voltage}, "bench")


def _expected(robot: RobotDef, joint: str, omega: float, voltage: float) -> float:
    """The servo file's delivered torque at full current: envelope(+inf, w, V, K_t I_max)."""
    hj = robot.hardware_map.joint(joint)
    r = hj.transmission
    tau = hj.servo.envelope(1e9, omega / r, voltage, hj.torque_constant * hj.max_current_a)
    return float(tau) / r


def _mujoco_torque(robot: RobotDef, k: int, omega: float, voltage: float) -> float:
    """MuJoCo's delivered torque on actuated joint k held at speed omega under full current."""
    import mujoco

    from robot_meta.sim.mujoco_backend import MujocoBackend

    be = MujocoBackend(robot, 1, nthread=0)
    be.set_params(np.array([0]), _params(robot, voltage)[None])
    m = be.models[0]
    d = mujoco.MjData(m)
    dof = m.jnt_dofadr[m.joint(robot.actuated_joints[k]).id]
    d.qvel[dof] = omega
    d.ctrl[k] = 1.0
    mujoco.mj_forward(m, d)
    be.close()
    return float(d.qfrc_actuator[dof])


def _twin_torque(robot: RobotDef, k: int, omega: float, voltage: float) -> float:
    """The twin's delivered torque on actuated joint k held at speed omega under full current."""
    from robot_meta.sim.twin import TwinBackend

    tw = TwinBackend(robot, 1)
    tw.set_params(np.array([0]), _params(robot, voltage)[None])
    col = robot.joints.index(robot.actuated_joints[k])
    dq = np.zeros((1, len(robot.joints)))
    dq[0, col] = omega
    tw.set_state(np.array([0]), np.zeros((1, len(robot.joints))), dq)
    effort = np.zeros((1, len(robot.actuated_joints)))
    effort[0, k] = robot.hardware_map.joint(robot.actuated_joints[k]).gear
    tw.step_effort(effort, 1)
    out = float(tw.last_torque[0, k])
    tw.close()
    return out


def _peak_speeds(robot: RobotDef, engine: str) -> np.ndarray:
    """Peak |qdot| of each actuated joint over RUN_S of full, reversing current from rest."""
    n_act = len(robot.actuated_joints)
    cols = [robot.joints.index(j) for j in robot.actuated_joints]
    if engine == "twin":
        from robot_meta.sim.twin import TwinBackend

        be: TwinBackend | MujocoBackend = TwinBackend(robot, 1)
    else:
        from robot_meta.sim.mujoco_backend import MujocoBackend

        be = MujocoBackend(robot, 1, nthread=0)
    be.set_params(np.array([0]), _params(robot, 12.0)[None])
    be.set_state(np.array([0]), np.zeros((1, len(robot.joints))), np.zeros((1, len(robot.joints))))
    peak = np.zeros(n_act)
    steps = int(round(RUN_S / robot.control_dt))
    per = int(round(REVERSE_S / robot.control_dt))
    for t in range(steps):
        sign = 1.0 if (t // per) % 2 == 0 else -1.0
        be.step(np.full((1, n_act), sign))
        peak = np.maximum(peak, np.abs(np.asarray(be.qvel[0])[cols]))
    be.close()
    return peak


def run(robot_name: str) -> dict[str, Any]:
    """Measure the curve and the top speeds; return the JSON-able result."""
    from robot_meta.sim.robots import get_robot
    from robot_meta.sim.servo_physics import servo_joints

    robot = get_robot(robot_name)
    joints = [j for j, _ in servo_joints(robot)]
    if not joints:
        raise SystemExit(f"error: robot {robot_name!r} has no joint with servo physics")
    hw = robot.hardware_map
    curve: list[dict[str, Any]] = []
    for j in joints:
        k = robot.actuated_joints.index(j)
        hj = hw.joint(j)
        for v in VOLTAGES:
            top = float(hj.servo.motor.no_load_speed_at(v)) * hj.transmission  # type: ignore[union-attr]
            for f in FRACTIONS:
                w = f * top
                want = _expected(robot, j, w, v)
                got = {"mujoco": _mujoco_torque(robot, k, w, v), "twin": _twin_torque(robot, k, w, v)}
                curve.append({"joint": j, "voltage": v, "fraction": f, "speed": w, "file": want,
                              **got, **{f"{e}_rel_err": abs(x - want) / abs(want)
                                        for e, x in got.items()}})
    ideal = dataclasses.replace(robot, actuator_model="ideal")
    w0 = np.array([hw.joint(j).servo.no_load_speed * hw.joint(j).transmission
                   for j in robot.actuated_joints])
    peaks = {"mujoco": _peak_speeds(robot, "mujoco"), "twin": _peak_speeds(robot, "twin"),
             "mujoco_ideal": _peak_speeds(ideal, "mujoco")}
    worst = max(float(max(c["mujoco_rel_err"], c["twin_rel_err"])) for c in curve)
    return {
        "robot": robot_name,
        "servo": {j: hw.joint(j).servo.model for j in joints},
        "curve": curve,
        "max_rel_err": worst,
        "no_load_speed": dict(zip(robot.actuated_joints, w0.tolist(), strict=True)),
        "peak_speed_over_no_load": {e: dict(zip(robot.actuated_joints, (p / w0).tolist(), strict=True))
                                    for e, p in peaks.items()},
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "date": date.today().isoformat(),
    }


def _text(res: dict[str, Any]) -> None:
    print(f"{res['robot']}: delivered torque at full current vs the servo file "
          f"({', '.join(f'{j}: {m}' for j, m in res['servo'].items())})")
    print(f"  {'joint':9s} {'V':>5s} {'w/w0':>5s} {'file':>7s} {'mujoco':>7s} {'twin':>7s}  rel. err")
    for c in res["curve"]:
        print(f"  {c['joint']:9s} {c['voltage']:5.1f} {c['fraction']:5.2f} {c['file']:7.3f} "
              f"{c['mujoco']:7.3f} {c['twin']:7.3f}  {c['mujoco_rel_err']:.2%} / {c['twin_rel_err']:.2%}")
    print(f"  worst relative error {res['max_rel_err']:.2%}")
    print(f"peak |qdot| / no-load speed, full reversing current for {RUN_S:g} s from rest:")
    for e, v in res["peak_speed_over_no_load"].items():
        print(f"  {e:13s} " + ", ".join(f"{j} {x:.2f}" for j, x in v.items()))


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        "servo", __doc__, argv,
        lambda p: p.add_argument("--robot", default="arm2", help="a robot with servo physics (default arm2)"),
        lambda a, p: run(a.robot), _text)


if __name__ == "__main__":
    sys.exit(main())
