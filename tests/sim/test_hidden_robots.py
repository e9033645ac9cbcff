"""The held-out hidden-robot generator: deterministic, split as documented, files that round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from robot_meta.sim.hidden_robots import draw_hidden_robots, outside
from robot_meta.sim.randomize import load_family, load_twin_params, params_to_dict


@pytest.mark.parametrize("robot,family", [("arm2", "servo"), ("cartpole", "all")])
def test_draw_is_deterministic_and_split_as_documented(robot: str, family: str) -> None:
    a = draw_hidden_robots(robot, family, 16, seed=7)
    b = draw_hidden_robots(robot, family, 16, seed=7)
    c = draw_hidden_robots(robot, family, 16, seed=8)
    assert a == b
    assert a != c
    assert [h.split for h in a] == ["in_range"] * 8 + ["beyond"] * 8
    assert len({h.name for h in a}) == 16
    fam = load_family(robot, family)
    for h in a:
        assert set(h.params) == set(fam.train)
        if h.split == "in_range":
            assert not any(outside(v, fam.train[k]) for k, v in h.params.items()), h
        else:
            # beyond: drawn from the ood ranges, and really outside the training box
            assert any(outside(v, fam.train[k]) for k, v in h.params.items()), h
            for k, v in h.params.items():
                d = fam.ood[k]
                assert d.low - 1e-6 <= v <= d.high + 1e-6, (k, v)


def test_servo_effects_are_on_around_the_servo_file() -> None:
    hs = draw_hidden_robots("arm2", "servo", 16, seed=0)
    for h in hs:
        e = h.effects
        assert e.encoder_quantization
        assert 0.015 - 1e-9 <= e.stiction <= 0.045 + 1e-9  # U(0.5, 1.5) x 0.03 N*m
        assert 0.001 <= e.current_lag <= 0.003
        assert 0.1 <= e.supply_resistance <= 0.4
    # the draws are spread, not one value repeated
    assert np.std([h.effects.stiction for h in hs]) > 1e-3


def test_written_file_reads_back_as_the_same_robot(tmp_path) -> None:
    for h in draw_hidden_robots("arm2", "servo", 4, seed=3):
        path = h.write(tmp_path)
        rdef, params, effects = load_twin_params(path, "arm2")
        values = params_to_dict(rdef, params)
        for k, v in h.params.items():
            assert values[k] == pytest.approx(v, abs=1e-12)
        assert effects == h.effects


def test_bad_count_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        draw_hidden_robots("arm2", "servo", 0)


def test_calibrated_robots_keep_everything_but_their_encoder_offsets() -> None:
    """As calibrated: each <joint>_bias is a calibration residual within r; every other factor
    and servo effect is the uncalibrated draw's, robot by robot."""
    raw = draw_hidden_robots("arm2", "servo", 8, seed=5)
    cal = draw_hidden_robots("arm2", "servo", 8, seed=5, calibration_residual=0.01)
    biases = {"shoulder_bias", "elbow_bias"}
    assert any(abs(h.params["shoulder_bias"]) > 0.05 for h in raw)  # the family's offsets
    for a, b in zip(raw, cal, strict=True):
        assert b.calibrated and not a.calibrated and "as calibrated" in b.to_toml()
        assert all(abs(b.params[k]) <= 0.01 for k in biases)
        assert {k: v for k, v in a.params.items() if k not in biases} == \
            {k: v for k, v in b.params.items() if k not in biases}
        assert a.effects == b.effects and a.name == b.name
    with pytest.raises(ValueError, match="calibration_residual"):
        draw_hidden_robots("arm2", "servo", 2, calibration_residual=-1.0)
