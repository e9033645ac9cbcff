"""Arm2: a two-link arm in the vertical plane, both joints current-controlled servos."""

from pathlib import Path

from robot_meta.sim.robots.arm2 import constants as C
from robot_meta.sim.robots.robot_def import RobotDef, standard_factors

_NORM = {  # the `all` family's training ranges: these map to [-1, 1] in the factor vector
    "shoulder_damping": (0.02, 0.2),
    "shoulder_frictionloss": (0.0, 0.1),
    "elbow_damping": (0.02, 0.2),
    "elbow_frictionloss": (0.0, 0.1),
    "link1_mass_scale": (0.7, 1.3),
    "link2_mass_scale": (0.7, 1.3),
    "payload_mass": (0.0, 0.5),
    "payload_offset": (-0.05, 0.05),
    "supply_voltage": (10.0, 14.8),  # the servo's operating range
    "shoulder_strength": (0.7, 1.3),
    "elbow_strength": (0.7, 1.3),
    "latency_steps": (0.0, 2.0),
    "pos_noise": (0.0, 0.005),
    "vel_noise": (0.0, 0.05),
    "shoulder_bias": (-0.03, 0.03),
    "elbow_bias": (-0.03, 0.03),
}

ROBOT = RobotDef(
    name="arm2",
    folder=Path(__file__).parent,
    joints=C.JOINTS,
    actuated_joints=C.ACTUATED_JOINTS,
    actuators=C.ACTUATORS,
    links=C.LINKS,
    payload_body=C.PAYLOAD,
    payload_axis=C.PAYLOAD_AXIS,
    physics_dt=C.PHYSICS_DT,
    control_dt=C.CONTROL_DT,
    factors=standard_factors(
        joints=C.JOINTS,
        actuated=C.ACTUATED_JOINTS,
        links=C.LINKS,
        payload_body=C.PAYLOAD,
        nominal={
            "shoulder_damping": C.SHOULDER_DAMPING,
            "shoulder_frictionloss": C.SHOULDER_FRICTIONLOSS,
            "elbow_damping": C.ELBOW_DAMPING,
            "elbow_frictionloss": C.ELBOW_FRICTIONLOSS,
        },
        norm=_NORM,
        units={C.SHOULDER: "rad", C.ELBOW: "rad"},
        supply_voltage=C.SUPPLY_VOLTAGE,
    ),
    default_task="reach",
)


def _register_tasks() -> None:
    from robot_meta.sim.robots.arm2.tasks import TASKS

    ROBOT.tasks.update(TASKS)


_register_tasks()
