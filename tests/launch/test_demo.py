"""`robot-meta demo` runs end to end and shows a real reality gap."""

import json

import pytest

from robot_meta.launch.cli import main


def test_demo_shows_the_gap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--episodes", "16", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = res["returns"]
    nominal = rows["sim nominal"]["mean"]
    twin = next(v for k, v in rows.items() if k.startswith("twin"))["mean"]
    assert 0 <= twin < nominal <= res["episode_steps"]
    assert nominal - twin > 30  # a nominal-model controller loses much of its return on the twin
