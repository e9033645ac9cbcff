"""Arm2 constants: a two-link arm in the vertical x-z plane. Joint angles are 0 when a link hangs
straight down and positive toward +x. Names match model.xml and twin.urdf."""

SHOULDER = "shoulder"
ELBOW = "elbow"
JOINTS = (SHOULDER, ELBOW)
ACTUATED_JOINTS = (SHOULDER, ELBOW)

SHOULDER_MOTOR = "shoulder_motor"
ELBOW_MOTOR = "elbow_motor"
ACTUATORS = (SHOULDER_MOTOR, ELBOW_MOTOR)

LINK1 = "link1"
LINK2 = "link2"
PAYLOAD = "payload"  # placeholder body at the end effector
LINKS = (LINK1, LINK2)

TIP_SITE = "tip"

# Geometry [m], masses [kg].
SHOULDER_HEIGHT = 0.5
LINK1_LENGTH = 0.25
LINK2_LENGTH = 0.20
LINK1_MASS = 0.30
LINK2_MASS = 0.20
PAYLOAD_AXIS = (0.0, 0.0, -1.0)  # along link2, away from the elbow

# Nominal joint friction (the servo gearbox).
SHOULDER_DAMPING = 0.05  # N*m*s/rad
SHOULDER_FRICTIONLOSS = 0.02  # N*m
ELBOW_DAMPING = 0.05
ELBOW_FRICTIONLOSS = 0.02

SHOULDER_RANGE = (-2.8, 2.8)  # rad, hard stops
ELBOW_RANGE = (-2.6, 2.6)

SUPPLY_VOLTAGE = 12.0  # V, the servos' nominal supply (xm430-w350.toml)

PHYSICS_DT = 0.005
CONTROL_DT = 0.02
EPISODE_STEPS = 200  # 4 s
