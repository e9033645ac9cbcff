"""MuJoCo's servo physics follows the servo file: torque-speed line, current limit, supply
voltage, motor strength, armature; and a joint cannot outrun the no-load speed."""

import dataclasses

import mujoco
import numpy as np
import pytest

from robot_meta.sim import make_vec_env
from robot_meta.sim.randomize import params_from_dict
from robot_meta.sim.robots import get_robot
from robot_meta.sim.servo_physics import build_model, servo_joints

ARM2 = get_robot("arm2")
HW = ARM2.hardware_map
SERVO = HW.joint("shoulder").servo


def _torque(values: dict[str, float], joint: str, omega: float, action: float = 1.0) -> float:
    """The joint torque MuJoCo delivers with `joint` at speed omega under `action`."""
    env = make_vec_env(ARM2, "all", 1, nthread=0)
    env.set_tasks(params_from_dict(ARM2, values, "t"))
    m = env.backend.models[0]
    d = mujoco.MjData(m)
    k = ARM2.actuated_joints.index(joint)
    d.qvel[m.jnt_dofadr[m.joint(joint).id]] = omega
    d.ctrl[k] = action
    mujoco.mj_forward(m, d)
    env.close()
    return float(d.qfrc_actuator[m.jnt_dofadr[m.joint(joint).id]])


@pytest.mark.parametrize("joint", ["shoulder", "elbow"])
@pytest.mark.parametrize("volts, strength", [(12.0, 1.0), (10.0, 1.0), (14.0, 0.8)])
@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9])
def test_torque_speed_line_matches_the_servo_file(joint: str, volts: float, strength: float,
                                                   fraction: float) -> None:
    # at speed f w0'(V), w0' = w0 V / (V_n s): tau = min(s tau_s(V) (1 - f), s K_t I_max)
    w = fraction * SERVO.no_load_speed * volts / SERVO.nominal_voltage / strength
    got = _torque({"supply_voltage": volts, f"{joint}_strength": strength}, joint, w)
    line = strength * SERVO.motor.stall_torque * volts / 12.0 * (1.0 - fraction)  # type: ignore[union-attr]
    want = min(line, strength * HW.joint(joint).gear)
    assert got == pytest.approx(want, rel=0.05)
    # the file's own formula, exactly
    cap = strength * HW.joint(joint).gear  # the current limit scales with the motor constant
    assert got == pytest.approx(float(SERVO.envelope(1e9, w, volts, cap, strength)),
                                rel=1e-6)


def test_partial_command_is_delivered_below_the_line_and_braking_beyond_no_load() -> None:
    assert _torque({}, "elbow", 1.0, action=0.3) == pytest.approx(0.3 * HW.joint("elbow").gear, rel=1e-6)
    assert _torque({}, "elbow", 1.2 * SERVO.no_load_speed) < 0.0  # generator region: it brakes


def test_armature_and_integrator_come_from_the_servo_file() -> None:
    m = build_model(ARM2)
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    for j, a in servo_joints(ARM2):
        assert m.joint(j).armature[0] == pytest.approx(SERVO.motor.armature)  # type: ignore[union-attr]
        assert m.actuator(a).gaintype[0] == mujoco.mjtGain.mjGAIN_DCMOTOR
    ideal = build_model(dataclasses.replace(ARM2, actuator_model="ideal"))
    assert ideal.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER and not ideal.dof_armature.any()


def test_full_effort_cannot_outrun_the_no_load_speed() -> None:
    """Reversing full current from rest for 3 s: the servo model stays within a few % of w0
    (gravity can push a braking joint slightly past it), the ideal model reaches ~10 x w0."""
    def peak(robot: object) -> np.ndarray:
        env = make_vec_env(robot, "all", 1, nthread=0)  # type: ignore[arg-type]
        env.set_tasks(params_from_dict(ARM2, {}, "t"))
        be = env.backend
        be.set_state(np.array([0]), np.zeros((1, 2)), np.zeros((1, 2)))
        top = np.zeros(2)
        for t in range(150):
            be.step(np.full((1, 2), 1.0 if (t // 30) % 2 == 0 else -1.0))
            top = np.maximum(top, np.abs(be.qvel[0]))
        env.close()
        return top / SERVO.no_load_speed
    servo = peak(ARM2)
    assert np.all(servo < 1.10) and np.all(servo > 0.9), servo
    assert np.all(peak(dataclasses.replace(ARM2, actuator_model="ideal")) > 5.0)
