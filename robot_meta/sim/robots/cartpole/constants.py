"""Cartpole constants: geometry and episode length for the task code (names match model.xml and
twin.urdf).

The drive: a current-controlled DYNAMIXEL XM430-W210 drives the cart through a
capstan drum of radius 10 cm; a passive 4096-count encoder reads the pole.

Why this drive (issue 20). A drive of transmission r [m of cart travel per motor radian] gives
the cart a top speed v0 = w0 r, a stall force F_s = tau_s / r and a reflected rotor inertia
J_a = J_r N^2 / r^2 (servo files: w0, tau_s at 12 V and J_r N^2):

    servo        r [m]   v0 [m/s]   F_s [N]   J_a [kg]
    XM430-W350   0.05    0.24       82        4.5      (the drive before issue 20)
    XM430-W210   0.05    0.40       60        1.6
    XM430-W210   0.075   0.60       40        0.72
    XM430-W210   0.10    0.81       30        0.41     <- this drive
    XM430-W210   0.15    1.21       20        0.18

What the swing-up needs (pole 0.6 m, 0.1 kg, up to 0.1 kg more at the tip; cart 1 kg; rail
+-0.75 m). The pole swings at w_p = sqrt(m g l / I) = 4.3 .. 5.0 rad/s, and the energy it needs,
2 m g l, is small (0.6 .. 1.8 J): the drive's peak mechanical power tau_s w0 / 4 = 6 W is not
the limit, its speed is. Pumped by the cart at speed v_c (robot_meta.runtime.swing_up), the pole
gains about 2 v_c theta'_b / g of m g l per pass of the bottom, theta'_b its speed there (<= 9.9
rad/s); to reach the top in a handful of swings with the cart inside +-0.3 m, v_c ~ 0.5 m/s.
Then the catch: a pole near upright falls in the mode xi = theta + theta' / w_p, and stopping it
takes a cart velocity change xi I w_p / (m l) ~ 2.2 m/s per rad of xi, so catching from
|xi| ~ 0.2 takes ~0.45 m/s on top of the cart's own speed. Both need v0 well above 0.5 m/s,
which the W350 on a 5 cm drum (0.24 m/s) cannot give. The W210 (same motor and control table,
1.67 x faster gearbox) on a 10 cm drum gives v0 = 0.81 m/s with F_s = 30 N, three times the
10 N the task uses, so the full 10 N is available up to v0 (1 - 10 / 30) = 0.54 m/s (0.45 m/s
on a 7.5 cm drum, 0.60 m/s on a 15 cm one, which is weak, 20 N, and large); its rotor adds
0.41 kg to the 1 kg cart. Measured with the oracle from hanging in MuJoCo, on 8 plants at the
edges of the `all` family (payload, masses, friction, strength, 10 .. 14.8 V supply) and one
beyond it (0.2 kg at 0.8 m): the W210 on 5 cm swings up 7 of the 8, with the cart at its top
speed throughout; on 7.5 and 10 cm all 8 (the plant beyond: yes on 7.5 cm, no on 10 cm); on
10 cm also 35 .. 38 of 40 random `all` plants within 25 s. The 10 cm drum is chosen for the
widest catch window (the catch may use 0.5 v0 = 0.40 m/s) and force-speed margin for the
learned balance policy. tests/sim/test_cartpole_drive.py shows the oracle swinging up and
balancing on this drive, in MuJoCo and in the PyBullet twin.

The motor, its limits and IDs are in robot.toml; the velocity limit, unit scales and torque
constant come from the servo file (``robot_meta/hardware/servos/xm430-w210.toml``):
K_t = 3.0 N*m / 2.3 A = 1.3043 N*m/A.
"""

# Joints, motors, limits, nominal friction and timing are in robot.toml; these are for the
# task code and the swing-up model.
SLIDER = "slider"
HINGE = "hinge"

# Geometry [m], masses [kg] (model.xml).
POLE_LENGTH = 0.6
RAIL_HALF_LENGTH = 0.8  # hard stop of the slider joint
RAIL_SOFT_LIMIT = 0.75  # episodes terminate past this, before the end stops
CART_MASS = 1.0
POLE_MASS = 0.1

EPISODE_STEPS = 250  # 5 s at 50 Hz
