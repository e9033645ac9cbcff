"""`robot-meta bench headroom`: the JSON contract, H = (oracle - robust) / oracle per seed, the
across-seed CI, the same tasks as `robot-meta eval`, --reuse that neither retrains nor
re-evaluates, and usage errors that train nothing."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot_meta.launch.cli import main
from robot_meta.launch.cmd_bench import load

T975_DF2 = 4.303  # Student t, 97.5 % quantile, 2 degrees of freedom


def _forbid_training(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any training call fail the test; returns the list of attempted runs."""
    from robot_meta.learn.trainer import Trainer

    calls: list[str] = []

    def no_train(self: Trainer) -> dict[str, Any]:
        calls.append(str(self.run_dir))
        raise AssertionError(f"trained {self.run_dir}")

    monkeypatch.setattr(Trainer, "train", no_train)
    return calls


def _count_rollouts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the evaluation rollouts (run_episode calls), still running them."""
    import robot_meta.learn.evaluate as ev

    calls: list[str] = []
    real = ev.run_episode

    def counted(env: Any, agent: Any, mode: str, seed: int) -> np.ndarray:
        calls.append(mode)
        return real(env, agent, mode, seed)

    monkeypatch.setattr(ev, "run_episode", counted)
    return calls


def test_bench_headroom_contract_per_seed_h_and_reuse(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "hr"
    argv = ["bench", "headroom", "--robot", "cartpole", "--seeds", "0,1", "--steps", "2000",
            "--tasks", "8", "--out", str(out), "--json"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    res = json.loads(cap.out)
    assert "seed 1: ood robust" in cap.err  # a progress line per step

    # the contract
    assert (res["robot"], res["family"], res["seeds"]) == ("cartpole", "all", [0, 1])  # headline family
    for s in ("in_dist", "ood"):
        for k in ("robust", "oracle", "headroom"):
            assert set(res[s][k]) == {"mean", "ci95"}
            lo, hi = res[s][k]["ci95"]
            assert lo <= res[s][k]["mean"] <= hi
    assert json.loads((out / "headroom_cartpole-all.json").read_text()) == res

    # H per seed from the reported per-seed figures, and its across-seed mean and CI
    for s in ("in_dist", "ood"):
        cells = [r["eval"][s] for r in res["runs"]]
        assert [c["tasks"] for c in cells] == [8, 8]
        hs = [(c["oracle"] - c["robust"]) / c["oracle"] for c in cells]
        assert [c["headroom"] for c in cells] == pytest.approx(hs)
        m, sd = np.mean(hs), np.std(hs, ddof=1)
        assert res[s]["headroom"]["mean"] == pytest.approx(m)
        half = 12.706 * sd / np.sqrt(2)  # t_{0.975, 1}
        assert res[s]["headroom"]["ci95"] == pytest.approx([m - half, m + half])
        assert res[s]["oracle"]["mean"] == pytest.approx(np.mean([c["oracle"] for c in cells]))

    # the budgets: --steps replaces both launch budgets; the teacher takes the whole budget
    budget = {"steps": 2000, "minutes": 0.0}
    assert res["budget"] == {"oracle": budget, "robust": budget}
    teacher = out / "cartpole-all-rma-teacher-s0"
    assert "phase2_fraction = 0.0" in (teacher / "config.toml").read_text()
    assert all(r[k]["train"]["steps"] >= 2000 and not r[k]["train"]["reused"]
               for r in res["runs"] for k in ("oracle", "robust"))

    # the oracle and robust columns of `robot-meta eval` on the same runs and eval seed
    from robot_meta.learn.evaluate import evaluate_run

    table = evaluate_run(teacher, baseline_dir=out / "cartpole-all-ppo-s0", rollouts=[1], tasks=8,
                         seed=res["eval_seed"], plot=False)
    for s in ("in_dist", "ood"):
        assert res["runs"][0]["eval"][s]["oracle"] == pytest.approx(table[s]["oracle"]["mean"])
        assert res["runs"][0]["eval"][s]["robust"] == pytest.approx(table[s]["robust"]["mean"])

    # --reuse: nothing is trained or evaluated again, and the figures are the same
    trained = _forbid_training(monkeypatch)
    rollouts = _count_rollouts(monkeypatch)
    assert main(argv + ["--reuse"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert trained == [] and rollouts == []
    assert all(r[k]["train"]["reused"] for r in again["runs"] for k in ("oracle", "robust"))
    assert [r["eval"] for r in again["runs"]] == [r["eval"] for r in res["runs"]]
    assert {s: again[s] for s in ("in_dist", "ood")} == {s: res[s] for s in ("in_dist", "ood")}

    # another task count keeps the runs but evaluates anew (2 rollouts per setting and seed)
    assert main([*argv[:-3], "--tasks", "9", "--out", str(out), "--json", "--reuse"]) == 0
    assert trained == [] and sorted(rollouts) == ["oracle"] * 4 + ["prior"] * 4
    assert json.loads(capsys.readouterr().out)["runs"][0]["eval"]["in_dist"]["tasks"] == 9

    # another budget cannot reuse these runs, and without --reuse they are not overwritten
    assert main([*argv[:6], "--steps", "3000", *argv[8:], "--reuse"]) == 2
    assert "trained with another config" in capsys.readouterr().err
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert trained == []


def test_missing_launch_file_exits_2_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    trained = _forbid_training(monkeypatch)
    out = tmp_path / "hr"
    assert main(["bench", "headroom", "--robot", "cartpole", "--family", "friction", "--steps", "2000",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cartpole-friction-rma.toml" in err and "cartpole-friction-ppo.toml" in err
    assert "copy cartpole-all-rma.toml to cartpole-friction-rma.toml" in err
    assert trained == [] and not out.exists()


@pytest.mark.parametrize("seeds, message", [("a,b", "--seeds: give comma-separated integers"),
                                            ("0,0", "--seeds: each seed once"),
                                            ("", "--seeds: give at least one seed")])
def test_bad_seeds_exit_2_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, seeds: str, message: str) -> None:
    trained = _forbid_training(monkeypatch)
    with pytest.raises(SystemExit) as e:
        main(["bench", "headroom", "--robot", "cartpole", "--seeds", seeds, "--out", str(tmp_path / "hr")])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert trained == [] and not any(tmp_path.iterdir())


def test_summary_across_seeds_on_known_values() -> None:
    bench = load("headroom")

    def cell(robust: float, oracle: float) -> dict[str, Any]:
        return {"robust": robust, "oracle": oracle, "headroom": bench.headroom(oracle, robust)}

    # H per seed: (100 - 90) / 100 = 0.1, (50 - 40) / 50 = 0.2, (200 - 140) / 200 = 0.3
    runs = [{"eval": {"in_dist": cell(90, 100), "ood": cell(5, -1)}},
            {"eval": {"in_dist": cell(40, 50), "ood": cell(10, 20)}},
            {"eval": {"in_dist": cell(140, 200)}}]  # ood not evaluated yet
    s = bench.summary(runs)
    h = s["in_dist"]["headroom"]
    assert s["in_dist"]["seeds"] == 3
    assert h["mean"] == pytest.approx(0.2)  # s = 0.1 -> half width 4.303 * 0.1 / sqrt(3)
    assert h["ci95"] == pytest.approx([0.2 - T975_DF2 * 0.1 / 3 ** 0.5, 0.2 + T975_DF2 * 0.1 / 3 ** 0.5])
    assert s["in_dist"]["robust"]["mean"] == pytest.approx(90.0)
    # ood: two seeds, one with oracle <= 0 (H undefined): robust and oracle over 2, H over 1, no CI
    assert s["ood"]["seeds"] == 2
    assert s["ood"]["headroom"] == {"mean": pytest.approx(0.5), "ci95": None}
    assert s["ood"]["oracle"]["mean"] == pytest.approx(9.5)
    assert s["ood"]["oracle"]["ci95"] is not None
    assert bench.summary([])["ood"]["headroom"] == {"mean": None, "ci95": None}
    assert bench.headroom(0.0, -3.0) is None and bench.headroom(80.0, 100.0) == pytest.approx(-0.25)


def test_headline_family_in_families_toml(tmp_path: Path) -> None:
    from robot_meta.sim.randomize import SpecError, headline_family, load_families

    assert headline_family("arm2") == "servo" and headline_family("cartpole") == "all"
    assert "headline" not in load_families("cartpole")
    bad = tmp_path / "fams.toml"
    bad.write_text('robot = "cartpole"\nheadline = "nope"\n[mass]\n[mass.train]\n'
                   'cart_mass_scale = { dist = "uniform", low = 0.5, high = 1.5 }\n')
    with pytest.raises(SpecError, match="headline = 'nope' names no family"):
        load_families("cartpole", bad)
    bad.write_text(bad.read_text().replace('"nope"', '"mass"'))
    assert list(load_families("cartpole", bad)) == ["mass"]  # the same file with a valid headline
