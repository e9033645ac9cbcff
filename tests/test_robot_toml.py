"""robot.toml: the bundled robots' files build the same hardware maps and calibration specs as
before, and bad files get errors that name the field."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from robot_meta.calibration.spec import load_calibration_spec
from robot_meta.hardware.hardware_map import load_hardware_map
from robot_meta.robot_toml import RobotTomlError, load_robot_toml

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "robots" / "pendulum"


def test_cartpole_robot_toml() -> None:
    spec = load_robot_toml("cartpole")
    assert spec.joint_names == ("slider", "hinge") and spec.actuators == ("cart_motor",)
    hw = load_hardware_map("cartpole")
    assert hw.joint("hinge").position_limits == (-math.inf, math.inf)  # omitted: unlimited
    assert hw.joint("slider").effort_limit == pytest.approx(10.0, rel=1e-4)  # N at the cart
    assert hw.folder == spec_folder("cartpole")
    cal = load_calibration_spec("cartpole")
    assert cal.joint("hinge").rest == math.pi and cal.joint("hinge").direction == "swings_with"


def spec_folder(name: str) -> Path:
    from robot_meta.robot_registry import robot_folder

    return robot_folder(name)


@pytest.mark.parametrize("edit, message", [
    (('max_current_a = 1.0', 'max_curent_a = 1.0'),
     "max_curent_a: unknown key; did you mean 'max_current_a'"),
    (('kind = "revolute"', 'kind = "rotary"'), "kind: expected one of 'revolute', 'prismatic'"),
    (('control_dt = 0.02', 'control_dt = 0.012'), "control_dt: must be a whole multiple"),
    (('max_current_a = 1.0', 'max_current_a = 9.0'), "exceeds the xm430-w350 current limit"),
    (('default_task = "hold"', 'default_task = "swing"'), "default_task: 'swing' is not in"),
])
def test_bad_robot_toml_is_a_clear_error(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    from robot_meta.robot_registry import unregister_robot
    from robot_meta.sim.robots.robot_def import RobotDef

    folder = tmp_path / "pend"
    shutil.copytree(FIXTURE, folder)
    p = folder / "robot.toml"
    p.write_text(p.read_text().replace(*edit))
    try:
        with pytest.raises(RobotTomlError, match=message.replace("(", r"\(").replace(")", r"\)")):
            RobotDef.from_folder(folder)
            load_hardware_map(folder)
    finally:
        unregister_robot("pendulum")


def test_norm_ranges_come_from_the_all_family(tmp_path: Path) -> None:
    """A factor's privileged-vector range is its `all.train` range: one missing there (and not
    in robot.toml's [norm_range]) is an error naming it; [norm_range] supplies it."""
    from robot_meta.robot_registry import unregister_robot
    from robot_meta.sim.robots.robot_def import RobotDef

    def copy(name: str, norm_range: str = "") -> Path:
        folder = tmp_path / name
        shutil.copytree(FIXTURE, folder)
        fam = folder / "families.toml"
        fam.write_text("\n".join(line for line in fam.read_text().splitlines()
                                 if not line.startswith("pivot_bias")) + "\n")
        toml = folder / "robot.toml"
        toml.write_text(toml.read_text().replace("[check]", norm_range + "[check]"))
        return folder

    try:
        with pytest.raises(RobotTomlError, match="factor 'pivot_bias' has no normalization range"):
            RobotDef.from_folder(copy("a"))
        rdef = RobotDef.from_folder(copy("b", "[norm_range]\npivot_bias = [-0.05, 0.05]\n\n"))
    finally:
        unregister_robot("pendulum")
    assert rdef.factor("pivot_bias").norm_range == (-0.05, 0.05)
    assert rdef.factor("supply_voltage").norm_range == (10.0, 14.8)  # the servo's input range
