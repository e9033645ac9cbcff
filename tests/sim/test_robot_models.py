"""The robot files agree with each other: MJCF, URDF twin, constants and hardware maps."""

import shutil
from pathlib import Path

import pytest

from robot_meta.hardware.hardware_map import load_hardware_map
from robot_meta.robot_registry import unregister_robot
from robot_meta.sim.robot_check import (
    CheckFailed,
    check_hardware,
    check_inertia,
    check_mjcf,
    check_names,
    check_urdf,
)
from robot_meta.sim.robots import ROBOT_NAMES, get_robot


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_mjcf_matches_robot_toml_and_hardware_map(robot: str) -> None:
    """`robot check`'s library: MJCF compiles without textures at physics_dt, its joint and
    actuator names and order are robot.toml's, its gears are K_t * max_current / transmission,
    its joint friction the nominal values."""
    rdef = get_robot(robot)
    for check in (check_mjcf, check_names, check_hardware):
        check(rdef)  # raises CheckFailed with the reason
    hw = load_hardware_map(robot)
    assert hw.joint_names == rdef.joints
    assert tuple(j.joint for j in hw.actuated) == rdef.actuated_joints


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_urdf_twin_has_the_same_masses_and_inertias(robot: str) -> None:
    rdef = get_robot(robot)
    check_urdf(rdef)
    check_inertia(rdef)


def test_the_checks_catch_a_wrong_gear_and_a_wrong_mass(tmp_path: Path) -> None:
    """The library checks fail on a folder whose MJCF disagrees with robot.toml and the URDF."""
    src = get_robot("arm2").folder
    for f in src.iterdir():
        if f.is_file() and f.name != "__init__.py":
            shutil.copy(f, tmp_path / f.name)
    toml = tmp_path / "robot.toml"
    toml.write_text(toml.read_text().replace('name = "arm2"', 'name = "arm2_broken_copy"'))
    fam = tmp_path / "families.toml"
    fam.write_text(fam.read_text().replace('robot = "arm2"', 'robot = "arm2_broken_copy"'))
    xml = tmp_path / "model.xml"
    xml.write_text(xml.read_text().replace('gear="3.565217"', 'gear="3.0"', 1)
                   .replace('mass="0.3"', 'mass="0.35"'))
    try:
        rdef = get_robot(tmp_path)
        with pytest.raises(CheckFailed, match="shoulder_motor.*gear 3 != K_t"):
            check_hardware(rdef)
        with pytest.raises(CheckFailed, match="link1: URDF mass 0.3 != MJCF 0.35"):
            check_inertia(rdef)
    finally:
        unregister_robot("arm2_broken_copy")


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
