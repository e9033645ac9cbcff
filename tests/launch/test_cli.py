"""The CLI front door: help, `sim factors`, and clear errors."""

import json
import subprocess
import sys

import pytest

from robot_meta.launch.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "sim" in out and "meta-train in simulation" in out


def test_sim_factors_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "factors", "arm2", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    names = [f["name"] for f in table["factors"]]
    assert "payload_mass" in names and "latency_steps" in names
    pm = next(f for f in table["factors"] if f["name"] == "payload_mass")
    assert pm["unit"] == "kg" and pm["nominal"] == 0.0
    assert pm["families"]["payload"]["train"]["high"] <= pm["families"]["payload"]["ood"]["low"]


def test_unknown_robot_is_a_clear_error() -> None:
    out = subprocess.run([sys.executable, "-m", "robot_meta.launch.cli", "sim", "factors", "arm9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert ("error: unknown robot 'arm9'; known robots: arm2, cartpole (or give the path of a "
            "robot folder") in out.stderr
    assert "Traceback" not in out.stderr


def test_emulate_prints_its_port_first_and_answers_pings() -> None:
    from robot_meta.hardware import open_bus

    proc = subprocess.Popen([sys.executable, "-m", "robot_meta.launch.cli", "emulate", "arm2",
                             "--duration", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/"), port
        with open_bus(port) as bus:
            assert bus.ping(1) == 1020 and bus.ping(2) == 1020  # XM430-W350
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
