"""Bring your own robot (issue 23 acceptance): a third robot, `pendulum`, that lives outside the
package (tests/fixtures/robots/pendulum/) goes through every stage with nothing under
robot_meta/ written for it: robot check, a tiny train and export, the emulator with hidden
parameters, flash and a 2-rollout adaptation session. And `robot new` makes a robot that checks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robot_meta.export.manifest import BundleError
from robot_meta.launch.cli import main
from robot_meta.launch.emulator_process import EmulatorProcess
from robot_meta.robot_registry import unregister_robot
from robot_meta.runtime.bundle import load_bundle
from robot_meta.runtime.session_store import SessionStore
from tests.runtime.helpers import cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "robots" / "pendulum"
STEPS = "25"  # 0.5 s rollouts: the emulator runs in real time


@pytest.fixture
def forget_robots() -> Iterator[None]:
    """Robots registered by path in this process are forgotten afterwards (tmp folders go)."""
    yield
    for name in ("pendulum", "mybot"):
        unregister_robot(name)


def test_pendulum_checks_trains_exports_emulates_flashes_and_adapts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], forget_robots: None) -> None:
    assert main(["robot", "check", str(FIXTURE), "--json"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert [c["check"] for c in checks][:3] == ["robot.toml", "mjcf", "urdf"]
    assert all(c["ok"] for c in checks), checks
    # train from the fixture's launch file (robot = "..": the folder, relative to the file)
    run = tmp_path / "run"
    out = cli("train", str(FIXTURE / "launch" / "pendulum-payload-pearl.toml"), "--out", str(run))
    assert out.returncode == 0, out.stderr
    assert f'robot = "{FIXTURE}"' in (run / "config.toml").read_text()
    bundle = tmp_path / "bundle"
    out = cli("export", str(run), "-o", str(bundle))
    assert out.returncode == 0, out.stderr
    assert json.loads((bundle / "manifest.json").read_text())["robot"] == "pendulum"
    with pytest.raises(BundleError, match="made for robot 'pendulum', not 'arm2'"):
        load_bundle(bundle, robot="arm2")  # a bundle still refuses a mismatched robot
    # hidden parameters name the robot by a folder path relative to the file
    hidden = tmp_path / "hidden.toml"
    hidden.write_text(f'robot = "{os.path.relpath(FIXTURE, tmp_path)}"\n'
                      "[params]\npayload_mass = 0.25\npivot_frictionloss = 0.05\n")
    deploy = tmp_path / "deploy"
    with EmulatorProcess(str(FIXTURE), hidden, seed=1) as emu:
        robot = ["--robot", str(FIXTURE), "--port", emu.port, "--deploy-dir", str(deploy),
                 "--no-calibration"]
        out = cli("flash", str(bundle), *robot, "--dry-run-cycles", "5")
        assert out.returncode == 0, out.stderr
        assert "1 servo(s) pivot" in out.stdout
        out = cli("adapt", *robot, "--rollouts", "2", "--episode-steps", STEPS, "--json")
        assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert len(res["rollouts"]) == 2 and all(np.isfinite(res["rollouts"]))
    session = Path(res["session"])
    done = SessionStore(session).completed()
    assert [e["kind"] for e in done] == ["adapt", "adapt", "before", "after"]
    files = sorted((session / "rollouts").glob("*.npz"))
    assert len(files) == len(done)  # every rollout is on disk
    for f in files:
        assert np.load(f)["dq"].shape[0] >= int(STEPS)  # the start state and every step


def test_robot_new_from_arm2_then_check_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               forget_robots: None) -> None:
    assert main(["robot", "new", "mybot", "--from", "arm2", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "mybot"
    assert "robot-meta robot check" in capsys.readouterr().out
    assert 'name = "mybot"' in (folder / "robot.toml").read_text()
    assert (folder / "launch" / "mybot-servo-ppo.toml").is_file()
    assert 'robot = ".."' in (folder / "launch" / "mybot-servo-ppo.toml").read_text()
    assert not (folder / "__init__.py").exists()
    assert main(["robot", "check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "9/9 checks passed" in out
    # the copy trains from its own launch files
    from robot_meta.learn.config import load_config
    from robot_meta.sim import make_vec_env

    cfg = load_config(folder / "launch" / "mybot-servo-ppo.toml")
    assert cfg.run.robot == str(folder.resolve())
    env = make_vec_env(cfg.run.robot, cfg.run.family, 2, nthread=0)
    assert env.robot.name == "mybot"
    env.close()
    # a second `new` into the same place is refused, and so is a taken name
    assert main(["robot", "new", "mybot", "--from", "arm2", "--dir", str(tmp_path)]) == 2
    assert main(["robot", "new", "cartpole", "--from", "arm2", "--dir", str(tmp_path)]) == 2


def test_robot_check_reports_each_failure_and_exits_nonzero(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            forget_robots: None) -> None:
    assert main(["robot", "new", "mybot", "--from", str(FIXTURE), "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "mybot"
    capsys.readouterr()
    # the MJCF's actuator renamed, and the URDF link twice as heavy
    mj = folder / "model.xml"
    mj.write_text(mj.read_text().replace('name="pivot_motor"', 'name="pivot_drive"'))
    ur = folder / "twin.urdf"
    ur.write_text(ur.read_text().replace('<mass value="0.2"/>', '<mass value="0.4"/>'))
    assert main(["robot", "check", str(folder), "--json"]) == 1
    res = {c["check"]: c for c in json.loads(capsys.readouterr().out)}
    assert res["mjcf"]["ok"] and res["urdf"]["ok"] and res["families"]["ok"]
    assert not res["names"]["ok"] and "pivot_drive" in res["names"]["detail"]
    assert not res["inertia"]["ok"] and "URDF mass 0.4 != MJCF 0.2" in res["inertia"]["detail"]
    assert not res["twin"]["ok"]
