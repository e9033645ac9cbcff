"""System identification of a robot's family factors with ``mujoco.sysid``.

Given recorded trajectories (the actions sent and the joint readings at every control step),
:class:`SystemIdentifier` fits the factors of one task family (friction and damping per joint,
link and payload masses, payload offset, motor strength, supply voltage, actuation latency,
encoder bias: whatever the family randomizes) by replaying the recorded actions open loop in
the robot's MuJoCo model (with its servo physics, :func:`robot_meta.sim.servo_physics`) and
minimizing the prediction error. Nothing here is an optimizer of its own:

* each factor is a ``mujoco.sysid.Parameter`` whose modifier writes it into the ``MjSpec``
  (physics factors), bounded by the family's training range widened by ``widen`` on each side
  (and by the factor's physical bounds);
* ``mujoco.sysid.ModelSequences`` holds the spec, each window's initial state and its control
  and sensor series; ``build_residual_fn`` + ``optimize`` run box-bounded Levenberg-Marquardt
  with a finite-difference Jacobian (``mujoco.minimize``);
* the residual is r = w_s (y_measured - y_predicted) per sensor s (joint positions and
  velocities), with w_s = 1 / std(y_s) over the data (velocities times ``vel_weight``);
  the encoder bias b_j enters as ``SignalTransform.bias`` (y_pred_pos_j + b_j, the
  emulator's q_meas = q + b_j) and shifts the initial state (q0 = q0_meas - b_j);
* the actuation latency L [control steps] is a signal delay on the control: the command
  applied at time t is u(t - L dt_control), interpolated linearly on the physics grid so that
  L is continuous for the finite differences, and rounded for ``params.toml``;
* ``calculate_intervals`` gives 95 % half-widths h_i = t_{0.975, n-p} sqrt(s^2 [(J^T J)^-1]_ii)
  with s^2 = |r|^2 / (n - p) (widened for autocorrelated residuals); the reported
  half-width is the larger of that and a delete-one-recording jackknife's (``_jackknife``),
  which also sees how model error moves the estimate with the excitation. A factor is
  *identifiable* when the half-width is finite and narrower
  than ``max_rel_halfwidth`` of its search range and its estimate is not pinned at a bound;
  otherwise it is reported as unidentifiable and gets no value.

Sensor noise factors (``pos_noise``, ``vel_noise``) are not dynamics: they are reported as
unidentifiable with the residual RMS as an upper bound.

An unstable system (the cartpole balancing) drifts away from any open-loop replay within a
second, so recordings are cut into windows of ``segment_s`` seconds, each replayed from its
own measured initial state.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("MUJOCO_GL", "disable")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robot_meta.errors import UserError  # noqa: E402
from robot_meta.sim.randomize import (  # noqa: E402
    Distribution,
    FamilySpec,
    headline_family,
    load_family,
    nominal_params,
)
from robot_meta.sim.robots.robot_def import FactorDef, RobotDef, get_robot  # noqa: E402
from robot_meta.sim.servo_physics import DCMOTOR_VOLTAGE_PRM, apply_servo_physics  # noqa: E402

NOISE_KINDS = ("pos_noise", "vel_noise")
_FORCE_SPRING = 1e-6  # stiffness of the spring that stands in for a joint_force [per unit]


class SysidError(UserError):
    """Recorded data that cannot be identified from (wrong robot, truncated, too short)."""


def _sysid() -> Any:
    """``mujoco.sysid``, refusing a mujoco installed without the ``[sysid]`` extra (whose
    ``import mujoco.sysid`` succeeds but exposes nothing)."""
    import importlib

    sysid = importlib.import_module("mujoco.sysid")  # by name: keeps mypy out of its sources
    if not hasattr(sysid, "optimize"):
        raise UserError("mujoco.sysid is empty: install the extra, pip install 'mujoco[sysid]'")
    return sysid


@dataclass
class Recording:
    """One recorded trajectory of a robot.

    ``q``, ``dq``: (T + 1, nq) joint readings at control steps 0..T, in the robot's joint
    order (as the servos report them: with encoder bias and noise). ``action``: (T, nu)
    normalized actions sent at steps 0..T-1 (current = a * max current). ``pre_action``:
    the command applied before step 0 (what the latency pipeline still holds), default the
    first action.
    """

    q: np.ndarray
    dq: np.ndarray
    action: np.ndarray
    dt: float
    name: str = ""
    pre_action: np.ndarray | None = None
    t: np.ndarray | None = None  # (T + 1,) reading times [s], when the log has them

    def times(self) -> np.ndarray | None:
        """The reading times relative to the first, when they are usable: T + 1 finite,
        strictly increasing times whose median step is within 50 % of ``dt`` (a control loop
        that ran in robot time). None: the nominal grid k dt is used."""
        if self.t is None:
            return None
        t = np.asarray(self.t, dtype=float)
        if t.shape != (len(self.q),) or not np.all(np.isfinite(t)):
            return None
        d = np.diff(t)
        if not np.all(d > 0) or not 0.5 * self.dt <= float(np.median(d)) <= 1.5 * self.dt:
            return None
        return np.asarray(t - t[0])

    def check(self, robot: RobotDef) -> None:
        """Raise SysidError if the arrays do not fit the robot or each other."""
        nq, nu = len(robot.joints), len(robot.actuators)
        where = self.name or "recording"
        q, dq, a = (np.asarray(x) for x in (self.q, self.dq, self.action))
        if q.ndim != 2 or q.shape[1] != nq or dq.ndim != 2 or dq.shape[1] != nq:
            raise SysidError(f"{where}: joint readings of shape {q.shape} / {dq.shape}, but "
                             f"{robot.name} has {nq} joints ({', '.join(robot.joints)}); is "
                             "this a recording of another robot?")
        if len(dq) != len(q):
            raise SysidError(f"{where}: {len(q)} positions but {len(dq)} velocities; the log "
                             "is truncated")
        if a.ndim != 2 or a.shape[1] != nu:
            raise SysidError(f"{where}: actions of shape {a.shape}, but {robot.name} has {nu} "
                             "actuator(s); is this a recording of another robot?")
        if len(q) != len(a) + 1:
            raise SysidError(f"{where}: {len(q)} readings for {len(a)} actions; a complete "
                             "rollout has one reading more than actions (truncated log?)")
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(dq)) and np.all(np.isfinite(a))):
            raise SysidError(f"{where}: non-finite values in the recording")
        if abs(self.dt - robot.control_dt) > 1e-9:
            raise SysidError(f"{where}: recorded at dt = {self.dt:g} s, but {robot.name}'s "
                             f"model runs at control_dt = {robot.control_dt:g} s")


@dataclass
class SysidConfig:
    """How to identify."""

    widen: float = 0.5  # search range: family range widened by this fraction on each side
    segment_s: float = 0.0  # fit window [s]; 0: auto, 2 s, or 0.6 s for an unstable recording
    unstable_segment_s: float = 0.6  # auto window of a recording near an unstable equilibrium
    max_iters: int = 25
    vel_weight: float = 0.3  # weight of velocity residuals relative to positions
    max_rel_halfwidth: float = 0.25  # identifiable: 95 % half-width < this x search range
    fd_eps: float = 1e-6  # finite-difference step (relative to max(1, |x|))
    nthread: int = 2
    heldout_s: float = 2.0  # open-loop horizon of the held-out prediction error
    use_times: bool = False  # replay on the recorded reading times instead of the k dt grid
    screen_samples: int = 8  # random starting candidates screened by cost (plus the latency grid)
    min_rel_singular: float = 0.02  # weaker directions of the range-scaled Jacobian: unidentifiable
    seed: int = 0


@dataclass
class FactorEstimate:
    """One factor's identification."""

    name: str
    unit: str
    nominal: float
    value: float | None  # None when unidentifiable
    estimate: float  # the optimizer's value (reported even when unidentifiable)
    half_width: float  # 95 % half-width (inf: not determined by the data)
    low: float  # search range
    high: float
    identifiable: bool
    reason: str = ""
    integer: bool = False  # an integer factor (the latency): its interval is over integers

    def interval(self) -> tuple[float, float]:
        """The 95 % interval [x - h, x + h]; for an integer factor, the integers whose
        rounding cell [n - 1/2, n + 1/2) meets it (at least round(x))."""
        lo, hi = self.estimate - self.half_width, self.estimate + self.half_width
        if self.integer and math.isfinite(self.half_width):
            n = round(self.estimate)
            return (float(min(n, math.floor(lo + 0.5))), float(max(n, math.ceil(hi - 0.5))))
        return (lo, hi)


@dataclass
class SysidResult:
    """What :meth:`SystemIdentifier.fit` found."""

    robot: str
    family: str
    estimates: dict[str, FactorEstimate]
    cost_initial: float
    cost_final: float
    iterations: int
    fit_seconds: float
    data_seconds: float
    windows: int
    optimizer_log: str = ""
    heldout: dict[str, Any] = field(default_factory=dict)

    def identified(self) -> dict[str, float]:
        """{factor: value} of the identifiable factors."""
        return {k: e.value for k, e in self.estimates.items() if e.value is not None}

    def params_vector(self, robot: RobotDef) -> np.ndarray:
        """(F,) nominal values with the identified ones in place (latency rounded)."""
        p = nominal_params(robot)
        for k, v in self.identified().items():
            f = robot.factor(k)
            p[robot.factor_names.index(k)] = round(v) if f.integer else v
        return p

    def as_dict(self) -> dict[str, Any]:
        return {
            "robot": self.robot, "family": self.family,
            "factors": {k: {"value": e.value,
                            "estimate": e.estimate if math.isfinite(e.estimate) else None,
                            "interval95": list(e.interval()) if math.isfinite(e.half_width)
                            else None, "half_width": e.half_width if math.isfinite(e.half_width)
                            else None, "identifiable": e.identifiable, "reason": e.reason,
                            "nominal": e.nominal, "unit": e.unit, "search_range": [e.low, e.high]}
                        for k, e in self.estimates.items()},
            "cost_initial": self.cost_initial, "cost_final": self.cost_final,
            "iterations": self.iterations, "fit_seconds": self.fit_seconds,
            "data_seconds": self.data_seconds, "windows": self.windows, "heldout": self.heldout,
        }


@dataclass
class _Window:
    """A piece of a recording replayed from its own initial state."""

    name: str
    q: np.ndarray  # (n + 1, nq) readings
    dq: np.ndarray
    action: np.ndarray  # (n, nu)
    history: np.ndarray  # (H, nu) the commands before the window, oldest first
    t: np.ndarray | None = None  # (n + 1,) reading times from the window's start


class SystemIdentifier:
    """Fits a robot's family factors to recorded trajectories with ``mujoco.sysid``.

    Args:
        robot: a bundled robot name or RobotDef.
        family: the family whose factors are fitted (name, path or spec; default: the
            robot's headline family). Search ranges are its training ranges, widened.
        config: see :class:`SysidConfig`.
    """

    def __init__(self, robot: str | RobotDef, family: str | FamilySpec | None = None,
                 config: SysidConfig | None = None):
        self.sysid = _sysid()
        self.robot = rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
        self.family = load_family(rdef, family or headline_family(rdef))
        self.cfg = config or SysidConfig()
        self.dt = rdef.control_dt
        self.nsub = rdef.substeps
        self.spec = self._make_spec()
        self.model0 = self.spec.compile()
        m = self.model0
        self._qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in rdef.joints])
        self._vadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in rdef.joints])
        self.fitted: list[FactorDef] = []
        self.noise: list[FactorDef] = []
        self.ranges: dict[str, tuple[float, float]] = {}
        for name, dist in self.family.train.items():
            f = rdef.factor(name)
            if f.kind in NOISE_KINDS:
                self.noise.append(f)
                continue
            self.fitted.append(f)
            self.ranges[name] = self._search_range(f, dist)
        if not self.fitted:
            raise UserError(f"family {self.family.name!r} of {rdef.name} randomizes no factor "
                            "that sysid can fit")
        self.params = self._parameters()
        self._history_len = self._max_delay_steps() + 2
        self._histories: dict[int, np.ndarray] = {}
        self._models: dict[bytes, mujoco.MjModel] = {}

    # ---- model and parameters ------------------------------------------------------------
    def _make_spec(self) -> mujoco.MjSpec:
        """The robot's spec with its servo physics and a position and velocity sensor per
        joint (``<joint>_pos``, ``<joint>_vel``, in joint order)."""
        spec = mujoco.MjSpec.from_file(str(self.robot.model_path))
        apply_servo_physics(spec, self.robot)
        for kind, suffix in ((mujoco.mjtSensor.mjSENS_JOINTPOS, "pos"),
                             (mujoco.mjtSensor.mjSENS_JOINTVEL, "vel")):
            for j in self.robot.joints:
                spec.add_sensor(name=f"{j}_{suffix}", type=kind,
                                objtype=mujoco.mjtObj.mjOBJ_JOINT, objname=j)
        return spec

    def _search_range(self, f: FactorDef, dist: Distribution) -> tuple[float, float]:
        """The family range widened by ``widen`` of its width on each side, within the
        factor's physical bounds (a fixed value gets +-widen of its magnitude)."""
        lo, hi = dist.low, dist.high
        w = hi - lo if hi > lo else max(abs(lo), 1.0)
        lo, hi = lo - self.cfg.widen * w, hi + self.cfg.widen * w
        if f.kind == "latency_steps":
            lo, hi = lo - 0.5, hi + 0.5  # the rounding cell of the integer ends
        return max(lo, f.bounds[0]), min(hi, f.bounds[1])

    def _max_delay_steps(self) -> int:
        for f in self.fitted:
            if f.kind == "latency_steps":
                return int(math.ceil(self.ranges[f.name][1]))
        return 0

    def _modifier(self, f: FactorDef) -> Callable[[mujoco.MjSpec, Any], None] | None:
        """The spec writer of a physics factor x (None for latency and bias)."""
        spec, rdef = self.spec, self.robot
        if f.kind == "dof_damping":
            def damping(s: mujoco.MjSpec, p: Any) -> None:
                j = s.joint(f.target)
                d = np.array(j.damping, dtype=float)  # (linear, higher-order terms)
                d[0] = float(p.value[0])
                j.damping = d
            return damping
        if f.kind == "dof_frictionloss":
            return lambda s, p: setattr(s.joint(f.target), "frictionloss", float(p.value[0]))
        if f.kind == "mass_scale":
            # every geom of the body: mass = m0 x (its inertia follows the mass)
            m0 = [float(g.mass) for g in spec.body(f.target).geoms]

            def scale(s: mujoco.MjSpec, p: Any) -> None:
                for g, m in zip(s.body(f.target).geoms, m0, strict=True):
                    g.mass = m * float(p.value[0])
            return scale
        if f.kind == "payload_mass":
            return lambda s, p: setattr(s.body(f.target), "mass", float(p.value[0]))
        if f.kind == "payload_offset":
            ipos0 = np.array(spec.body(f.target).ipos, dtype=float)
            axis = np.asarray(rdef.payload_axis, dtype=float)
            # payload COM = p0 + x axis
            return lambda s, p: setattr(s.body(f.target), "ipos", ipos0 + float(p.value[0]) * axis)
        if f.kind == "motor_strength":
            act = rdef.actuators[rdef.actuated_joints.index(f.target)]
            g0 = float(spec.actuator(act).gear[0])

            def strength(s: mujoco.MjSpec, p: Any) -> None:
                a = s.actuator(act)
                gear = np.array(a.gear, dtype=float)
                gear[0] = g0 * float(p.value[0])  # gear = g0 x (a <dcmotor>: K_t x)
                a.gear = gear
            return strength
        if f.kind == "joint_force":
            # qfrc_applied is data, which a rollout does not replay: the constant force is a
            # weak spring anchored far away, tau = -k (q - q_ref) = x - k q with q_ref = x / k,
            # and k = 1e-6 leaves |k q| below 1e-5 of a unit over any joint's range.
            k = _FORCE_SPRING

            def force(s: mujoco.MjSpec, p: Any) -> None:
                j = s.joint(f.target)
                stiffness = np.array(j.stiffness, dtype=float)
                stiffness[0] = k
                j.stiffness = stiffness
                j.springref = float(p.value[0]) / k
            return force
        if f.kind == "supply_voltage":
            names = [a for a in rdef.actuators
                     if spec.actuator(a).gaintype == mujoco.mjtGain.mjGAIN_DCMOTOR]

            def volts(s: mujoco.MjSpec, p: Any) -> None:
                for n in names:
                    a = s.actuator(n)
                    prm = np.array(a.gainprm, dtype=float)
                    prm[DCMOTOR_VOLTAGE_PRM] = float(p.value[0])
                    a.gainprm = prm
            return volts
        return None

    def _parameters(self) -> Any:
        """The ``ParameterDict``: one Parameter per fitted factor, starting at nominal (moved
        inside the search range)."""
        sysid = self.sysid
        pd = sysid.ParameterDict()
        for f in self.fitted:
            lo, hi = self.ranges[f.name]
            x0 = min(max(f.nominal, lo + 0.05 * (hi - lo)), hi - 0.05 * (hi - lo))
            pd.add(sysid.Parameter(f.name, nominal=x0, min_value=lo, max_value=hi,
                                   modifier=self._modifier(f)))
        return pd

    def _build_model(self, params: Any, spec: mujoco.MjSpec) -> mujoco.MjModel:
        """Compile spec with params (cached by parameter vector: every window of one
        residual evaluation shares the model)."""
        key = params.as_vector().tobytes()
        model = self._models.get(key)
        if model is None:
            if len(self._models) > 256:
                self._models.clear()
            model = self.sysid.apply_param_modifiers(params, spec)
            self._models[key] = model
        return model

    def _transform(self, weights: Mapping[str, float]) -> Any:
        """``SignalTransform``: the encoder biases on the predicted positions, the weights."""
        t = self.sysid.SignalTransform(normalize=False)
        for f in self.fitted:
            if f.kind == "obs_bias":
                t.bias(f"{f.target}_pos", self.params[f.name], target="predicted")
        t.set_sensor_weights(dict(weights))
        return t

    def _rollout(self, *, models: Sequence[mujoco.MjModel], datas: Sequence[mujoco.MjData],
                 control_signal: Sequence[Any], initial_states: Sequence[np.ndarray],
                 param_dicts: Sequence[Any], rollout_signal_mapping: Any,
                 rollout_state_mapping: Any, ctrl_mapping: Any) -> Any:
        """``sysid_rollout`` with each column's latency and encoder bias applied:
        q0 = q0_meas - b, and the control u(t - L dt) on the physics grid, the commands
        before the window taken from its history."""
        sysid = self.sysid
        n_fd = len(param_dicts)
        per = len(models) // n_fd
        controls, states = [], []
        for i in range(len(models)):
            p = param_dicts[i // per]
            ctrl = control_signal[i]
            x0 = np.array(initial_states[i], dtype=float)
            delay = 0.0
            for f in self.fitted:
                v = float(p[f.name].value[0])
                if f.kind == "obs_bias":
                    x0[1 + self._qadr[self.robot.joints.index(f.target)]] -= v
                elif f.kind == "latency_steps":
                    delay = v * self.nsub  # in physics steps
            data = ctrl.data
            if delay > 0.0:
                hist = np.repeat(self._histories[id(ctrl)], self.nsub, axis=0)
                full = np.concatenate([hist, data], axis=0)
                grid = np.arange(len(full), dtype=float) - len(hist)
                src = np.arange(len(data), dtype=float) - delay  # u_applied[i] = u(i - delay)
                data = np.stack([np.interp(src, grid, full[:, c]) for c in range(full.shape[1])],
                                axis=1)
            controls.append(sysid.TimeSeries(ctrl.times, data, ctrl.signal_mapping))
            states.append(x0)
        trajs = sysid.sysid_rollout(models, datas, controls, states, rollout_signal_mapping,
                                    rollout_state_mapping, ctrl_mapping)
        # mj_step evaluates the sensors before it integrates, so rollout's sensordata row i is
        # the state at the start of step i while it is stamped with the time after it: the
        # joint sensors would lag one physics step (a quarter of a control step, which the
        # latency would absorb). Read them from the state rows instead: y(t_i) = (q, qdot)(t_i).
        cols = np.concatenate([1 + self._qadr, 1 + self.model0.nq + self._vadr])
        return [t.replace(sensordata=sysid.TimeSeries(t.state.times, t.state.data[:, cols],
                                                      t.sensordata.signal_mapping))
                for t in trajs]

    # ---- data --------------------------------------------------------------------------------
    def segment_for(self, rec: Recording) -> float:
        """The fit window of a recording: ``segment_s`` when set; else 2 s, or
        ``unstable_segment_s`` when a passive revolute joint (the cartpole's pole) rises above
        the horizontal, near its unstable upright equilibrium, where an open-loop replay
        drifts away within a second."""
        if self.cfg.segment_s > 0:
            return self.cfg.segment_s
        hw = self.robot.hardware_map
        for k, j in enumerate(self.robot.joints):
            hj = hw.joint(j)
            if not hj.actuated and hj.kind == "revolute":
                # angle from hanging (pi): |wrap(q - pi)| > pi / 2 is above the horizontal
                d = np.abs((np.asarray(rec.q)[:, k] - math.pi + math.pi) % (2 * math.pi) - math.pi)
                if np.any(d > math.pi / 2):
                    return self.cfg.unstable_segment_s
        return 2.0

    def windows(self, recordings: Sequence[Recording], seconds: float | None) -> list[_Window]:
        """Cut recordings into windows of ``seconds`` (None: :meth:`segment_for` each); the
        tail shorter than half a window is dropped."""
        out = []
        for r in recordings:
            r.check(self.robot)
            n = max(2, int(round((seconds or self.segment_for(r)) / self.dt)))
            a = np.asarray(r.action, dtype=float)
            pre = np.asarray(r.pre_action if r.pre_action is not None else a[0], dtype=float)
            padded = np.concatenate([np.repeat(pre[None], self._history_len, axis=0), a])
            T = len(a)
            times = r.times() if self.cfg.use_times else None
            for k0 in range(0, T, n):
                k1 = min(k0 + n, T)
                if k1 - k0 < max(2, n // 2):
                    break
                out.append(_Window(f"{r.name}[{k0}:{k1}]", np.asarray(r.q[k0:k1 + 1], float),
                                   np.asarray(r.dq[k0:k1 + 1], float), a[k0:k1],
                                   padded[k0:k0 + self._history_len],
                                   None if times is None else times[k0:k1 + 1] - times[k0]))
        return out

    def _sequences(self, windows: Sequence[_Window], name: str) -> Any:
        """``ModelSequences`` of the windows: the initial state from the window's first
        reading, the actions held for ``substeps`` physics steps, the sensors at control
        steps. With recorded reading times t_k (a wall-clock control loop that jittered), the
        action a_k is held on the physics grid from t_k (when it was written, right after
        reading k) to t_{k+1}, and the sensors are compared at t_k."""
        sysid, m = self.sysid, self.model0
        dtp = self.robot.physics_dt
        inits, ctrls, sens = [], [], []
        for w in windows:
            qpos, qvel = np.zeros(m.nq), np.zeros(m.nv)
            qpos[self._qadr] = w.q[0]
            qvel[self._vadr] = w.dq[0]
            inits.append(sysid.create_initial_state(m, qpos, qvel))
            n = len(w.action)
            if w.t is None:
                u = np.repeat(w.action, self.nsub, axis=0)
                ty = np.arange(n + 1) * self.dt
            else:
                grid = np.arange(int(math.ceil(w.t[-1] / dtp - 1e-9))) * dtp
                k = np.clip(np.searchsorted(w.t[:-1], grid + 1e-9, side="right") - 1, 0, n - 1)
                u = w.action[k]  # a_k on [t_k, t_{k+1})
                ty = w.t
            u = np.concatenate([u, u[-1:]])  # the last row is dropped by the rollout
            ctrl = sysid.TimeSeries(np.arange(len(u)) * dtp, u)
            self._histories[id(ctrl)] = w.history
            ctrls.append(ctrl)
            y = np.concatenate([w.q, w.dq], axis=1)
            sens.append(sysid.TimeSeries.from_names(ty, y, m))
        return sysid.ModelSequences(name, self.spec, [w.name for w in windows], inits, ctrls,
                                    sens)

    def _weights(self, windows: Sequence[_Window]) -> dict[str, float]:
        """w = 1 / std of each measured signal (velocities x vel_weight)."""
        q = np.concatenate([w.q for w in windows])
        dq = np.concatenate([w.dq for w in windows])
        out = {}
        for k, j in enumerate(self.robot.joints):
            out[f"{j}_pos"] = 1.0 / max(float(np.std(q[:, k])), 1e-3)
            out[f"{j}_vel"] = self.cfg.vel_weight / max(float(np.std(dq[:, k])), 1e-2)
        return out

    def residual_fn(self, windows: Sequence[_Window], weights: Mapping[str, float],
                    name: str = "fit") -> tuple[Any, Any]:
        """(residual function, ModelSequences) of windows, for ``mujoco.sysid.optimize``."""
        seqs = self._sequences(windows, name)
        fn = self.sysid.build_residual_fn(
            models_sequences=[seqs], build_model=self._build_model,
            modify_residual=self._transform(weights).apply, custom_rollout=self._rollout,
            n_threads=self.cfg.nthread, resample_true=False)
        return fn, seqs

    # ---- fit ---------------------------------------------------------------------------------
    def fit(self, recordings: Sequence[Recording], heldout: Sequence[Recording] = ()
            ) -> tuple[SysidResult, dict[str, Any]]:
        """Identify the family factors from ``recordings``; with ``heldout`` recordings also
        measure the open-loop prediction error nominal vs identified. Returns the result and
        the sysid objects for the report (``initial``, ``opt``, ``residual_fn``, ``sequences``,
        ``opt_result``)."""
        if not recordings:
            raise SysidError("no recordings to identify from")
        wins = self.windows(recordings, None)
        if not wins:
            raise SysidError("the recordings are shorter than half a fit window "
                             f"({self.segment_for(recordings[0]):g} s); record longer rollouts")
        self.weights = self._weights(wins)
        fn, seqs = self.residual_fn(wins, self.weights)
        initial = self.params.copy()
        t0 = time.perf_counter()
        r0 = np.concatenate(fn(initial.as_vector(), initial)[0])
        start = self._screen_starts(fn, initial)
        opt, res, r_star, half, log = self._solve(fn, start, self.cfg.max_iters)
        self.jacobian = np.asarray(res.jac)
        self.weak = self._weak_directions(self.jacobian, *initial.get_bounds())
        self.inflation = self._autocorrelation_inflation(r_star)
        half = half * self.inflation
        self.within_half = half.copy()
        self.jackknife_half, self.subset_estimates = self._jackknife(recordings, opt)
        # 95 % half-width: the larger of the noise model's and the delete-one-recording
        # jackknife's (which also sees model error), h = max(h_w, h_J)
        half = np.maximum(half, self.jackknife_half)
        fit_s = time.perf_counter() - t0
        rs = np.concatenate(r_star)
        estimates = self._estimates(opt, half, rs, wins)
        result = SysidResult(
            self.robot.name, self.family.name, estimates, float(0.5 * r0 @ r0),
            float(0.5 * rs @ rs), len(res.extras.get("objective", [])) if "extras" in res else 0,
            fit_s, float(sum(len(w.action) for w in wins) * self.dt), len(wins), log)
        if heldout:
            result.heldout = self.heldout_error(heldout, result)
        return result, {"initial": initial, "opt": opt, "residual_fn": fn, "sequences": seqs,
                        "opt_result": res}

    def _weak_directions(self, J: np.ndarray, lo: np.ndarray, hi: np.ndarray
                         ) -> dict[str, str]:
        """Factors the data determine only in combination with others: with the Jacobian's
        columns scaled by the search ranges, Jn = J diag(hi - lo) = U S V^T, a direction v_k
        with s_k / s_1 < ``min_rel_singular`` changes the prediction by less than that
        fraction of the best-determined direction over the whole search range, so model error
        moves the estimate freely along it (the intervals, which assume the model is right,
        do not show this). Every factor with |v_ik| > 0.3 on such a direction is reported
        unidentifiable, naming its partners. Exactly null directions are left to the
        interval (infinite there)."""
        Jn = J * (hi - lo)
        if Jn.size == 0:
            return {}
        _, S, Vt = np.linalg.svd(Jn, full_matrices=False)
        if S[0] <= 0:
            return {}
        names = [f.name for f in self.fitted]
        out: dict[str, str] = {}
        for k in range(len(S)):
            rel = S[k] / S[0]
            if rel >= self.cfg.min_rel_singular or rel < 1e-9:
                continue
            members = [i for i in np.argsort(-np.abs(Vt[k])) if abs(Vt[k, i]) > 0.3]
            for i in members:
                others = [names[m] for m in members if m != i]
                out.setdefault(names[i], (
                    "only determined in combination" + (f" with {', '.join(others)}" if others
                                                        else "")
                    + f" (relative singular value {rel:.2g} of the range-scaled Jacobian, below "
                    f"{self.cfg.min_rel_singular:g})"))
        return out

    def _screen_starts(self, fn: Any, initial: Any) -> Any:
        """The starting point of the local fit: the candidate of lowest cost among the
        nominal start, the same with the latency at each whole step of its range (the delay
        makes the cost multimodal: a start one or two steps off converges to a wrong local
        minimum), and ``screen_samples`` uniform draws in the search box. Each candidate costs
        one residual evaluation (no optimization)."""
        rng = np.random.default_rng(self.cfg.seed)
        lo, hi = initial.get_bounds()
        x0 = initial.as_vector()
        cands = [x0]
        for i, f in enumerate(self.fitted):
            if f.kind == "latency_steps":
                for L in range(int(math.ceil(lo[i])), int(math.floor(hi[i])) + 1):
                    x = x0.copy()
                    x[i] = L
                    cands.append(x)
        cands += [rng.uniform(lo, hi) for _ in range(self.cfg.screen_samples)]
        best, best_cost = x0, math.inf
        for x in cands:
            r = np.concatenate(fn(x, initial)[0])
            c = float(r @ r)
            if np.isfinite(c) and c < best_cost:
                best, best_cost = x, c
        start = initial.copy()
        start.update_from_vector(best)
        return start

    def _solve(self, fn: Any, start: Any, max_iters: int
               ) -> tuple[Any, Any, list[np.ndarray], np.ndarray, str]:
        """One ``mujoco.sysid.optimize`` run from ``start``: (optimum, result, residuals at
        the optimum, white-noise 95 % half-widths from ``calculate_intervals``, log)."""
        sysid = self.sysid
        lo, hi = start.get_bounds()
        log = io.StringIO()
        opt, res = sysid.optimize(initial_params=start, residual_fn=fn, optimizer="mujoco",
                                  verbose=False, max_iters=max_iters, x_scale=hi - lo,
                                  eps=self.cfg.fd_eps, output=log)
        r_star, _, _ = fn(opt.as_vector(), opt)
        J = np.asarray(res.jac)
        # A factor the residual does not depend on at all (the cart's encoder bias: the rail
        # is translation invariant, so the shifted start and reading cancel) has a zero
        # column; its null eigenvector, blurred by finite-difference noise, would make
        # calculate_intervals report every factor as unbounded. Such factors get an infinite
        # interval and the others are computed without them.
        scale = np.linalg.norm(J * (hi - lo), axis=0)
        live = scale > 1e-9 * max(float(scale.max()), 1e-300)
        half = np.full(J.shape[1], np.inf)
        if live.any():
            _, h = sysid.calculate_intervals(r_star, J[:, live])
            half[live] = np.where(np.isfinite(h), h, np.inf)
        return opt, res, r_star, half, log.getvalue()

    def _jackknife(self, recordings: Sequence[Recording], opt: Any
                   ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Delete-one-recording jackknife 95 % half-widths, h_J = t_{0.975, k-1} sd_J.

        A white-noise interval only measures noise. A model that misses an effect (stiction,
        backlash, a current-loop lag) biases each factor by an amount that depends on how the
        data excite that effect, and each recording is an excitation of its own (a chirp on
        one joint, a staircase). So the factors are refitted k times, each time without one
        of the k recordings (warm-started at the joint optimum), and with x_(i) the fit
        without recording i and xbar their mean, the jackknife variance of the estimate is
            sd_J^2 = (k - 1) / k * sum_i (x_(i) - xbar)^2,
        which counts both noise and the excitation-dependent model error. (An earlier design
        refitted each recording alone; a single recording often leaves the coupled factors
        undetermined, and the estimate then got no model-error term at all.) Fewer than 3
        recordings: h_J = 0."""
        from scipy import stats

        n = len(self.fitted)
        k = len(recordings)
        if k < 3:
            return np.zeros(n), []
        xs, subsets = [], []
        for i in range(k):
            wins = self.windows([r for m, r in enumerate(recordings) if m != i], None)
            if not wins:
                continue
            fn, _ = self.residual_fn(wins, self.weights, name="jackknife")
            o, _, _, _, _ = self._solve(fn, opt.copy(), min(10, self.cfg.max_iters))
            x = np.array([float(o[f.name].value[0]) for f in self.fitted])
            xs.append(x)
            subsets.append({f.name: float(v) for f, v in zip(self.fitted, x, strict=True)})
        if len(xs) < 3:
            return np.zeros(n), subsets
        X = np.array(xs)
        kk = len(X)
        sd = np.sqrt((kk - 1) / kk * np.sum((X - X.mean(axis=0)) ** 2, axis=0))
        return float(stats.t.ppf(0.975, kk - 1)) * sd, subsets

    def _autocorrelation_inflation(self, residuals: Sequence[np.ndarray]) -> float:
        """The factor by which the white-noise intervals of ``calculate_intervals`` are
        widened. Its s^2 / (J^T J) assumes independent residuals; ours are dominated by smooth
        model error, correlated from one step to the next. With the pooled lag-1
        autocorrelation rho = sum_t r_t r_{t+1} / sum_t r_t^2 (per window and sensor), an
        AR(1) error has variance inflation (1 + rho) / (1 - rho) for a mean (Bartlett), so
        the half-widths are multiplied by sqrt((1 + rho) / (1 - rho)), at most
        sqrt(n_steps) (one independent sample per window and sensor)."""
        ns = 2 * len(self.robot.joints)
        num = den = 0.0
        steps = 0
        for r in residuals:
            x = np.asarray(r).reshape(-1, ns)
            num += float(np.sum(x[1:] * x[:-1]))
            den += float(np.sum(x * x))
            steps = max(steps, len(x))
        rho = min(max(num / den if den > 0 else 0.0, 0.0), 1.0 - 1e-9)
        return float(min(math.sqrt((1 + rho) / (1 - rho)), math.sqrt(max(steps, 1))))

    def _estimates(self, opt: Any, half: np.ndarray, residual: np.ndarray,
                   wins: Sequence[_Window]) -> dict[str, FactorEstimate]:
        out: dict[str, FactorEstimate] = {}
        for i, f in enumerate(self.fitted):
            lo, hi = self.ranges[f.name]
            x = float(opt[f.name].value[0])
            h = float(half[i]) if i < len(half) and np.isfinite(half[i]) else math.inf
            span = hi - lo
            # pinned at a bound of the widened range (not at a physical bound such as zero
            # friction or latency, where the truth can lie)
            # (a natural zero such as no friction, no payload or no latency is a value the
            # truth can take; a clipped physical bound such as a mass scale of 0.05 is not)
            at_bound = ((x - lo < 1e-3 * span and not (lo == f.bounds[0] == 0.0))
                        or (hi - x < 1e-3 * span and hi < f.bounds[1]))
            if not math.isfinite(h):
                ok, why = False, "the data do not constrain it (singular Jacobian direction)"
            elif h > self.cfg.max_rel_halfwidth * span:
                ok, why = False, (f"95 % half-width {h:.3g} exceeds {self.cfg.max_rel_halfwidth:g}"
                                  f" x its search range {span:.3g}: not excited by the data")
            elif f.name in getattr(self, "weak", {}):
                ok, why = False, self.weak[f.name]
            elif at_bound:
                ok, why = False, (f"pinned at the search bound {x:.4g} of [{lo:.4g}, {hi:.4g}]:"
                                  " the truth may lie outside the widened family range")
            else:
                ok, why = True, ""
            out[f.name] = FactorEstimate(f.name, f.unit, f.nominal, x if ok else None, x, h, lo,
                                         hi, ok, why, f.integer)
        # Noise: not dynamics; the weighted residual's RMS per position sensor bounds it.
        q_res = self._position_residual_rms(wins, opt)
        for f in self.noise:
            bound = q_res if f.kind == "pos_noise" else math.nan
            why = ("sensor noise is not identified by an open-loop fit"
                   + (f"; the position residual RMS {bound:.3g} bounds it" if f.kind == "pos_noise"
                      else ""))
            d = self.family.train[f.name]
            out[f.name] = FactorEstimate(f.name, f.unit, f.nominal, None, bound, math.inf,
                                         d.low, d.high, False, why)
        return out

    def _position_residual_rms(self, wins: Sequence[_Window], params: Any) -> float:
        """RMS of measured - predicted joint positions over windows (unweighted)."""
        err = self.prediction_errors(wins, params)
        return float(np.sqrt(np.mean(np.concatenate([e.ravel() for e in err])**2)))

    # ---- prediction --------------------------------------------------------------------------
    def param_dict(self, values: Mapping[str, float]) -> Any:
        """A ParameterDict with the fitted factors at ``values`` (missing ones: nominal
        factor values, not the in-range starting point)."""
        pd = self.params.copy()
        for f in self.fitted:
            pd[f.name].value = np.atleast_1d(float(values.get(f.name, f.nominal)))
        return pd

    def prediction_errors(self, windows: Sequence[_Window], params: Any
                          ) -> list[np.ndarray]:
        """Per window, measured - predicted joint positions (n, nq) at control steps 1..n,
        replaying the actions open loop from the window's first reading."""
        ones = {f"{j}_pos": 1.0 for j in self.robot.joints} | \
               {f"{j}_vel": 0.0 for j in self.robot.joints}
        fn, _ = self.residual_fn(windows, ones, name="eval")
        res, _, _ = fn(params.as_vector(), params)
        nq = len(self.robot.joints)
        return [np.asarray(r).reshape(-1, 2 * nq)[:, :nq] for r in res]

    def predictions(self, windows: Sequence[_Window], params: Any) -> list[tuple[Any, Any]]:
        """(measured, predicted) TimeSeries per window (positions then velocities)."""
        ones = {f"{j}_pos": 1.0 for j in self.robot.joints}
        fn, _ = self.residual_fn(windows, ones, name="eval")
        _, preds, records = fn(params.as_vector(), params, return_pred_all=True)
        return [(rec[0], pr[0]) for rec, pr in zip(records, preds, strict=True)]

    def heldout_error(self, recordings: Sequence[Recording], result: SysidResult
                      ) -> dict[str, Any]:
        """Open-loop joint-position RMSE over ``heldout_s`` windows of held-out recordings,
        nominal factors vs identified ones (unidentified factors stay nominal)."""
        wins = self.windows(recordings, self.cfg.heldout_s)
        if not wins:
            raise SysidError(f"held-out recordings shorter than {self.cfg.heldout_s / 2:g} s")
        nominal = self.param_dict({})
        ident = self.param_dict({k: (round(v) if self.robot.factor(k).integer else v)
                                 for k, v in result.identified().items()})
        # "fit": every fitted factor at its estimate, identifiable or not (the model the
        # optimizer settled on; params.toml leaves the unidentifiable ones nominal instead)
        every = self.param_dict({k: e.estimate for k, e in result.estimates.items()
                                 if k in self.ranges and math.isfinite(e.estimate)})
        out: dict[str, Any] = {"windows": len(wins), "horizon_s": self.cfg.heldout_s}
        for label, pd in (("nominal", nominal), ("identified", ident), ("fit", every)):
            err = np.concatenate(self.prediction_errors(wins, pd))
            out[label] = {"rmse": float(np.sqrt(np.mean(err**2))),
                          "per_joint": {j: float(np.sqrt(np.mean(err[:, k]**2)))
                                        for k, j in enumerate(self.robot.joints)}}
        ident_rmse = out["identified"]["rmse"]
        out["ratio"] = out["nominal"]["rmse"] / ident_rmse if ident_rmse > 0 else math.inf
        return out
