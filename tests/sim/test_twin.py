"""The PyBullet twin agrees with MuJoCo at equal parameters, and diverges when they differ."""

import mujoco
import numpy as np
import pytest

from robot_meta.sim import make_twin_env, make_vec_env
from robot_meta.sim.randomize import params_from_dict
from robot_meta.sim.robot_check import HORIZON, TWIN_TOL, twin_gap
from tests.sim.helpers import open_loop, sine_actions

# Open-loop horizon and tolerance: 0.5 s (25 control steps) of smooth actions, positions within
# 0.02 (rad or m). Measured gaps are below 0.007 (below 0.01 on the servo envelope); the remaining
# difference is the engines' (a hard friction constraint and 1 ms explicit steps in the twin vs
# MuJoCo's soft frictionloss and 5 ms Euler / implicitfast with the servos' armature).
TOL = TWIN_TOL
START = {"cartpole": np.array([0.05, 0.1]), "arm2": np.array([0.3, -0.2])}
AMP = {"cartpole": 0.5, "arm2": 0.15}
CASES = [
    ("cartpole", {}),
    ("cartpole", {"slider_frictionloss": 0.8, "cart_mass_scale": 1.4}),
    ("cartpole", {"payload_mass": 0.08, "payload_offset": 0.1, "hinge_damping": 0.008}),
    ("cartpole", {"slider_strength": 0.7, "pole_mass_scale": 1.8, "slider_damping": 1.5}),
    ("arm2", {}),
    ("arm2", {"payload_mass": 0.4, "payload_offset": 0.05, "elbow_frictionloss": 0.08}),
    ("arm2", {"shoulder_strength": 0.8, "link1_mass_scale": 1.3, "shoulder_damping": 0.2}),
]


def _pair(robot: str, values: dict[str, float]):  # type: ignore[no-untyped-def]
    sim = make_vec_env(robot, "all", 1, nthread=0)
    p = params_from_dict(sim.robot, values, "test")
    sim.set_tasks(p)
    return sim, make_twin_env(robot, p), p


@pytest.mark.parametrize("robot, values", CASES)
def test_twin_matches_mujoco_at_equal_params(robot: str, values: dict[str, float]) -> None:
    """`robot check`'s comparison (robot_meta.sim.robot_check.twin_gap), at these parameters."""
    gap, motion = twin_gap(robot, values, start=START[robot], amplitude=AMP[robot], horizon=HORIZON)
    assert motion > 0.1  # the trajectory really moves
    assert gap < TOL, f"twin and MuJoCo differ by {gap:.4f} (tolerance {TOL})"


@pytest.mark.parametrize("values", [
    {},
    {"supply_voltage": 10.0},
    {"supply_voltage": 14.0, "shoulder_strength": 0.7, "elbow_strength": 1.3},
])
def test_twin_matches_mujoco_on_the_servo_envelope(values: dict[str, float]) -> None:
    """Full-current sines drive arm2's servos onto their torque-speed line (speeds near the
    no-load speed): both engines apply the same envelope, supply voltage and strength."""
    sim, twin, _ = _pair("arm2", values)
    acts = sine_actions(HORIZON, sim.action_dim, 1.0)
    a = open_loop(sim, START["arm2"], acts)[:, 0]
    b = open_loop(twin, START["arm2"], acts)[:, 0]
    gap = np.abs(a - b).max()
    assert gap < TOL, f"twin and MuJoCo differ by {gap:.4f} (tolerance {TOL})"
    twin.close()


@pytest.mark.parametrize("robot, changed", [
    ("arm2", {"payload_mass": 0.4}),
    ("cartpole", {"cart_mass_scale": 1.4, "payload_mass": 0.08}),
])
def test_twin_diverges_from_nominal_sim_when_hidden_params_differ(
        robot: str, changed: dict[str, float]) -> None:
    sim = make_vec_env(robot, "all", 1, nthread=0)
    sim.set_tasks(params_from_dict(sim.robot, {}, "test"))
    twin = make_twin_env(robot, changed)
    acts = sine_actions(HORIZON, sim.action_dim, AMP[robot])
    a = open_loop(sim, START[robot], acts)[:, 0]
    b = open_loop(twin, START[robot], acts)[:, 0]
    assert np.abs(a - b).max() > 5 * TOL
    twin.close()


@pytest.mark.parametrize("values", [{}, {"payload_mass": 0.4}, {"payload_mass": 0.4, "payload_offset": 0.05},
                                    {"link1_mass_scale": 1.3, "link2_mass_scale": 0.7}])
def test_static_gravity_torques_agree_exactly(values: dict[str, float]) -> None:
    """Inverse dynamics at rest with the arm horizontal: both engines give the same torques,
    and a payload m at reach L adds m g L at the shoulder."""
    sim, twin, _ = _pair("arm2", values)
    m = sim.backend.models[0]
    d = mujoco.MjData(m)
    d.qpos[:] = [np.pi / 2, 0.0]
    mujoco.mj_forward(m, d)
    c, body = twin.backend._clients[0], twin.backend._body[0]
    tau_bullet = np.array(c.calculateInverseDynamics(body, [np.pi / 2, 0.0], [0.0, 0.0], [0.0, 0.0]))
    # atol: the twin gives an empty payload 1e-6 kg (PyBullet wants positive masses)
    np.testing.assert_allclose(d.qfrc_bias, tau_bullet, rtol=1e-6, atol=1e-5)
    if values == {"payload_mass": 0.4}:
        nominal, _, _ = _pair("arm2", {})
        dn = mujoco.MjData(nominal.backend.models[0])
        dn.qpos[:] = [np.pi / 2, 0.0]
        mujoco.mj_forward(nominal.backend.models[0], dn)
        # holding torque grows by m g (l1 + l2) = 0.4 * 9.81 * 0.45 at the shoulder
        assert d.qfrc_bias[0] - dn.qfrc_bias[0] == pytest.approx(0.4 * 9.81 * 0.45, rel=1e-6)
    twin.close()


def test_twin_env_interface_matches_sim(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hidden.toml"
    path.write_text('robot = "arm2"\n[params]\npayload_mass = 0.3\nlatency_steps = 1\n')
    twin = make_twin_env(params=path, seed=0)
    sim = make_vec_env("arm2", "payload", 1, nthread=0)
    assert twin.obs_dim == sim.obs_dim and twin.action_dim == sim.action_dim
    assert twin.factor_dim == sim.factor_dim
    obs = twin.reset(seed=1)
    assert obs.shape == (1, sim.obs_dim)
    total = 0.0
    for _ in range(10):
        obs, r, term, trunc, info = twin.step(np.zeros((1, 2)))
        total += float(r[0])
        assert set(info["reward_terms"]) == set(sim.task.reward_terms)
    assert 0.0 <= total <= 10.0
    i = twin.robot.factor_names.index("payload_mass")
    assert twin.params[0, i] == 0.3
    twin.close()
