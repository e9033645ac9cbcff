"""Cartpole hardware map: a current-controlled XM430 drives the cart through a capstan drum
of radius 5 cm; a passive 4096-count encoder reads the pole."""

import math

from robot_meta.hardware.hardware_map import HardwareMap, JointHardware
from robot_meta.sim.robots.cartpole import constants as C

DRUM_RADIUS = 0.05  # m of cart travel per motor radian

HARDWARE_MAP = HardwareMap(
    robot="cartpole",
    joints=(
        JointHardware(
            joint=C.SLIDER,
            motor_id=1,
            model="xm430-w350",
            actuated=True,
            kind="prismatic",
            position_limits=(-C.RAIL_SOFT_LIMIT, C.RAIL_SOFT_LIMIT),
            velocity_limit=3.0,  # m/s
            max_current_a=0.2805,  # 1.7826 N*m/A * 0.2805 A / 0.05 m = 10.0 N at the cart
            transmission=DRUM_RADIUS,
            # The cart drive is still an ideal force source in the simulators: an XM430-W350 on
            # a 5 cm drum tops out near 0.24 m/s, too slow for a swing-up. Until a faster drive
            # is chosen (issue 20), its envelope and armature are not simulated.
            servo_physics=False,
        ),
        JointHardware(
            joint=C.HINGE,
            motor_id=2,
            model="encoder",
            actuated=False,
            kind="revolute",
            position_limits=(-math.inf, math.inf),  # the pole spins freely
            velocity_limit=30.0,  # rad/s, beyond this the encoder reading is not trusted
        ),
    ),
)
