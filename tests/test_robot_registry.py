"""Robots by name or folder: bundled folders, entry points of installed packages, and
register_robot; unknown names list the known robots and say a folder path works too."""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from robot_meta import robot_registry as reg
from robot_meta.sim.robots.robot_def import RobotDef, get_robot

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "robots" / "pendulum"


@pytest.fixture
def clean() -> Iterator[None]:
    yield
    for name in ("pendulum", "pend_ep", "pend_copy"):
        reg.unregister_robot(name)
    reg._entry_points = None


def _copy(tmp: Path, name: str) -> Path:
    """The pendulum fixture under another name."""
    dest = tmp / name
    shutil.copytree(FIXTURE, dest)
    for f in ("robot.toml", "families.toml"):
        p = dest / f
        p.write_text(p.read_text().replace('"pendulum"', f'"{name}"'))
    return dest


def test_bundled_robots_are_the_folders_with_a_robot_toml() -> None:
    assert set(reg.builtin_robots()) == {"arm2", "cartpole"}
    assert reg.robot_folder("arm2") == reg.BUILTIN_DIR / "arm2"


def test_unknown_name_lists_the_robots_and_mentions_folders() -> None:
    with pytest.raises(reg.UnknownRobotError) as e:
        reg.robot_folder("arm9")
    assert "known robots: arm2, cartpole" in str(e.value) and "path of a robot folder" in str(e.value)
    with pytest.raises(reg.UnknownRobotError, match="not a robot folder"):
        reg.robot_folder("./no/such/dir")


def test_a_folder_path_registers_its_name(clean: None) -> None:
    assert "pendulum" not in reg.robot_names()
    rdef = get_robot(str(FIXTURE))
    assert isinstance(rdef, RobotDef) and rdef.name == "pendulum" and rdef.folder == FIXTURE
    assert get_robot("pendulum") is rdef  # by name afterwards, in this process
    assert reg.robot_ref("pendulum") == str(FIXTURE) and reg.robot_ref("arm2") == "arm2"


def test_register_robot_by_name_def_or_folder(tmp_path: Path, clean: None) -> None:
    folder = _copy(tmp_path, "pend_copy")
    assert reg.register_robot("pend_copy", folder) == "pend_copy"
    assert get_robot("pend_copy").folder == folder
    reg.unregister_robot("pend_copy")
    assert reg.register_robot(folder) == "pend_copy"
    reg.unregister_robot("pend_copy")
    assert reg.register_robot(get_robot(folder)) == "pend_copy"
    other = _copy(tmp_path / "b", "pend_copy")
    assert reg.register_robot(other) == "pend_copy"  # the latest folder given wins
    assert reg.robot_folder("pend_copy") == other
    with pytest.raises(reg.UnknownRobotError, match="already taken"):
        reg.register_robot("arm2", other)  # a bundled robot's name is not for another folder
    with pytest.raises(reg.UnknownRobotError, match="not a robot folder"):
        reg.register_robot("x", tmp_path)


def test_an_entry_point_adds_a_robot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean: None) -> None:
    folder = _copy(tmp_path, "pend_ep")
    ep = importlib.metadata.EntryPoint("pend_ep", "pend_ep_module:folder", reg.ENTRY_POINT_GROUP)
    (tmp_path / "pend_ep_module.py").write_text(f"def folder():\n    return {str(folder)!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def eps(group: str = "") -> list[importlib.metadata.EntryPoint]:
        return [ep] if group == reg.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", eps)
    reg._entry_points = None
    assert reg.robot_folder("pend_ep") == folder.resolve()
    assert get_robot("pend_ep").name == "pend_ep"
    assert reg.robot_ref("pend_ep") == "pend_ep"  # installed: recorded by name


def test_randomize_hook_adds_factors(tmp_path: Path, clean: None) -> None:
    folder = _copy(tmp_path, "pend_copy")
    (folder / "randomize.py").write_text(
        "from robot_meta.sim.robots.robot_def import FactorDef\n\n\n"
        "def extra_factors(spec):\n"
        "    return [FactorDef('payload_scale', 'mass_scale', 'payload', 'x', 1.0, (0.1, 5.0),\n"
        "                      (0.5, 1.5), 'payload body mass scale')]\n")
    rdef = get_robot(folder)
    assert rdef.factor_names[-1] == "payload_scale"
    assert rdef.factor("payload_scale").norm_range == (0.5, 1.5)


def test_a_broken_entry_point_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                       clean: None) -> None:
    ep = importlib.metadata.EntryPoint("ghost", "no_such_module_xyz", reg.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group="": [ep] if group == reg.ENTRY_POINT_GROUP else [])
    reg._entry_points = None
    with pytest.warns(UserWarning, match="entry point ghost .* skipped"):
        names = reg.robot_names()
    assert "ghost" not in names and "arm2" in names
