"""The ``joint_force`` factor kind (the cartpole's ``slider_force``): a constant generalized
force on one joint, applied by MuJoCo (``qfrc_applied``) and by the PyBullet twin (a joint
torque every physics step) alike, checked by the feasibility rule, and randomized by the
``rail`` family."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robot_meta.sim import make_vec_env
from robot_meta.sim.feasibility import check_family
from robot_meta.sim.mujoco_backend import MujocoBackend
from robot_meta.sim.randomize import Distribution, SpecError, load_family, params_from_dict
from robot_meta.sim.robots import get_robot
from robot_meta.sim.servo_physics import servo_joints
from robot_meta.sim.twin import TwinBackend


def _drift(backend: MujocoBackend | TwinBackend, force: float, steps: int = 25) -> np.ndarray:
    """(q, qdot) of the cart after ``steps`` control periods of zero action from rest, the pole
    hanging, with slider_force = force."""
    rdef = backend.robot
    p = params_from_dict(rdef, {"slider_force": force}, "test")
    backend.set_params(np.array([0]), p[None])
    backend.set_state(np.array([0]), np.array([[0.0, np.pi]]), np.zeros((1, 2)))
    for _ in range(steps):
        backend.step(np.zeros((1, 1)))
    out = np.array([backend.qpos[0, 0], backend.qvel[0, 0]])
    backend.close()
    return out


@pytest.mark.parametrize("force", [2.0, -1.5])
def test_mujoco_and_the_twin_push_the_cart_alike(force: float) -> None:
    rdef = get_robot("cartpole")
    mj = _drift(MujocoBackend(rdef, 1, nthread=0), force)
    pb = _drift(TwinBackend(rdef, 1, 0.001), force)
    # x(t) ~ (F - F_c) t^2 / (2 m_eff) over 0.5 s: m_eff = cart + pole + the rotor's 0.41 kg
    assert np.sign(mj[0]) == np.sign(force) and abs(mj[0]) > 0.05
    assert pb == pytest.approx(mj, rel=0.03)
    assert np.abs(_drift(MujocoBackend(rdef, 1, nthread=0), 0.0)).max() < 1e-9


def test_state_resets_keep_the_force_and_set_params_changes_it() -> None:
    rdef = get_robot("cartpole")
    be = MujocoBackend(rdef, 3, nthread=0)
    col = rdef.factor_names.index("slider_force")
    p = np.tile(params_from_dict(rdef, {}, "test"), (3, 1))
    p[:, col] = [1.0, 0.0, -2.0]
    be.set_params(np.arange(3), p)
    be.set_state(np.arange(3), np.tile([0.0, np.pi], (3, 1)), np.zeros((3, 2)))
    assert be.qfrc_applied[:, 0].tolist() == [1.0, 0.0, -2.0]
    p[1, col] = 0.5
    be.set_params(np.array([1]), p[1:2])  # one env redrawn, as an auto-reset does
    assert be.qfrc_applied[:, 0].tolist() == [1.0, 0.5, -2.0]
    be.close()


def test_rail_family_randomizes_the_force_and_feasibility_bounds_it() -> None:
    rdef = get_robot("cartpole")
    env = make_vec_env("cartpole", "rail", 64, seed=0, task="shift")
    f = env.params[:, rdef.factor_names.index("slider_force")]
    env.close()
    assert f.min() < -1.0 and f.max() > 1.0 and np.abs(f).max() <= 2.0
    fam = load_family(rdef, "rail")
    check_family(rdef, fam)  # +-2 N against the drive's 10 N: holdable
    too_much = dataclasses.replace(fam, name="steep", train={
        **fam.train, "slider_force": Distribution("uniform", -12.0, 1.0)})
    with pytest.raises(SpecError, match="slider_force up to -12 N.*joint 'slider'"):
        check_family(rdef, too_much)


def test_the_ideal_twin_applies_the_force_as_a_joint_torque() -> None:
    """On a robot without servo physics the twin adds the force to the joint torque: slider_force
    F with no drive moves the cart exactly as a drive effort F with no force."""
    rdef = dataclasses.replace(get_robot("cartpole"), actuator_model="ideal")
    assert servo_joints(rdef) == []  # the twin's ideal-joint path
    runs = []
    for force, effort in ((1.5, 0.0), (0.0, 1.5)):
        be = TwinBackend(rdef, 1, 0.001)
        p = params_from_dict(rdef, {"slider_force": force}, "test")
        be.set_params(np.array([0]), p[None])
        be.set_state(np.array([0]), np.array([[0.0, np.pi]]), np.zeros((1, 2)))
        for _ in range(10):
            be.step_effort(np.array([[effort]]), be.nsub)
        runs.append(np.concatenate([be.qpos[0], be.qvel[0]]))
        be.close()
    assert runs[0][0] > 0.01
    assert np.array_equal(runs[0], runs[1])
