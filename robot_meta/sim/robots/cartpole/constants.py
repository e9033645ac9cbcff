"""Cartpole constants: names in model.xml / twin.urdf, geometry and timing. No magic strings elsewhere."""

# Joints, in observation order. The slider is the actuated rail; the hinge is the passive pole.
SLIDER = "slider"
HINGE = "hinge"
JOINTS = (SLIDER, HINGE)
ACTUATED_JOINTS = (SLIDER,)

# Actuators, in action order.
CART_MOTOR = "cart_motor"
ACTUATORS = (CART_MOTOR,)

# Bodies.
CART = "cart"
POLE = "pole"
PAYLOAD = "payload"  # placeholder body at the pole tip: its mass and COM offset are randomized
LINKS = (CART, POLE)

# Sites.
TIP_SITE = "tip"

# Geometry [m], masses [kg].
POLE_LENGTH = 0.6
RAIL_HALF_LENGTH = 0.8  # hard stop of the slider joint
RAIL_SOFT_LIMIT = 0.75  # episodes terminate past this, before the end stops
CART_MASS = 1.0
POLE_MASS = 0.1
PAYLOAD_AXIS = (0.0, 0.0, 1.0)  # payload offset direction, in the pole frame (along the pole)

# Nominal joint friction.
SLIDER_DAMPING = 0.2  # N*s/m
SLIDER_FRICTIONLOSS = 0.05  # N
HINGE_DAMPING = 0.002  # N*m*s/rad
HINGE_FRICTIONLOSS = 0.0  # N*m

SUPPLY_VOLTAGE = 12.0  # V, the cart servo's nominal supply (xm430-w210.toml)

# Timing: physics at 200 Hz (implicitfast once the servo is built in), control at 50 Hz.
PHYSICS_DT = 0.005
CONTROL_DT = 0.02
EPISODE_STEPS = 250  # 5 s
