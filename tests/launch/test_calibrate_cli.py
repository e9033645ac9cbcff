"""`robot-meta calibrate` through the real CLI, the emulator process and its pty (real time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robot_meta.launch.emulator_process import EmulatorProcess
from tests.runtime.helpers import cli, robot_toml


@pytest.mark.slow
def test_calibrate_json_on_the_emulated_robot_then_check(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('robot = "arm2"\n[params]\nshoulder_encoder_offset = -0.31\n'
                      "elbow_encoder_offset = 0.22\nelbow_reversed = 1\n")
    with EmulatorProcess("arm2", hidden, seed=0) as emu:
        cfg = robot_toml(tmp_path, emu.port)
        out = cli("calibrate", "--robot", str(cfg), "--json")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert set(res) == {"joints", "file", "robot_seconds"}
        j = res["joints"]
        assert set(j["elbow"]) == {"offset_rad", "reversed", "range_rad"}
        assert j["elbow"]["reversed"] is True and j["shoulder"]["reversed"] is False
        assert abs(j["shoulder"]["offset_rad"] + 0.31) < 0.01 and abs(j["elbow"]["offset_rad"] - 0.22) < 0.01
        assert j["shoulder"]["range_rad"] == pytest.approx([-2.7, 2.7], abs=1e-3)
        assert Path(res["file"]) == tmp_path / "deploy" / "calibration.json"
        assert res["robot_seconds"] > 0
        out = cli("calibrate", "--robot", str(cfg), "--check", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["ok"] is True
