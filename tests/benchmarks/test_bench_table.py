"""`robot-meta bench table`: every method against a shared robust baseline per seed, across-seed
figures (headroom, frac_oracle, gap_closed) that follow from the cells, and --reuse that resumes."""

import json
from pathlib import Path

import pytest

from robot_meta.launch.cli import main
from robot_meta.robot_registry import unregister_robot

TINY = """
[run]
robot = ".."
family = "all"
algorithm = "{alg}"
num_envs = 16
minutes = 0.0
steps = 1024
[ppo]
horizon = 16
minibatches = 2
epochs = 1
[model]
hidden = [16, 16]
latent_dim = 2
encoder_hidden = [8]
[eval]
oracle_rollouts = 1
"""


@pytest.fixture()
def tiny_robot(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A copy of the cartpole whose launch folder holds only tiny ppo and rma launch files."""
    assert main(["robot", "new", "tinycart", "--from", "cartpole", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "tinycart"
    for f in (folder / "launch").glob("*.toml"):
        f.unlink()
    for alg in ("ppo", "rma"):
        (folder / "launch" / f"tinycart-all-{alg}.toml").write_text(TINY.format(alg=alg))
    yield folder
    unregister_robot("tinycart")


def test_bench_table_scores_each_method_against_the_same_baseline_runs(
        tiny_robot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "table"
    argv = ["bench", "table", "--robot", str(tiny_robot), "--family", "all", "--seeds", "0,1",
            "--tasks", "3", "--out", str(out), "--json"]
    assert main(argv) == 0
    t = json.loads(capsys.readouterr().out)
    assert list(t["methods"]) == ["rma"]  # the default: every method with a launch file
    assert t["baseline"] == "tinycart-all-ppo"
    assert all((out / f"tinycart-all-{a}-s{s}" / "checkpoint.pt").exists()
               for a in ("ppo", "rma") for s in (0, 1))
    study = json.loads((out / "seeds_tinycart-all-rma.json").read_text())
    i = t["methods"]["rma"]["summary"]["in_dist"]
    cells = [r["eval"]["1"]["in_dist"] for r in study["runs"]]
    for c in cells:  # per cell: the fractions follow from the returns on the same tasks
        assert c["robust"] is not None
        assert c["frac_oracle_3"] == pytest.approx(c["adapted_3"] / c["oracle"], abs=1e-3)
        assert c["gap_closed_3"] == pytest.approx(
            (c["adapted_3"] - c["robust"]) / (c["oracle"] - c["robust"]), abs=1e-2)
    heads = [(c["oracle"] - c["robust"]) / c["oracle"] for c in cells]
    assert i["headroom"]["mean"] == pytest.approx(sum(heads) / 2, abs=1e-3)
    assert i["robust"]["mean"] == pytest.approx(sum(c["robust"] for c in cells) / 2, abs=1e-2)
    assert t["methods"]["rma"]["summary"]["train_steps"]["mean"] >= 1024
    assert json.loads((out / "table_tinycart-all.json").read_text()) == t

    # --reuse: nothing is retrained or re-evaluated, the same table comes back
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")}
    assert main(argv + ["--reuse"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == t
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")} == stamps


def test_bench_table_names_a_missing_launch_file(tiny_robot: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", "table", "--robot", str(tiny_robot), "--family", "all", "--methods", "pearl",
              "--out", str(tmp_path / "t")])
    assert e.value.code == 2
    assert "no launch file tinycart-all-pearl" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
