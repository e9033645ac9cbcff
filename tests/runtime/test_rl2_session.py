"""robot-meta flash / adapt --method rl2 / run with an RL2 bundle on the emulated arm2 (a child
process on a pty, real time): the session carries the GRU state, run restores it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robot_meta.launch.emulator_process import EmulatorProcess
from robot_meta.runtime.session_store import SessionStore
from tests.bundle_fixtures import RL2_HIDDEN
from tests.runtime.helpers import cli, robot_toml

STEPS = "25"  # 0.5 s rollouts: the emulator runs in real time


@pytest.mark.slow
def test_rl2_session_and_run_on_the_emulated_robot(rl2_bundle: tuple[Path, Any], tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('robot = "arm2"\n[params]\npayload_mass = 0.3\n')
    with EmulatorProcess("arm2", hidden, seed=1) as emu:
        cfg = robot_toml(tmp_path, emu.port)
        out = cli("flash", str(rl2_bundle[0]), "--robot", str(cfg), "--no-calibration",
                  "--dry-run-cycles", "5")
        assert out.returncode == 0, out.stderr
        out = cli("adapt", "--robot", str(cfg), "--no-calibration", "--method", "rl2", "--rollouts", "2",
                  "--episode-steps", STEPS, "--oracle-params", str(hidden), "--oracle-warmup", "1",
                  "--overspeed-factor", "0", "--json")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert len(res["rollouts"]) == 2 and isinstance(res["after"], float)
        assert isinstance(res["oracle"], float)  # the state after the warm-up rollout
        session = Path(res["session"])
        kinds = [e["kind"] for e in SessionStore(session).completed()]
        assert kinds == ["adapt", "adapt", "before", "after", "oracle_warmup", "oracle"]
        adapted = json.loads((tmp_path / "deploy" / "adapted" / "adapted.json").read_text())
        assert adapted["method"] == "rl2"
        state = adapted["state"]
        assert state["kind"] == "recurrent" and state["rollouts"] == 2
        assert len(state["h"]) == RL2_HIDDEN and any(abs(x) > 0 for x in state["h"])
        run = cli("run", "--robot", str(cfg), "--no-calibration", "--duration", "6", "--episode-steps", STEPS,
                  "--overspeed-factor", "0", "--json")
        assert run.returncode == 0, run.stderr
        ran = json.loads(run.stdout)
        assert ran["adapted"] is True and ran["method"] == "rl2" and ran["episodes"] >= 1
