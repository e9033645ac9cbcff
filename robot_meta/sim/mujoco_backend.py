"""B MuJoCo models stepped together by a persistent ``mujoco.rollout.Rollout``.

Each env has its own MjModel copy, so physics factors (friction, mass, payload, motor gain) are
written into that copy's arrays without recompiling; the structure of every copy is identical,
which is what lets ``rollout`` batch them. Inputs and outputs are preallocated.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "disable")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import rollout  # noqa: E402

from robot_meta.sim.robots.robot_def import RobotDef  # noqa: E402


class MujocoBackend:
    """Physics for B envs of one robot. See :class:`robot_meta.sim.batched_env.PhysicsBackend`."""

    def __init__(self, robot: RobotDef, num_envs: int, nthread: int = 2):
        self.robot = robot
        self.num_envs = B = num_envs
        base = mujoco.MjModel.from_xml_path(str(robot.model_path))
        self.base_model = base
        pb = base.body(robot.payload_body).id
        # The payload's COM starts at its body origin, so the compiler marks it "sameframe" and
        # MuJoCo would ignore a run-time body_ipos change; clear the flag to honour the offset.
        base.body_sameframe[pb] = 0
        self.models = []
        for _ in range(B):
            m = mujoco.MjModel.from_xml_path(str(robot.model_path))
            m.body_sameframe[pb] = 0
            self.models.append(m)
        self.nthread = max(0, min(nthread, B))
        self.datas = [mujoco.MjData(base) for _ in range(max(1, self.nthread))]
        self._pool = rollout.Rollout(nthread=self.nthread)
        # One contiguous chunk of envs per thread: fewer thread-pool tasks per control step.
        self.chunk_size = max(1, -(-B // max(1, self.nthread)))
        self.nsub = robot.substeps
        self.nq, self.nv, self.nu = base.nq, base.nv, base.nu
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.nstate = mujoco.mj_stateSize(base, spec)
        # FULLPHYSICS layout: [time, qpos (nq), qvel (nv), act, ...]; this robot has no act/mocap.
        self.state0 = np.zeros((B, self.nstate))
        self._state_out = np.zeros((B, self.nsub, self.nstate))
        self._ctrl = np.zeros((B, self.nsub, self.nu))
        self.qpos = self.state0[:, 1 : 1 + self.nq]
        self.qvel = self.state0[:, 1 + self.nq : 1 + self.nq + self.nv]

        # Indices used to apply factors.
        self._jnt_dof = {robot.joints[i]: base.jnt_dofadr[base.joint(j).id]
                         for i, j in enumerate(robot.joints)}
        self._body = {b: base.body(b).id for b in (*robot.links, robot.payload_body)}
        self._act = {j: base.actuator(a).id
                     for j, a in zip(robot.actuated_joints, robot.actuators, strict=True)}
        self._mass0 = base.body_mass.copy()
        self._inertia0 = base.body_inertia.copy()
        self._ipos0 = base.body_ipos.copy()
        self._gear0 = base.actuator_gear[:, 0].copy()
        self._axis = np.asarray(robot.payload_axis, dtype=float)
        self.params = np.zeros((B, len(robot.factors)))
        # (column, kind, model index) for every physics factor, resolved once.
        index = {"dof_damping": self._jnt_dof, "dof_frictionloss": self._jnt_dof,
                 "mass_scale": self._body, "payload_mass": self._body,
                 "payload_offset": self._body, "motor_strength": self._act}
        self._ops = [(c, f.kind, int(index[f.kind][f.target]))
                     for c, f in enumerate(robot.factors) if f.is_physics]

    def set_params(self, idx: np.ndarray, params: np.ndarray) -> None:
        """Write the physics factors of params (k, F) into the models of envs idx."""
        self.params[idx] = params
        for i, p in zip(idx, params, strict=True):
            m = self.models[i]
            for col, kind, k in self._ops:
                x = p[col]
                if kind == "dof_damping":
                    m.dof_damping[k] = x
                elif kind == "dof_frictionloss":
                    m.dof_frictionloss[k] = x
                elif kind == "mass_scale":
                    m.body_mass[k] = self._mass0[k] * x
                    m.body_inertia[k] = self._inertia0[k] * x
                elif kind == "payload_mass":
                    m.body_mass[k] = x  # a point mass: zero rotational inertia
                elif kind == "payload_offset":
                    m.body_ipos[k] = self._ipos0[k] + x * self._axis
                elif kind == "motor_strength":
                    m.actuator_gear[k, 0] = self._gear0[k] * x

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.state0[idx, 0] = 0.0
        self.qpos[idx] = qpos
        self.qvel[idx] = qvel

    def step(self, ctrl: np.ndarray) -> None:
        """One control period: nsub physics steps with ctrl held, via one batched rollout."""
        self._ctrl[:] = ctrl[:, None, :]
        self._pool.rollout(self.models, self.datas, self.state0, self._ctrl,
                           skip_checks=True, nstep=self.nsub, state=self._state_out,
                           chunk_size=self.chunk_size)
        self.state0[:] = self._state_out[:, -1]

    def close(self) -> None:
        self._pool.close()
