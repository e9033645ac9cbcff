"""`robot-meta train --list`, `robot-meta eval --json` (sim and twin), with the exact JSON keys."""

import json
from pathlib import Path

import pytest

from robot_meta.launch.cli import main

KEYS = {"robust", "zero_shot", "adapted", "oracle", "gain", "gap_closed", "frac_oracle", "n_tasks",
        "overload_episodes"}


def test_train_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    for n in ("cartpole-all-ppo", "cartpole-all-rma", "cartpole-all-pearl", "arm2-payload-ppo",
              "arm2-payload-rma", "arm2-payload-pearl"):
        assert n in out


def test_train_bad_launch_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "x.toml"
    p.write_text('[run]\nrobot = "cartpole"\nalgorithm = "ppo"\nbogus = 1\n')
    assert main(["train", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "[run].bogus: unknown key" in capsys.readouterr().err


def test_eval_json_sim_and_twin(tiny_runs: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    twin = tmp_path / "heavy.toml"
    twin.write_text('robot = "cartpole"\n[params]\npayload_mass = 0.08\nslider_damping = 1.0\n')
    rc = main(["eval", str(tiny_runs["rma"]), "--baseline", str(tiny_runs["ppo"]), "--json",
               "--rollouts", "1,2", "--tasks", "4", "--twin", str(twin), "--twin-trials", "1"])
    assert rc == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == {"in_dist", "ood", "twin:heavy"}
    for s in table.values():
        assert set(s) == KEYS
        # per column, the fraction of episodes a servo overload shutdown ended
        assert {"robust", "zero_shot", "oracle"} <= set(s["overload_episodes"])
        assert all(0.0 <= f <= 1.0 for f in s["overload_episodes"].values())
        for col in ("robust", "zero_shot", "oracle"):
            assert set(s[col]) == {"mean", "ci95"} and len(s[col]["ci95"]) == 2
        for col in ("adapted", "gain", "gap_closed", "frac_oracle"):
            assert set(s[col]) == {"1", "2"}
        assert s["adapted"]["1"]["ci95"][0] <= s["adapted"]["1"]["mean"] <= s["adapted"]["1"]["ci95"][1]
        a, o = s["adapted"]["1"]["mean"], s["oracle"]["mean"]
        assert s["frac_oracle"]["1"] == pytest.approx(a / o)
    assert table["in_dist"]["n_tasks"] == 4 and table["twin:heavy"]["n_tasks"] == 1
    assert (tiny_runs["rma"] / "eval.json").is_file() and (tiny_runs["rma"] / "eval.png").is_file()


def test_eval_pearl_writes_uncertainty(tiny_runs: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tiny_runs["pearl"]), "--json", "--rollouts", "1,3", "--tasks", "3"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["in_dist"]["robust"] is None and table["in_dist"]["gap_closed"]["1"] is None
    unc = json.loads((tiny_runs["pearl"] / "eval_uncertainty.json").read_text())
    stds = unc["posterior_std_after_k_rollouts"]["in_dist"]
    assert stds["0"] == pytest.approx(1.0) and stds["3"] < stds["1"] < stds["0"]


def test_eval_refuses_non_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
