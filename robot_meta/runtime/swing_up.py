"""Bring a cartpole's passive pole upright with the cart motor: energy swing-up, then an LQR
catch. This is the reset of tasks that start balanced (cartpole ``balance``): the pole is
passive, so the only physically realizable way to its start state is to swing it up, as a lab
cartpole's own reset does.

Model (theta = 0 upright, positive toward +x; x the cart position; F the force on the cart):

    (M + m) x'' + m l cos(theta) theta'' - m l sin(theta) theta'^2 = F - b x'
    I theta''   + m l cos(theta) x''                                = m l g sin(theta)

with m the pole's mass (rod + payload), l the distance of its centre of mass from the pivot and
I its inertia about the pivot; M includes the cart motor's rotor reflected through the drum,
J_r N^2 / r^2 (``CartPoleModel.armature``). The parameters are the robot's nominal ones: the
real payload, friction and latency are unknown (they are what the session adapts to), so both
phases are built to tolerate them. The cart drive is a servo: its force falls linearly with
speed, F_s (1 - |x'| / v0), and is gone at its top speed v0 = w0 r (``velocity_limit`` in the
hardware map), so both phases keep the cart well below v0.

1. **Swing-up** (an energy rule after Astrom & Furuta, with the cart speed as the input). The
   pole's energy relative to upright rest, E = 1/2 I theta'^2 + m g l (cos(theta) - 1), changes
   as dE/dt = -m l cos(theta) theta' x'' (damping aside). The cart tracks the velocity

       x'_ref = clip(-k_E (E_target - E) / (m g l) sin(theta), -v_c, v_c) - k_x x,

   v_c = speed_fraction * v0, with x'' = (x'_ref - x') / tau_v (clipped to +-a_max; outward
   motion faded out near the end of the usable rail) and F = (M + m) x'' + b x'. Tracked, it
   gives x'' ~ -k_E dE cos(theta) theta', so dE/dt = m l k_E dE cos(theta)^2 theta'^2 >= 0
   while energy is lacking: unlike a rule on the acceleration, it never asks for more than
   the speed the drive has, and the cart reverses near the bottom, where the pole is fastest
   and each reversal pays most (about 2 v_c theta' / g of m g l). The model's E is off when
   the payload is not the nominal one, so E_target is corrected after every swing by what the
   swing lacked or had to spare (:meth:`SwingUpReset._track_apex`).
2. **Catch**: inside |theta| < catch_angle with |theta'| < catch_rate, and where the cart
   velocity that stops the pole's fall is within reach (:meth:`SwingUpReset.catch_velocity`
   below catch_speed_fraction * v0), a discrete LQR on (x - x_start, theta, x', theta') at the
   control period balances the pole and brings the cart back to its start; if the pole falls
   out of reach again the swing-up resumes.

The reset ends once every joint has been within tolerance of the start and slow for ``hold_s``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.runtime.reset import (
    ResetError,
    ResetResult,
    _wrap,
    pose_error,
    revolute_mask,
    settle_loop,
)

if TYPE_CHECKING:
    from robot_meta.hardware.hardware_map import HardwareMap
    from robot_meta.hardware.robot import Robot


@dataclass(frozen=True)
class CartPoleModel:
    """Rigid-body parameters for the swing-up and the LQR (SI units)."""

    cart_mass: float  # M [kg]
    pole_mass: float  # m [kg], rod + payload
    com: float  # l [m], pivot to the pole's centre of mass
    inertia: float  # I [kg m^2], about the pivot
    cart_damping: float = 0.0  # b [N s/m]
    g: float = 9.81
    armature: float = 0.0  # J_a [kg]: the motor's rotor reflected to the cart, J_r N^2 / r^2

    @property
    def cart_inertia(self) -> float:
        """M + J_a [kg]: what the cart force accelerates besides the pole."""
        return self.cart_mass + self.armature

    @classmethod
    def from_hw(cls, hw: HardwareMap) -> CartPoleModel:
        """The nominal model of the robot whose hardware map is ``hw``: its folder's
        ``reset.py`` defines ``nominal_model(hw)`` (the geometry lives with the robot)."""
        from robot_meta.runtime.reset import folder_reset

        hook = folder_reset(hw)
        if hook is None or not hasattr(hook, "nominal_model"):
            raise ValueError(f"robot {hw.robot!r}: its folder has no reset.py with "
                             "nominal_model(hw); pass the model")
        model: CartPoleModel = hook.nominal_model(hw)
        return model

    def linearized(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) of x_{k+1} = A x_k + B F_k about upright rest, state (x, theta, x', theta'),
        discretized with a zero-order hold at dt (matrix exponential by series). The cart's
        mass is M + J_a (the rotor turns with it)."""
        M, m, l, inertia, b, g = (self.cart_inertia, self.pole_mass, self.com, self.inertia,
                                  self.cart_damping, self.g)
        ml = m * l
        det = (M + m) * inertia - ml**2
        # [[M+m, ml], [ml, I]] [x''; theta''] = [F - b x'; ml g theta]
        ac = np.zeros((4, 4))
        bc = np.zeros((4, 1))
        ac[0, 2] = ac[1, 3] = 1.0
        ac[2, 1], ac[2, 2], bc[2, 0] = -ml * ml * g / det, -inertia * b / det, inertia / det
        ac[3, 1], ac[3, 2], bc[3, 0] = (M + m) * ml * g / det, ml * b / det, -ml / det
        # exp([[Ac, Bc], [0, 0]] dt) = [[A, B], [0, I]]
        big = np.zeros((5, 5))
        big[:4, :4], big[:4, 4:] = ac * dt, bc * dt
        out, term = np.eye(5), np.eye(5)
        for k in range(1, 20):
            term = term @ big / k
            out = out + term
        return out[:4, :4], out[:4, 4:]


def reflected_armature(joint: Any) -> float:
    """J_a = J_r N^2 / r^2 [kg or kg m^2]: a servo's rotor inertia seen at its joint through the
    transmission r, when the simulators give the joint its servo (0 for an ideal source)."""
    if not getattr(joint, "servo_physics", False) or not joint.servo.has_motor:
        return 0.0
    motor = joint.servo.motor
    return float(motor.armature / joint.transmission**2)


def dlqr(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray, iters: int = 20000,
         tol: float = 1e-10) -> np.ndarray:
    """Gain K of the discrete LQR (u = -K x) by iterating the Riccati recursion
    P <- Q + A'PA - A'PB (R + B'PB)^-1 B'PA to a fixed point."""
    p = q.copy()
    for _ in range(iters):
        bp = b.T @ p
        k = np.linalg.solve(r + bp @ b, bp @ a)
        nxt = q + a.T @ p @ a - a.T @ p @ b @ k
        if np.max(np.abs(nxt - p)) < tol * max(1.0, np.max(np.abs(p))):
            p = nxt
            break
        p = nxt
    bp = b.T @ p
    gain: np.ndarray = np.linalg.solve(r + bp @ b, bp @ a)
    return gain


@functools.lru_cache(maxsize=8)
def balance_gain(model: CartPoleModel, period_s: float,
                 scales: tuple[float, float, float, float, float] = (0.1, 0.05, 0.5, 1.0, 3.0)
                 ) -> np.ndarray:
    """The catch's LQR gain K (4,) for ``model`` at ``period_s`` (cached: a reset is built
    with torque on, inside the bus watchdog's time). ``scales``: the acceptable excursion of
    x [m], theta [rad], x' [m/s], theta' [rad/s] and the force scale [N]; Q and R are their
    inverse squares (Bryson's rule)."""
    a, b = model.linearized(period_s)
    q = np.diag([1.0 / v**2 for v in scales[:4]])
    gain: np.ndarray = dlqr(a, b, q, np.array([[1.0 / scales[4] ** 2]]))[0]
    gain.flags.writeable = False
    return gain


class SwingUpReset:
    """Swing-up + LQR reset of a cartpole (joint order: slider, hinge) to an upright start.

    Args:
        robot: a connected :class:`~robot_meta.hardware.Robot` in current mode.
        q_start: (x_start, theta_start); theta_start must be near 0 (upright).
        period_s: the control period (5 ms, as the PID reset).
        model: the rigid-body model (default: the bundled robot's nominal one).
        a_max: the largest cart acceleration the swing-up asks for [m/s^2].
        energy_gain: k_E [m/s per m g l of missing energy].
        energy_target: E_target as a fraction of m g l (0: just reach the top); corrected
            online from each swing, since the model's energy is off by the unknown payload
            (see :meth:`_track_apex`: ``apex_gain`` the fraction of the shortfall corrected per
            swing, ``idle_tol`` how near the target a swing must pass the bottom to count).
        center_gain: k_x [1/s], the cart's pull toward its start.
        rail: the swing-up's outward motion fades out as |x - x_start| approaches this [m].
        speed_fraction: v_c / v0, the swing-up's top cart speed as a fraction of the drive's.
        speed_tau: tau_v [s], the time constant of the cart's velocity tracking.
        catch_speed_fraction: the catch begins only where the cart velocity that stops the
            pole's fall is below this fraction of v0 (:meth:`catch_velocity`).
        catch_angle, catch_rate: where the LQR takes over [rad, rad/s].
        lqr_scales: the catch's LQR weights, see :func:`balance_gain`.
        pos_tol, vel_tol, hold_s: the end condition (as :class:`ResetController`).
        timeout_s: ResetError after this long.
    """

    def __init__(self, robot: Robot, q_start: np.ndarray, period_s: float = 0.005, *,
                 model: CartPoleModel | None = None, a_max: float = 8.0,
                 energy_gain: float = 1.5, energy_target: float = 0.0,
                 center_gain: float = 1.0,
                 catch_angle: float = 0.35, catch_rate: float = 3.0,
                 rail: float = 0.45, apex_gain: float = 0.6, idle_tol: float = 0.4,
                 speed_fraction: float = 0.85, speed_tau: float = 0.025,
                 catch_speed_fraction: float = 0.5,
                 lqr_scales: tuple[float, float, float, float, float] = (0.1, 0.05, 0.5, 1.0, 3.0),
                 pos_tol: float = 0.05, vel_tol: float = 0.2, hold_s: float = 0.5,
                 timeout_s: float = 60.0):
        self.robot = robot
        self.q_start = np.asarray(q_start, dtype=float)
        if abs(float(_wrap(np.array(self.q_start[1])))) > 0.3:
            raise ResetError("the swing-up reset brings the pole upright; its start angle "
                             f"{self.q_start[1]:.2f} rad is not near 0")
        self.period_s = period_s
        self.model = model or CartPoleModel.from_hw(robot.hw)
        cart = robot.hw.joints[0]
        self.effort_limit = float(cart.effort_limit)
        # the swing-up keeps the cart below this fraction of its top speed (the no-load speed
        # times the transmission, w0 r): the drive's force F_s (1 - |x'| / v0) is gone at v0
        self.speed_cap = speed_fraction * float(cart.velocity_limit)
        self.speed_tau = speed_tau
        self.catch_speed = catch_speed_fraction * float(cart.velocity_limit)
        self.revolute = revolute_mask(robot.hw)
        self.a_max = a_max
        self.energy_gain, self.energy_target = energy_gain, energy_target
        self.center_gain = center_gain
        self.kick = 0.5 * self.speed_cap
        self.catch_angle, self.catch_rate = catch_angle, catch_rate
        self.pos_tol, self.vel_tol, self.hold_s = pos_tol, vel_tol, hold_s
        self.timeout_s = timeout_s
        self.k = balance_gain(self.model, period_s, lqr_scales)
        self.catching = False
        self.e_bias = 0.0  # learned correction of the energy target (see _track_apex)
        self._last: tuple[float, float] | None = None
        self._e_bottom: float | None = None  # the model's E at the last bottom pass
        self.idle_tol = idle_tol
        self.rail = rail
        self.apex_gain = apex_gain

    def energy(self, theta: float, theta_dot: float) -> float:
        """E / (m g l): 0 at upright rest, -2 hanging at rest."""
        md = self.model
        return float((0.5 * md.inertia * theta_dot**2) / (md.pole_mass * md.g * md.com)
                     + math.cos(theta) - 1.0)

    def catch_velocity(self, theta: float, theta_dot: float, x_dot: float) -> float:
        """The cart velocity [m/s] that stops the pole's fall: x' + xi I w / (m l).

        Near upright with the cart's acceleration as the input, I theta'' = m l (g theta - x''),
        so the falling mode xi = theta + theta' / w, w = sqrt(m g l / I), grows as
        xi' = w xi - m l x'' / (I w): a change of cart velocity dv takes m l dv / (I w) off xi.
        The catch has to reach this velocity at once, so it can only begin where the drive
        reaches it (``catch_speed``)."""
        md = self.model
        w = math.sqrt(md.pole_mass * md.g * md.com / md.inertia)
        xi = theta + theta_dot / w
        return x_dot + xi * md.inertia * w / (md.pole_mass * md.com)

    def command(self, q: np.ndarray, dq: np.ndarray) -> float:
        """The cart force [N] for the measured state (slider, hinge)."""
        md = self.model
        x, xd = float(q[0]) - float(self.q_start[0]), float(dq[0])
        th, thd = float(_wrap(np.array(q[1]))), float(dq[1])
        near = (abs(th) < self.catch_angle and abs(thd) < self.catch_rate
                and abs(self.catch_velocity(th, thd, xd)) < self.catch_speed)
        if self.catching and abs(th) > 2 * self.catch_angle:
            self.catching = False  # fell out of reach: swing up again
        elif near:
            self.catching = True
        if not self.catching:
            self._track_apex(th, thd)
        self._last = (th, thd)
        if self.catching:
            force = -float(self.k @ np.array([x, th, xd, thd]))
        else:
            e = self.energy(th, thd)
            de = self.energy_target + self.e_bias - e  # what the pole lacks, in m g l
            # v_ref = -k_E dE sin(theta), so x'' ~ -k_E dE cos(theta) theta' and
            # dE/dt = m l k_E dE cos(theta)^2 theta'^2: energy flows in while dE > 0
            v_ref = -self.energy_gain * de * math.sin(th)
            if e < -1.9 and abs(thd) < 0.5 and abs(v_ref) < 0.5 * self.kick:
                v_ref = self.kick  # at rest hanging, sin(theta) ~ 0: any push starts the swing
            v_ref = float(np.clip(v_ref, -self.speed_cap, self.speed_cap))
            if v_ref * x > 0.0:  # outward: fade out toward the usable rail's end
                v_ref *= max(0.0, 1.0 - (x / self.rail) ** 2)
            v_ref -= self.center_gain * x
            acc = float(np.clip((v_ref - xd) / self.speed_tau, -self.a_max, self.a_max))
            force = (md.cart_inertia + md.pole_mass) * acc + md.cart_damping * xd
        return float(np.clip(force, -self.effort_limit, self.effort_limit))

    def _track_apex(self, th: float, thd: float) -> None:
        """Correct the energy target from what the swing did (the model's energy is off by the
        unknown payload, and friction takes some of what is pumped in).

        The model's energy is off mostly at the bottom, through its kinetic term; near the top
        the potential term, which it knows, dominates, and at an apex (theta' = 0) it is exact,
        cos(theta_a) - 1. A swing whose energy the model saw at the target as it passed the
        bottom (|E_target - E_b| < ``idle_tol``: the pump was idle, so the swing kept its
        energy) shows the target's error at its next event in the upper half: an apex (it
        turned back short of the top, lacking E_u = cos(theta_a) - 1 < 0) or the pass over the
        top (with E_u > 0, its kinetic energy there, to spare). A fraction ``apex_gain`` of
        -E_u is added to the target (integral action). The correction stays within [-0.5, 1]:
        a target of -0.5 still swings the pole into the upper half, where its events correct
        it."""
        if self._last is None:
            return
        th0, thd0 = self._last
        if abs(th) >= math.pi / 2:
            if th0 * th < 0.0 and abs(th - th0) > math.pi:  # passed the bottom (theta = +-pi)
                self._e_bottom = self.energy(th, thd)
            return
        if self._e_bottom is None:
            return
        turned = thd0 * thd < 0.0  # an apex in the upper half
        over = th0 * th < 0.0 and abs(th - th0) < 1.0  # passed over the top
        if not (turned or over):
            return
        e_b, self._e_bottom = self._e_bottom, None
        if abs(self.energy_target + self.e_bias - e_b) < self.idle_tol:
            self.e_bias -= self.apex_gain * self.energy(th, thd)
            self.e_bias = float(np.clip(self.e_bias, -0.5, 1.0))

    def settled(self, q: np.ndarray, dq: np.ndarray) -> bool:
        """Caught, and every joint within pos_tol of the start and slower than vel_tol."""
        return self._settled(pose_error(self.revolute, self.q_start, q), dq)

    def _settled(self, err: np.ndarray, dq: np.ndarray) -> bool:
        return bool(self.catching and np.all(np.abs(err) < self.pos_tol)
                    and np.all(np.abs(dq) < self.vel_tol))

    def run(self) -> ResetResult:
        """Swing up and settle; returns when settled, raises ResetError on timeout."""
        self.catching, self.e_bias, self._last, self._e_bottom = False, 0.0, None, None

        def cycle(s: Any) -> tuple[bool, np.ndarray]:
            self.robot.write_efforts([self.command(s.q, s.dq)])
            err = pose_error(self.revolute, self.q_start, s.q)
            return self._settled(err, s.dq), err

        def timed_out(s: Any, err: np.ndarray) -> str:
            return (f"the swing-up did not settle the pole upright in {self.timeout_s:g} s (pole "
                    f"at {float(_wrap(np.array(s.q[1]))):.2f} rad, cart at {s.q[0]:.2f} m, energy "
                    f"{self.energy(float(s.q[1]), float(s.dq[1])):.2f} of target "
                    f"{self.energy_target + self.e_bias:.2f} m g l). Check the rail is clear and "
                    "the pole swings freely, or reset it by hand")

        return settle_loop(self.robot, self.period_s, self.hold_s, self.timeout_s, cycle, timed_out)
