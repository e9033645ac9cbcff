"""Arm2's motor-driven reset gains: half the default stiffness and damping, the same integral.

The reset is PID on current through the bus, so its loop carries the robot's actuation latency
(up to 3 control steps, 60 ms, in the servo family's OOD range) plus the bus round trip. With the
default gains (Kp = effort / 0.9 rad, Kd = 0.1 s Kp), a payload-loaded elbow (J about
0.027 kg m^2 with the servo's armature) crosses over near 17 rad/s, where 40 ms of latency
takes 39 of the PD's 60 degrees of phase lead; stiction and backlash then hold it in a limit
cycle. Two of 14 drawn hidden arms did that in emulator sessions (elbow oscillating at 2-4
rad/s after 10 s). Measured on the 14 hidden arms of ``bench sessions`` (latency 0-3 steps,
pushed away in two directions, manual clock): the defaults fail 4 of 28 resets at a 10 ms
loop period and 6 of 28 at 20 ms; these gains fail none at 5, 10 or 20 ms, and settle in
2.3-6.0 s (defaults: 2.0-4.7 s where they settle).
"""

RESET_GAINS = {"full_effort_error": 1.8, "integral_rate": 2.0}  # Kp, Kd halved; Ki the same
