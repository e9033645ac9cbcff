"""The PyBullet twin: the same robot in a different physics engine, with hidden true parameters.

This is the "real robot" of every test and of the demo: the emulator serves its joints as
Dynamixel servos, and :class:`TwinEnv` gives it the same observation and action interface as
the MuJoCo env for direct comparison. It is authored as URDF (``twin.urdf``), never converted
from the MJCF: ``pybullet.loadMJCF`` welds the cartpole hinge and drops the arm's joints.

How each physics factor is realised here (independently of MuJoCo):

* masses and the payload: the URDF's ``<inertial>`` elements are rewritten before loading
  (mass x scale, inertia x scale; payload = point mass at the offset);
* viscous damping: an explicit joint torque tau = -d * qdot, recomputed every physics step;
* Coulomb friction: PyBullet's velocity motor with target 0 and max force = frictionloss;
* motor strength: the commanded effort is multiplied by the hidden gain scale.

Parameter files are TOML: ``robot = "arm2"`` and a ``[params]`` table of factor values
(``robot-meta sim factors ROBOT`` lists them); missing factors are nominal.
"""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from robot_meta.sim.quiet import quiet_stdout

with quiet_stdout():  # PyBullet prints its build time on import
    import pybullet
    from pybullet_utils.bullet_client import BulletClient

from robot_meta.sim.batched_env import BatchedEnv  # noqa: E402
from robot_meta.sim.randomize import load_params_file, nominal_params  # noqa: E402
from robot_meta.sim.robots.robot_def import RobotDef, get_robot  # noqa: E402
from robot_meta.sim.task import InitSpec  # noqa: E402

TWIN_PHYSICS_DT = 0.001  # s: finer than the MuJoCo model's 2 ms, as a real plant would be
_MIN_MASS = 1e-6  # kg: PyBullet wants positive link masses; an empty payload gets this


def _num(x: float) -> str:
    """A float as URDF text (numpy scalars would print as ``np.float64(..)``)."""
    return f"{float(x):.10g}"


class TwinBackend:
    """B independent PyBullet worlds of one robot (usually B = 1).

    Implements :class:`robot_meta.sim.batched_env.PhysicsBackend`, plus ``step_effort`` for the
    emulator, which drives the joints with efforts computed from motor currents.
    """

    def __init__(self, robot: RobotDef, num_envs: int = 1, physics_dt: float = TWIN_PHYSICS_DT):
        self.robot = robot
        self.num_envs = num_envs
        self.physics_dt = physics_dt
        self.nsub = max(1, round(robot.control_dt / physics_dt))
        self.nq = len(robot.joints)
        self.qpos = np.zeros((num_envs, self.nq))
        self.qvel = np.zeros((num_envs, self.nq))
        self.params = np.tile(nominal_params(robot), (num_envs, 1))
        self._urdf = ET.parse(robot.twin_path)
        hw = robot.hardware_map
        self._gear = np.array([hw.joint(j).gear for j in robot.actuated_joints])
        self._act_cols = [robot.joints.index(j) for j in robot.actuated_joints]
        with quiet_stdout():  # and `argv[0]=` on connect
            self._clients = [BulletClient(connection_mode=pybullet.DIRECT)
                             for _ in range(num_envs)]
        self._body = [-1] * num_envs
        self._jidx: list[int] = []
        self._damping = np.zeros((num_envs, self.nq))
        self._strength = np.ones((num_envs, len(self._act_cols)))
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
        # Coulomb friction: a velocity motor toward 0 whose force saturates at the frictionloss.
        c.setJointMotorControlArray(
            body, self._jidx, pybullet.VELOCITY_CONTROL, targetVelocities=[0.0] * self.nq,
            forces=[val[f"{j}_frictionloss"] for j in self.robot.joints])
        self._damping[i] = [val[f"{j}_damping"] for j in self.robot.joints]
        self._strength[i] = [val[f"{j}_strength"] for j in self.robot.actuated_joints]
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

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        for i, q, dq in zip(idx, qpos, qvel, strict=True):
            self._write_state(int(i), q, dq)

    def _read_state(self, i: int) -> None:
        states = self._clients[i].getJointStates(self._body[i], self._jidx)
        self.qpos[i] = [s[0] for s in states]
        self.qvel[i] = [s[1] for s in states]

    def step_effort(self, effort: np.ndarray, nsub: int) -> None:
        """Advance nsub physics steps holding the nominal actuator efforts (B, n_actuated)
        [N*m or N]; the hidden strength scales them. Joint torque per step:
        tau = strength * effort - damping * qdot (Coulomb friction is the velocity motor)."""
        effort = np.asarray(effort, dtype=float).reshape(self.num_envs, -1)
        for i in range(self.num_envs):
            c, body = self._clients[i], self._body[i]
            drive = np.zeros(self.nq)
            drive[self._act_cols] = self._strength[i] * effort[i]
            for _ in range(nsub):
                tau = drive - self._damping[i] * self.qvel[i]
                c.setJointMotorControlArray(body, self._jidx, pybullet.TORQUE_CONTROL,
                                            forces=tau.tolist())
                c.stepSimulation()
                self._read_state(i)

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

    Latency, sensor noise and bias factors are applied by the same env core as in the sim.
    """

    def __init__(self, robot: RobotDef, params: np.ndarray, *, task: str | None = None,
                 num_envs: int = 1, seed: int = 0, init: InitSpec | None = None,
                 physics_dt: float = TWIN_PHYSICS_DT):
        backend = TwinBackend(robot, num_envs, physics_dt)
        super().__init__(robot, robot.task(task), backend, params=params, seed=seed,
                         init=init or InitSpec(0.1, 0.1))
        self.reset()


def make_twin_env(
    robot: str | RobotDef | None = None,
    params: str | Path | np.ndarray | dict[str, float] | None = None,
    *,
    task: str | None = None,
    num_envs: int = 1,
    seed: int = 0,
    init: InitSpec | None = None,
) -> TwinEnv:
    """Build the twin env. ``params`` is a TOML file path, a {factor: value} dict, an (F,)
    vector, or None for nominal. With a file, ``robot`` may be omitted."""
    if isinstance(params, str | Path):
        rdef, p = load_params_file(params, robot=None if robot is None else
                                   (robot if isinstance(robot, str) else robot.name))
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
    return TwinEnv(rdef, p, task=task, num_envs=num_envs, seed=seed, init=init)
