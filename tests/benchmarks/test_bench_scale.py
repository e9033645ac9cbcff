"""`robot-meta bench scale`: the N-machine projection's arithmetic and argument errors (the
throughput itself is measured by running the benchmark, not in tests)."""

import pytest

from robot_meta.launch.cmd_bench import available, load


def test_scale_is_a_registered_benchmark() -> None:
    assert "scale" in available()


def test_projection_divides_collection_and_finds_the_learner_bound() -> None:
    proj = load("scale").projection
    ray1 = {"collect_ms": 800.0}
    ray2 = {"update_ms": 90.0, "broadcast_ms": 4.0, "gather_ms": 6.0, "bytes_per_iteration": 0.0}
    p = proj(ray1, ray2, it_steps=10_000)
    rows = {r["machines"]: r for r in p["rows"]}
    # t(N) = C / N + U + comm = 800 / N + 100 ms
    assert rows[1]["iteration_ms"] == 900.0 and rows[8]["iteration_ms"] == 200.0
    assert rows[8]["sps"] == 50_000
    assert p["learner_bound_from_machines"] == 8.0  # C / (U + comm)
    assert "not a measurement" in p["note"]
    # the shards cross the network once: 117 MB at 117 MB/s adds a second
    ray2["bytes_per_iteration"] = 117e6
    assert proj(ray1, ray2, 10_000)["comm_ms"] == pytest.approx(1010.0)


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    main = load("scale").main
    assert main(["--seconds", "0"]) == 2
    assert "--seconds must be > 0" in capsys.readouterr().err
