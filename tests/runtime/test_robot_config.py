"""Robot configs name their robot by name or by folder: a folder path (relative to the config),
a folder given directly (defaults plus command-line overrides), or a folder's robot.toml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from robot_meta.robot_registry import unregister_robot
from robot_meta.runtime.robot_config import RobotConfigError, load_robot_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "robots" / "pendulum"


@pytest.fixture(autouse=True)
def forget() -> Iterator[None]:
    yield
    unregister_robot("pendulum")


def test_a_folder_is_a_robot_config_with_defaults() -> None:
    cfg = load_robot_config(FIXTURE).with_overrides(port="socket://127.0.0.1:1", deploy_dir="/tmp/x")
    assert cfg.robot == "pendulum" and cfg.port == "socket://127.0.0.1:1"
    assert cfg.ids == {"pivot": 1}
    assert load_robot_config(FIXTURE / "robot.toml").robot == "pendulum"  # the folder's own file


def test_a_config_names_a_folder_relative_to_itself(tmp_path: Path) -> None:
    import os

    p = tmp_path / "my_robot.toml"
    p.write_text(f'robot = "{os.path.relpath(FIXTURE, tmp_path)}"\nport = "/dev/null"\n'
                 "[motor_ids]\npivot = 7\n")
    cfg = load_robot_config(p)
    assert cfg.robot == "pendulum" and cfg.ids == {"pivot": 7}
    assert cfg.deploy_dir == Path("~/.robot_meta/pendulum").expanduser()
    p.write_text('robot = "./nowhere"\nport = "/dev/null"\n')
    with pytest.raises(RobotConfigError, match="robot: .*not a robot folder"):
        load_robot_config(p)


def test_register_robot_is_exported_by_sim() -> None:
    from robot_meta.sim import get_robot, register_robot, robot_names

    assert register_robot(FIXTURE) == "pendulum" and "pendulum" in robot_names()
    assert get_robot("pendulum").default_task == "hold"
