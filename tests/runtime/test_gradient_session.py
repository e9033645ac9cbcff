"""robot-meta flash / adapt / run with a MAML bundle on the emulated arm2 (a child process on a
pty, real time): the session explores, takes policy-gradient steps, writes a verified adapted
bundle, and run acts with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robot_meta.launch.emulator_process import EmulatorProcess
from robot_meta.runtime.bundle import load_bundle
from robot_meta.runtime.session_store import SessionStore
from tests.runtime.helpers import cli, robot_toml

STEPS = "25"  # 0.5 s rollouts: the emulator runs in real time


def test_gradient_session_writes_an_adapted_bundle_that_run_uses(
    maml_bundle: tuple[Path, Any], tmp_path: Path
) -> None:
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('robot = "arm2"\n[params]\npayload_mass = 0.3\n')
    with EmulatorProcess("arm2", hidden, seed=1) as emu:
        cfg = robot_toml(tmp_path, emu.port)
        out = cli("flash", str(maml_bundle[0]), "--robot", str(cfg), "--no-calibration",
                  "--dry-run-cycles", "5")
        assert out.returncode == 0, out.stderr
        out = cli(
            "adapt",
            "--robot",
            str(cfg),
            "--no-calibration",
            "--rollouts",
            "2",
            "--episode-steps",
            STEPS,
            "--oracle-params",
            str(hidden),
            "--oracle-warmup",
            "1",
            "--overspeed-factor",
            "0",
            "--json",
        )
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert (
            len(res["rollouts"]) == 2 and isinstance(res["after"], float) and isinstance(res["oracle"], float)
        )
        session = Path(res["session"])
        kinds = [e["kind"] for e in SessionStore(session).completed()]
        assert kinds == ["adapt", "adapt", "before", "after", "oracle_warmup", "oracle"]
        adapted = json.loads((tmp_path / "deploy" / "adapted" / "adapted.json").read_text())
        assert adapted["method"] == "gradient"
        state = adapted["state"]
        assert state["kind"] == "gradient" and state["rollouts"] == 2
        bundle = load_bundle(state["bundle"])  # the adapted bundle verifies
        assert bundle.manifest.extra["adapted"]["rollouts"] == 2
        assert Path(state["bundle"]).parent == tmp_path / "deploy" / "adapted"
        # the adaptation moved the policy
        import numpy as np

        probe = np.asarray(bundle.manifest.extra["adaptation"]["obs_mean"])[None]
        assert np.abs(bundle.policy.act(probe) - load_bundle(maml_bundle[0]).policy.act(probe)).max() > 1e-6
        run = cli(
            "run",
            "--robot",
            str(cfg),
            "--no-calibration",
            "--duration",
            "6",  # long enough for a reset and an episode on a loaded machine
            "--episode-steps",
            STEPS,
            "--overspeed-factor",
            "0",
            "--json",
        )
        assert run.returncode == 0, run.stderr
        ran = json.loads(run.stdout)
        assert ran["adapted"] is True and ran["method"] == "gradient" and ran["episodes"] >= 1
