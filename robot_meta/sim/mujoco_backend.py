"""B MuJoCo simulations of one robot, stepped together by a persistent ``mujoco.batch.Batch``.

Each env is one simulation of the batch: its state is a row of the batch's state array, and its
physics factors (friction, mass, payload, motor gain) are per-simulation values of the model
fields they act on (``Batch.expand``), written without recompiling; the structure of every
simulation is identical, which is what lets the batch step them together.

Why a batch rather than ``mujoco.rollout``: rollout is a function on open-loop trajectories, so
a closed loop calls it once per control period, and every call re-injects each env's state,
dispatches to a pool whose caller only waits, and (for per-env parameters) reads a list of B
models. The batch keeps the simulations between calls, runs on its threads *and* the caller's,
and its per-simulation model fields are numpy arrays, so a reset writes them in a few vectorized
assignments instead of a Python loop over models. An applied joint force (``joint_force``) is
not a model field: it is the simulation's ``qfrc_applied`` row, which state resets keep.

Numerically each control period is exactly what ``mujoco.rollout`` computed for this env before:
the state row is loaded, the control is held for ``substeps`` calls of ``mj_step``, and the
constraint solver's warmstart is zeroed at the start of each period, as rollout does.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "disable")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import batch  # noqa: E402

from robot_meta.sim.blas_threads import BLAS_LIMIT  # noqa: E402
from robot_meta.sim.robots.robot_def import RobotDef  # noqa: E402
from robot_meta.sim.servo_physics import DCMOTOR_VOLTAGE_PRM, build_model  # noqa: E402

# The model fields physics factors write, in the order of MujocoBackend._fields.
_FIELDS = ("dof_damping", "dof_frictionloss", "body_mass", "body_inertia", "body_ipos",
           "actuator_gear", "actuator_gainprm")
_FEW = 4  # up to this many envs, set_params writes scalars env by env


class MujocoBackend:
    """Physics for B envs of one robot. See :class:`robot_meta.sim.batched_env.PhysicsBackend`.

    Args:
        robot: the robot definition.
        num_envs: B.
        nthread: threads stepping the simulations, the caller's included (0 or 1: the calling
            thread only). With 2 or more, numpy's BLAS runs on one thread until ``close()``
            (see :mod:`robot_meta.sim.blas_threads`).
    """

    def __init__(self, robot: RobotDef, num_envs: int, nthread: int = 2):
        self.robot = robot
        self.num_envs = B = num_envs
        base = build_model(robot)
        pb = base.body(robot.payload_body).id
        # The payload's COM starts at its body origin, so the compiler marks it "sameframe" and
        # MuJoCo would ignore a run-time body_ipos change; clear the flag to honour the offset.
        base.body_sameframe[pb] = 0
        self.base_model = base
        self.nthread = max(0, min(nthread, B))
        self._batch = batch.Batch(base, B, nthread=max(1, self.nthread))
        # With a pool on several cores, numpy's BLAS threads (a policy's matrix products between
        # steps) would spin on the same cores: BLAS runs on one thread while this backend is open.
        self._holds_blas = self.nthread >= 2
        if self._holds_blas:
            BLAS_LIMIT.acquire()
        self.nsub = robot.substeps
        self.nq, self.nv, self.nu = base.nq, base.nv, base.nu
        b = self._batch
        # Live (B, ...) views of the simulations' state rows: a write is the simulation's state
        # at its next step.
        self.qpos = b.bind("qpos")
        self.qvel = b.bind("qvel")
        self._time = b.bind("time")
        self._ctrl = b.bind("ctrl")
        self._warmstart = b.bind("qacc_warmstart")

        # Indices used to apply factors.
        self._jnt_dof = {robot.joints[i]: base.jnt_dofadr[base.joint(j).id]
                         for i, j in enumerate(robot.joints)}
        self._body = {n: base.body(n).id for n in (*robot.links, robot.payload_body)}
        self._act = {j: base.actuator(a).id
                     for j, a in zip(robot.actuated_joints, robot.actuators, strict=True)}
        self._mass0 = base.body_mass.copy()
        self._inertia0 = base.body_inertia.copy()
        self._ipos0 = base.body_ipos.copy()
        self._gear0 = base.actuator_gear[:, 0].copy()
        self._axis = np.asarray(robot.payload_axis, dtype=float)
        self.params = np.zeros((B, len(robot.factors)))
        # Every physics factor as writes of model values v = a + s * x (x the factor value) into
        # model fields, resolved once:
        #   dof_damping, dof_frictionloss, payload_mass:  v = x
        #   mass_scale:      body_mass = m0 x,  body_inertia = I0 x  (3 entries)
        #   payload_offset:  body_ipos = p0 + x axis  (3 entries)
        #   motor_strength:  actuator_gear[:, 0] = g0 x  (for a <dcmotor> this scales the motor
        #                    constant: stall torque x, no-load speed / x, current-limit torque x)
        #   supply_voltage:  actuator_gainprm[k, 7] = x for every <dcmotor> actuator k
        #   joint_force:     qfrc_applied[dof] = x (a data field, kept by state resets)
        dcmotors = np.flatnonzero(base.actuator_gaintype == mujoco.mjtGain.mjGAIN_DCMOTOR)
        nprm = base.actuator_gainprm.shape[1]
        index = {"dof_damping": self._jnt_dof, "dof_frictionloss": self._jnt_dof,
                 "mass_scale": self._body, "payload_mass": self._body,
                 "payload_offset": self._body, "motor_strength": self._act, "supply_voltage": {"": 0}}
        writes: list[tuple[int, int, int, float, float]] = []  # (field, flat index, col, a, s)
        force = [(col, self._jnt_dof[f.target]) for col, f in enumerate(robot.factors)
                 if f.kind == "joint_force"]
        self._f_col = np.array([c for c, _ in force], dtype=np.intp)
        self._f_dof = np.array([d for _, d in force], dtype=np.intp)
        self._qfrc = b.bind("qfrc_applied") if force else None
        for col, f in enumerate(robot.factors):
            if not f.is_physics or f.kind == "joint_force":
                continue
            k = int(index[f.kind][f.target])
            if f.kind in ("dof_damping", "dof_frictionloss"):
                writes.append((_FIELDS.index(f.kind), k, col, 0.0, 1.0))
            elif f.kind == "mass_scale":
                writes.append((2, k, col, 0.0, float(self._mass0[k])))
                writes += [(3, 3 * k + j, col, 0.0, float(self._inertia0[k, j])) for j in range(3)]
            elif f.kind == "payload_mass":
                writes.append((2, k, col, 0.0, 1.0))  # a point mass: zero rotational inertia
            elif f.kind == "payload_offset":
                writes += [(4, 3 * k + j, col, float(self._ipos0[k, j]), float(self._axis[j]))
                           for j in range(3)]
            elif f.kind == "motor_strength":
                writes.append((5, k * base.actuator_gear.shape[1], col, 0.0, float(self._gear0[k])))
            elif f.kind == "supply_voltage":
                writes += [(6, int(a) * nprm + DCMOTOR_VOLTAGE_PRM, col, 0.0, 1.0) for a in dcmotors]
        self._w_col = np.array([w[2] for w in writes], dtype=np.intp)
        self._w_a = np.array([w[3] for w in writes])
        self._w_s = np.array([w[4] for w in writes])
        # Per field: the (B, size) per-simulation values (views of the batch's), and which
        # writes go where in them.
        self._targets = []
        fields = {}
        for fi, name in enumerate(_FIELDS):
            mine = [n for n, w in enumerate(writes) if w[0] == fi]
            if mine:
                fields[fi] = b.expand(name).reshape(B, -1)
                self._targets.append((fields[fi], np.array([writes[n][1] for n in mine]),
                                      np.array(mine, dtype=np.intp)))
        # The same writes as (row view, index) per env, for resets of a few envs: scalar writes
        # then cost less than one vectorized assignment per field.
        self._env_writes = [[(fields[w[0]][i], w[1]) for w in writes] for i in range(B)]

    @property
    def models(self) -> list[mujoco.MjModel]:
        """Copies of the B simulations' models, with their factors (for inspection)."""
        return [self._batch.get_model(i) for i in range(self.num_envs)]

    @property
    def qfrc_applied(self) -> np.ndarray:
        """(B, nv) the generalized forces the ``joint_force`` factors apply (zeros without)."""
        if self._qfrc is None:
            return np.zeros((self.num_envs, self.nv))
        return self._qfrc

    def full_physics_state(self) -> np.ndarray:
        """The simulations' states as ``mjSTATE_FULLPHYSICS`` vectors (B, nstate), the layout
        ``mujoco.rollout`` takes. It holds no ``qfrc_applied``: a rollout from it runs without
        the ``joint_force`` factors."""
        m, d = self.base_model, mujoco.MjData(self.base_model)
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        out = np.zeros((self.num_envs, mujoco.mj_stateSize(m, spec)))
        for i in range(self.num_envs):
            self._batch.get_data(i, d)
            mujoco.mj_getState(m, d, out[i], spec)
        return out

    def set_params(self, idx: np.ndarray, params: np.ndarray) -> None:
        """Write the physics factors of params (k, F) into the simulations idx."""
        ids = np.asarray(idx).tolist()
        if self._qfrc is not None:
            self._qfrc[np.asarray(idx)[:, None], self._f_dof] = params[:, self._f_col]
        values = self._w_a + self._w_s * params[:, self._w_col]  # (k, writes)
        if len(ids) <= _FEW:
            for i, row, p in zip(ids, values.tolist(), params, strict=True):
                self.params[i] = p
                for (view, j), v in zip(self._env_writes[i], row, strict=True):
                    view[j] = v
        else:
            self.params[idx] = params
            rows = np.asarray(idx)[:, None]
            for field, at, which in self._targets:
                field[rows, at] = values[:, which]

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        if len(idx) == 1:  # the usual auto-reset: basic indexing is several times faster
            i = int(idx[0])
            idx = slice(i, i + 1)  # type: ignore[assignment]
        self._time[idx] = 0.0
        self.qpos[idx] = qpos
        self.qvel[idx] = qvel

    def step(self, ctrl: np.ndarray) -> None:
        """One control period: nsub physics steps of every env with ctrl held."""
        self._ctrl[:] = ctrl
        self._warmstart[:] = 0.0  # each period starts the solver cold, as mujoco.rollout does
        self._batch.step(nstep=self.nsub)

    def close(self) -> None:
        """Release the batch (its threads stop once nothing refers to it; the bound arrays
        do, so they are dropped too)."""
        self._batch = None  # type: ignore[assignment]
        if self._holds_blas:
            self._holds_blas = False
            BLAS_LIMIT.release()
        self._targets, self._env_writes = [], []
        empty = np.zeros((0, self.nq))
        self.qpos, self.qvel = empty, empty.copy()
        self._time = self._ctrl = self._warmstart = np.zeros(0)
        self._qfrc = None
