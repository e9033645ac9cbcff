"""System identification with mujoco.sysid: recovery, identifiability, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from robot_meta.calibration.sysid import SysidConfig, SysidError, SystemIdentifier
from robot_meta.calibration.sysid_report import SysidReport
from robot_meta.runtime.session_store import SessionStore
from robot_meta.sim.randomize import load_family, load_twin_params
from tests.calibration.helpers import simulate

ARM_TRUE = {"payload_mass": 0.25, "shoulder_strength": 0.9, "elbow_strength": 1.1,
            "elbow_frictionloss": 0.06, "latency_steps": 1, "shoulder_bias": 0.08,
            "elbow_bias": -0.05, "supply_voltage": 11.0}


@pytest.fixture(scope="module")
def arm_fit(tmp_path_factory):
    recs = [simulate("arm2", ARM_TRUE, "chirp", "shoulder", seed=1),
            simulate("arm2", ARM_TRUE, "chirp", "elbow", seed=2),
            simulate("arm2", ARM_TRUE, "steps", seed=3)]
    held = [simulate("arm2", ARM_TRUE, "multisine", seconds=4.0, seed=4)]
    sid = SystemIdentifier("arm2", "servo", SysidConfig(max_iters=20))
    res, objs = sid.fit(recs, held)
    return sid, res, objs, held


def test_recovers_known_parameters(arm_fit):
    sid, res, _, _ = arm_fit
    for name, true in ARM_TRUE.items():
        e = res.estimates[name]
        assert e.identifiable, (name, e.reason)
        tol = 0.03 * (e.high - e.low)  # 3 % of the search range
        assert abs(e.estimate - true) < tol, (name, e.estimate, true)
    # untouched factors stay at their (nominal) truth too
    assert abs(res.estimates["shoulder_frictionloss"].estimate - 0.02) < 0.01
    assert res.params_vector(sid.robot)[sid.robot.factor_names.index("latency_steps")] == 1
    h = res.heldout
    assert h["identified"]["rmse"] * 5 < h["nominal"]["rmse"]


def test_writes_twin_params_and_narrowed_family(arm_fit, tmp_path):
    sid, res, objs, held = arm_fit
    files = SysidReport(sid, res, objs, held, source="test").write(tmp_path / "ident",
                                                                   mujoco_report=False)
    load_twin_params(files["fit_params"], robot="arm2")  # loadable too
    rdef, vec, _ = load_twin_params(files["params"], robot="arm2")
    assert vec[rdef.factor_names.index("payload_mass")] == pytest.approx(0.25, abs=0.03)
    fam = load_family("arm2", files["family"])
    d = fam.train["payload_mass"]
    e = res.estimates["payload_mass"]
    # the 95 % interval widened by the held-out model error, to at least half the training
    # width: >= max(e, 1/2) W / 2 each side of the value
    err = res.heldout["identified"]["rmse"] / res.heldout["nominal"]["rmse"]
    assert err < 0.5
    src = load_family("arm2", "servo").train["payload_mass"]
    half = 0.5 * 0.5 * (src.high - src.low)
    assert d.low == pytest.approx(max(0.0, min(e.interval()[0], e.value - half)), abs=1e-5)
    assert d.high == pytest.approx(max(e.interval()[1], e.value + half), abs=1e-5)
    assert d.high - d.low < 0.6 * (0.4 - 0.0)  # narrower than the source family
    assert (tmp_path / "ident" / "report" / "README.md").read_text().count("identified") > 3
    assert (tmp_path / "ident" / "report" / "heldout_0.png").stat().st_size > 1000


def test_fine_tunes_only_outside_the_training_ranges_and_widens_by_model_error(arm_fit):
    """The real2sim2real decision: a robot identified within the family's training ranges is
    deployed as it is; one with a factor beyond them is fine-tuned. Without held-out data the
    model error is 1 and each identified factor keeps the whole training width around it."""
    import copy
    import dataclasses

    sid, res, objs, held = arm_fit
    src = sid.family.train
    assert all(src[k].low <= v <= src[k].high for k, v in ARM_TRUE.items())
    within = SysidReport(sid, res, objs, held).decision()
    assert within["fine_tune"] is False and within["outside_training"] == {}
    assert within["model_error"] < 0.2  # the identified model predicts the held-out data
    beyond = copy.deepcopy(res)
    e = beyond.estimates["payload_mass"]
    beyond.estimates["payload_mass"] = dataclasses.replace(e, value=0.6, estimate=0.6)
    d = SysidReport(sid, beyond, objs, held).decision()
    assert d["fine_tune"] is True and list(d["outside_training"]) == ["payload_mass"]
    assert d["outside_training"]["payload_mass"]["range"] == [src["payload_mass"].low,
                                                              src["payload_mass"].high]
    # an estimate just beyond the range whose interval still reaches into it is an edge, not
    # evidence: no fine-tuning
    edge = src["payload_mass"].high + 0.5 * e.half_width
    beyond.estimates["payload_mass"] = dataclasses.replace(e, value=edge, estimate=edge)
    assert SysidReport(sid, beyond, objs, held).decision()["fine_tune"] is False
    blind = SysidReport(sid, dataclasses.replace(res, heldout={}), objs)
    assert blind.model_error() == 1.0
    w = blind.family_dists()["shoulder_strength"]
    v, width = res.estimates["shoulder_strength"].value, src["shoulder_strength"].high - src[
        "shoulder_strength"].low
    assert w.low == pytest.approx(v - width / 2) and w.high == pytest.approx(v + width / 2)


def test_jackknife_widens_the_interval_where_recordings_disagree(arm_fit):
    """An effect the model misses biases each excitation differently. Here each recording
    comes from a robot with another elbow friction (0.04, 0.06, 0.08 N*m), which no single
    value fits: the delete-one-recording jackknife sees the estimate move with the
    excitation and widens that factor's interval to cover the spread, where consistent
    recordings (arm_fit) keep it narrow."""
    sid0, res0, _, _ = arm_fit
    truths = [dict(ARM_TRUE, elbow_frictionloss=f) for f in (0.04, 0.06, 0.08)]
    recs = [simulate("arm2", truths[0], "chirp", "shoulder", seed=1),
            simulate("arm2", truths[1], "chirp", "elbow", seed=2),
            simulate("arm2", truths[2], "steps", seed=3)]
    sid = SystemIdentifier("arm2", "servo", SysidConfig(max_iters=20))
    res, _ = sid.fit(recs)
    i = [f.name for f in sid.fitted].index("elbow_frictionloss")
    assert sid.jackknife_half[i] > 3 * sid0.jackknife_half[i]
    assert sid.jackknife_half[i] > sid.within_half[i]
    e = res.estimates["elbow_frictionloss"]
    assert e.half_width == pytest.approx(max(sid.jackknife_half[i], sid.within_half[i]))
    assert e.half_width > 0.01 > res0.estimates["elbow_frictionloss"].half_width
    assert len(sid.subset_estimates) == 3


def test_payload_offset_without_payload_is_unidentifiable(tmp_path):
    fam = tmp_path / "fam.toml"
    fam.write_text('robot = "arm2"\n[f]\n[f.train]\n'
                   'payload_offset = { dist = "uniform", low = -0.05, high = 0.05 }\n'
                   'shoulder_strength = { dist = "uniform", low = 0.8, high = 1.2 }\n')
    truth = {"shoulder_strength": 0.9}  # no payload: its offset moves nothing
    recs = [simulate("arm2", truth, "chirp", "shoulder", seconds=3.0, seed=1)]
    sid = SystemIdentifier("arm2", str(fam), SysidConfig(max_iters=10))
    res, _ = sid.fit(recs)
    off = res.estimates["payload_offset"]
    assert not off.identifiable and off.value is None and off.reason
    assert res.estimates["shoulder_strength"].identifiable
    assert res.estimates["shoulder_strength"].value == pytest.approx(0.9, abs=0.02)
    assert "payload_offset" not in res.identified()


def test_rejects_inconsistent_recording():
    rec = simulate("arm2", {}, "chirp", "shoulder", seconds=1.0)
    rec.q = rec.q[:-5]  # truncated
    sid = SystemIdentifier("arm2", "servo")
    with pytest.raises(SysidError, match="truncated"):
        sid.fit([rec])
    cart = simulate("cartpole", {}, "steps", seconds=1.0)
    with pytest.raises(SysidError, match="another robot"):
        sid.fit([cart])


def _session(root, robot, recs, steps_override=None):
    """A session directory as robot-meta adapt writes it."""
    store = SessionStore.create(root, {"robot": robot})
    for i, r in enumerate(recs):
        n = len(r.action) if steps_override is None else steps_override
        store.save_rollout(i, "adapt", {"q": r.q, "dq": r.dq, "action": r.action,
                                        "t": np.arange(len(r.q)) * r.dt}, {"steps": n})
    return store


def _previous_outputs(out):
    out.mkdir()
    (out / "params.toml").write_text("previous\n")
    return {"params.toml": "previous\n"}


def _cli(*argv):
    from robot_meta.launch.cli import main

    return main(list(argv))


def test_from_session_writes_outputs(tmp_path):
    recs = [simulate("arm2", {"payload_mass": 0.2}, "chirp", j, seconds=2.0, seed=i)
            for i, j in enumerate(("shoulder", "elbow", "shoulder"))]
    _session(tmp_path / "s", "arm2", recs)
    rc = _cli("sysid", "--robot", "arm2", "--from", str(tmp_path / "s"), "-o",
              str(tmp_path / "ident"), "--no-html", "--max-iters", "8", "--json")
    assert rc == 0
    rdef, vec, _ = load_twin_params(tmp_path / "ident" / "params.toml")
    assert vec[rdef.factor_names.index("payload_mass")] == pytest.approx(0.2, abs=0.03)


def test_session_of_another_robot_is_refused(tmp_path, capsys):
    cart = [simulate("cartpole", {}, "steps", seconds=1.0)]
    _session(tmp_path / "s", "cartpole", cart)
    before = _previous_outputs(tmp_path / "ident")
    rc = _cli("sysid", "--robot", "arm2", "--from", str(tmp_path / "s"), "-o",
              str(tmp_path / "ident"), "--no-html")
    assert rc == 2
    assert "a session of robot 'cartpole'" in capsys.readouterr().err
    assert {p.name: p.read_text() for p in (tmp_path / "ident").iterdir()} == before


@pytest.mark.parametrize("damage", ["file", "steps"])
def test_truncated_log_is_refused(tmp_path, capsys, damage):
    recs = [simulate("arm2", {}, "chirp", "shoulder", seconds=1.0, seed=i) for i in range(2)]
    store = _session(tmp_path / "s", "arm2", recs, steps_override=80 if damage == "steps" else None)
    if damage == "file":
        f = store.rollouts_dir / store.completed()[1]["file"]
        f.write_bytes(f.read_bytes()[:200])  # cut mid-write
    before = _previous_outputs(tmp_path / "ident")
    rc = _cli("sysid", "--robot", "arm2", "--from", str(tmp_path / "s"), "-o",
              str(tmp_path / "ident"), "--no-html")
    assert rc == 2
    assert "truncated" in capsys.readouterr().err
    assert {p.name: p.read_text() for p in (tmp_path / "ident").iterdir()} == before


def test_recorded_times_replace_the_nominal_grid():
    rec = simulate("arm2", {"payload_mass": 0.2}, "chirp", "shoulder", seconds=2.0)
    sid = SystemIdentifier("arm2", "servo", SysidConfig(use_times=True))
    assert rec.times() is None  # no times recorded
    rec.t = np.arange(len(rec.q)) * rec.dt + 100.0  # a loop that met every deadline
    assert np.allclose(rec.times(), np.arange(len(rec.q)) * rec.dt)
    exact = np.concatenate(sid.prediction_errors(sid.windows([rec], None),
                                                 sid.param_dict({"payload_mass": 0.2})))
    assert np.sqrt(np.mean(exact**2)) < 2e-3  # the same replay as on the grid
    rec.t = np.zeros(len(rec.q))  # not increasing: ignored
    assert rec.times() is None


def test_recovers_an_applied_joint_force(tmp_path):
    """A joint_force factor (the cartpole's slider_force), generated by MuJoCo's qfrc_applied,
    is recovered by sysid, which models it as a far-anchored weak spring."""
    fam = tmp_path / "fam.toml"
    fam.write_text('robot = "cartpole"\n[f]\n[f.train]\n'
                   'slider_force = { dist = "uniform", low = -2.0, high = 2.0 }\n'
                   'slider_frictionloss = { dist = "uniform", low = 0.0, high = 1.0 }\n')
    truth = {"slider_force": 1.3, "slider_frictionloss": 0.4}
    recs = [simulate("cartpole", truth, "steps", seconds=3.0, seed=s) for s in (1, 2)]
    sid = SystemIdentifier("cartpole", str(fam), SysidConfig(max_iters=15))
    res, _ = sid.fit(recs)
    for name, true in truth.items():
        e = res.estimates[name]
        assert e.identifiable, (name, e.reason)
        assert abs(e.estimate - true) < 0.03 * (e.high - e.low), (name, e.estimate, true)
