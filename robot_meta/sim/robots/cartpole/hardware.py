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
            effort_limit=10.0,  # N at the cart
            max_current_a=0.2805,  # 1.7826 N*m/A * 0.2805 A / 0.05 m = 10.0 N
            transmission=DRUM_RADIUS,
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
