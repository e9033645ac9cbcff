"""The robot files agree with each other: MJCF, URDF twin, constants and hardware maps."""

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from robot_meta.hardware.hardware_map import load_hardware_map
from robot_meta.sim.robots import ROBOT_NAMES, get_robot


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_mjcf_matches_constants_and_hardware_map(robot: str) -> None:
    rdef = get_robot(robot)
    m = mujoco.MjModel.from_xml_path(str(rdef.model_path))
    assert m.ntex == 0 and m.nmat == 0  # no textures or materials (each copy stays small)
    assert [m.joint(i).name for i in range(m.njnt)] == list(rdef.joints)
    assert [m.actuator(i).name for i in range(m.nu)] == list(rdef.actuators)
    assert m.opt.timestep == pytest.approx(rdef.physics_dt)
    hw = load_hardware_map(robot)
    assert hw.joint_names == rdef.joints
    assert tuple(j.joint for j in hw.actuated) == rdef.actuated_joints
    for j, a in zip(rdef.actuated_joints, rdef.actuators, strict=True):
        # gear (effort per unit action) = torque constant * max current / transmission
        assert m.actuator(a).gear[0] == pytest.approx(hw.joint(j).gear, rel=1e-4)
        assert hw.joint(j).gear == pytest.approx(hw.joint(j).effort_limit, rel=1e-4)
    for f in rdef.factors:
        if f.kind == "dof_damping":
            assert m.dof_damping[m.joint(f.target).dofadr[0]] == pytest.approx(f.nominal)
        if f.kind == "dof_frictionloss":
            assert m.dof_frictionloss[m.joint(f.target).dofadr[0]] == pytest.approx(f.nominal)


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_urdf_twin_has_the_same_masses_and_inertias(robot: str) -> None:
    rdef = get_robot(robot)
    m = mujoco.MjModel.from_xml_path(str(rdef.model_path))
    links = {e.get("name"): e for e in ET.parse(rdef.twin_path).getroot().iter("link")}
    joints = {e.get("name") for e in ET.parse(rdef.twin_path).getroot().iter("joint")}
    assert set(rdef.joints) <= joints
    for body in rdef.links:
        inertial = links[body].find("inertial")
        mass = float(inertial.find("mass").get("value"))
        inertia = inertial.find("inertia")
        diag = np.array([float(inertia.get(k)) for k in ("ixx", "iyy", "izz")])
        com = np.array([float(x) for x in inertial.find("origin").get("xyz").split()])
        assert mass == pytest.approx(m.body(body).mass[0])
        np.testing.assert_allclose(diag, m.body(body).inertia, rtol=1e-4)
        np.testing.assert_allclose(com, m.body(body).ipos, atol=1e-9)


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_hardware_map_conversions_round_trip(robot: str) -> None:
    for j in load_hardware_map(robot).joints:
        for q in (-0.5, 0.0, 0.37):
            assert j.ticks_to_position(j.position_to_ticks(q)) == pytest.approx(q, abs=2e-3)
        assert j.raw_to_velocity(j.velocity_to_raw(1.0)) == pytest.approx(1.0, rel=0.03)
        if j.actuated:
            amps = j.effort_to_current(j.effort_limit)
            assert amps == pytest.approx(j.max_current_a, rel=1e-3)
            assert abs(j.raw_to_current(j.current_to_raw(amps))) <= amps
