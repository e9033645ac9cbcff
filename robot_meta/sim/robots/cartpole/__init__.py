"""Cartpole: a cart on a rail pushed by a current-controlled servo, with a passive pole."""

from pathlib import Path

from robot_meta.sim.robots.cartpole import constants as C
from robot_meta.sim.robots.robot_def import RobotDef, standard_factors

_NORM = {  # the `all` family's training ranges: these map to [-1, 1] in the factor vector
    "slider_damping": (0.0, 2.0),
    "slider_frictionloss": (0.0, 1.0),
    "hinge_damping": (0.0, 0.01),
    "hinge_frictionloss": (0.0, 0.005),
    "cart_mass_scale": (0.5, 1.5),
    "pole_mass_scale": (0.5, 2.0),
    "payload_mass": (0.0, 0.1),
    "payload_offset": (-0.1, 0.1),
    "supply_voltage": (10.0, 14.8),  # the servo's operating range
    "slider_strength": (0.7, 1.3),
    "latency_steps": (0.0, 2.0),
    "pos_noise": (0.0, 0.005),
    "vel_noise": (0.0, 0.05),
    "slider_bias": (-0.02, 0.02),
    "hinge_bias": (-0.03, 0.03),
}

ROBOT = RobotDef(
    name="cartpole",
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
            "slider_damping": C.SLIDER_DAMPING,
            "slider_frictionloss": C.SLIDER_FRICTIONLOSS,
            "hinge_damping": C.HINGE_DAMPING,
            "hinge_frictionloss": C.HINGE_FRICTIONLOSS,
        },
        norm=_NORM,
        units={C.SLIDER: "m", C.HINGE: "rad"},
        supply_voltage=C.SUPPLY_VOLTAGE,
    ),
    default_task="balance",
)


def _register_tasks() -> None:
    from robot_meta.sim.robots.cartpole.tasks import TASKS

    ROBOT.tasks.update(TASKS)


_register_tasks()
