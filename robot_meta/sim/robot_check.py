"""``robot-meta robot check``: is a robot folder consistent and ready to train?

Each check returns a :class:`CheckResult` (name, ok, detail); :func:`check_robot` runs them
all and never raises on a bad folder (a check that cannot run fails with the reason):

- ``robot.toml``: robot.toml, tasks.py and families.toml's ``all`` family build a RobotDef;
- ``mjcf``: model.xml compiles in MuJoCo, with no textures or materials (each per-env model
  copy stays small) and its timestep equal to robot.toml's physics_dt;
- ``urdf``: twin.urdf loads in PyBullet (DIRECT);
- ``names``: joint, actuator, sensor and body names agree across robot.toml, MJCF and URDF
  (joints in observation order, actuators in action order, each actuator on its joint);
- ``hardware``: each MJCF actuator's gear is the hardware map's effort per unit action
  (K_t * max_current / transmission) and the MJCF joint friction is robot.toml's nominal;
- ``inertia``: the URDF links have the MJCF bodies' masses, inertias and centres of mass;
- ``families``: every family's factors exist and lie in their bounds, and the headline
  family is named;
- ``tasks``: every task of tasks.py builds, with as many observation names as it observes;
- ``twin``: MuJoCo and the twin agree at nominal parameters on a short open-loop trajectory:
  ``HORIZON`` control steps of sine actions from robot.toml's ``[check].start``, joint
  positions within ``TWIN_TOL`` (rad or m). The tolerance is the one of tests/sim/test_twin.py:
  measured gaps on the bundled robots are below 0.007 (0.01 on the servo envelope); the rest is
  the engines' (a hard friction constraint and 1 ms explicit steps in the twin vs MuJoCo's soft
  frictionloss and 5 ms steps).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robot_meta.sim.robots.robot_def import RobotDef

HORIZON = 25  # control steps of the twin comparison (0.5 s at 50 Hz)
TWIN_TOL = 0.02  # rad or m: the largest joint-position gap allowed between MuJoCo and the twin
MIN_MOTION = 0.01  # rad or m: the comparison's trajectory must move at least this much
INERTIA_RTOL = 1e-4


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``detail`` says what was found, or why it failed."""

    check: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckFailed(Exception):
    """Raised inside a check to fail it with a reason."""


def _mjcf(rdef: RobotDef) -> Any:
    import mujoco

    return mujoco.MjModel.from_xml_path(str(rdef.model_path))


def _urdf(rdef: RobotDef) -> tuple[dict[str, ET.Element], set[str]]:
    root = ET.parse(rdef.twin_path).getroot()
    links = {str(e.get("name")): e for e in root.iter("link")}
    joints = {str(e.get("name")) for e in root.iter("joint")}
    return links, joints


def check_mjcf(rdef: RobotDef) -> str:
    """model.xml compiles, has no textures or materials, and steps at physics_dt."""
    m = _mjcf(rdef)
    if m.ntex or m.nmat:
        raise CheckFailed(f"{m.ntex} textures and {m.nmat} materials: author the MJCF without them "
                          "(each per-env model copy grows by megabytes)")
    if not math.isclose(m.opt.timestep, rdef.physics_dt, rel_tol=1e-9):
        raise CheckFailed(f"timestep {m.opt.timestep:g} s differs from robot.toml's physics_dt "
                          f"{rdef.physics_dt:g} s")
    return f"{m.njnt} joints, {m.nu} actuators, {m.nbody} bodies, timestep {m.opt.timestep:g} s"


def check_urdf(rdef: RobotDef) -> str:
    """twin.urdf loads in PyBullet (DIRECT) with a joint for each of the robot's joints."""
    from robot_meta.sim.quiet import quiet_stdout

    with quiet_stdout():  # PyBullet prints its build time on import and argv[0]= on connect
        import pybullet
        from pybullet_utils.bullet_client import BulletClient

        c = BulletClient(connection_mode=pybullet.DIRECT)
    try:
        body = c.loadURDF(str(rdef.twin_path), useFixedBase=True,
                          flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
        names = [c.getJointInfo(body, i)[1].decode() for i in range(c.getNumJoints(body))]
    except pybullet.error as e:
        raise CheckFailed(f"PyBullet cannot load {rdef.twin_path.name}: {e}") from e
    finally:
        c.disconnect()
    return f"{len(names)} joints: {', '.join(names)}"


def check_names(rdef: RobotDef) -> str:
    """Joint, actuator, sensor and body names agree across robot.toml, MJCF and URDF."""
    import mujoco

    from robot_meta.robot_toml import load_robot_toml

    m = _mjcf(rdef)
    problems = []
    mj_joints = [m.joint(i).name for i in range(m.njnt)]
    if mj_joints != list(rdef.joints):
        problems.append(f"MJCF joints {mj_joints} != robot.toml joints {list(rdef.joints)}")
    mj_acts = [m.actuator(i).name for i in range(m.nu)]
    if mj_acts != list(rdef.actuators):
        problems.append(f"MJCF actuators {mj_acts} != robot.toml actuators {list(rdef.actuators)}")
    else:
        for a, j in zip(rdef.actuators, rdef.actuated_joints, strict=True):
            act = m.actuator(a)
            if act.trntype[0] != mujoco.mjtTrn.mjTRN_JOINT or m.joint(act.trnid[0]).name != j:
                problems.append(f"MJCF actuator {a!r} does not drive joint {j!r}")
    mj_sensors = [m.sensor(i).name for i in range(m.nsensor)]
    spec_sensors = list(load_robot_toml(rdef.folder).sensors)
    if mj_sensors != spec_sensors:
        problems.append(f"MJCF sensors {mj_sensors} != robot.toml sensors {spec_sensors}")
    links, joints = _urdf(rdef)
    missing = [j for j in rdef.joints if j not in joints]
    if missing:
        problems.append(f"URDF has no joint(s) {missing}")
    for body in (*rdef.links, rdef.payload_body):
        if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, body) < 0:
            problems.append(f"MJCF has no body {body!r}")
        if body not in links:
            problems.append(f"URDF has no link {body!r}")
    if problems:
        raise CheckFailed("; ".join(problems))
    return (f"joints {', '.join(rdef.joints)}; actuators {', '.join(rdef.actuators)}; "
            f"{len(mj_sensors)} sensors; links {', '.join(rdef.links)} + {rdef.payload_body}")


def check_hardware(rdef: RobotDef) -> str:
    """MJCF gears and joint friction match the hardware map and robot.toml's nominal values."""
    m = _mjcf(rdef)
    hw = rdef.hardware_map
    problems = []
    for j, a in zip(rdef.actuated_joints, rdef.actuators, strict=True):
        gear, want = float(m.actuator(a).gear[0]), hw.joint(j).gear
        if not math.isclose(gear, want, rel_tol=1e-4):
            problems.append(f"actuator {a!r} gear {gear:g} != K_t * max_current_a / transmission "
                            f"= {want:.6g} (robot.toml joint {j!r})")
    for f in rdef.factors:
        if f.kind in ("dof_damping", "dof_frictionloss"):
            field = "damping" if f.kind == "dof_damping" else "frictionloss"
            got = float(getattr(m, f"dof_{field}")[m.joint(f.target).dofadr[0]])
            if not math.isclose(got, f.nominal, rel_tol=1e-6, abs_tol=1e-12):
                problems.append(f"MJCF joint {f.target!r} {field} {got:g} != robot.toml {f.nominal:g}")
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{len(rdef.actuators)} actuator gears and {len(rdef.joints)} joints' friction agree"


def check_inertia(rdef: RobotDef) -> str:
    """URDF links have the MJCF bodies' masses, inertias and centres of mass."""
    m = _mjcf(rdef)
    links, _ = _urdf(rdef)
    problems = []
    for body in rdef.links:
        inertial = links[body].find("inertial") if body in links else None
        if inertial is None:
            problems.append(f"URDF link {body!r} has no <inertial>")
            continue
        mass_el, inertia_el, origin_el = (inertial.find(k) for k in ("mass", "inertia", "origin"))
        if mass_el is None or inertia_el is None:
            problems.append(f"URDF link {body!r}: <inertial> needs <mass> and <inertia>")
            continue
        mass = float(mass_el.get("value", "nan"))
        diag = np.array([float(inertia_el.get(k, "nan")) for k in ("ixx", "iyy", "izz")])
        xyz = "0 0 0" if origin_el is None else origin_el.get("xyz", "0 0 0")
        com = np.array([float(x) for x in xyz.split()])
        mb = m.body(body)
        if not math.isclose(mass, float(mb.mass[0]), rel_tol=INERTIA_RTOL):
            problems.append(f"{body}: URDF mass {mass:g} != MJCF {float(mb.mass[0]):g}")
        if not np.allclose(diag, mb.inertia, rtol=INERTIA_RTOL, atol=0.0):
            problems.append(f"{body}: URDF inertia {diag.tolist()} != MJCF {mb.inertia.tolist()}")
        if not np.allclose(com, mb.ipos, atol=1e-9):
            problems.append(f"{body}: URDF COM {com.tolist()} != MJCF {mb.ipos.tolist()}")
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{len(rdef.links)} links agree (rtol {INERTIA_RTOL:g})"


def check_families(rdef: RobotDef) -> str:
    """Every family parses against the robot's factors; the headline family exists."""
    from robot_meta.sim.randomize import headline_family, load_families

    fams = load_families(rdef)
    if "all" not in fams:
        raise CheckFailed("families.toml has no `all` family (its training ranges normalize the "
                          "factors)")
    head = headline_family(rdef)
    return f"{len(fams)} families ({', '.join(fams)}), headline {head!r}"


def check_tasks(rdef: RobotDef) -> str:
    """Every task of tasks.py builds and names each observation."""
    for name in rdef.tasks:
        task = rdef.task(name)
        if not task.obs_names:
            raise CheckFailed(f"task {name!r} has no obs_names")
    return f"tasks {', '.join(rdef.tasks)} (default {rdef.default_task!r})"


def twin_gap(robot: Any, values: dict[str, float] | None = None, *,
             start: Any = None, amplitude: float | None = None,
             horizon: int = HORIZON) -> tuple[float, float]:
    """Run the same open-loop sine actions in MuJoCo and in the twin at equal parameters
    (``values``: factor -> value, nominal elsewhere) from ``start`` (default robot.toml's
    ``[check].start``, else the rest pose) and return (largest joint-position gap, largest
    peak-to-peak joint motion in MuJoCo). Actions a_k(t) = amp sin(2 pi (0.7 + 0.3 k) t)."""
    from robot_meta.robot_toml import load_robot_toml
    from robot_meta.sim import make_twin_env, make_vec_env
    from robot_meta.sim.randomize import params_from_dict
    from robot_meta.sim.robots.robot_def import RobotDef, get_robot

    rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
    spec = load_robot_toml(rdef.folder)
    q0 = np.asarray(start if start is not None else
                    (spec.check.start or [rdef.rest_pose[j] for j in rdef.joints]), dtype=float)
    amp = amplitude if amplitude is not None else spec.check.amplitude
    sim = make_vec_env(rdef, "all", 1, nthread=0)
    p = params_from_dict(rdef, values or {}, "values")
    sim.set_tasks(p)
    twin = make_twin_env(rdef, p)
    try:
        t = np.arange(horizon) * rdef.control_dt
        acts = np.stack([amp * np.sin(2 * np.pi * (0.7 + 0.3 * k) * t)
                         for k in range(sim.action_dim)], axis=1)
        a = _open_loop(sim, q0, acts)
        b = _open_loop(twin, q0, acts)
    finally:
        twin.close()
        sim.close()
    return float(np.abs(a - b).max()), float(np.ptp(a, axis=0).max())


def _open_loop(env: Any, q0: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Joint positions (T, nq) of env 0 after each action, from (q0, 0), bypassing the env
    core (no latency or noise)."""
    B = env.num_envs
    env.backend.set_state(np.arange(B), np.tile(q0, (B, 1)), np.zeros((B, len(q0))))
    out = []
    for a in actions:
        env.backend.step(np.tile(a, (B, 1)))
        out.append(env.backend.qpos[0].copy())
    return np.array(out)


def check_twin(rdef: RobotDef) -> str:
    """MuJoCo and the twin agree at nominal parameters on a short open-loop trajectory."""
    gap, motion = twin_gap(rdef)
    if motion < MIN_MOTION:
        raise CheckFailed(f"the trajectory barely moves ({motion:.4f} < {MIN_MOTION}); raise "
                          "robot.toml [check].amplitude or move [check].start")
    if not gap < TWIN_TOL:
        raise CheckFailed(f"MuJoCo and the twin differ by {gap:.4f} (tolerance {TWIN_TOL}) over "
                          f"{HORIZON} steps: compare model.xml and twin.urdf (geometry, masses, "
                          "axes, friction)")
    return f"gap {gap:.4f} < {TWIN_TOL} over {HORIZON} steps (motion {motion:.3f})"


CHECKS: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("mjcf", check_mjcf),
    ("urdf", check_urdf),
    ("names", check_names),
    ("hardware", check_hardware),
    ("inertia", check_inertia),
    ("families", check_families),
    ("tasks", check_tasks),
    ("twin", check_twin),
)


def check_robot(path: str | Path) -> list[CheckResult]:
    """Run every check on the robot folder (or registered name) ``path``. A check that fails
    or cannot run is reported with its reason; the rest still run when the robot builds."""
    from robot_meta.errors import UserError
    from robot_meta.sim.robots.robot_def import get_robot

    try:
        rdef = get_robot(path)
    except (UserError, ValueError, OSError, ImportError, SyntaxError, KeyError) as e:
        return [CheckResult("robot.toml", False, f"cannot build the robot: {e}")]
    out = [CheckResult("robot.toml", True, f"robot {rdef.name!r} in {rdef.folder}: "
                       f"{len(rdef.joints)} joints, {len(rdef.actuators)} actuators, "
                       f"{len(rdef.factors)} factors")]
    for name, fn in CHECKS:
        try:
            out.append(CheckResult(name, True, fn(rdef)))
        except CheckFailed as e:
            out.append(CheckResult(name, False, str(e)))
        except Exception as e:  # noqa: BLE001 - a broken file must not stop the other checks
            out.append(CheckResult(name, False, f"{type(e).__name__}: {e}"))
    return out
