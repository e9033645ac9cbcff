"""Servo physics in MuJoCo: each actuated joint's servo file turned into native model elements.

A robot's ``model.xml`` declares its actuators as plain ``<motor>`` elements (an ideal effort
source, gear = effort per unit action). :func:`build_model` compiles it and, for every actuated
joint whose hardware map says ``servo_physics``, rewrites from the servo file
(``robot_meta/hardware/servos/<model>.toml``):

* the actuator as a native ``<dcmotor>`` with ``input="ff"`` and a voltage-limited controller,
  which is option (b) of issue 20: current (torque) control with the torque-speed clamp applied
  at every physics step, not once per control step. The action stays what goes on the wire in
  Operating Mode 0: goal current a * I_max. MuJoCo then delivers

      tau = g * clip(a, lo(w), hi(w)),   |a| <= 1 (the current limit I_max),

  with the line lo/hi of the servo's torque-speed envelope (ServoModel.torque_bounds): in
  actuator units (length = g q), the stall force is tau_s / (r g) and the no-load speed w0 r g,
  for gear g = K_t I_max / r and transmission r. The supply voltage sits in
  ``actuator_gainprm[:, 7]``, the ``supply_voltage`` factor, and the motor constant scales
  with the gear, the ``<joint>_strength`` factor: both randomize without recompiling. PWM
  control (option a) would change what the action means on every robot already flashed;
  current control with a native clamp costs nothing per step and keeps it.
* the joint's armature: the reflected rotor inertia J_r N^2 / r^2;
* the integrator: ``implicitfast``, since the back-EMF slope is a stiff damping
  (tau_s / w0 = 0.85 N*m*s/rad on a 3 g*m^2 elbow) that Euler at 5 ms turns into a sign flip
  of the velocity every step.

A robot whose joints all say ``servo_physics = False`` compiles unchanged.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "disable")

import mujoco  # noqa: E402

from robot_meta.sim.robots.robot_def import RobotDef  # noqa: E402

DCMOTOR_VOLTAGE_PRM = 7  # actuator_gainprm index of a <dcmotor>'s supply voltage (MuJoCo 3.17)


def servo_joints(robot: RobotDef) -> list[tuple[str, str]]:
    """(joint, actuator) pairs whose servo is simulated with its envelope."""
    if robot.actuator_model == "ideal":
        return []
    hw = robot.hardware_map
    return [(j, a) for j, a in zip(robot.actuated_joints, robot.actuators, strict=True)
            if hw.joint(j).servo_physics]


def apply_servo_physics(spec: mujoco.MjSpec, robot: RobotDef) -> None:
    """Rewrite the servo-driven actuators and joints of a robot's spec (module docstring)."""
    pairs = servo_joints(robot)
    if not pairs:
        return
    hw = robot.hardware_map
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    for joint, name in pairs:
        hj = hw.joint(joint)
        servo, r, g = hj.servo, hj.transmission, hj.gear
        motor = servo.motor
        assert motor is not None
        act = spec.actuator(name)
        if abs(act.gear[0] - g) > 1e-3 * g:
            raise ValueError(f"{robot.model_path}: actuator {name!r} has gear {act.gear[0]:g}, but "
                             f"the hardware map gives {g:g} (K_t * max_current_a / transmission)")
        spec.joint(joint).armature = motor.armature / r**2
        act.gear[0] = g
        act.set_to_dcmotor(
            motorconst=[0.0, 0.0], resistance=0.0,
            # (V_n, stall force, no-load speed) in actuator units
            nominal=[motor.nominal_voltage, motor.stall_torque / (r * g),
                     motor.no_load_speed * r * g],
            saturation=[1.0, 0.0, 0.0],  # |force| <= 1: the current limit I_max
            controller=[0.0, 0.0, 0.0, 0.0, 0.0, motor.nominal_voltage],
            ctrlspec=int(mujoco.mjtCtrlInput.mjINPUT_FF))  # the action is a torque request
        act.ctrlrange = [-1.0, 1.0]


def build_model(robot: RobotDef) -> mujoco.MjModel:
    """Compile a robot's MJCF with its servo physics."""
    spec = mujoco.MjSpec.from_file(str(robot.model_path))
    apply_servo_physics(spec, robot)
    return spec.compile()
