"""Arm2 hardware map: two XM430-W350 servos in current control, direct drive.

Velocity limits, unit scales and the torque constant come from the servo file
(``robot_meta/hardware/servos/xm430-w350.toml``): the velocity limit is the no-load speed at
12 V, and the effort of +1 action is K_t * 2.0 A = 3.5652 N*m."""

from robot_meta.calibration.spec import CalibrationSpec, JointCalibration
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
            max_current_a=2.0,  # A: 3.5652 N*m, below the 4.1 N*m stall torque
        ),
        JointHardware(
            joint=C.ELBOW,
            motor_id=2,
            model="xm430-w350",
            actuated=True,
            kind="revolute",
            position_limits=(-2.5, 2.5),
            max_current_a=2.0,
        ),
    ),
)

# Calibration (robot_meta.calibration.spec): both links hang at 0 with the motors off; the
# shoulder defines the positive sense (a mirrored arm is the same arm), and the elbow, left
# limp while the shoulder is held off vertical, hangs with link 2 vertical: q_elbow = -q_shoulder.
CALIBRATION = CalibrationSpec(
    robot="arm2",
    joints=(
        JointCalibration(C.SHOULDER, zero="hang", rest=0.0),
        JointCalibration(C.ELBOW, zero="hang", rest=0.0, direction="hangs_with",
                         relative_to=C.SHOULDER, expected_sign=-1),
    ),
)
