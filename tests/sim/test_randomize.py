"""Task-family specs: loading, validation errors that name the field, and pure sampling."""

from pathlib import Path

import numpy as np
import pytest

from robot_meta.sim.randomize import (
    SpecError,
    load_families,
    load_family,
    load_params_file,
    normalize_params,
    sample_params,
)
from robot_meta.sim.robots import ROBOT_NAMES, get_robot


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_bundled_families_load_with_train_and_ood(robot: str) -> None:
    fams = load_families(robot)
    # the old families stay loadable next to the new ones (arm2's `servo`, issue 20)
    assert {"friction", "mass", "payload", "all"} <= set(fams)
    for fam in fams.values():
        assert fam.train and fam.ood
    rdef = get_robot(robot)
    # the `all` training ranges are the normalization ranges: they map onto [-1, 1]
    for name, d in fams["all"].train.items():
        assert (d.low, d.high) == rdef.factor(name).norm_range, name


@pytest.mark.parametrize("robot", ROBOT_NAMES)
def test_sampling_is_pure_and_within_ranges(robot: str) -> None:
    rdef = get_robot(robot)
    fam = load_family(robot, "all")
    a = sample_params(rdef, fam.train, np.random.default_rng(3), 500)
    b = sample_params(rdef, fam.train, np.random.default_rng(3), 500)
    np.testing.assert_array_equal(a, b)
    for name, d in fam.train.items():
        col = a[:, rdef.factor_names.index(name)]
        assert col.min() >= d.low and col.max() <= d.high, name
        if d.dist == "uniform" and d.high > d.low:
            # mean of U(lo, hi) is (lo + hi)/2; 500 draws put it within 4 standard errors
            se = (d.high - d.low) / np.sqrt(12 * 500)
            assert abs(col.mean() - (d.low + d.high) / 2) < 4 * se, name
    lat = a[:, rdef.factor_names.index("latency_steps")]
    assert set(np.unique(lat)) == {0.0, 1.0, 2.0}  # randint is inclusive of high
    e = normalize_params(rdef, a)
    assert np.all(e >= -1 - 1e-9) and np.all(e <= 1 + 1e-9)
    e_ood = normalize_params(rdef, sample_params(rdef, fam.ood, np.random.default_rng(0), 200))
    assert np.any(np.abs(e_ood) > 1)  # OOD lies outside the training box


def test_family_leaves_unlisted_factors_nominal() -> None:
    rdef = get_robot("arm2")
    fam = load_family("arm2", "payload")
    p = sample_params(rdef, fam.train, np.random.default_rng(0), 10)
    nominal = np.array([f.nominal for f in rdef.factors])
    for i, name in enumerate(rdef.factor_names):
        if name not in fam.train:
            assert np.all(p[:, i] == nominal[i]), name


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "fam.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "body, needle",
    [
        ('[f.train]\npayload_mass = { dist = "uniform", low = -0.5, high = 0.2 }\n',
         "[f].train.payload_mass: values must lie in [0, inf]"),  # negative mass
        ('[f.train]\nlink1_mass_scale = { dist = "uniform", low = -1.0, high = 1.0 }\n',
         "link1_mass_scale"),
        ('[f.train]\npayload_mass = { dist = "uniform", low = 0.5, high = 0.2 }\n',
         "low (0.5) > high (0.2)"),
        ('[f.train]\nwing_span = { dist = "uniform", low = 0.0, high = 1.0 }\n',
         "unknown factor 'wing_span'"),
        ('[f.train]\npayload_mass = { dist = "gaussian", low = 0.0, high = 1.0 }\n',
         "payload_mass.dist"),
        ('[f.train]\npayload_mass = { dist = "uniform", low = "a", high = 1.0 }\n',
         "payload_mass.low: expected a number"),
        ('[f.train]\nlatency_steps = { dist = "uniform", low = 0, high = 2 }\n',
         "latency_steps.dist"),
        ('[f]\ncolour = "red"\n[f.train]\npayload_mass = { low = 0.0, high = 1.0 }\n',
         "unknown key(s) ['colour']"),
        ('[f.train]\npayload_mass = { dist = "uniform", low = 0.0 }\n', "payload_mass.high: missing"),
        ('[f.train\npayload_mass = 1\n', "malformed TOML"),
        ('[f]\nresample_prob = 2.0\n[f.train]\npayload_mass = { low = 0.0, high = 1.0 }\n',
         "[f].resample_prob"),
    ],
)
def test_bad_spec_error_names_the_field(tmp_path: Path, body: str, needle: str) -> None:
    path = _write(tmp_path, 'robot = "arm2"\n' + body)
    with pytest.raises(SpecError) as exc:
        load_family("arm2", path)
    assert needle in str(exc.value)
    assert str(path) in str(exc.value)


def test_unknown_family_and_wrong_robot(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown family 'heavy'.*friction, mass, payload, all"):
        load_family("cartpole", "heavy")
    path = _write(tmp_path, 'robot = "cartpole"\n[f.train]\npayload_mass = { low = 0.0, high = 0.1 }\n')
    with pytest.raises(SpecError, match="robot = 'cartpole'"):
        load_family("arm2", path)
    fam = load_family("cartpole", path)
    assert fam.name == "f" and fam.train["payload_mass"].high == 0.1


def test_params_file(tmp_path: Path) -> None:
    p = tmp_path / "hidden.toml"
    p.write_text('robot = "arm2"\n[params]\npayload_mass = 0.6\nlatency_steps = 1\n')
    rdef, params = load_params_file(p)
    assert rdef.name == "arm2"
    assert params[rdef.factor_names.index("payload_mass")] == 0.6
    assert params[rdef.factor_names.index("elbow_damping")] == rdef.factor("elbow_damping").nominal
    p.write_text('robot = "arm2"\n[params]\npayload_mass = -1.0\n')
    with pytest.raises(SpecError, match=r"\[params\].payload_mass: values must lie in \[0, inf\]"):
        load_params_file(p)
    p.write_text('robot = "arm7"\n')
    with pytest.raises(SpecError, match="unknown robot 'arm7'"):
        load_params_file(p)


def test_like_takes_another_familys_ranges_factor_by_factor(tmp_path: Path) -> None:
    text = ('robot = "arm2"\n'
            '[base]\ninit = { qpos_noise = 0.2 }\n'
            '[base.train]\npayload_mass = { low = 0.0, high = 0.4 }\n'
            'latency_steps = { dist = "randint", low = 0, high = 2 }\n'
            '[base.ood]\npayload_mass = { low = 0.4, high = 0.5 }\n'
            '[slow]\nlike = "base"\n[slow.train]\nlatency_steps = { dist = "randint", low = 0, high = 5 }\n')
    fams = load_families("arm2", _write(tmp_path, text))
    slow, base = fams["slow"], fams["base"]
    assert slow.train["latency_steps"].high == 5 and base.train["latency_steps"].high == 2
    assert slow.train["payload_mass"] == base.train["payload_mass"]  # taken from base
    assert slow.ood == base.ood and slow.init == base.init
    # the bundled lag family is fast with more latency
    lag, fast = load_family("arm2", "lag"), load_family("arm2", "fast")
    assert lag.train["latency_steps"].high == 5
    assert {k: v for k, v in lag.train.items() if k != "latency_steps"} == {
        k: v for k, v in fast.train.items() if k != "latency_steps"}


@pytest.mark.parametrize("like, message", [
    ('"nope"', r"\[slow\]\.like: 'nope' names no other family"),
    ('"slow"', r"\[slow\]\.like: 'slow' names no other family"),
    ('"mid"', r"\[slow\]\.like: \[mid\] uses like itself"),
])
def test_like_errors_name_the_field(tmp_path: Path, like: str, message: str) -> None:
    text = ('robot = "arm2"\n[base.train]\npayload_mass = { low = 0.0, high = 0.4 }\n'
            '[mid]\nlike = "base"\n'
            f'[slow]\nlike = {like}\n')
    with pytest.raises(SpecError, match=message):
        load_families("arm2", _write(tmp_path, text))
