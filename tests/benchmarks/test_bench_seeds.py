"""`robot-meta bench seeds`: per-seed runs, per-eval-seed cells, a summary that counts CIs, and
--reuse that neither retrains nor re-evaluates."""

import json
from pathlib import Path

import pytest

from robot_meta.launch.cli import main

# A robust (PPO) run in seconds: a non-adapting deterministic policy, so every paired gain is 0.
TINY = """
[run]
robot = "cartpole"
family = "all"
algorithm = "ppo"
num_envs = 16
minutes = 0.0
steps = 1024
[ppo]
horizon = 16
minibatches = 2
epochs = 1
[model]
hidden = [16, 16]
[eval]
oracle_rollouts = 1
"""


def test_bench_seeds_trains_each_seed_and_counts_cis(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    launch = tmp_path / "tiny.toml"
    launch.write_text(TINY)
    out = tmp_path / "seeds"
    argv = ["bench", "seeds", str(launch), "--seeds", "0,1", "--eval-seeds", "3", "--tasks", "3",
            "--out", str(out), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in res["runs"]] == [0, 1]
    assert all((out / f"tiny-s{s}" / "checkpoint.pt").exists() for s in (0, 1))
    cells = [r["eval"]["3"] for r in res["runs"]]
    for c in cells:
        assert c["in_dist"]["n"] == 3
        assert c["in_dist"]["gain_3"] == 0.0 and c["in_dist"]["gain_3_ci95"] == [0.0, 0.0]
    # two seeds train two different policies
    assert cells[0]["in_dist"]["zero_shot"] != cells[1]["in_dist"]["zero_shot"]
    s = res["summary"]["in_dist"]
    assert s["cells"] == 2 and s["runs"] == 2
    assert s["cells_gain_3_above_0"] == 0 and s["cells_gain_3_below_0"] == 0
    assert s["gain_3_across_runs"] == {"mean": 0.0, "ci95": [0.0, 0.0]}
    assert json.loads((out / "seeds_tiny.json").read_text()) == res

    # --reuse: the finished runs and their evaluations are kept
    assert main(argv + ["--reuse"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert all(r["train"]["reused"] for r in again["runs"])
    assert [r["eval"] for r in again["runs"]] == [r["eval"] for r in res["runs"]]


def test_bench_seeds_rejects_bad_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", "seeds", "cartpole-all-ppo", "--seeds", "a,b", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "--seeds: give comma-separated integers" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained


def test_summary_counts_cis_and_averages_each_run_over_its_eval_seeds() -> None:
    from robot_meta.launch.cmd_bench import load

    def c(g: float, lo: float, hi: float) -> dict[str, object]:
        return {"gain_3": g, "gain_3_ci95": [lo, hi]}

    runs = [  # run means over eval seeds: +2, +1, +3 -> across runs 2 +/- 4.303 * 1 / sqrt(3)
        {"eval": {"1": {"in_dist": c(3.0, 1.0, 5.0), "ood": c(0.0, -1.0, 1.0)},
                  "2": {"in_dist": c(1.0, -0.5, 2.5), "ood": c(-2.0, -3.0, -1.0)}}},
        {"eval": {"1": {"in_dist": c(1.0, 0.2, 1.8), "ood": c(0.0, -1.0, 1.0)}}},
        {"eval": {"1": {"in_dist": c(3.0, 2.0, 4.0), "ood": c(0.0, -1.0, 1.0)}}},
    ]
    s = load("seeds").summary(runs)
    i = s["in_dist"]
    assert (i["cells"], i["cells_gain_3_above_0"], i["cells_gain_3_below_0"]) == (4, 3, 0)
    assert (s["ood"]["cells_gain_3_above_0"], s["ood"]["cells_gain_3_below_0"]) == (0, 1)
    g = s["in_dist"]["gain_3_across_runs"]
    assert s["in_dist"]["runs"] == 3 and g["mean"] == 2.0
    assert g["ci95"] == pytest.approx([2.0 - 4.303 / 3 ** 0.5, 2.0 + 4.303 / 3 ** 0.5], abs=0.01)
