"""Bring a cartpole's passive pole upright with the cart motor: energy swing-up, then an LQR
catch. This is the reset of tasks that start balanced (cartpole ``balance``): the pole is
passive, so the only physically realizable way to its start state is to swing it up, as a lab
cartpole's own reset does.

Model (theta = 0 upright, positive toward +x; x the cart position; F the force on the cart):

    (M + m) x'' + m l cos(theta) theta'' - m l sin(theta) theta'^2 = F - b x'
    I theta''   + m l cos(theta) x''                                = m l g sin(theta)

with m the pole's mass (rod + payload), l the distance of its centre of mass from the pivot and
I its inertia about the pivot. The parameters are the robot's nominal ones: the real payload,
friction and latency are unknown (they are what the session adapts to), so both phases are
built to tolerate them.

1. **Swing-up** (Astrom & Furuta's energy rule). The pole's energy relative to upright rest,
   E = 1/2 I theta'^2 + m g l (cos(theta) - 1), changes as dE/dt = -m l cos(theta) theta' x''
   (damping aside), so the cart acceleration

       x''_ref = -k_E (E_target - E) / (m g l) * sign(theta' cos(theta))  - k_x x - k_v x'

   (clipped to +-a_max, outward pushes faded out near the end of the usable rail) pumps
   energy in until E reaches E_target, while a weak spring keeps the cart near the middle.
   F = (M + m) x''_ref + b x'. The model's E is off when the payload is not the nominal one,
   so E_target is corrected after every swing by what the swing lacked or had to spare.
2. **Catch**: inside |theta| < catch_angle with |theta'| < catch_rate, a discrete LQR on
   (x - x_start, theta, x', theta') at the control period balances the pole and brings the cart
   back to its start; if the pole falls out of reach again the swing-up resumes.

The reset ends once every joint has been within tolerance of the start and slow for ``hold_s``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_meta.runtime.reset import (
    ResetError,
    ResetResult,
    _wrap,
    pose_error,
    revolute_mask,
    settle_loop,
)


@dataclass(frozen=True)
class CartPoleModel:
    """Rigid-body parameters for the swing-up and the LQR (SI units)."""

    cart_mass: float  # M [kg]
    pole_mass: float  # m [kg], rod + payload
    com: float  # l [m], pivot to the pole's centre of mass
    inertia: float  # I [kg m^2], about the pivot
    cart_damping: float = 0.0  # b [N s/m]
    g: float = 9.81

    @classmethod
    def nominal(cls) -> CartPoleModel:
        """The bundled cartpole with half of the training payload range at the tip."""
        from robot_meta.sim.robots.cartpole import constants as C

        rod_l, payload = C.POLE_LENGTH, 0.05  # a thin rod and a point payload at its tip
        m = C.POLE_MASS + payload
        ml = C.POLE_MASS * rod_l / 2 + payload * rod_l
        inertia = C.POLE_MASS * rod_l**2 / 3 + payload * rod_l**2
        return cls(C.CART_MASS, m, ml / m, inertia, C.SLIDER_DAMPING)

    def linearized(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) of x_{k+1} = A x_k + B F_k about upright rest, state (x, theta, x', theta'),
        discretized with a zero-order hold at dt (matrix exponential by series)."""
        M, m, l, inertia, b, g = (self.cart_mass, self.pole_mass, self.com, self.inertia,
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
        energy_gain: k_E.
        energy_target: E_target as a fraction of m g l (0: just reach the top); corrected
            online from each swing's apex, since the model's energy is off by the unknown
            payload (see :meth:`_track_apex`, ``apex_gain`` the fraction of the shortfall
            corrected per swing).
        center_gain: k_x [1/s^2] and center_damping: k_v [1/s], the spring on the cart.
        rail: the swing-up's outward pushes fade out as |x - x_start| approaches this [m].
        catch_angle, catch_rate: where the LQR takes over [rad, rad/s].
        lqr_scales: the catch's LQR weights, see :func:`balance_gain`.
        pos_tol, vel_tol, hold_s: the end condition (as :class:`ResetController`).
        timeout_s: ResetError after this long.
    """

    def __init__(self, robot: Any, q_start: np.ndarray, period_s: float = 0.005, *,
                 model: CartPoleModel | None = None, a_max: float = 8.0,
                 energy_gain: float = 8.0, energy_target: float = 0.0,
                 center_gain: float = 1.0, center_damping: float = 2.0,
                 catch_angle: float = 0.35, catch_rate: float = 3.0,
                 rail: float = 0.45, apex_gain: float = 0.6,
                 lqr_scales: tuple[float, float, float, float, float] = (0.1, 0.05, 0.5, 1.0, 3.0),
                 pos_tol: float = 0.05, vel_tol: float = 0.2, hold_s: float = 0.5,
                 timeout_s: float = 60.0):
        self.robot = robot
        self.q_start = np.asarray(q_start, dtype=float)
        if abs(float(_wrap(np.array(self.q_start[1])))) > 0.3:
            raise ResetError("the swing-up reset brings the pole upright; its start angle "
                             f"{self.q_start[1]:.2f} rad is not near 0")
        self.period_s = period_s
        self.model = model or CartPoleModel.nominal()
        self.effort_limit = float(robot.hw.joints[0].effort_limit)
        self.revolute = revolute_mask(robot.hw)
        self.a_max = a_max
        self.energy_gain, self.energy_target = energy_gain, energy_target
        self.center_gain, self.center_damping = center_gain, center_damping
        self.catch_angle, self.catch_rate = catch_angle, catch_rate
        self.pos_tol, self.vel_tol, self.hold_s = pos_tol, vel_tol, hold_s
        self.timeout_s = timeout_s
        self.k = balance_gain(self.model, period_s, lqr_scales)
        self.catching = False
        self.e_bias = 0.0  # learned correction of the energy target (see _track_apex)
        self._last: tuple[float, float] | None = None
        self.rail = rail
        self.apex_gain = apex_gain

    def energy(self, theta: float, theta_dot: float) -> float:
        """E / (m g l): 0 at upright rest, -2 hanging at rest."""
        md = self.model
        return float((0.5 * md.inertia * theta_dot**2) / (md.pole_mass * md.g * md.com)
                     + math.cos(theta) - 1.0)

    def command(self, q: np.ndarray, dq: np.ndarray) -> float:
        """The cart force [N] for the measured state (slider, hinge)."""
        md = self.model
        x, xd = float(q[0]) - float(self.q_start[0]), float(dq[0])
        th, thd = float(_wrap(np.array(q[1]))), float(dq[1])
        near = abs(th) < self.catch_angle and abs(thd) < self.catch_rate
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
            s = np.sign(thd * math.cos(th))
            if s == 0.0 and e < -1.9:  # at rest hanging: any push starts the swing
                s = 1.0
            acc = -self.energy_gain * (self.energy_target + self.e_bias - e) * s
            acc = float(np.clip(acc, -self.a_max, self.a_max))
            if acc * x > 0.0:  # pushing outward: fade out toward the usable rail's end
                acc *= max(0.0, 1.0 - (x / self.rail) ** 2)
            acc -= self.center_gain * x + self.center_damping * xd
            force = (md.cart_mass + md.pole_mass) * acc + md.cart_damping * xd
        return float(np.clip(force, -self.effort_limit, self.effort_limit))

    def _track_apex(self, th: float, thd: float) -> None:
        """Correct the energy target from what the swing did (the model's energy is off by the
        unknown payload, and friction takes some of what is pumped in). At an apex theta' = 0,
        so the true energy is exactly cos(theta_a) - 1: a swing that turned back in the upper
        half at theta_a lacked (1 - cos theta_a) of m g l; one that went over the top had the
        kinetic energy it passed the top with to spare. A fraction ``apex_gain`` of either is
        corrected per swing (integral action). The correction stays within [-0.5, 1]: a target
        of -0.5 still swings the pole into the upper half, where its apexes correct it."""
        if self._last is None:
            return
        th0, thd0 = self._last
        if abs(th) >= math.pi / 2:
            return
        if thd0 * thd < 0.0:  # turned back in the upper half
            self.e_bias += self.apex_gain * (1.0 - math.cos(th))
        elif th0 * th < 0.0 and abs(th - th0) < 1.0:  # passed over the top
            md = self.model
            self.e_bias -= self.apex_gain * 0.5 * md.inertia * thd**2 / (md.pole_mass * md.g * md.com)
        self.e_bias = float(np.clip(self.e_bias, -0.5, 1.0))

    def settled(self, q: np.ndarray, dq: np.ndarray) -> bool:
        """Caught, and every joint within pos_tol of the start and slower than vel_tol."""
        return self._settled(pose_error(self.revolute, self.q_start, q), dq)

    def _settled(self, err: np.ndarray, dq: np.ndarray) -> bool:
        return bool(self.catching and np.all(np.abs(err) < self.pos_tol)
                    and np.all(np.abs(dq) < self.vel_tol))

    def run(self) -> ResetResult:
        """Swing up and settle; returns when settled, raises ResetError on timeout."""
        self.catching, self.e_bias, self._last = False, 0.0, None

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
