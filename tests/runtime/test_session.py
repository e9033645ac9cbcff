"""robot-meta adapt / run against the emulated robot (a child process on a pty, real time):
JSON output, report, adapted state used by run; a lossy bus; SIGKILL + --resume; Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from robot_meta.launch.emulator_process import EmulatorProcess
from robot_meta.runtime.session_store import SessionStore
from tests.runtime.helpers import cli, robot_toml

STEPS = "25"  # 0.5 s rollouts: the emulator runs in real time


def _flash(bundle: Path, cfg: Path) -> None:
    out = cli("flash", str(bundle), "--robot", str(cfg), "--no-calibration", "--dry-run-cycles", "5")
    assert out.returncode == 0, out.stderr


def _events(session: Path) -> list[dict[str, Any]]:
    return SessionStore(session).events() if (session / "journal.jsonl").exists() else []


def _wait_for(pred: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_session_on_a_lossy_bus_reports_and_run_uses_the_adapted_state(
        bundles: dict[str, Any], tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('robot = "arm2"\n[params]\npayload_mass = 0.6\n')
    with EmulatorProcess("arm2", hidden, faults="drop=0.01,corrupt=0.01", seed=1) as emu:
        cfg = robot_toml(tmp_path, emu.port)
        _flash(bundles["pearl"][0], cfg)
        out = cli("adapt", "--robot", str(cfg),
                "--no-calibration",
                  "--rollouts", "2", "--episode-steps", STEPS,
                  "--oracle-params", str(hidden), "--oracle-warmup", "1",
                  "--baseline", str(bundles["ppo"][0]), "--overspeed-factor", "0", "--json")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert list(res) == ["rollouts", "before", "after", "oracle", "robust", "session"]
        assert len(res["rollouts"]) == 2
        assert all(isinstance(res[k], float) for k in ("before", "after", "oracle", "robust"))
        session = Path(res["session"])
        kinds = [e["kind"] for e in SessionStore(session).completed()]
        assert kinds == ["adapt", "adapt", "before", "after", "oracle_warmup", "oracle", "robust"]
        report = (session / "report.md").read_text()
        assert "Before against after" in report and "robot-meta adapt --robot" in report
        assert all((session / p).stat().st_size > 1000 for p in ("returns.png", "joints.png",
                                                                 "uncertainty.png"))
        result = json.loads((session / "result.json").read_text())
        assert result["deadlines"]["cycles"] >= 7 * int(STEPS)
        adapted = json.loads((tmp_path / "deploy" / "adapted" / "adapted.json").read_text())
        assert adapted["state"]["kind"] == "posterior" and adapted["state"]["transitions"] == 2 * int(STEPS)
        run = cli("run", "--robot", str(cfg), "--no-calibration", "--duration", "1", "--episode-steps", STEPS,
                  "--overspeed-factor", "0", "--json")
        assert run.returncode == 0, run.stderr
        ran = json.loads(run.stdout)
        assert ran["adapted"] is True and ran["method"] == "context" and ran["episodes"] >= 1
        assert ran["deadlines"]["cycles"] >= 1


def test_sigkill_mid_rollout_then_resume_keeps_completed_rollouts(bundles: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    with EmulatorProcess("arm2") as emu:
        cfg = robot_toml(tmp_path, emu.port)
        _flash(bundles["pearl"][0], cfg)
        session = tmp_path / "session"
        argv = [sys.executable, "-m", "robot_meta.launch.cli", "adapt", "--robot", str(cfg),
                "--no-calibration",
                "--rollouts", "3", "--episode-steps", "50", "--session", str(session),
                "--overspeed-factor", "0", "--json"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: any(e["event"] == "rollout_start" and e["index"] == 1
                                  for e in _events(session)), 120, "rollout 1 to start")
            time.sleep(0.5)  # inside rollout 1 (after its reset) or its reset: mid-work either way
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        done = SessionStore(session).completed()
        assert [e["index"] for e in done] == [0]  # rollout 1 was in flight: not recorded
        first = (session / "rollouts" / done[0]["file"]).read_bytes()
        out = cli("adapt", "--robot", str(cfg),
                "--no-calibration",
                  "--resume", str(session), "--overspeed-factor", "0",
                  "--json")
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert len(res["rollouts"]) == 3 and res["rollouts"][0] == pytest.approx(done[0]["return"])
        assert (session / "rollouts" / done[0]["file"]).read_bytes() == first  # intact
        ev = _events(session)
        assert any(e["event"] == "session_resume" for e in ev)
        assert [e["index"] for e in SessionStore(session).completed()] == list(range(5))


def test_ctrl_c_during_a_rollout_leaves_torque_off(bundles: dict[str, Any], tmp_path: Path) -> None:
    from robot_meta.hardware import open_bus

    with EmulatorProcess("arm2") as emu:
        # a long watchdog, so that torque off cannot be the servos' own timeout
        cfg = robot_toml(tmp_path, emu.port, watchdog_ms=2540)
        _flash(bundles["pearl"][0], cfg)
        session = tmp_path / "session"
        argv = [sys.executable, "-m", "robot_meta.launch.cli", "adapt", "--robot", str(cfg),
                "--no-calibration",
                "--rollouts", "2", "--episode-steps", "150", "--session", str(session),
                "--overspeed-factor", "0"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: any(e["event"] == "rollout_start" for e in _events(session)), 120,
                  "the first rollout")
        time.sleep(1.2)  # the first reset holds ~0.2 s from rest; the rollout runs 3 s
        proc.send_signal(signal.SIGINT)
        t_int = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        with open_bus(emu.port) as bus:
            torque = {i: bus.read(i, "torque_enable") for i in (1, 2)}
        assert time.monotonic() - t_int < 2.0  # well inside the 2.54 s watchdog
        assert torque == {1: 0, 2: 0}
        assert any(e["event"] == "interrupted" for e in _events(session))
        assert not SessionStore(session).completed()  # the interrupted rollout is not recorded


def test_rma_online_and_latent_search_sessions_with_the_privileged_oracle(bundles: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('robot = "arm2"\n[params]\npayload_mass = 0.7\n')
    with EmulatorProcess("arm2", hidden) as emu:
        cfg = robot_toml(tmp_path, emu.port)
        _flash(bundles["rma"][0], cfg)
        common = ["--robot", str(cfg), "--no-calibration",
                  "--episode-steps", "20", "--oracle-params", str(hidden),
                  "--overspeed-factor", "0", "--json"]
        out = cli("adapt", "--rollouts", "1", *common)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        done = SessionStore(res["session"]).completed()
        assert [e["kind"] for e in done] == ["adapt", "before", "after", "oracle"]  # mu(e): no warm-up
        z = {e["kind"]: e["z"] for e in done}
        assert z["oracle"] != z["before"]  # mu(e) of the true payload, not phi(empty history)
        out = cli("adapt", "--rollouts", "5", "--method", "latent-search", *common)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        done = SessionStore(res["session"]).completed()
        cands = [e["z"] for e in done if e["kind"] == "adapt"]
        assert len(cands) == 5 and len({tuple(c) for c in cands}) == 5  # five distinct candidates
        assert len({json.dumps(e["task"]) for e in done if e["kind"] == "adapt"}) == 1  # one task
        adapted = json.loads((tmp_path / "deploy" / "adapted" / "adapted.json").read_text())
        assert adapted["method"] == "latent-search" and adapted["state"]["evaluated"] == 5
        bad = cli("adapt", "--rollouts", "3", "--method", "latent-search", *common)
        assert bad.returncode == 2 and "rollouts >= 5" in bad.stderr
