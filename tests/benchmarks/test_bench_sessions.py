"""`robot-meta bench sessions --hidden-sets N`: one saved result per (hidden robot, method), a
rerun that resumes without redoing finished sessions, and the across-robot table.

The sessions themselves (emulator, flash, adaptation) are replaced by a stand-in that records its
calls: what is tested here is the bookkeeping, which a multi-hour run depends on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robot_meta.launch.cmd_bench import load


class FakeEmulator:
    """Stands in for EmulatorProcess; remembers which hidden files were emulated."""

    started: list[str] = []

    def __init__(self, robot: str, params: Any, **kw: Any) -> None:
        self.params = str(params)
        self.port = "fake"

    def __enter__(self) -> FakeEmulator:
        FakeEmulator.started.append(self.params)
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Any, list[tuple[str, str]]]:
    mod = load("sessions")
    calls: list[tuple[str, str]] = []
    methods: list[str] = []

    def fake_session(robot: str, port: str, bundle: Path, baseline: Path, hidden: Path, out: Path,
                     args: Any, method: str = "auto") -> dict[str, Any]:
        calls.append((Path(hidden).stem, bundle.name))
        methods.append(method)
        out.mkdir(parents=True, exist_ok=True)
        i = len(calls)
        # after beats robust by 10 on every robot; oracle 100
        return {"before": 50.0 + i, "after": 90.0 + i % 3, "oracle": 100.0, "robust": 80.0 + i % 3,
                "deadlines_met": 0.9995}

    monkeypatch.setattr(mod, "session", fake_session)
    monkeypatch.setattr(mod, "export", lambda run, bundle: bundle)
    import robot_meta.launch.emulator_process as ep

    monkeypatch.setattr(ep, "EmulatorProcess", FakeEmulator)
    FakeEmulator.started = []
    return mod, calls


def test_hidden_sets_resume_without_redoing_finished_sessions(bench, tmp_path: Path, capsys) -> None:
    mod, calls = bench
    argv = ["--robot", "arm2", "--methods", "rma,rl2", "--hidden-sets", "4", "--out", str(tmp_path),
            "--json"]
    assert mod.main(argv) == 0
    assert len(calls) == 8  # 4 hidden robots x 2 methods
    table = json.loads(capsys.readouterr().out)
    assert table["family"] == "servo" and table["hidden_sets"] == 4
    rma = table["methods"]["rma"]
    assert rma["all"]["sets"] == 4 and rma["in_range"]["sets"] == 2 and rma["beyond"]["sets"] == 2
    d = rma["all"]["after_minus_robust"]
    assert d["mean"] == pytest.approx(10.0) and d["ci95"][0] == pytest.approx(10.0)
    assert rma["all"]["frac_oracle"] == pytest.approx(rma["all"]["after"]["mean"] / 100.0, abs=1e-3)
    for p in (tmp_path / "hidden").glob("*.toml"):  # the drawn robots are on disk for the emulator
        assert p.stem in table["sessions"]

    # a killed run: one session's result is missing; the rerun does only that one
    victim = next(iter(table["sessions"]))
    (tmp_path / victim / "rl2" / "result.json").unlink()
    calls.clear()
    FakeEmulator.started = []
    assert mod.main(argv) == 0
    assert calls == [(victim, "rl2")]
    assert len(FakeEmulator.started) == 1  # no emulator started for finished robots
    again = json.loads(capsys.readouterr().out)
    assert again["methods"]["rma"] == table["methods"]["rma"]


def test_hidden_sets_and_hidden_files_are_exclusive(bench, tmp_path: Path) -> None:
    from robot_meta.errors import UserError

    mod, calls = bench
    with pytest.raises(UserError, match="--hidden and --hidden-sets"):
        mod.main(["--hidden-sets", "2", "--hidden", "arm2_payload", "--out", str(tmp_path)])
    with pytest.raises(UserError, match="at least 1"):
        mod.main(["--hidden-sets", "0", "--out", str(tmp_path)])
    assert calls == []


def test_an_overspeed_trip_is_counted_and_saved(bench, tmp_path: Path, capsys) -> None:
    """A session that trips the overspeed limit is a failed row, counted as a trip (from the
    exception's type), and a rerun does not retry it."""
    from robot_meta.hardware.errors import OverspeedError

    mod, calls = bench

    def tripping(robot: str, port: str, bundle: Path, baseline: Path, hidden: Path, out: Path,
                 args: Any, method: str = "auto") -> dict[str, Any]:
        calls.append((Path(hidden).stem, bundle.name))
        raise OverspeedError("joint 'shoulder' (ID 1) moves at 12, more than 2 x its velocity limit 4.8", 1,
                             "shoulder")

    mod.session = tripping
    argv = ["--robot", "arm2", "--methods", "rma", "--hidden-sets", "2", "--out", str(tmp_path), "--json"]
    assert mod.main(argv) == 0
    rma = json.loads(capsys.readouterr().out)["methods"]["rma"]
    assert rma["all"] == {"sets": 0, "failed": 2, "overspeed_trips": 2, "hardware_errors": 2}
    calls.clear()
    assert mod.main(argv) == 0
    assert calls == []


def test_sysid_adapts_the_rma_run_and_run_seed_picks_a_seed_study(bench, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`--methods sysid` flashes the RMA run and runs `adapt --method sysid`; `--run-seed 1` uses
    the runs `bench table` leaves (<robot>-<family>-<method>-s1), the baseline included."""
    mod, calls = bench
    exported: list[str] = []
    monkeypatch.setattr(mod, "export", lambda run, bundle: exported.append(run.name) or bundle)
    seen: list[str] = []
    fake = mod.session

    def recording(*a: Any, method: str = "auto") -> dict[str, Any]:
        seen.append(method)
        return fake(*a, method=method)

    monkeypatch.setattr(mod, "session", recording)
    assert mod.main(["--robot", "arm2", "--methods", "sysid,cavia", "--hidden-sets", "2",
                     "--run-seed", "1", "--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert exported == ["arm2-servo-ppo-s1", "arm2-servo-rma-s1", "arm2-servo-cavia-s1"]
    assert seen == ["sysid", "auto"] * 2
    exported.clear()  # --baseline-run: another robust baseline, e.g. a PPO for calibrated arms
    assert mod.main(["--robot", "arm2", "--methods", "rma", "--hidden-sets", "1", "--runs",
                     str(tmp_path), "--baseline-run", str(tmp_path / "ppo-fast"),
                     "--out", str(tmp_path / "o2")]) == 0
    assert exported == ["ppo-fast", "arm2-servo-rma"]


def test_a_servo_shutdown_gives_the_next_method_a_fresh_robot(bench, tmp_path: Path) -> None:
    """A session that ends in a servo hardware error (an overload shutdown latches until a
    reboot) is recorded, and the next method on the same hidden robot gets a new emulator."""
    from robot_meta.hardware.errors import HardwareError

    mod, calls = bench
    fake = mod.session

    def overloading(*a: Any, method: str = "auto") -> dict[str, Any]:
        if Path(a[2]).name == "rma":
            calls.append(("overload", "rma"))
            raise HardwareError("joint 'shoulder' (ID 1) reports a hardware error: overload")
        return fake(*a, method=method)

    mod.session = overloading
    assert mod.main(["--robot", "arm2", "--methods", "rma,pearl", "--hidden-sets", "2",
                     "--out", str(tmp_path)]) == 0
    assert len(FakeEmulator.started) == 4  # per hidden robot: one for rma, a fresh one for pearl
    res = json.loads((tmp_path / "hidden_sets_arm2.json").read_text())
    assert res["methods"]["rma"]["all"]["hardware_errors"] == 2
    assert res["methods"]["pearl"]["all"]["sets"] == 2


def test_real2sim2real_fine_tunes_per_hidden_robot_and_is_paired_with_rma(
        bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """real2sim2real identifies once per hidden robot and fine-tunes only where it finds the
    robot outside the training ranges (its own bundle); elsewhere it deploys the un-tuned RMA
    run, whose session on that robot is its measurement. It resumes without redoing anything,
    and the table pairs its zero-shot with the un-tuned RMA's (over all robots and over the
    fine-tuned ones), and sysid's after with RMA's."""
    mod, calls = bench
    prepared: list[tuple[str, str]] = []

    def fake_prepare(robot: str, port: str, run: Path, out: Path, steps: int, family: str
                     ) -> tuple[Path | None, dict[str, Any]]:
        prepared.append((out.parent.name, run.name))
        assert steps == 5000 and family == "servo"  # sysid fits the run's training family
        outside = len(prepared) == 1  # the first robot is beyond the ranges, the second within
        return (out / "bundle" if outside else None), {"fine_tune": outside}

    monkeypatch.setattr(mod, "prepare_real2sim2real", fake_prepare)
    argv = ["--robot", "arm2", "--methods", "rma,sysid,real2sim2real", "--hidden-sets", "2",
            "--finetune-steps", "5000", "--runs", str(tmp_path), "--out", str(tmp_path / "o"),
            "--json"]
    assert mod.main(argv) == 0
    assert [r for _, r in prepared] == ["arm2-servo-rma", "arm2-servo-rma"]
    assert len({h for h, _ in prepared}) == 2  # once per hidden robot
    # rma and sysid on both robots, and one real2sim2real session: the fine-tuned bundle's
    assert [b for _, b in calls].count("bundle") == 1 and len(calls) == 5
    table = json.loads(capsys.readouterr().out)
    sessions = table["sessions"]
    first, second = (sessions[h] for h, _ in prepared)
    assert first["real2sim2real"]["real2sim2real"]["fine_tune"] is True
    assert second["real2sim2real"]["shared_session"] == "rma"
    assert second["real2sim2real"]["before"] == second["rma"]["before"]
    want = [s["real2sim2real"]["before"] - s["rma"]["before"] for s in sessions.values()]
    got = table["paired"]["real2sim2real before - rma before"]
    assert got["all"]["n"] == 2 and got["all"]["mean"] == pytest.approx(sum(want) / 2, abs=0.01)
    assert got["fine_tuned"]["n"] == 1 and got["fine_tuned"]["mean"] == pytest.approx(
        first["real2sim2real"]["before"] - first["rma"]["before"], abs=0.01)
    assert table["paired"]["sysid after - rma after"]["all"]["n"] == 2
    prepared.clear()
    assert mod.main(argv) == 0 and prepared == []  # finished: nothing redone


def test_real2sim2real_needs_hidden_sets(bench, tmp_path: Path) -> None:
    from robot_meta.errors import UserError

    mod, calls = bench
    with pytest.raises(UserError, match="real2sim2real.*--hidden-sets"):
        mod.main(["--methods", "real2sim2real", "--out", str(tmp_path)])


def test_hidden_robots_are_calibrated_unless_asked_and_a_different_draw_is_refused(
        bench, tmp_path: Path) -> None:
    """Sessions score rollouts from the robot's encoders, so the drawn robots carry only the
    offsets calibration leaves; --miscalibrated keeps the family's, and resuming into a table
    of the other draw is refused instead of mixing two sets of robots."""
    import tomllib

    from robot_meta.errors import UserError

    mod, calls = bench
    argv = ["--robot", "arm2", "--methods", "rma", "--hidden-sets", "4", "--out", str(tmp_path)]
    assert mod.main(argv) == 0
    for f in (tmp_path / "hidden").glob("*.toml"):
        params = tomllib.loads(f.read_text())["params"]
        assert abs(params["shoulder_bias"]) <= 0.01 and abs(params["elbow_bias"]) <= 0.01
    with pytest.raises(UserError, match="different.*--out"):
        mod.main(argv + ["--miscalibrated"])
    assert mod.main(argv[:-1] + [str(tmp_path / "raw"), "--miscalibrated"]) == 0
    raw = [tomllib.loads(f.read_text())["params"] for f in (tmp_path / "raw" / "hidden").glob("*.toml")]
    assert max(abs(p["shoulder_bias"]) for p in raw) > 0.01
