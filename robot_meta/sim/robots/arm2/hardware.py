"""Arm2 hardware map: two XM430-W350 servos in current control, direct drive."""

from robot_meta.hardware.hardware_map import HardwareMap, JointHardware
from robot_meta.sim.robots.arm2 import constants as C

HARDWARE_MAP = HardwareMap(
    robot="arm2",
    joints=(
        JointHardware(
            joint=C.SHOULDER,
            motor_id=1,
            model="xm430-w350",
            actuated=True,
            kind="revolute",
            position_limits=(-2.7, 2.7),  # inside the hard stops
            velocity_limit=8.0,  # rad/s
            effort_limit=3.5652,  # N*m = 1.7826 N*m/A * 2.0 A
            max_current_a=2.0,
        ),
        JointHardware(
            joint=C.ELBOW,
            motor_id=2,
            model="xm430-w350",
            actuated=True,
            kind="revolute",
            position_limits=(-2.5, 2.5),
            velocity_limit=8.0,
            effort_limit=3.5652,
            max_current_a=2.0,
        ),
    ),
)
