"""The PyBullet twin: the same robot in a different physics engine, with hidden true parameters.

This is the "real robot" of every test and of the demo: the emulator serves its joints as
Dynamixel servos, and :class:`TwinEnv` gives it the same observation and action interface as
the MuJoCo env for direct comparison. It is authored as URDF (``twin.urdf``), never converted
from the MJCF: ``pybullet.loadMJCF`` welds the cartpole hinge and drops the arm's joints.

How each physics factor is realised here (independently of MuJoCo):

* masses and the payload: the URDF's ``<inertial>`` elements are rewritten before loading
  (mass x scale, inertia x scale; payload = point mass at the offset);
* viscous damping: an explicit joint torque tau = -d * qdot, recomputed every physics step;
* Coulomb friction: a hard friction constraint, |f_k| <= frictionloss, that stops a joint
  whenever it can (see "Servo joints" for how it is solved);
* motor strength: the commanded effort is multiplied by the hidden gain scale;
* an applied joint force (``joint_force``): a constant joint torque tau = x added to the
  joint's torque every physics step, as MuJoCo's ``qfrc_applied``.

Ideal joints
------------
A robot with no servo-driven joint (``servo_joints(robot)`` is empty: the cartpole, or any
robot with ``actuator_model = "ideal"``) is stepped as before issue 20: joint torque
tau = strength * effort - d * qdot, with Coulomb friction from PyBullet's velocity motor
(target 0, max force = frictionloss).

Servo joints
------------
For the joints of ``servo_joints(robot)`` the twin is a current-controlled servo, with the same
model as MuJoCo's ``<dcmotor>`` (:mod:`robot_meta.sim.servo_physics`), applied every 1 ms step.

* Envelope. An effort request e (joint units, e = K_t I / r, I the goal current) gives at the
  output shaft the torque tau_out = ServoModel.envelope(s e r, qdot_m / r, V, s K_t I_lim, s):
  the voltage-limited torque-speed line at the supply V (hidden ``supply_voltage``) and motor
  speed qdot_m, clamped by the servo's hardware current limit I_lim, with the hidden strength s
  scaling stall torque and current limit and dividing the no-load speed. The joint gets
  tau_m = tau_out / r. The motor current is I = tau_out / (K_t s). In PWM mode (``duty``) the
  torque is ServoModel.pwm_torque(d, ...) instead.
* Armature. MuJoCo adds the reflected rotor inertia J_a = J_servo / r^2 to the diagonal of the
  joint-space mass matrix; PyBullet has no armature. The twin therefore computes each step's
  velocity update itself, from PyBullet's own M(q) (``calculateMassMatrix``) and bias forces
  c(q, qdot) (``calculateInverseDynamics`` at zero acceleration), and has PyBullet realise it:

      (M + J_A) (v' - v) / dt = tau - c + f,     tau = tau_m - d qdot,
      PyBullet torque  tau' = c + M (v' - v) / dt,

  so PyBullet's semi-implicit Euler step (v' = v + dt M^-1 (tau' - c), q' = q + dt v') lands on
  exactly v'. Without friction this is tau' = c + M (M + J_A)^-1 (tau - c).
* Damping and friction with armature. The damping torque -d qdot is part of tau, so it acts on
  M + J_A as in MuJoCo. The Coulomb friction f cannot stay in PyBullet's velocity motor: that
  constraint is solved with PyBullet's inertia M, so a joint would stop (and break away) as if
  the rotor were not there, and the mapping above would rescale the friction as well. Instead
  the twin solves the same hard constraint in Python, on the armature-augmented dynamics:
  find impulses p_k = f_k dt, |p_k| <= F_k dt, with v' = v_free + (M + J_A)^-1 p and each p_k
  opposing v'_k (v'_k = 0 where |p_k| < F_k dt): the friction LCP of PyBullet's velocity motor
  and of MuJoCo's frictionloss, by projected Gauss-Seidel (a few sweeps on an n x n system).
  PyBullet's velocity motors are then off (max force 0).

Unmodeled effects
-----------------
Each is set in the ``[servo]`` table of a hidden-parameter file (``ServoEffects``), and each is
off by default, which reproduces the envelope-and-armature servo above exactly. They apply to
the servo joints only.

* ``stiction`` [N*m at the output]: static friction of the gear teeth and bearings exceeds the
  sliding friction (the lubricant film breaks down at rest). A joint at rest (|qdot| < 1e-4)
  gets the friction bound F + stiction / r instead of F: it stays at rest until the net
  torque on it exceeds frictionloss + stiction, then slides with F.
* ``backlash`` [rad at the output, total play b]: the clearance between the gear teeth. The
  motor side is a second body, the rotor's reflected inertia J_a, with gap
  delta = q_motor - q_out in [-h, h], h = b r / 2. Engaged (delta = +-h, the teeth in
  contact) the rotor moves with the output as above. The contact torque on the output is
  lambda = tau_m - J_a qddot; when it would pull (lambda * sign(delta) < 0, the drive torque
  reversed) the teeth separate: the output then gets no drive torque and no armature, and the
  rotor is integrated in Python, J_a qddot_m = tau_m (no load; its envelope uses qdot_m), with
  delta' = delta + dt (qdot_m - qdot_out). When delta reaches the other side while closing,
  the teeth collide: an inelastic impulse P = (qdot_m - qdot_out) / ((M + J_A)^-1_kk + 1 / J_a)
  equalises the two speeds, and the gear is engaged again. A fresh world (``set_params``)
  starts with the gap centred; ``set_state`` moves the rotor with the output (the gap is
  kept).
* ``encoder_quantization``: the encoder reports whole ticks and the servo a whole number of
  Present Velocity units. :class:`TwinEnv`'s observations are rounded to the tick
  2 pi / ticks_per_rev * r and the unit velocity_unit_rad_s * r (after bias and noise, as the
  encoder digitises the disturbed reading). ``TwinBackend.qpos/qvel`` stay true: the emulator
  reads them and its emulated servo quantizes to ticks itself.
* ``current_lag`` [s]: the servo's current loop is not instant (winding inductance, PI loop at
  a few kHz). The effort request passes a first-order lag x' = x + (1 - exp(-dt / T)) (e - x)
  before the envelope; in PWM mode the PWM torque passes it (the winding's L / R).
* ``supply_resistance`` [ohm]: the supply and its cable have resistance R_s, so the servos
  see V = V_supply - R_s sum_k |I_k|, with I_k the servo joints' motor currents of the previous
  step (clamped at 1 mV). ``TwinBackend.supply_now`` holds it.

Parameter files are TOML: ``robot = "arm2"``, a ``[params]`` table of factor values
(``robot-meta sim factors ROBOT`` lists them; missing factors are nominal) and an optional
``[servo]`` table of the effects above.
"""

from __future__ import annotations

import math
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from robot_meta.hardware.servos import ServoEffects, ServoModel
from robot_meta.sim.quiet import quiet_stdout

with quiet_stdout():  # PyBullet prints its build time on import
    import pybullet
    from pybullet_utils.bullet_client import BulletClient

from robot_meta.sim.batched_env import BatchedEnv  # noqa: E402
from robot_meta.sim.randomize import load_twin_params, nominal_params  # noqa: E402
from robot_meta.sim.robots.robot_def import RobotDef, get_robot  # noqa: E402
from robot_meta.sim.servo_physics import servo_joints  # noqa: E402
from robot_meta.sim.task import InitSpec  # noqa: E402

TWIN_PHYSICS_DT = 0.001  # s: finer than the MuJoCo model's 2 ms, as a real plant would be
_MIN_MASS = 1e-6  # kg: PyBullet wants positive link masses; an empty payload gets this
STICK_SPEED = 1e-4  # rad/s or m/s: below this a joint is at rest (stiction applies)
_PGS_SWEEPS = 30  # projected Gauss-Seidel sweeps of the friction LCP, at most
_MIN_SUPPLY = 1e-3  # V: the sagged supply never drops below this


def _num(x: float) -> str:
    """A float as URDF text (numpy scalars would print as ``np.float64(..)``)."""
    return f"{float(x):.10g}"


def _friction_pgs(A: list[list[float]], v: list[float], lim: list[float]) -> list[float]:
    """Solve the friction LCP in place and return v: impulses p with |p_k| <= lim_k such that
    v + A p has v_k = 0 where |p_k| < lim_k and p_k opposes v_k otherwise (A = inverse inertia).
    Projected Gauss-Seidel: p_k <- clip(p_k - v_k / A_kk, -lim_k, lim_k), v += A[:, k] dp_k."""
    n = len(v)
    p = [0.0] * n
    tol = 1e-12 * max(lim)
    for _ in range(_PGS_SWEEPS):
        change = 0.0
        for k in range(n):
            lk = lim[k]
            if lk <= 0.0:
                continue
            new = p[k] - v[k] / A[k][k]
            new = lk if new > lk else (-lk if new < -lk else new)
            dp = new - p[k]
            if dp != 0.0:
                p[k] = new
                for m in range(n):
                    v[m] += A[m][k] * dp
                change = max(change, abs(dp))
        if change <= tol:
            break
    return v


class TwinBackend:
    """B independent PyBullet worlds of one robot (usually B = 1).

    Implements :class:`robot_meta.sim.batched_env.PhysicsBackend`, plus ``step_effort`` for the
    emulator, which drives the joints with efforts computed from motor currents. ``effects``:
    the unmodeled servo effects (module docstring; None: all off).

    After every physics step: ``supply_now`` (B,) is the supply voltage after sag [V],
    ``motor_current`` (B, n_actuated) the actual motor currents [A] (delivered output torque
    / (K_t * strength)) and ``last_torque`` (B, n_actuated) the motors' delivered joint
    efforts [N*m or N] (before the backlash, which may keep them from the output).
    """

    def __init__(self, robot: RobotDef, num_envs: int = 1, physics_dt: float = TWIN_PHYSICS_DT,
                 effects: ServoEffects | None = None):
        self.robot = robot
        self.num_envs = B = num_envs
        self.physics_dt = physics_dt
        self.effects = fx = effects or ServoEffects()
        self.nsub = max(1, round(robot.control_dt / physics_dt))
        self.nq = nq = len(robot.joints)
        self.qpos = np.zeros((num_envs, self.nq))
        self.qvel = np.zeros((num_envs, self.nq))
        self.params = np.tile(nominal_params(robot), (num_envs, 1))
        self._urdf = ET.parse(robot.twin_path)
        hw = robot.hardware_map
        hjs = [hw.joint(j) for j in robot.actuated_joints]
        na = len(hjs)
        self._gear = np.array([h.gear for h in hjs])
        self._act_cols = [robot.joints.index(j) for j in robot.actuated_joints]
        self._r = np.array([h.transmission for h in hjs])  # joint units per motor radian
        self._kt = np.array([h.torque_constant for h in hjs])  # N*m/A at the output

        # ---- servo joints (module docstring) ----
        servo_names = {j for j, _ in servo_joints(robot)}
        self._is_servo = np.array([j in servo_names for j in robot.actuated_joints], dtype=bool)
        self._sv = np.flatnonzero(self._is_servo)  # actuated indices of the servo joints
        self._ideal = np.flatnonzero(~self._is_servo)
        self._servo_mode = len(self._sv) > 0
        groups: dict[str, list[int]] = {}
        for k in self._sv:
            groups.setdefault(hjs[k].model, []).append(int(k))
        self._groups: list[tuple[ServoModel, np.ndarray]] = [
            (hjs[ks[0]].servo, np.array(ks)) for ks in groups.values()]
        # Hardware current-limit torque at the output, K_t I_lim [N*m] (times s when used).
        self._cap_out = np.array([h.torque_constant * h.servo.max_current_a if s else math.inf
                                  for h, s in zip(hjs, self._is_servo, strict=True)])
        self._armature = np.zeros(nq)  # J_a / r^2 in joint units, on the servo joints' columns
        self._stiction = np.zeros(nq)  # joint units
        self._half_play = np.zeros(na)  # h = b r / 2, joint units
        for k in self._sv:
            h, col = hjs[k], self._act_cols[k]
            motor = h.servo.motor
            assert motor is not None
            self._armature[col] = motor.armature / h.transmission**2
            self._stiction[col] = fx.stiction / h.transmission
            self._half_play[k] = 0.5 * fx.backlash * h.transmission
        self._has_play = bool((self._half_play > 0).any())
        self._alpha = 1.0 - math.exp(-physics_dt / fx.current_lag) if fx.current_lag > 0 else 1.0
        names = robot.factor_names
        self._i_supply = names.index("supply_voltage") if "supply_voltage" in names else None
        motors = [h.servo.motor for h in hjs if h.servo.motor is not None]
        self._v_nominal = motors[0].nominal_voltage if motors else math.nan

        with quiet_stdout():  # and `argv[0]=` on connect
            self._clients = [BulletClient(connection_mode=pybullet.DIRECT)
                             for _ in range(num_envs)]
        self._body = [-1] * num_envs
        self._jidx: list[int] = []
        self._damping = np.zeros((B, nq))
        self._friction = np.zeros((B, nq))
        self._applied = np.zeros((B, nq))  # joint_force factors, per joint column
        self._strength = np.ones((B, na))
        self._supply = np.full(B, self._v_nominal)
        self.supply_now = self._supply.copy()
        self.motor_current = np.zeros((B, na))
        self.last_torque = np.zeros((B, na))
        self._lag = np.zeros((B, na))  # the current loop's filtered effort request
        self._gap = np.zeros((B, na))  # delta = q_motor - q_out, joint units
        self._rotor_vel = np.zeros((B, na))  # qdot_m, joint units
        self._engaged = np.ones((B, na), dtype=bool)
        self._tmp = tempfile.TemporaryDirectory(prefix="robot_meta_twin_")
        self._loads = 0
        for i in range(num_envs):
            self._load(i, self.params[i])

    # ---- model building --------------------------------------------------------------------
    def _urdf_text(self, params: np.ndarray) -> str:
        """The twin URDF with masses, inertias and the payload rewritten for params."""
        root = ET.fromstring(ET.tostring(self._urdf.getroot()))
        val = dict(zip(self.robot.factor_names, params, strict=True))
        links = {e.get("name"): e for e in root.iter("link")}
        for link in self.robot.links:
            s = val[f"{link}_mass_scale"]
            inertial = links[link].find("inertial")
            assert inertial is not None
            mass = inertial.find("mass")
            inertia = inertial.find("inertia")
            assert mass is not None and inertia is not None
            mass.set("value", _num(float(mass.get("value", "0")) * s))
            for k in ("ixx", "iyy", "izz", "ixy", "ixz", "iyz"):
                inertia.set(k, _num(float(inertia.get(k, "0")) * s))
        pl = links[self.robot.payload_body].find("inertial")
        assert pl is not None
        m = max(val["payload_mass"], _MIN_MASS)
        off = val["payload_offset"] * np.asarray(self.robot.payload_axis)
        pl_origin, pl_mass, pl_inertia = pl.find("origin"), pl.find("mass"), pl.find("inertia")
        assert pl_origin is not None and pl_mass is not None and pl_inertia is not None
        pl_origin.set("xyz", " ".join(_num(x) for x in off))
        pl_mass.set("value", _num(m))
        for k in ("ixx", "iyy", "izz"):  # a point mass, with a tiny inertia PyBullet accepts
            pl_inertia.set(k, _num(m * 1e-6))
        return ET.tostring(root, encoding="unicode")

    def _load(self, i: int, params: np.ndarray) -> None:
        c = self._clients[i]
        c.resetSimulation()
        c.setGravity(0.0, 0.0, -9.81)
        c.setPhysicsEngineParameter(fixedTimeStep=self.physics_dt, numSolverIterations=50)
        # A fresh file name per load: PyBullet caches file contents by path.
        self._loads += 1
        path = Path(self._tmp.name) / f"twin_{i}_{self._loads}.urdf"
        path.write_text(self._urdf_text(params))
        body = c.loadURDF(str(path), useFixedBase=True, flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
        names = {c.getJointInfo(body, k)[1].decode(): k for k in range(c.getNumJoints(body))}
        self._jidx = [names[j] for j in self.robot.joints]
        for k in range(-1, c.getNumJoints(body)):
            c.changeDynamics(body, k, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0)
        self._body[i] = body
        val = dict(zip(self.robot.factor_names, params, strict=True))
        friction = [val[f"{j}_frictionloss"] for j in self.robot.joints]
        # Coulomb friction: a velocity motor toward 0 whose force saturates at the frictionloss
        # (ideal robots); with servo joints it is solved in Python and the motors are off.
        c.setJointMotorControlArray(
            body, self._jidx, pybullet.VELOCITY_CONTROL, targetVelocities=[0.0] * self.nq,
            forces=[0.0] * self.nq if self._servo_mode else friction)
        self._friction[i] = friction
        self._damping[i] = [val[f"{j}_damping"] for j in self.robot.joints]
        self._applied[i] = 0.0
        for f in self.robot.factors:
            if f.kind == "joint_force":
                self._applied[i, self.robot.joints.index(f.target)] += val[f.name]
        self._strength[i] = [val[f"{j}_strength"] for j in self.robot.actuated_joints]
        self._supply[i] = self._v_nominal if self._i_supply is None else params[self._i_supply]
        # A fresh servo: no current, the gear's play centred (disengaged where there is play).
        self._lag[i] = 0.0
        self._gap[i] = 0.0
        self._rotor_vel[i] = 0.0
        self._engaged[i] = self._half_play <= 0.0
        self.motor_current[i] = 0.0
        self.last_torque[i] = 0.0
        self.supply_now[i] = self._supply[i]
        self.params[i] = params

    # ---- PhysicsBackend ----------------------------------------------------------------------
    def set_params(self, idx: np.ndarray, params: np.ndarray) -> None:
        """Rebuild the worlds of envs idx with new hidden params (k, F); joint state is kept."""
        for i, p in zip(idx, params, strict=True):
            q, dq = self.qpos[i].copy(), self.qvel[i].copy()
            self._load(int(i), np.asarray(p, dtype=float))
            self._write_state(int(i), q, dq)

    def _write_state(self, i: int, q: np.ndarray, dq: np.ndarray) -> None:
        c, body = self._clients[i], self._body[i]
        for k, j in enumerate(self._jidx):
            c.resetJointState(body, j, float(q[k]), float(dq[k]))
        self.qpos[i], self.qvel[i] = q, dq
        # The rotor moves with the output (the gap is kept); the current loop starts at rest.
        self._rotor_vel[i] = np.asarray(dq)[self._act_cols]
        self._lag[i] = 0.0
        self.motor_current[i] = 0.0
        self.last_torque[i] = 0.0
        self.supply_now[i] = self._supply[i]

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        for i, q, dq in zip(idx, qpos, qvel, strict=True):
            self._write_state(int(i), q, dq)

    def _read_state(self, i: int) -> None:
        states = self._clients[i].getJointStates(self._body[i], self._jidx)
        self.qpos[i] = [s[0] for s in states]
        self.qvel[i] = [s[1] for s in states]

    def step_effort(self, effort: np.ndarray, nsub: int, duty: np.ndarray | None = None) -> None:
        """Advance nsub physics steps holding the nominal actuator efforts (B, n_actuated)
        [N*m or N], e = K_t I / r for a goal current I. ``duty``: None, or (B, n_actuated)
        where a finite entry puts that joint in PWM mode with that duty in [-1, 1] (its effort
        is ignored) and NaN leaves it in current mode.

        Ideal joints: joint torque tau = strength * effort (PWM: strength * duty * gear), with
        damping and friction as before. Servo joints: the envelope, armature and effects of
        the module docstring."""
        effort = np.asarray(effort, dtype=float).reshape(self.num_envs, -1)
        pwm_rows: list[np.ndarray | None] = [None] * self.num_envs
        if duty is not None:
            d = np.asarray(duty, dtype=float).reshape(self.num_envs, -1)
            for i in range(self.num_envs):
                if np.isfinite(d[i]).any():
                    pwm_rows[i] = d[i]
        for i in range(self.num_envs):
            if self._servo_mode:
                self._step_servo(i, effort[i], nsub, pwm_rows[i])
            else:
                self._step_ideal(i, effort[i], nsub, pwm_rows[i])

    def _step_ideal(self, i: int, effort: np.ndarray, nsub: int, duty: np.ndarray | None) -> None:
        """nsub steps of a robot without servo joints: tau = strength * effort - damping * qdot
        (Coulomb friction is the velocity motor)."""
        if duty is not None:
            effort = self._ideal_pwm(effort, duty, self._gear)
        c, body = self._clients[i], self._body[i]
        drive = np.zeros(self.nq)
        drive[self._act_cols] = self._strength[i] * effort
        self.last_torque[i] = drive[self._act_cols]
        # I = tau_out / (K_t s) = effort * r / K_t
        self.motor_current[i] = np.divide(effort * self._r, self._kt, out=np.zeros_like(effort),
                                          where=self._kt > 0)
        self.supply_now[i] = self._supply[i]
        drive += self._applied[i]  # the joint_force factors, constant over the period
        for _ in range(nsub):
            tau = drive - self._damping[i] * self.qvel[i]
            c.setJointMotorControlArray(body, self._jidx, pybullet.TORQUE_CONTROL,
                                        forces=tau.tolist())
            c.stepSimulation()
            self._read_state(i)

    @staticmethod
    def _ideal_pwm(effort: np.ndarray, duty: np.ndarray, gear: np.ndarray) -> np.ndarray:
        """An ideal effort source in PWM mode: effort = clip(d, -1, 1) * gear where the duty d is
        finite (PWM), the effort request where it is NaN (current mode)."""
        pwm = np.isfinite(duty)
        return np.where(pwm, np.clip(np.where(pwm, duty, 0.0), -1.0, 1.0) * gear, effort)

    # ---- servo joints ------------------------------------------------------------------------
    def _motor_torque(self, i: int, effort: np.ndarray, duty: np.ndarray | None,
                      speed: np.ndarray, volts: float) -> np.ndarray:
        """The motors' joint efforts tau_m (n_actuated,) at motor speeds ``speed`` (joint
        units) and supply ``volts``; updates the current-loop lag, ``motor_current`` and
        ``last_torque``."""
        s = self._strength[i]
        tau_m = np.empty(len(s))
        pwm = None if duty is None else np.isfinite(duty)
        if len(self._ideal):
            e = effort[self._ideal]
            if duty is not None:
                e = self._ideal_pwm(e, duty[self._ideal], self._gear[self._ideal])
            tau_m[self._ideal] = s[self._ideal] * e
        lag = self._lag[i]
        a = self._alpha
        for servo, ks in self._groups:
            r, sk = self._r[ks], s[ks]
            omega, cap = speed[ks] / r, sk * self._cap_out[ks]  # output speed, s K_t I_lim
            target = effort[ks]
            p = None if pwm is None else pwm[ks]
            if p is not None and p.any():
                # PWM: tau_out = s tau_s(V) (d - s w / w0(V)), as an effort request tau_out / (r s)
                t_pwm = servo.pwm_torque(np.where(p, duty[ks], 0.0), omega, volts, cap, sk)  # type: ignore[index]
                req = np.divide(t_pwm, r * sk, out=np.zeros_like(t_pwm), where=sk > 0)
                target = np.where(p, req, target)
            # current loop: x <- x + alpha (e - x), alpha = 1 - exp(-dt / T) (1 without lag)
            x = target if a == 1.0 else lag[ks] + a * (target - lag[ks])
            lag[ks] = x
            tau_out = servo.envelope(sk * x * r, omega, volts, cap, sk)
            if p is not None and p.any():
                tau_out = np.where(p, sk * x * r, tau_out)  # the PWM torque, through the lag
            tau_m[ks] = tau_out / r
            kts = self._kt[ks] * sk
            self.motor_current[i, ks] = np.divide(tau_out, kts, out=np.zeros_like(tau_out),
                                                  where=kts > 0)
        if len(self._ideal):
            e_id = tau_m[self._ideal] * self._r[self._ideal]
            kts = self._kt[self._ideal] * s[self._ideal]
            self.motor_current[i, self._ideal] = np.divide(e_id, kts, out=np.zeros_like(e_id),
                                                           where=kts > 0)
        self.last_torque[i] = tau_m
        return tau_m

    def _impacts(self, i: int, M: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Close the gear of every disengaged joint whose rotor has crossed the play toward
        the output: an inelastic impulse P = (w - v_k) / ((M + J_A)^-1_kk + 1 / J_a) on both
        (output +P, rotor -P). Returns the output velocities after the impacts."""
        eng, gap, w = self._engaged[i], self._gap[i], self._rotor_vel[i]
        h = self._half_play
        for k in self._sv:
            if eng[k] or h[k] <= 0.0 or abs(gap[k]) < h[k] * (1.0 - 1e-12):
                continue
            col = self._act_cols[k]
            sigma = 1.0 if gap[k] > 0 else -1.0
            if (w[k] - v[col]) * sigma < 0.0:  # opening: the teeth separate further
                continue
            J = self._armature[col]
            A = np.linalg.inv(M + np.diag(self._armature * self._engaged_cols(i)))
            P = (w[k] - v[col]) / (A[col, col] + 1.0 / J)
            v = v + A[:, col] * P
            w[k] -= P / J
            gap[k] = sigma * h[k]
            eng[k] = True
        return v

    def _engaged_cols(self, i: int) -> np.ndarray:
        """1.0 on the columns of joints whose gear is engaged (all ideal and unactuated: 0)."""
        out = np.zeros(self.nq)
        cols = np.asarray(self._act_cols)[self._sv]
        out[cols] = self._engaged[i, self._sv]
        return out

    def _step_servo(self, i: int, effort: np.ndarray, nsub: int, duty: np.ndarray | None) -> None:
        """nsub physics steps of a robot with servo joints (module docstring)."""
        # pybullet's functions with the client id: BulletClient wraps each access in a partial
        cid, body, jidx = self._clients[i]._client, self._body[i], self._jidx
        dt = self.physics_dt
        cols = self._act_cols
        zeros = [0.0] * self.nq
        fx = self.effects
        eng = self._engaged[i]
        arm_diag = np.diag(self._armature)  # J_A with every gear engaged
        for _ in range(nsub):
            q, v = self.qpos[i], self.qvel[i].copy()
            ql, vl = q.tolist(), v.tolist()
            M = np.array(pybullet.calculateMassMatrix(body, ql, physicsClientId=cid))
            bias = np.array(pybullet.calculateInverseDynamics(body, ql, vl, zeros,
                                                              physicsClientId=cid))
            # supply sag from the previous step's currents: V = V_s - R_s sum_k |I_k|
            volts = float(self._supply[i])
            if fx.supply_resistance > 0.0:
                volts -= fx.supply_resistance * float(np.abs(self.motor_current[i, self._sv]).sum())
                volts = max(volts, _MIN_SUPPLY)
            self.supply_now[i] = volts
            v0 = self._impacts(i, M, v) if self._has_play else v
            speed = v0[cols]
            if self._has_play:  # a disengaged rotor turns at its own speed
                speed = np.where(eng, speed, self._rotor_vel[i])
            tau_m = self._motor_torque(i, effort, duty, speed, volts)
            # friction bound per joint, F + stiction at rest [joint units], as an impulse
            lim = self._friction[i].copy()
            if fx.stiction > 0.0:
                lim += self._stiction * (np.abs(v0) < STICK_SPEED)
            lim_l = (lim * dt).tolist()
            tau_pass = self._applied[i] - self._damping[i] * v0 - bias
            for _attempt in range(len(self._sv) + 1):
                # (M + J_A) (v' - v0) / dt = tau_m (engaged) - d v0 - c + f
                J_A = np.diag(self._armature * self._engaged_cols(i)) if self._has_play else arm_diag
                A = np.linalg.inv(M + J_A)
                tau = tau_pass.copy()
                tau[cols] += np.where(eng, tau_m, 0.0) if self._has_play else tau_m
                v_free = v0 + dt * (A @ tau)
                v_new = np.array(_friction_pgs(A.tolist(), v_free.tolist(), lim_l))
                if not self._has_play:
                    break
                # contact torque lambda = tau_m - J_a qddot must push into the contact
                acc = (v_new - v0) / dt
                lam = tau_m - self._armature[cols] * acc[cols]
                pull = eng & (self._half_play > 0) & (lam * np.sign(self._gap[i]) < 0.0)
                if not pull.any():
                    break
                eng[pull] = False
            # PyBullet realises v': tau' = c + M (v' - v) / dt
            tau_pb = bias + M @ ((v_new - v) / dt)
            pybullet.setJointMotorControlArray(body, jidx, pybullet.TORQUE_CONTROL,
                                               forces=tau_pb.tolist(), physicsClientId=cid)
            pybullet.stepSimulation(physicsClientId=cid)
            states = pybullet.getJointStates(body, jidx, physicsClientId=cid)
            self.qpos[i] = [st[0] for st in states]
            self.qvel[i] = [st[1] for st in states]
            if self._has_play:
                self._step_rotors(i, tau_m, v_new)

    def _step_rotors(self, i: int, tau_m: np.ndarray, v_out: np.ndarray) -> None:
        """The motor sides after a step: engaged rotors move with their outputs; free ones by
        J_a qddot_m = tau_m, and the gap by delta' = delta + dt (qdot_m - qdot_out), kept in
        [-h, h] (reaching the side, the teeth collide at the next step)."""
        dt = self.physics_dt
        eng, gap, w = self._engaged[i], self._gap[i], self._rotor_vel[i]
        for k in self._sv:
            col = self._act_cols[k]
            if eng[k]:
                w[k] = v_out[col]
                continue
            w[k] += dt * tau_m[k] / self._armature[col]
            h = self._half_play[k]
            gap[k] = min(max(gap[k] + dt * (w[k] - v_out[col]), -h), h)

    def step(self, ctrl: np.ndarray) -> None:
        """One control period with normalized actions ctrl (B, nu): effort = gear * ctrl."""
        self.step_effort(np.asarray(ctrl) * self._gear, self.nsub)

    def close(self) -> None:
        for c in self._clients:
            c.disconnect()
        self._clients = []
        self._tmp.cleanup()


class TwinEnv(BatchedEnv):
    """The twin with the MuJoCo env's observation/action interface, at fixed hidden params.

    Latency, sensor noise and bias factors are applied by the same env core as in the sim;
    with ``effects.encoder_quantization`` the readings are then rounded to the encoder tick
    and the Present Velocity unit (module docstring).
    """

    def __init__(self, robot: RobotDef, params: np.ndarray, *, task: str | None = None,
                 num_envs: int = 1, seed: int = 0, init: InitSpec | None = None,
                 physics_dt: float = TWIN_PHYSICS_DT, effects: ServoEffects | None = None):
        backend = TwinBackend(robot, num_envs, physics_dt, effects=effects)
        hw = robot.hardware_map
        hjs = [hw.joint(j) for j in robot.joints]
        # q_tick = 2 pi / ticks_per_rev * r, qdot_unit = velocity_unit_rad_s * r
        self._tick = np.array([2.0 * math.pi / h.ticks_per_rev * h.transmission for h in hjs])
        self._vel_unit = np.array([h.velocity_unit_rad_s * h.transmission for h in hjs])
        self._quantize = backend.effects.encoder_quantization
        super().__init__(robot, robot.task(task), backend, params=params, seed=seed,
                         init=init or InitSpec(0.1, 0.1))
        self.reset()

    def _sensor(self, q_meas: np.ndarray, dq_meas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """With encoder quantization, the readings rounded as a servo reports them:
        q = tick * round(q_meas / tick),  qdot = unit * round(qdot_meas / unit)."""
        if not self._quantize:
            return q_meas, dq_meas
        return (np.round(q_meas / self._tick) * self._tick,
                np.round(dq_meas / self._vel_unit) * self._vel_unit)


def make_twin_env(
    robot: str | RobotDef | None = None,
    params: str | Path | np.ndarray | dict[str, float] | None = None,
    *,
    task: str | None = None,
    num_envs: int = 1,
    seed: int = 0,
    init: InitSpec | None = None,
    effects: ServoEffects | None = None,
) -> TwinEnv:
    """Build the twin env. ``params`` is a TOML file path, a {factor: value} dict, an (F,)
    vector, or None for nominal. With a file, ``robot`` may be omitted, and the servo effects
    come from its ``[servo]`` table unless ``effects`` is given."""
    if isinstance(params, str | Path):
        rdef, p, file_fx = load_twin_params(params, robot=None if robot is None else
                                            (robot if isinstance(robot, str) else robot.name))
        effects = effects if effects is not None else file_fx
    else:
        if robot is None:
            raise ValueError("give the robot name, or a params file that names it")
        rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
        if params is None:
            p = nominal_params(rdef)
        elif isinstance(params, dict):
            from robot_meta.sim.randomize import params_from_dict

            p = params_from_dict(rdef, params, "params")
        else:
            p = np.asarray(params, dtype=float)
    return TwinEnv(rdef, p, task=task, num_envs=num_envs, seed=seed, init=init, effects=effects)
