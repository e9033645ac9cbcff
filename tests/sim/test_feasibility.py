"""Families whose training ranges the servos cannot hold against gravity are refused."""

from pathlib import Path

import numpy as np
import pytest

from robot_meta.sim import make_vec_env
from robot_meta.sim.feasibility import (
    available_torques,
    check_family,
    clip_to_feasible,
    holding_torques,
)
from robot_meta.sim.randomize import SpecError, load_families, nominal_params, parse_family
from robot_meta.sim.robots import ROBOT_NAMES, get_robot
from robot_meta.sim.servo_physics import build_model


def _family(name: str, train: dict) -> object:
    return parse_family(get_robot("arm2"), name, {"train": train}, f"test [{name}]")


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_every_bundled_family_is_holdable(robot: str) -> None:
    for fam in load_families(robot).values():
        check_family(get_robot(robot), fam)  # raises if not


def test_unliftable_payload_is_refused_naming_factor_and_limit() -> None:
    fam = _family("heavy", {"payload_mass": {"dist": "uniform", "low": 0.0, "high": 1.0}})
    with pytest.raises(SpecError, match=r"payload_mass up to 1 kg.*'shoulder' needs 5\.\d+ N\*m"
                                        r".*at most 3\.57 N\*m.*Narrow the payload_mass range"):
        check_family(get_robot("arm2"), fam)  # type: ignore[arg-type]


def test_weak_motor_or_low_supply_is_refused() -> None:
    weak = _family("weak", {"shoulder_strength": {"dist": "uniform", "low": 0.2, "high": 1.0}})
    with pytest.raises(SpecError, match="shoulder_strength"):
        check_family(get_robot("arm2"), weak)  # type: ignore[arg-type]
    # a 3 V supply leaves a stall torque of 4.1 * 3 / 12 = 1.03 N*m, below the arm's own 1.06
    low = _family("brownout", {"supply_voltage": {"dist": "uniform", "low": 3.0, "high": 12.0}})
    with pytest.raises(SpecError, match="supply_voltage"):
        check_family(get_robot("arm2"), low)  # type: ignore[arg-type]


def test_clip_pulls_an_unholdable_end_in_to_the_limit() -> None:
    """A widened range beyond what the servos can hold (sysid's family.toml on a robot
    identified near the limit) is pulled in to the last holdable value: the clipped family
    passes the check, a slightly larger end would not, and other ranges are untouched."""
    r = get_robot("arm2")
    dists = _family("wide", {
        "payload_mass": {"dist": "uniform", "low": 0.3, "high": 1.0},
        "shoulder_strength": {"dist": "uniform", "low": 0.2, "high": 1.2},
        "elbow_frictionloss": {"dist": "uniform", "low": 0.0, "high": 5.0}}).train  # type: ignore[attr-defined]
    out, clipped = clip_to_feasible(r, dists)
    assert set(clipped) == {"payload_mass", "shoulder_strength"}
    pm, ss = out["payload_mass"], out["shoulder_strength"]
    assert pm.low == 0.3 and 0.3 < pm.high < 1.0 and clipped["payload_mass"] == (1.0, pm.high)
    assert ss.high == 1.2 and 0.2 < ss.low < 1.2
    assert out["elbow_frictionloss"] == dists["elbow_frictionloss"]
    check_family(r, _family("clipped", {k: {"dist": d.dist, "low": d.low, "high": d.high}
                                        for k, d in out.items()}))  # type: ignore[arg-type]
    over = {"payload_mass": {"dist": "uniform", "low": 0.3, "high": pm.high + 0.01}}
    with pytest.raises(SpecError, match="payload_mass"):
        check_family(r, _family("over", over))  # type: ignore[arg-type]


def test_make_vec_env_refuses_an_unliftable_family(tmp_path: Path) -> None:
    path = tmp_path / "heavy.toml"
    path.write_text('robot = "arm2"\n[heavy.train]\n'
                    'payload_mass = { dist = "uniform", low = 0.0, high = 2.0 }\n')
    with pytest.raises(SpecError, match="payload_mass"):
        make_vec_env("arm2", str(path), 2, nthread=0)


def test_holding_torque_is_m_g_r_at_horizontal() -> None:
    """At q = (pi/2, 0) the shoulder holds m1 g l1/2 + m2 g (l1 + l2/2) and the payload adds
    m g (l1 + l2); available torque is the current-limit effort, lowered by a weak motor."""
    r = get_robot("arm2")
    tau = holding_torques(r, build_model(r), np.array([[np.pi / 2, 0.0]]))[0]
    g = 9.81
    assert abs(tau[0]) == pytest.approx(0.3 * g * 0.125 + 0.2 * g * 0.35, rel=1e-3)
    assert abs(tau[1]) == pytest.approx(0.2 * g * 0.1, rel=1e-3)
    p = nominal_params(r)
    p[r.factor_names.index("shoulder_strength")] = 0.5
    have = available_torques(r, p)
    assert have[0] == pytest.approx(0.5 * 3.5652, rel=1e-3) and have[1] == pytest.approx(3.5652, rel=1e-3)
