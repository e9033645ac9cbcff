"""Arm2 constants for the task code: a two-link arm in the vertical x-z plane. Joint angles are
0 when a link hangs straight down and positive toward +x. Names match model.xml and twin.urdf;
joints, motors, limits, nominal friction and timing are in robot.toml."""

SHOULDER = "shoulder"
ELBOW = "elbow"

# Geometry [m], masses [kg] (model.xml).
SHOULDER_HEIGHT = 0.5
LINK1_LENGTH = 0.25
LINK2_LENGTH = 0.20
LINK1_MASS = 0.30
LINK2_MASS = 0.20

SHOULDER_RANGE = (-2.8, 2.8)  # rad, hard stops
ELBOW_RANGE = (-2.6, 2.6)

EPISODE_STEPS = 200  # 4 s at 50 Hz
