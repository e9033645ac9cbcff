"""The PyBullet twin as a real servo: the envelope, the armature and the unmodeled effects."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from robot_meta.hardware.servos import ServoEffects, ServoSpecError
from robot_meta.sim import make_twin_env
from robot_meta.sim.randomize import SpecError, load_params_file, load_twin_params, params_from_dict
from robot_meta.sim.robots.robot_def import get_robot
from robot_meta.sim.twin import TWIN_PHYSICS_DT, TwinBackend

ROBOT = get_robot("arm2")
HJ = [ROBOT.hardware_map.joint(j) for j in ROBOT.actuated_joints]
SERVO = HJ[0].servo
MOTOR = SERVO.motor
assert MOTOR is not None
DT = TWIN_PHYSICS_DT
# Both arm2 joints hang straight down at q = 0: no gravity torque, no Coriolis at rest.
HANG = np.zeros(2)
REPO = Path(__file__).resolve().parents[2]


def _twin(values: dict[str, float] | None = None, effects: ServoEffects | None = None,
          q0: np.ndarray = HANG, dq0: np.ndarray | None = None) -> TwinBackend:
    b = TwinBackend(ROBOT, effects=effects)
    b.set_params(np.array([0]), params_from_dict(ROBOT, values or {}, "test")[None])
    b.set_state(np.array([0]), q0[None], (np.zeros(2) if dq0 is None else dq0)[None])
    return b


def _run(b: TwinBackend, effort: tuple[float, float], steps: int) -> np.ndarray:
    """Positions (steps, 2) after each physics step at a constant effort."""
    out = []
    for _ in range(steps):
        b.step_effort(np.array([effort]), 1)
        out.append(b.qpos[0].copy())
    return np.array(out)


LOSSLESS = {"shoulder_damping": 0.0, "elbow_damping": 0.0,
            "shoulder_frictionloss": 0.0, "elbow_frictionloss": 0.0}


# ---- the envelope and the armature ----------------------------------------------------------
@pytest.mark.parametrize("volts, strength", [(12.0, 1.0), (10.5, 0.8), (14.0, 1.2)])
@pytest.mark.parametrize("frac", [0.0, 0.5, 0.9])
def test_delivered_torque_follows_the_servo_line(volts: float, strength: float, frac: float) -> None:
    """At full command and output speed w = frac * w0', both joints get the servo file's line
    s tau_s V / V_n (1 - frac), w0' = w0 V / (V_n s), measured from the acceleration with the
    armature: tau = (M + J_A) qddot + c."""
    assert MOTOR is not None
    w0 = MOTOR.no_load_speed * volts / MOTOR.nominal_voltage / strength
    line = strength * MOTOR.stall_torque * volts / MOTOR.nominal_voltage * (1.0 - frac)
    values = dict(LOSSLESS, supply_voltage=volts, shoulder_strength=strength,
                  elbow_strength=strength)
    q0, dq0 = np.array([0.4, -0.3]), np.full(2, frac * w0)
    b = _twin(values, q0=q0, dq0=dq0)
    c, body = b._clients[0], b._body[0]
    M = np.array(c.calculateMassMatrix(body, q0.tolist()))
    bias = np.array(c.calculateInverseDynamics(body, q0.tolist(), dq0.tolist(), [0.0, 0.0]))
    full = 2.0 * MOTOR.stall_torque  # far beyond the current limit: the line decides
    b.step_effort(np.array([[full, full]]), 1)
    acc = (b.qvel[0] - dq0) / DT
    tau = (M + np.diag([MOTOR.armature] * 2)) @ acc + bias
    np.testing.assert_allclose(tau, line, rtol=0.05, atol=0.002 * MOTOR.stall_torque)
    np.testing.assert_allclose(b.last_torque[0], line, rtol=0.05, atol=1e-9)
    # the motor current is the delivered torque over s K_t
    np.testing.assert_allclose(b.motor_current[0], line / (strength * SERVO.torque_constant))


def test_current_limit_caps_the_torque_at_stall() -> None:
    """At rest the line allows tau_s = 4.1 N*m, but the hardware current limit clamps it:
    an arm2 action of +1 (2.0 A) gives K_t * 2.0 A, and no command exceeds K_t * I_lim."""
    b = _twin(LOSSLESS)
    b.step_effort(np.array([[HJ[0].gear, 100.0]]), 1)
    assert b.last_torque[0, 0] == pytest.approx(SERVO.torque_constant * 2.0)
    assert b.last_torque[0, 1] == pytest.approx(min(MOTOR.stall_torque,
                                                    SERVO.torque_constant * SERVO.max_current_a))


def test_speed_rises_to_the_no_load_speed_and_not_beyond() -> None:
    """Full current on the shoulder from rest, gravity off and no losses (the elbow held
    straight by its friction): the speed approaches w0 and never exceeds it."""
    assert MOTOR is not None
    b = _twin(dict(LOSSLESS, elbow_frictionloss=5.0), q0=np.array([-1.5, 0.0]))
    b._clients[0].setGravity(0.0, 0.0, 0.0)  # the line alone decides the speed
    speeds = []
    for _ in range(600):
        b.step_effort(np.array([[HJ[0].gear, 0.0]]), 1)
        speeds.append(b.qvel[0, 0])
    w0 = MOTOR.no_load_speed
    assert max(speeds) <= 1.01 * w0
    assert speeds[-1] >= 0.97 * w0
    assert abs(b.qpos[0, 1]) < 1e-9  # the elbow stayed straight


def test_armature_adds_to_the_inertia() -> None:
    """From rest at the hanging pose (c = 0), qddot = (M + J_A)^-1 (tau - f) with the rotor's
    reflected inertia J_A = J_servo / r^2 on the diagonal."""
    b = _twin(LOSSLESS)
    c, body = b._clients[0], b._body[0]
    M = np.array(c.calculateMassMatrix(body, [0.0, 0.0]))
    tau = np.array([0.3, -0.2])
    b.step_effort(tau[None], 1)
    expect = np.linalg.solve(M + MOTOR.armature * np.eye(2), tau)
    np.testing.assert_allclose(b.qvel[0] / DT, expect, rtol=1e-6)
    assert not np.allclose(b.qvel[0] / DT, np.linalg.solve(M, tau), rtol=0.1)


def test_pwm_mode_gives_the_pwm_torque() -> None:
    """A finite duty puts a joint in PWM mode: tau = tau_s(V) (d - w / w0(V)); NaN keeps the
    other in current mode."""
    assert MOTOR is not None
    w = 1.0
    b = _twin(dict(LOSSLESS, supply_voltage=11.0), dq0=np.array([w, 0.0]))
    b.step_effort(np.array([[0.0, 0.7]]), 1, duty=np.array([[0.5, np.nan]]))
    ts, w0 = MOTOR.stall_torque * 11.0 / 12.0, MOTOR.no_load_speed * 11.0 / 12.0
    assert b.last_torque[0, 0] == pytest.approx(ts * (0.5 - w / w0))
    assert b.last_torque[0, 1] == pytest.approx(0.7)
    np.testing.assert_allclose(b.motor_current[0], b.last_torque[0] / SERVO.torque_constant)


def test_ideal_robot_keeps_strength_times_effort() -> None:
    """An ideal force source (the cartpole's cart as it was before its servo was simulated,
    issue 20): delivered effort = strength * effort."""
    robot = dataclasses.replace(get_robot("cartpole"), actuator_model="ideal")
    b = TwinBackend(robot)
    b.set_params(np.array([0]), params_from_dict(robot, {"slider_strength": 0.7}, "t")[None])
    b.step_effort(np.array([[100.0]]), 1)
    assert b.last_torque[0, 0] == pytest.approx(70.0)
    b.close()


# ---- unmodeled effects ------------------------------------------------------------------------
def test_backlash_delays_a_reversal_until_the_play_is_taken_up() -> None:
    """With play b, a fresh gear is centred: a small command moves nothing until the rotor
    has crossed b / 2. Reversing then needs the whole play b; pushing on does not."""
    assert MOTOR is not None
    play, tau = 0.05, 0.2
    fx = ServoEffects(backlash=play)
    t_half = np.sqrt(2 * (play / 2) * MOTOR.armature / tau)  # rotor: J qddot = tau over b / 2
    t_full = np.sqrt(2 * play * MOTOR.armature / tau)
    reversed_, pushed = _twin(effects=fx), _twin(effects=fx)
    for b in (reversed_, pushed):
        q = _run(b, (0.0, tau), 150)
        n = int(0.8 * t_half / DT)
        assert np.abs(q[:n]).max() == 0.0  # no drive torque reached the output
        assert q[-1, 1] > 1e-3  # then it moved
        b.set_state(np.array([0]), HANG[None], np.zeros((1, 2)))  # the gear stays engaged on +
    q_rev = _run(reversed_, (0.0, -tau), 200)
    n = int(0.8 * t_full / DT)
    assert np.abs(q_rev[:n]).max() == 0.0
    assert q_rev[-1, 1] < -1e-3
    q_push = _run(pushed, (0.0, tau), 10)
    assert q_push[-1, 1] > 1e-4  # engaged: the output moves at once
    # without backlash the reversal moves the output at once too
    q_free = _run(_twin(), (0.0, -tau), 10)
    assert q_free[-1, 1] < -1e-4


@pytest.mark.parametrize("ratio, moves", [(0.95, False), (1.05, True)])
def test_stiction_holds_below_breakaway(ratio: float, moves: bool) -> None:
    """At rest, the elbow breaks away only when the torque exceeds frictionloss + stiction."""
    stiction, friction = 0.1, 0.02
    tau = ratio * (friction + stiction)
    q = _run(_twin({"elbow_frictionloss": friction}, ServoEffects(stiction=stiction)),
             (0.0, tau), 300)
    if moves:
        assert q[-1, 1] > 1e-3
    else:
        assert np.abs(q[:, 1]).max() < 1e-9
    # without stiction the same torque (above the Coulomb friction) always moves it
    assert _run(_twin({"elbow_frictionloss": friction}), (0.0, tau), 300)[-1, 1] > 1e-3


def test_current_lag_is_a_first_order_lag() -> None:
    lag, tau = 0.02, 0.5
    b, ideal = _twin(effects=ServoEffects(current_lag=lag)), _twin()
    for k in range(1, 41):
        b.step_effort(np.array([[0.0, tau]]), 1)
        ideal.step_effort(np.array([[0.0, tau]]), 1)
        assert b.last_torque[0, 1] == pytest.approx(tau * (1 - np.exp(-k * DT / lag)), rel=1e-9)
    assert ideal.last_torque[0, 1] == pytest.approx(tau)
    assert 0.0 < b.qpos[0, 1] < 0.7 * ideal.qpos[0, 1]  # the lagging current moved it less


def test_supply_resistance_sags_the_supply() -> None:
    """V = V_s - R_s sum |I| (previous step); less voltage, less stall torque."""
    R, full = 0.5, 2.0 * MOTOR.stall_torque
    b, ideal = _twin(effects=ServoEffects(supply_resistance=R)), _twin()
    for x in (b, ideal):
        x.step_effort(np.array([[full, -full]]), 1)
    i_prev = b.motor_current[0].copy()
    assert b.supply_now[0] == pytest.approx(12.0)  # no current before the first step
    for x in (b, ideal):
        x.step_effort(np.array([[full, -full]]), 1)
    assert b.supply_now[0] == pytest.approx(12.0 - R * np.abs(i_prev).sum())
    assert b.supply_now[0] < 10.0 and ideal.supply_now[0] == 12.0
    assert (np.abs(b.last_torque[0]) < 0.85 * np.abs(ideal.last_torque[0])).all()


def _angles_and_speeds(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """arm2 reach observations: [cos q0, sin q0, cos q1, sin q1, dq0, dq1, ...]."""
    q = np.stack([np.arctan2(obs[:, 1], obs[:, 0]), np.arctan2(obs[:, 3], obs[:, 2])], axis=1)
    return q, obs[:, 4:6]


@pytest.mark.parametrize("quantize", [True, False])
def test_encoder_quantization_rounds_observations_to_ticks(quantize: bool) -> None:
    env = make_twin_env("arm2", {"elbow_bias": 0.01}, effects=ServoEffects(encoder_quantization=quantize))
    tick = 2 * np.pi / HJ[0].ticks_per_rev
    unit = HJ[0].velocity_unit_rad_s
    rng = np.random.default_rng(0)
    on_tick = []
    for _ in range(10):
        obs, *_ = env.step(rng.uniform(-0.5, 0.5, (1, 2)))
        q, dq = _angles_and_speeds(obs)
        on_tick.append(np.allclose(q / tick, np.round(q / tick), atol=1e-6)
                       and np.allclose(dq / unit, np.round(dq / unit), atol=1e-6))
    assert all(on_tick) if quantize else not any(on_tick)
    # the backend's state stays true (the emulator quantizes on its own)
    assert not np.allclose(env.backend.qpos / tick, np.round(env.backend.qpos / tick), atol=1e-6)
    env.close()


def test_default_effects_change_nothing() -> None:
    fx = ServoEffects()
    assert not fx.any and ServoEffects(backlash=0.01).any
    a, b = _twin(effects=fx), _twin()
    qa, qb = _run(a, (0.3, -0.4), 50), _run(b, (0.3, -0.4), 50)
    np.testing.assert_array_equal(qa, qb)


# ---- the [servo] table -------------------------------------------------------------------------
def _write(tmp_path: Path, servo: str) -> Path:
    path = tmp_path / "hidden.toml"
    path.write_text(f'robot = "arm2"\n[params]\npayload_mass = 0.2\n[servo]\n{servo}\n')
    return path


@pytest.mark.parametrize("line, match", [
    ("backlash = -1", r"\[servo\]\.backlash: must be >= 0, got -1"),
    ("stiction = \"high\"", r"\[servo\]\.stiction: expected a number"),
    ("encoder_quantization = 1", r"\[servo\]\.encoder_quantization: expected true or false"),
    ("backlsh = 0.01", r"unknown key\(s\) \['backlsh'\]; allowed: stiction, backlash, "
                       r"encoder_quantization, current_lag, supply_resistance"),
])
def test_bad_servo_table_is_refused(tmp_path: Path, line: str, match: str) -> None:
    path = _write(tmp_path, line)
    with pytest.raises(SpecError, match=match) as e:
        load_twin_params(path)
    assert str(path) in str(e.value)
    with pytest.raises(SpecError, match=match):
        load_params_file(path)


def test_servo_effects_from_table_validates() -> None:
    with pytest.raises(ServoSpecError, match=r"x\.current_lag: must be >= 0"):
        ServoEffects.from_table({"current_lag": -0.1}, "x")
    with pytest.raises(ServoSpecError, match=r"x: expected a table"):
        ServoEffects.from_table([], "x")  # type: ignore[arg-type]
    with pytest.raises(ServoSpecError):
        ServoEffects(backlash=-1.0)


def test_servo_table_reaches_the_twin(tmp_path: Path) -> None:
    path = _write(tmp_path, "backlash = 0.004\nstiction = 0.03\nencoder_quantization = true")
    rdef, params, fx = load_twin_params(path)
    assert rdef.name == "arm2" and fx == ServoEffects(stiction=0.03, backlash=0.004,
                                                      encoder_quantization=True)
    assert np.array_equal(load_params_file(path)[1], params)
    env = make_twin_env(params=path)
    assert env.backend.effects == fx
    env.close()
    env = make_twin_env(params=path, effects=ServoEffects())  # an explicit argument wins
    assert env.backend.effects == ServoEffects()
    env.close()


def test_example_file_loads() -> None:
    _, _, fx = load_twin_params(REPO / "examples" / "hidden" / "arm2_servo_effects.toml")
    assert fx.any and fx.backlash > 0 and fx.encoder_quantization
