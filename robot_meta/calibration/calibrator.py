"""Automatic motor calibration: each joint's zero, direction and range, with no human.

:class:`Calibrator` drives a connected :class:`~robot_meta.hardware.Robot` (current mode, the
hardware map as designed: the "raw" frame) through the robot's
:class:`~robot_meta.calibration.spec.CalibrationSpec`:

1. **Moves as commanded.** Each actuated joint gets a current ramp, +I then -I, from 0 at
   ``ramp_a_per_s`` up to at most ``current_fraction * max_current_a``, stopped as soon as the
   joint has moved ``move_threshold``. A joint that does not move (blocked, disconnected from
   its link, unpowered) or moves against its own current aborts.
2. **Zeros.** ``hang`` joints (arm2): all are held by a PD law at the hanging reading + a,
   released by ramping their current linearly to 0, left at rest, and averaged; then the same
   from - a. Friction stops a released link at the edge of its dead band, q0 + d on one side
   and q0 - d on the other, so the zero is the mean q0 = (q+ + q-) / 2 (the robot is mirror
   symmetric, so the two releases are mirror images). Two links released together stop
   somewhere in a two-dimensional dead band, so the releases are mirror images only when they
   start symmetric about the zero: a second round (``hang_rounds``) starts from the first
   round's estimate +- a. ``end_stops`` joints (the cart): driven
   by a velocity loop at ``end_stop_speed`` to each stop, pushing at the current limit until
   stalled; the zero is the midpoint, the range the stops less ``stop_margin``. A passive
   ``hang`` joint (the pole) is recorded for ``pole_fit_s`` while the cart is held at its
   centre and fitted, by linear least squares over a grid of (w, sigma), with
   q(t) = c + exp(-sigma t) (a cos wt + b sin wt); c is the zero's reading.
3. **Directions** relative to the reference joint (spec): ``hangs_with``: the reference is held
   at its zero +- b, the joint (no current) hangs, and the slope
   k = (qJ+ - qJ-) / (qR+ - qR-) must be near ``expected_sign`` (same mounting) or its negative
   (reversed); ``swings_with``: over the end-stop log, the per-sample change of the passive
   joint's velocity is regressed on the change of the reference's velocity and on its own
   displacement (the pendulum's restoring term), d(dq_J) = k d(dq_R) + g (q_J - c) dt; sign(k)
   against ``expected_sign`` gives the direction.
4. **Check.** In the calibrated frame every actuated joint must again move the way its current
   says (:meth:`Calibrator.check` also re-measures the relative directions of a calibration
   file, for ``robot-meta calibrate --check``).

Safety: during calibration the robot's safety limits are the calibration's own: currents at
most ``current_fraction`` of each joint's limit, speeds at most ``revolute_speed`` /
``end_stop_speed`` x 1.5 (the safety layer cuts any current that would accelerate further),
and no position limits (the end stops must be reachable); instead every joint's travel from
where it started is bounded (``max_travel_rad`` / ``max_travel_m``). Any error, and Ctrl-C,
turns torque off before it propagates; a transient bus failure repeats the step it interrupted
(:meth:`Calibrator._phase`). Time runs on a :class:`Clock` (the wall clock on a real
robot, the emulator's simulated time with an in-process bus), so ``robot_seconds`` is the time
the robot spent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from robot_meta.calibration.calibration_file import (
    MotorCalibration,
    RobotCalibration,
    apply_calibration,
)
from robot_meta.calibration.errors import CalibrationError
from robot_meta.calibration.spec import CalibrationSpec
from robot_meta.hardware.errors import CorruptPacketError, ServoTimeoutError, TorqueLostError
from robot_meta.hardware.hardware_map import HardwareMap
from robot_meta.hardware.safety import JointLimits, SafetyLimits

if TYPE_CHECKING:
    from robot_meta.calibration.spec import JointCalibration
    from robot_meta.hardware.emulation.mock_bus import MockBus
    from robot_meta.hardware.robot import JointState, Robot

T = TypeVar("T")
# Bus failures that a repeat can outlast (as in an adaptation session); the Robot has turned
# torque off when one propagates.
TRANSIENT = (ServoTimeoutError, CorruptPacketError, TorqueLostError)


class Clock(Protocol):
    """The robot's time: ``now()`` [s] and ``sleep(dt)``."""

    def now(self) -> float: ...

    def sleep(self, dt: float) -> None: ...


class WallClock:
    """Real time (a real robot, or the emulator on a port)."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep(self, dt: float) -> None:
        if dt > 0:
            time.sleep(dt)


class BusClock:
    """Simulated time of an in-process :class:`~robot_meta.hardware.MockBus` with a manual
    clock: sleeping steps the physics."""

    def __init__(self, bus: MockBus):
        self.bus = bus

    def now(self) -> float:
        return float(self.bus.emulated.time)

    def sleep(self, dt: float) -> None:
        if dt > 0:
            self.bus.advance(dt)


@dataclass(frozen=True)
class CalibratorConfig:
    """Settings of the procedure (module docstring); lengths in joint units."""

    rate_hz: float = 50.0  # control loop rate (the robots' control rate)
    current_fraction: float = 0.5  # most current ever commanded, of max_current_a
    ramp_a_per_s: float = 1.0  # current ramp of the move check
    move_threshold_rad: float = 0.05
    move_threshold_m: float = 0.01
    revolute_speed: float = 2.0  # rad/s: speed cap of a revolute joint
    end_stop_speed: float = 0.2  # m/s (or rad/s) toward an end stop
    hang_excursion: float = 0.35  # rad each side of the hanging pose before a release
    hang_rounds: int = 2  # releases from both sides, each centred on the previous estimate
    hold_s: float = 1.0  # PD hold before a release
    release_s: float = 2.0  # current ramp to 0
    rest_s: float = 1.0  # at rest after a release; the last average_s are averaged
    average_s: float = 0.5
    relative_excursion: float = 0.5  # rad, reference held at its zero +- this
    relative_settle_s: float = 2.5
    pole_fit_s: float = 5.0
    stop_margin: float = 0.02  # joint units inside each end stop
    max_travel_rad: float = 1.5
    max_travel_m: float = 2.0
    stop_timeout_s: float = 20.0
    min_slope: float = 0.4  # |k| below this: the joint does not follow its reference
    phase_attempts: int = 4  # tries of each step after transient bus failures

    def __post_init__(self) -> None:
        if not 0.0 < self.current_fraction <= 1.0:
            raise ValueError(f"current_fraction must lie in (0, 1], got {self.current_fraction}")
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {self.rate_hz}")


@dataclass
class Log:
    """Samples of one phase: t [s] (N,), q and dq (N, joints), sent currents (N, actuated)."""

    t: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    current: np.ndarray

    def tail(self, seconds: float) -> slice:
        """The samples of the last ``seconds``."""
        if len(self.t) == 0:
            return slice(0, 0)
        return slice(int(np.searchsorted(self.t, self.t[-1] - seconds)), len(self.t))


class Calibrator:
    """Calibrate a robot (module docstring).

    Args:
        robot: a connected Robot in current mode, its hardware map as designed (uncalibrated).
        spec: the robot's calibration spec (default: from its folder).
        config: procedure settings.
        clock: the robot's time (default: the wall clock).
        status: called with one line of progress per phase.
    """

    def __init__(self, robot: Robot, spec: CalibrationSpec | None = None,
                 config: CalibratorConfig | None = None, clock: Clock | None = None,
                 status: Callable[[str], None] | None = None):
        from robot_meta.calibration.spec import load_calibration_spec

        if robot.mode != "current":
            raise ValueError("calibration drives the robot in current mode")
        self.robot = robot
        self.hw: HardwareMap = robot.hw
        self.spec = spec or load_calibration_spec(self.hw.robot)
        names = [j.joint for j in self.spec.joints]
        if sorted(names) != sorted(self.hw.joint_names):
            raise ValueError(f"the calibration spec's joints {names} are not the robot's "
                             f"{list(self.hw.joint_names)}")
        self.cfg = config or CalibratorConfig()
        self.clock = clock or WallClock()
        self.status = status or (lambda msg: None)
        self.joints = self.hw.joints
        self.act = [k for k, j in enumerate(self.joints) if j.actuated]
        self._start_q: np.ndarray | None = None
        self._saved: tuple[Any, Any] = (robot.hw, robot.limits)
        self._t0 = 0.0

    # ---- public -------------------------------------------------------------------------------
    def run(self) -> RobotCalibration:
        """Measure every joint and return the calibration (not yet saved). Torque is off when
        it returns or raises."""
        with self._session():
            self.status("checking that every actuated joint moves as commanded")
            self._phase(self._check_moves)
            zero: dict[str, float] = {}
            ranges: dict[str, tuple[float, float]] = {}
            hang = [k for k in self.act if self._spec(k).zero == "hang"]
            if hang:
                self.status("finding the zero of " + ", ".join(self.joints[k].joint for k in hang)
                            + " (released from both sides under gravity)")
                zero.update(self._phase(self._hang_zeros, hang))
            stops_log: list[Log] = []
            for k in self.act:
                if self._spec(k).zero == "end_stops":
                    self.status(f"driving {self.joints[k].joint!r} slowly to its end stops")
                    c, lo, hi, logs = self._phase(self._end_stops, k)
                    zero[self.joints[k].joint] = c
                    ranges[self.joints[k].joint] = (lo, hi)
                    stops_log += logs
            passive = [k for k, j in enumerate(self.joints) if not j.actuated]
            if passive:
                self.status("fitting the hanging swing of " + ", ".join(
                    self.joints[k].joint for k in passive))
                zero.update(self._phase(self._passive_zeros, passive, zero))
            sign = self._phase(self._directions, zero, stops_log)
            cal = self._calibration(zero, sign, ranges)
            self._use_map(apply_calibration(self.hw, cal))
            self.status("checking the calibrated frame")
            self._phase(self._check_moves)
            seconds = self.clock.now() - self._t0
        return RobotCalibration(cal.robot, cal.motors, robot_seconds=seconds)

    def check(self) -> dict[str, int]:
        """With the robot already in the calibrated frame (its hardware map has the
        calibration applied), check that every actuated joint moves as commanded and that
        every relative direction comes out as designed; returns {joint: measured sign}
        (all +1) or raises CalibrationError naming the joint."""
        with self._session():
            self._phase(self._check_moves)
            zero = {j.joint: self._spec(k).rest for k, j in enumerate(self.joints)}
            logs: list[Log] = []
            for k in self.act:
                if self._spec(k).zero == "end_stops" and any(
                        s.relative_to == self.joints[k].joint and s.direction == "swings_with"
                        for s in self.spec.joints):
                    logs.append(self._phase(self._shuttle, k))
            for k, j in enumerate(self.joints):
                if not j.actuated and self._spec(k).zero == "hang":
                    zero[j.joint] = float(np.median(np.concatenate([g.q[:, k] for g in logs])))
            sign = self._phase(self._directions, zero, logs)
            for j in self.joints:
                if sign[j.joint] != 1:
                    raise CalibrationError(
                        f"joint {j.joint!r} moves the wrong way in the calibrated frame "
                        f"(relative to {self.spec.joint(j.joint).relative_to!r}): the "
                        "calibration file is stale or the servo was remounted; re-run "
                        "`robot-meta calibrate`", j.joint)
        return sign

    def _phase(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one step of the procedure; after a transient bus failure (a lost or corrupted
        packet beyond the bus retries, a watchdog expiry after a stall: the Robot has turned
        torque off) wait, re-arm and repeat the step from where the robot came to rest, up to
        ``phase_attempts`` times, as a session repeats a rollout. A servo that stays silent
        fails every attempt and the last error, naming its joint, propagates."""
        n = self.cfg.phase_attempts
        for attempt in range(n):
            try:
                if attempt:
                    self.clock.sleep(0.5)
                    self.robot.enable()
                return fn(*args)
            except TRANSIENT as e:
                if attempt + 1 == n:
                    raise
                self.status(f"{e}; torque is off: repeating this step ({attempt + 1}/{n})")
        raise AssertionError("unreachable")

    # ---- the session: limits, torque, Ctrl-C -------------------------------------------------
    class _Session:
        def __init__(self, cal: Calibrator):
            self.cal = cal

        def __enter__(self) -> None:
            c = self.cal
            c._saved = (c.robot.hw, c.robot.limits)
            c._use_map(c.hw)
            c._t0 = c.clock.now()
            c.robot.enable()
            c._start_q = c.robot.read_state().q.copy()

        def __exit__(self, *exc: object) -> None:
            c = self.cal
            c.robot.estop()  # torque off, whatever happened (errors, Ctrl-C)
            c.robot.hw, c.robot.limits = c._saved

    def _session(self) -> Calibrator._Session:
        return Calibrator._Session(self)

    def _use_map(self, hw: HardwareMap) -> None:
        """Drive the robot through ``hw`` with the calibration's safety limits."""
        self.robot.hw = hw
        self.robot.limits = self._limits(hw)
        self.joints = hw.joints

    def _limits(self, hw: HardwareMap) -> SafetyLimits:
        c = self.cfg
        lims = tuple(
            JointLimits(j.joint, (-math.inf, math.inf),
                        (c.revolute_speed if j.kind == "revolute" else 1.5 * c.end_stop_speed),
                        j.max_current_a * c.current_fraction, j.current_unit_a)
            for j in hw.actuated)
        return SafetyLimits(lims, hw.actuated)

    def _spec(self, k: int) -> JointCalibration:
        return self.spec.joint(self.joints[k].joint)

    def _imax(self, k: int) -> float:
        return self.joints[k].max_current_a * self.cfg.current_fraction

    # ---- the loop -----------------------------------------------------------------------------
    def _drive(self, duration: float, ctrl: Callable[[float, JointState], np.ndarray],
               until: Callable[[float, JointState], bool] | None = None) -> Log:
        """Run ``ctrl(t, state) -> currents`` at ``rate_hz`` for ``duration`` s (or until
        ``until(t, state)``); returns the samples."""
        dt = 1.0 / self.cfg.rate_hz
        t0 = self.clock.now()
        ts: list[float] = []
        qs: list[np.ndarray] = []
        dqs: list[np.ndarray] = []
        cur: list[np.ndarray] = []
        k = 0
        while True:
            s = self.robot.read_state()
            t = self.clock.now() - t0
            self._check_travel(s.q)
            if t >= duration or (until is not None and until(t, s)):
                break
            sent = self.robot.write_currents(ctrl(t, s))
            ts.append(t)
            qs.append(s.q.copy())
            dqs.append(s.dq.copy())
            cur.append(np.asarray(sent, dtype=float).copy())
            # Next tick; ticks already missed are skipped, not sent in a burst.
            k = max(k + 1, int((self.clock.now() - t0) / dt) + 1)
            self.clock.sleep(t0 + k * dt - self.clock.now())
        n, m = len(self.joints), len(self.act)
        return Log(np.array(ts), np.array(qs).reshape(-1, n), np.array(dqs).reshape(-1, n),
                   np.array(cur).reshape(-1, m))

    def _check_travel(self, q: np.ndarray) -> None:
        assert self._start_q is not None
        for k in self.act:
            j = self.joints[k]
            limit = self.cfg.max_travel_rad if j.kind == "revolute" else self.cfg.max_travel_m
            if abs(q[k] - self._start_q[k]) > limit:
                raise CalibrationError(
                    f"joint {j.joint!r} travelled {q[k] - self._start_q[k]:+.3g} from where "
                    f"calibration started, beyond the {limit:g} allowed; torque is off. Check that "
                    "it is not slipping or unloaded and that nothing else drives it", j.joint)

    def _pd(self, k: int, target: float, q: float, dq: float) -> float:
        """A PD current toward ``target`` on actuated joint k (gains in joint effort units:
        tau = kp (target - q) - kd dq)."""
        j = self.joints[k]
        kp, kd = (6.0, 0.3) if j.kind == "revolute" else (150.0, 30.0)
        tau = kp * (target - q) - kd * dq
        return float(np.clip(j.effort_to_current(tau), -self._imax(k), self._imax(k)))

    def _currents(self, per_joint: dict[int, float]) -> np.ndarray:
        return np.array([per_joint.get(k, 0.0) for k in self.act])

    # ---- 1. moves as commanded ----------------------------------------------------------------
    def _check_moves(self) -> None:
        """Ramp each actuated joint's current +I then -I until it moves move_threshold; a joint
        that does not move, or moves against its current, aborts (torque off)."""
        c = self.cfg
        for k in self.act:
            j = self.joints[k]
            thr = c.move_threshold_rad if j.kind == "revolute" else c.move_threshold_m
            for sgn in (1.0, -1.0):
                self._settle()
                q0 = self.robot.read_state().q[k]
                imax = self._imax(k)
                dir_ = float(j.direction)  # current that pushes toward +q in this frame

                def ramp(t: float, s: JointState, k: int = k, sgn: float = sgn, d: float = dir_,
                         imax: float = imax) -> np.ndarray:
                    return self._currents({k: sgn * d * min(imax, c.ramp_a_per_s * t)})

                def moved(t: float, s: JointState, k: int = k, q0: float = q0, thr: float = thr) -> bool:
                    return bool(abs(s.q[k] - q0) >= thr)

                full = imax / c.ramp_a_per_s
                self._drive(full + 0.5, ramp, moved)
                q1 = self.robot.read_state().q[k]
                dq_ = q1 - q0
                if abs(dq_) < thr:
                    unit = "rad" if j.kind == "revolute" else "m"
                    raise CalibrationError(
                        f"joint {j.joint!r} (ID {j.motor_id}) did not move under "
                        f"{sgn * imax:+.3g} A (it moved {dq_:+.4f} {unit}, less than {thr:g}): it "
                        "is blocked, disconnected from its link, or its motor has no power; "
                        "torque is off. Free it and check its cable and supply", j.joint)
                if dq_ * sgn < 0:
                    raise CalibrationError(
                        f"joint {j.joint!r} (ID {j.motor_id}) moved the wrong way: a current "
                        f"pushing it toward {'+' if sgn > 0 else '-'} moved it {dq_:+.4f}; torque "
                        "is off. Its motor and encoder disagree (a miswired or remounted "
                        "servo, or a stale calibration): re-run `robot-meta calibrate`", j.joint)
                # Release: back to zero current and let it come to rest.
                self._settle()

    def _settle(self, timeout_s: float = 3.0) -> None:
        """Zero current until every joint is still (|dq| below a tenth of the move threshold
        per second) for 0.2 s, or ``timeout_s``."""
        c = self.cfg
        still = {"s": 0.0}

        def done(t: float, s: JointState) -> bool:
            ok = all(abs(s.dq[k]) < (0.1 if j.kind == "revolute" else 0.02)
                     for k, j in enumerate(self.joints) if j.actuated)
            still["s"] = still["s"] + 1.0 / c.rate_hz if ok else 0.0
            return still["s"] >= 0.2

        self._drive(timeout_s, lambda t, s: self._currents({}), done)

    # ---- 2. zeros -------------------------------------------------------------------------------
    def _hang_zeros(self, ks: list[int]) -> dict[str, float]:
        """Zeros of hanging actuated joints (module docstring, step 2)."""
        c = self.cfg
        base = self._drive(0.5, lambda t, s: self._currents({}))
        centre = base.q[base.tail(0.3), :].mean(axis=0)
        for _ in range(c.hang_rounds):
            centre = self._release_both_ways(ks, centre)
        return {self.joints[k].joint: float(centre[k]) for k in ks}

    def _release_both_ways(self, ks: list[int], centre: np.ndarray) -> np.ndarray:
        """Hold at centre +- a, release, average: the mean of the two resting points. The
        closer ``centre`` is to the true zero, the closer the two releases are to mirror images
        (the first round starts from wherever friction held the links)."""
        c = self.cfg
        ends = []
        for sgn in (1.0, -1.0):
            target = {k: centre[k] + sgn * c.hang_excursion for k in ks}

            def pd(t: float, s: JointState, target: dict[int, float] = target) -> np.ndarray:
                return self._currents({k: self._pd(k, target[k], s.q[k], s.dq[k]) for k in ks})

            hold = self._drive(c.hold_s, pd)
            i_hold: np.ndarray = hold.current[hold.tail(0.2), :].mean(axis=0)

            def release(t: float, s: JointState, i_hold: np.ndarray = i_hold) -> np.ndarray:
                # Quasi-static release: I(t) = I_hold (1 - t / T).
                return i_hold * max(0.0, 1.0 - t / c.release_s)

            self._drive(c.release_s, release)
            rest = self._drive(c.rest_s, lambda t, s: self._currents({}))
            ends.append(rest.q[rest.tail(c.average_s), :].mean(axis=0))
        z: np.ndarray = 0.5 * (ends[0] + ends[1])
        return z

    def _end_stops(self, k: int) -> tuple[float, float, float, list[Log]]:
        """Drive joint k to both end stops: (centre, lo, hi in the raw frame, logs)."""
        c = self.cfg
        j = self.joints[k]
        kv = 60.0 if j.kind == "prismatic" else 1.0  # effort per unit speed error
        found: list[float] = []
        logs: list[Log] = []
        for sgn in (1.0, -1.0):
            v_goal = sgn * c.end_stop_speed
            state = {"slow": 0.0}

            def vel(t: float, s: JointState, k: int = k, v_goal: float = v_goal) -> np.ndarray:
                tau = kv * (v_goal - s.dq[k])
                return self._currents({k: float(np.clip(j.effort_to_current(tau),
                                                        -self._imax(k), self._imax(k)))})

            def stalled(t: float, s: JointState, k: int = k, state: dict[str, float] = state) -> bool:
                # At the stop: pushing, and slower than a tenth of the goal for 0.3 s.
                if t > 0.5 and abs(s.dq[k]) < 0.1 * c.end_stop_speed:
                    state["slow"] += 1.0 / c.rate_hz
                else:
                    state["slow"] = 0.0
                return state["slow"] >= 0.3

            log = self._drive(c.stop_timeout_s, vel, stalled)
            logs.append(log)
            if state["slow"] < 0.3:
                raise CalibrationError(
                    f"joint {j.joint!r} found no end stop within {c.stop_timeout_s:g} s toward "
                    f"{'+' if sgn > 0 else '-'}; torque is off. Check that the rail has stops "
                    "and that the drive does not slip", j.joint)
            found.append(float(log.q[log.tail(0.15), k].mean()))
        hi, lo = found
        if hi - lo < 2 * c.stop_margin:
            raise CalibrationError(f"joint {j.joint!r}: the end stops are only {hi - lo:.3g} "
                                   "apart; the joint is blocked", j.joint)
        centre = 0.5 * (hi + lo)
        self.status(f"{j.joint!r}: end stops at {lo:+.4f} and {hi:+.4f} (raw), centre {centre:+.4f}")
        return centre, lo + c.stop_margin, hi - c.stop_margin, logs

    def _passive_zeros(self, ks: list[int], zero: dict[str, float]) -> dict[str, float]:
        """Zeros of passive hanging joints: hold the actuated joints at their zero (or where
        they are) and fit the passive joints' decaying swing."""
        here = self.robot.read_state().q
        target = {k: zero.get(self.joints[k].joint, float(here[k])) for k in self.act}

        def hold(t: float, s: JointState) -> np.ndarray:
            return self._currents({k: self._pd(k, target[k], s.q[k], s.dq[k]) for k in self.act})

        def there(t: float, s: JointState) -> bool:
            return all(abs(s.q[k] - target[k]) < 0.01 and abs(s.dq[k]) < 0.02 for k in self.act)

        self._drive(8.0, hold, there)  # get there first: the swing is fitted with them still
        log = self._drive(self.cfg.pole_fit_s, hold)
        # The fit takes longer than the bus watchdog allows without a command: torque off
        # while it runs, back on after.
        self.robot.disable()
        fits = {k: fit_decaying_swing(log.t, log.q[:, k]) for k in ks}
        self.robot.enable()
        out = {}
        for k in ks:
            j = self.joints[k]
            c, amp = fits[k]
            if not math.isfinite(c):
                raise CalibrationError(f"joint {j.joint!r}: its hanging swing could not be fitted",
                                       j.joint)
            self.status(f"{j.joint!r}: hangs at {c:+.4f} (raw), swing amplitude {amp:.3f}")
            out[j.joint] = c
        return out

    # ---- 3. directions --------------------------------------------------------------------------
    def _directions(self, zero: dict[str, float], stops_log: list[Log]) -> dict[str, int]:
        """{joint: +1 as designed, -1 reversed}, relative to the reference joint."""
        sign: dict[str, int] = {}
        index = {j.joint: k for k, j in enumerate(self.joints)}
        pending = list(self.spec.joints)
        while pending:
            progressed = False
            for js in list(pending):
                if js.direction == "reference":
                    sign[js.joint] = 1
                elif js.relative_to in sign:
                    k, r = index[js.joint], index[js.relative_to]
                    if js.direction == "hangs_with":
                        slope = self._hang_slope(k, r, zero)
                    else:
                        slope = self._swing_slope(k, r, stops_log, zero.get(js.joint))
                    s = int(np.sign(slope)) * js.expected_sign * sign[js.relative_to]
                    self.status(f"{js.joint!r} follows {js.relative_to!r} with slope "
                                f"{slope:+.3f}: {'as designed' if s > 0 else 'reversed'}")
                    sign[js.joint] = s
                else:
                    continue
                pending.remove(js)
                progressed = True
            if not progressed:
                raise ValueError(f"calibration spec of {self.spec.robot!r}: a relative_to chain "
                                 "does not reach the reference joint")
        return sign

    def _hang_slope(self, k: int, r: int, zero: dict[str, float]) -> float:
        """Hold the reference r at its zero +- b, joint k limp: k = dq_k / dq_r."""
        c = self.cfg
        zr = zero[self.joints[r].joint]
        ends = []
        for sgn in (1.0, -1.0):
            tgt = zr + sgn * c.relative_excursion

            def hold(t: float, s: JointState, tgt: float = tgt) -> np.ndarray:
                return self._currents({r: self._pd(r, tgt, s.q[r], s.dq[r])})

            log = self._drive(c.relative_settle_s, hold)
            ends.append(log.q[log.tail(c.average_s), :].mean(axis=0))
        # Back to the zero, then a slow release, so that nothing is left swinging.
        log = self._drive(c.hold_s, lambda t, s: self._currents(
            {r: self._pd(r, zr, s.q[r], s.dq[r])}))
        i_hold: np.ndarray = log.current[log.tail(0.2), :].mean(axis=0)

        def release(t: float, s: JointState) -> np.ndarray:
            return i_hold * max(0.0, 1.0 - 2 * t / c.release_s)

        self._drive(0.5 * c.release_s, release)
        dr = ends[0][r] - ends[1][r]
        slope = float((ends[0][k] - ends[1][k]) / dr) if abs(dr) > 1e-6 else 0.0
        j = self.joints[k]
        if abs(dr) < 0.5 * c.relative_excursion or not c.min_slope <= abs(slope) <= 1 / c.min_slope:
            raise CalibrationError(
                f"joint {j.joint!r} does not hang as expected while {self.joints[r].joint!r} "
                f"moves {dr:+.3f}: it moved {ends[0][k] - ends[1][k]:+.3f} (slope {slope:+.3f}, "
                f"expected about +-1); torque is off. It may be blocked or disconnected from "
                "its link", j.joint)
        return slope

    def _swing_slope(self, k: int, r: int, logs: list[Log], centre: float | None) -> float:
        """Regress the passive joint's velocity changes on the reference's (module docstring)."""
        j = self.joints[k]
        ys, xs, zs = [], [], []
        for g in logs:
            if len(g.t) < 3:
                continue
            c = float(np.median(g.q[:, k])) if centre is None else centre
            ys.append(np.diff(g.dq[:, k]))
            xs.append(np.diff(g.dq[:, r]))
            zs.append((g.q[:-1, k] - c) * np.diff(g.t))
        if not ys:
            raise CalibrationError(f"joint {j.joint!r}: no motion of {self.joints[r].joint!r} "
                                   "to measure its direction against", j.joint)
        y, x, z = np.concatenate(ys), np.concatenate(xs), np.concatenate(zs)
        a = np.stack([x, z], axis=1)
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        resid = y - a @ coef
        # Standard error of the slope: sqrt(s^2 (A^T A)^-1_00).
        s2 = float(resid @ resid) / max(1, len(y) - 2)
        cov = s2 * np.linalg.pinv(a.T @ a)
        se = math.sqrt(max(cov[0, 0], 0.0))
        slope = float(coef[0])
        if not abs(slope) > max(4.0 * se, 0.2):
            raise CalibrationError(
                f"joint {j.joint!r} does not respond to the motion of "
                f"{self.joints[r].joint!r} (coupling {slope:+.3f} +- {se:.3f}); torque is off. "
                "Its encoder may be disconnected or its link missing", j.joint)
        return slope

    def _shuttle(self, r: int) -> Log:
        """A short back-and-forth of joint r (velocity steps) for ``check``."""
        c = self.cfg
        j = self.joints[r]
        v = c.end_stop_speed
        here = float(self.robot.read_state().q[r])

        def ctrl(t: float, s: JointState) -> np.ndarray:
            if t < 0.6:
                goal = v
            elif t < 1.8:
                goal = -v
            elif t < 2.4:
                goal = v
            else:
                return self._currents({r: self._pd(r, here, s.q[r], s.dq[r])})
            tau = 60.0 * (goal - s.dq[r])
            return self._currents({r: float(np.clip(j.effort_to_current(tau), -self._imax(r),
                                                    self._imax(r)))})

        return self._drive(3.5, ctrl)

    # ---- 4. the file ----------------------------------------------------------------------------
    def _calibration(self, zero: dict[str, float], sign: dict[str, int],
                     ranges: dict[str, tuple[float, float]]) -> RobotCalibration:
        """Raw zeros, signs and ranges -> per-motor homing offset, drive mode and range."""
        motors = {}
        for j in self.hw.joints:
            js = self.spec.joint(j.joint)
            s = sign[j.joint]
            per_rad = j.ticks_per_rev / (2.0 * math.pi)
            # Raw ticks where the joint is at its rest pose, then where it is at 0:
            # T_rest = zero_ticks + d z / r * N/(2 pi); T_0 = T_rest - d s rest / r * N/(2 pi).
            t_rest = j.zero_ticks + j.direction * zero[j.joint] / j.transmission * per_rad
            t0 = t_rest - j.direction * s * js.rest / j.transmission * per_rad
            offset = j.direction * (t0 - j.zero_ticks) / per_rad  # rad at the shaft
            continuous = not any(math.isfinite(x) for x in j.position_limits)
            if continuous:  # a freely turning joint: the offset is defined modulo one turn
                offset = (offset + math.pi) % (2.0 * math.pi) - math.pi
                t0 = j.zero_ticks + j.direction * offset * per_rad
            homing = int(round(j.zero_ticks - t0))
            lo, hi = j.position_limits
            if j.joint in ranges:
                a, b = ranges[j.joint]
                # Calibrated q of a raw reading x: s (x - z) + rest.
                qa, qb = s * (a - zero[j.joint]) + js.rest, s * (b - zero[j.joint]) + js.rest
                lo, hi = min(qa, qb), max(qa, qb)
            if continuous:
                rmin, rmax = 0, j.ticks_per_rev - 1
            else:
                # Offset ticks of a calibrated q: zero_ticks + d s q / r * N/(2 pi).
                ta = j.zero_ticks + j.direction * s * lo / j.transmission * per_rad
                tb = j.zero_ticks + j.direction * s * hi / j.transmission * per_rad
                rmin, rmax = int(math.ceil(min(ta, tb))), int(math.floor(max(ta, tb)))
            motors[j.joint] = MotorCalibration(j.motor_id, 1 if s < 0 else 0, homing, rmin, rmax)
        return RobotCalibration(self.hw.robot, motors)


def fit_decaying_swing(t: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """Fit q(t) = c + exp(-sigma t) (a cos wt + b sin wt) by linear least squares in (c, a, b)
    over a grid of w in [1, 15] rad/s and sigma in [0, 1] /s; returns (c, amplitude)."""
    t = np.asarray(t, dtype=float) - float(t[0])
    q = np.asarray(q, dtype=float)
    if len(t) < 20 or np.ptp(q) == 0.0:
        return float(np.mean(q)) if len(q) else math.nan, 0.0
    best = (math.inf, math.nan, 0.0, 0.0, 0.0)

    def solve(w: float, sg: float) -> tuple[float, float, float]:
        e = np.exp(-sg * t)
        a = np.stack([np.ones_like(t), e * np.cos(w * t), e * np.sin(w * t)], axis=1)
        coef, *_ = np.linalg.lstsq(a, q, rcond=None)
        r = q - a @ coef
        return float(r @ r), float(coef[0]), float(math.hypot(coef[1], coef[2]))

    for w in np.linspace(1.0, 15.0, 141):
        for sg in (0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0):
            err, c, amp = solve(float(w), sg)
            if err < best[0]:
                best = (err, c, amp, float(w), sg)
    _, c, amp, w0, s0 = best
    for w in np.linspace(w0 - 0.1, w0 + 0.1, 41):  # refine
        for sg in np.linspace(max(0.0, s0 - 0.1), s0 + 0.1, 11):
            err, cc, aa = solve(float(w), float(sg))
            if err < best[0]:
                best = (err, cc, aa, float(w), float(sg))
    return best[1], best[2]

