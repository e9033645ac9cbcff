"""robot-meta flash / adapt / run with a cavia bundle on the emulated arm2 (a child process on a
pty, real time): the session's adaptation rollouts feed a gradient step on z in numpy, the step
lowers the prediction loss on those rollouts, and run acts with the adapted z."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot_meta.launch.emulator_process import EmulatorProcess
from robot_meta.runtime.session_store import SessionStore
from tests.runtime.helpers import cli, robot_toml

STEPS = "25"  # 0.5 s rollouts: the emulator runs in real time


def test_context_step_session_adapts_z_and_run_uses_it(cavia_bundle: tuple[Path, Any],
                                                        tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('robot = "arm2"\n[params]\npayload_mass = 0.3\n')
    with EmulatorProcess("arm2", hidden, seed=1) as emu:
        cfg = robot_toml(tmp_path, emu.port)
        out = cli("flash", str(cavia_bundle[0]), "--robot", str(cfg), "--dry-run-cycles", "5",
                  "--no-calibration")
        assert out.returncode == 0, out.stderr
        out = cli("adapt", "--robot", str(cfg), "--rollouts", "2", "--episode-steps", STEPS,
                  "--oracle-params", str(hidden), "--oracle-warmup", "1", "--no-calibration", "--json")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert len(res["rollouts"]) == 2, res
        kinds = [e["kind"] for e in SessionStore(Path(res["session"])).completed()]
        assert kinds == ["adapt", "adapt", "before", "after", "oracle_warmup", "oracle"]
        adapted = json.loads((tmp_path / "deploy" / "adapted" / "adapted.json").read_text())
        state = adapted["state"]
        assert adapted["method"] == "context-step" and state["kind"] == "context-step"
        assert state["transitions"] == 2 * int(STEPS)
        z0 = np.asarray(cavia_bundle[1].z0().detach())
        assert np.abs(np.asarray(state["z"]) - z0).max() > 1e-6  # the step moved z
        assert state["loss_adapted"] < state["loss_prior"]  # and fitted the robot's transitions
        run = cli("run", "--robot", str(cfg), "--duration", "6", "--episode-steps", STEPS,
                  "--no-calibration", "--json")
        assert run.returncode == 0, run.stderr
        ran = json.loads(run.stdout)
        assert ran["adapted"] is True and ran["method"] == "context-step" and ran["episodes"] >= 1


def test_context_step_refuses_other_bundles(maml_bundle: tuple[Path, Any]) -> None:
    from robot_meta.errors import UserError
    from robot_meta.runtime.adapters import resolve_method
    from robot_meta.runtime.bundle import load_bundle

    with pytest.raises(UserError, match="needs a cavia bundle"):
        resolve_method(load_bundle(maml_bundle[0]), "context-step")
