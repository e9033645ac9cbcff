"""Safe excitation for system identification: ``robot-meta sysid`` without ``--from``.

Each excitation rollout drives the actuated joints in the policy's own control mode (a
normalized current a in [-1, 1], current = a * max current) with a PD law around a moving
reference, so that every command stays bounded and the joints stay near their start pose:

    a_j = clip(Kp_j (r_j(t) - q_j) - Kd_j qdot_j, -a_max, a_max)

and the safety layer clamps it again before it reaches a servo. The references are
band-limited:

* ``chirp`` on one joint j: r_j = q0_j + A_j sin(2 pi (f0 t + (f1 - f0) t^2 / (2 T))), a linear
  sweep f0 -> f1 (the other actuated joints hold their start);
* ``steps`` on every actuated joint: a random staircase of levels ~ U(-A_j, A_j), held for
  U(0.4, 1.0) s each, smoothed by a first-order filter of time constant 50 ms;
* ``multisine`` on every actuated joint: sum of 4 sines at f ~ U(f0, f1) with random phases,
  scaled to peak A_j (the held-out rollout).

Between rollouts a motor-driven reset (:class:`robot_meta.runtime.reset.ResetController`)
brings the actuated joints back to the start pose; the rollout starts from wherever the
passive joints are (their initial state is measured). Rollouts are saved atomically with a
journal (:class:`robot_meta.runtime.session_store.SessionStore`) and ``--resume`` runs only
the missing ones. The recorded arrays are those of adaptation sessions (``q``, ``dq``, ``t``,
``action``) so ``--from`` reads both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.hardware.errors import CorruptPacketError, ServoTimeoutError, TorqueLostError
from robot_meta.hardware.hardware_map import HardwareMap
from robot_meta.runtime.session_store import SessionError, SessionStore

if TYPE_CHECKING:
    from robot_meta.hardware.robot import Robot
    from robot_meta.sim.robots.robot_def import RobotDef

# Communication failures a fresh attempt can survive (not safety trips or servo alarms).
TRANSIENT = (ServoTimeoutError, CorruptPacketError, TorqueLostError)

KINDS = ("chirp", "steps", "multisine")


@dataclass
class ExcitationSpec:
    """One excitation rollout."""

    index: int
    kind: str  # chirp | steps | multisine
    joint: str  # the excited joint for a chirp, "" for all
    seconds: float
    seed: int
    heldout: bool = False


@dataclass
class ExcitationConfig:
    """Excitation amplitudes and gains, per robot (:func:`default_config`)."""

    amplitude: dict[str, float]  # reference amplitude A_j [rad or m] per actuated joint
    kp: dict[str, float]  # normalized action per unit position error
    kd: dict[str, float]  # normalized action per unit velocity
    a_max: float = 0.8  # |a| bound of the excitation (below the policy's 1)
    f0: float = 0.2  # Hz
    f1: float = 2.0  # Hz
    seconds: float = 6.0  # per rollout
    margin: float = 0.15  # abort (torque off) this close to a joint's position limit [rad or m]
    # the reset's gains (softer on the light arm links: stable under up to 3 steps of latency)
    reset_kp: dict[str, float] = field(default_factory=dict)
    reset_kd: dict[str, float] = field(default_factory=dict)


def default_config(robot: HardwareMap | RobotDef) -> ExcitationConfig:
    """Amplitudes well inside the joint ranges and gains that are stable at 50 Hz."""
    hw = robot if isinstance(robot, HardwareMap) else robot.hardware_map
    amp, kp, kd, rkp, rkd = {}, {}, {}, {}, {}
    for j in hw.actuated:
        lin = j.kind == "prismatic"
        amp[j.joint] = 0.25 if lin else 0.7
        kp[j.joint] = 3.0 if lin else 1.2
        kd[j.joint] = 0.6 if lin else 0.08
        rkp[j.joint] = 3.0 if lin else 0.3
        rkd[j.joint] = 0.6 if lin else 0.05
    return ExcitationConfig(amp, kp, kd, reset_kp=rkp, reset_kd=rkd)


def make_plan(actuated: list[str], cfg: ExcitationConfig, seed: int = 0) -> list[ExcitationSpec]:
    """A chirp per actuated joint, a staircase on all of them, and a held-out multisine."""
    out = [ExcitationSpec(i, "chirp", j, cfg.seconds, seed + i) for i, j in enumerate(actuated)]
    out.append(ExcitationSpec(len(out), "steps", "", cfg.seconds, seed + len(out)))
    if len(actuated) == 1:  # one actuator: a second staircase for more data
        out.append(ExcitationSpec(len(out), "steps", "", cfg.seconds, seed + len(out)))
    out.append(ExcitationSpec(len(out), "multisine", "", cfg.seconds, seed + len(out), heldout=True))
    return out


def reference(spec: ExcitationSpec, actuated: list[str], cfg: ExcitationConfig, dt: float
              ) -> np.ndarray:
    """The reference offsets r(t) - q0 (T, n_actuated) at t = k dt (module docstring)."""
    T = int(round(spec.seconds / dt))
    t = np.arange(T) * dt
    rng = np.random.default_rng(spec.seed)
    out = np.zeros((T, len(actuated)))
    for c, j in enumerate(actuated):
        A = cfg.amplitude[j]
        if spec.kind == "chirp":
            if j != spec.joint:
                continue
            # phase = 2 pi (f0 t + (f1 - f0) t^2 / (2 T)): instantaneous frequency f0 -> f1
            phase = 2 * math.pi * (cfg.f0 * t + (cfg.f1 - cfg.f0) * t**2 / (2 * spec.seconds))
            out[:, c] = A * np.sin(phase)
        elif spec.kind == "steps":
            level, k, x = 0.0, 0, 0.0
            alpha = 1.0 - math.exp(-dt / 0.05)  # first-order smoothing, tau = 50 ms
            while k < T:
                hold = int(rng.uniform(0.4, 1.0) / dt)
                level = float(rng.uniform(-A, A))
                for i in range(k, min(T, k + hold)):
                    x += alpha * (level - x)
                    out[i, c] = x
                k += hold
        elif spec.kind == "multisine":
            f = rng.uniform(cfg.f0, cfg.f1, 4)
            ph = rng.uniform(0, 2 * math.pi, 4)
            s = np.sin(2 * math.pi * f[None] * t[:, None] + ph[None]).sum(axis=1)
            s -= s[0]  # start at the start pose
            out[:, c] = A * s / max(float(np.max(np.abs(s))), 1e-9)
        else:
            raise ValueError(f"unknown excitation kind {spec.kind!r}; use one of {KINDS}")
    return out


def pd_action(cfg: ExcitationConfig, actuated: list[str], r: np.ndarray, q: np.ndarray,
              dq: np.ndarray) -> np.ndarray:
    """a = clip(Kp (r - q) - Kd qdot, -a_max, a_max) for the actuated joints."""
    kp = np.array([cfg.kp[j] for j in actuated])
    kd = np.array([cfg.kd[j] for j in actuated])
    return np.asarray(np.clip(kp * (r - q) - kd * dq, -cfg.a_max, cfg.a_max))


class ExcitationRunner:
    """Runs an excitation plan on a connected robot and saves each rollout atomically.

    Args:
        robot: a connected :class:`~robot_meta.hardware.Robot` in current mode.
        out: the session directory (created, or resumed with ``resume``).
        cfg: amplitudes and gains (default: :func:`default_config`).
        seed: seeds the references.
        wait: called once per control period to wait for the next one (default: a
            wall-clock :class:`~robot_meta.runtime.control_loop.ControlLoop`; a manual-clock
            mock bus passes its ``advance``).
        reset: called before each rollout to bring the actuated joints to ``q_start``
            (default: :class:`~robot_meta.runtime.reset.ResetController`).
        status: progress messages.
        clock: the robot's time [s] stamped on each reading (default ``time.perf_counter``;
            a manual-clock mock bus passes its emulated time).
    """

    def __init__(self, robot: Robot, out: str | Path, *, dt: float,
                 cfg: ExcitationConfig | None = None, seed: int = 0, resume: bool = False,
                 wait: Callable[[], None] | None = None,
                 reset: Callable[[np.ndarray], None] | None = None,
                 status: Callable[[str], None] | None = None,
                 q_start: np.ndarray | None = None,
                 clock: Callable[[], float] | None = None):
        self.robot = robot
        self.hw = robot.hw
        self.dt = dt
        self.actuated = [j.joint for j in self.hw.actuated]
        self.cfg = cfg or default_config(self.hw)
        self.q_start = (np.zeros(len(self.hw.joints)) if q_start is None
                        else np.asarray(q_start, dtype=float))
        self.wait = wait
        self.max_attempts = 5
        self.clock = clock or time.perf_counter
        self.reset = reset
        self.status = status or (lambda msg: None)
        meta = {"robot": self.hw.robot, "kind": "sysid-excitation", "seed": seed,
                "control_dt": dt, "config": asdict(self.cfg),
                "q_start": self.q_start.tolist()}
        if resume:
            self.store = SessionStore.open(out)
            m = self.store.meta
            if m.get("robot") != self.hw.robot or m.get("kind") != "sysid-excitation":
                raise SessionError(f"{out}: not a sysid excitation session of {self.hw.robot!r} "
                                   f"(robot {m.get('robot')!r}, kind {m.get('kind')!r})")
            self.cfg = ExcitationConfig(**m["config"])
            seed = int(m["seed"])
            self.q_start = np.asarray(m["q_start"], dtype=float)
        else:
            self.store = SessionStore.create(out, meta)
        self.plan = make_plan(self.actuated, self.cfg, seed)

    def _limits(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([j.position_limits[0] for j in self.hw.joints], dtype=float)
        hi = np.array([j.position_limits[1] for j in self.hw.joints], dtype=float)
        return lo, hi

    def _pd_reset(self, q_start: np.ndarray, timeout_s: float = 12.0, hold_s: float = 0.3,
                  pos_tol: float = 0.1, vel_tol: float = 0.05) -> None:
        """A reset on the injected clock: the excitation PD law toward q_start until the
        actuated joints stay within pos_tol and vel_tol for hold_s (ResetError after
        timeout_s)."""
        from robot_meta.runtime.reset import ResetError

        assert self.wait is not None
        robot = self.robot
        act = [k for k, j in enumerate(self.hw.joints) if j.actuated]
        if not robot.torque_on:
            robot.enable()
        held = 0.0
        gains = replace(self.cfg, kp=self.cfg.reset_kp or self.cfg.kp,
                        kd=self.cfg.reset_kd or self.cfg.kd)
        kp = np.array([gains.kp[j] for j in self.actuated])
        integ = np.zeros(len(act))
        lim = 0.5 * self.cfg.a_max  # |Ki integral| <= half the excitation's bound
        for _ in range(int(timeout_s / self.dt)):
            s = robot.read_state()
            err = q_start[act] - s.q[act]
            ok = bool(np.all(np.abs(err) < pos_tol) and np.all(np.abs(s.dq[act]) < vel_tol))
            held = held + self.dt if ok else 0.0
            if held >= hold_s:
                return
            # PD plus integral against gravity and friction: Ki = Kp / (1 s)
            integ = np.clip(integ + kp * err * self.dt, -lim, lim)
            a = pd_action(gains, self.actuated, q_start[act], s.q[act], s.dq[act]) + integ
            robot.write_action(np.clip(a, -self.cfg.a_max, self.cfg.a_max))
            self.wait()
        raise ResetError(f"reset to {q_start.tolist()} did not settle in {timeout_s:g} s")

    def run(self) -> dict[str, Any]:
        """Run every rollout not yet saved; returns {"rollouts", "robot_seconds"}."""
        done = {e["index"] for e in self.store.completed()}
        robot_s = 0.0
        for spec in self.plan:
            if spec.index in done:
                continue
            self.status(f"excitation {spec.index + 1}/{len(self.plan)}: {spec.kind} "
                        f"{spec.joint or 'all joints'}, {spec.seconds:g} s")
            t0 = time.perf_counter()
            for attempt in range(self.max_attempts):
                try:
                    arrays, summary = self._rollout(spec)
                    break
                except TRANSIENT as e:
                    # a lost or corrupted packet beyond the bus retries, or a watchdog expiry
                    # after a stall: torque is off; the rollout is discarded and run again
                    # from a reset (as in adaptation sessions)
                    self.store.log("rollout_failed", index=spec.index, attempt=attempt,
                                   error=str(e))
                    self.status(f"excitation {spec.index + 1} failed ({type(e).__name__}); "
                                f"retrying from a reset ({attempt + 1}/{self.max_attempts})")
                    if attempt + 1 == self.max_attempts:
                        raise
                    if self.wait is None:
                        time.sleep(1.0)
            robot_s += float(summary["seconds"])
            self.store.save_rollout(spec.index, "heldout" if spec.heldout else "excite", arrays,
                                    summary | {"wall_s": time.perf_counter() - t0})
        total = sum(float(e.get("seconds", 0.0)) for e in self.store.completed())
        return {"rollouts": len(self.store.completed()), "robot_seconds": total,
                "robot_seconds_this_run": robot_s, "session": str(self.store.root)}

    def _rollout(self, spec: ExcitationSpec) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """One excitation rollout (reset, then the PD law on the reference); torque goes off
        at the end and on any error."""
        robot = self.robot
        act = [k for k, j in enumerate(self.hw.joints) if j.actuated]
        ref = reference(spec, self.actuated, self.cfg, self.dt)
        T = len(ref)
        nq = len(self.hw.joints)
        qs, dqs, ts = np.zeros((T + 1, nq)), np.zeros((T + 1, nq)), np.zeros(T + 1)
        sent = np.zeros((T, len(act)))
        lo, hi = self._limits()
        try:
            if self.reset is not None:
                self.reset(self.q_start)
            elif self.wait is not None:
                self._pd_reset(self.q_start)
            else:
                from robot_meta.runtime.reset import ResetController

                ResetController(robot, self.q_start, settle_passive=False).run()
            pre = np.asarray(robot.last_sent, dtype=float) / np.array(
                [j.max_current_a for j in self.hw.actuated])
            if not robot.torque_on:
                robot.enable()
            loop = None
            if self.wait is None:
                from robot_meta.runtime.control_loop import ControlLoop

                loop = ControlLoop(self.dt)
                loop.start()
            t_start = self.clock()
            q0 = None
            for k in range(T + 1):
                s = robot.read_state()
                qs[k], dqs[k], ts[k] = s.q, s.dq, self.clock() - t_start
                q0 = s.q[act].copy() if q0 is None else q0
                bad = (s.q < lo + self.cfg.margin) | (s.q > hi - self.cfg.margin)
                if np.any(bad):
                    j = self.hw.joints[int(np.flatnonzero(bad)[0])].joint
                    raise UserError(f"excitation stopped: joint {j!r} at {s.q[bad][0]:.3f} came "
                                    f"within {self.cfg.margin:g} of its limit; torque is off. "
                                    "Lower the excitation amplitude")
                if k == T:
                    break
                a = pd_action(self.cfg, self.actuated, q0 + ref[k], s.q[act], s.dq[act])
                sent[k] = robot.write_action(a)
                if loop is not None:
                    loop.wait()
                else:
                    assert self.wait is not None
                    self.wait()
        finally:
            if robot.torque_on:
                robot.disable()
        arrays = {"q": qs, "dq": dqs, "t": ts, "action": sent, "pre_action": pre,
                  "reference": ref}
        return arrays, {"kind_detail": spec.kind, "joint": spec.joint, "seconds": T * self.dt,
                        "steps": T, "heldout": spec.heldout}
