"""Launch files: the bundled ones load; bad ones get errors that name the field."""

from pathlib import Path

import pytest

from robot_meta.learn.config import ConfigError, launch_names, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


def test_bundled_launch_files_load() -> None:
    names = launch_names()
    for robot, fam in (("cartpole", "all"), ("arm2", "payload")):
        for alg in ("ppo", "rma", "pearl"):
            assert f"{robot}-{fam}-{alg}" in names
    from robot_meta.learn.config import ALGORITHMS
    from robot_meta.sim.randomize import headline_family

    for robot in ("cartpole", "arm2"):  # every method on each robot's headline family
        missing = [a for a in ALGORITHMS if f"{robot}-{headline_family(robot)}-{a}" not in names]
        assert not missing, (robot, missing)
    for n in names:
        cfg = load_config(n)
        robot, _, alg = n.split("-")
        assert cfg.run.robot == robot and cfg.run.algorithm == alg and cfg.run.name == n


def test_example_launch_files_load() -> None:
    """The variants under examples/launch (named in BENCHMARKS.md) stay valid as the config grows."""
    files = sorted((Path(__file__).resolve().parents[2] / "examples" / "launch").glob("*.toml"))
    assert files
    for f in files:
        cfg = load_config(f)
        robot, fam, alg = f.stem.split("-")[:3]
        assert (cfg.run.robot, cfg.run.family, cfg.run.algorithm) == (robot, fam, alg)


@pytest.mark.parametrize("text, fragment", [
    ('[run]\nrobot = "cartpole"\nalgorithm = "sac"\n', "[run].algorithm: unknown algorithm 'sac'"),
    ('[run]\nrobot = "cartpole"\nalgorithm = "ppo"\n[ppo]\nlr = "fast"\n', "[ppo].lr: expected a number"),
    ('[run]\nrobot = "cartpole"\nalgorithm = "ppo"\nnum_envs = 8.5\n', "[run].num_envs: expected an integer"),
    ('[run]\nrobot = "cartpole"\nalgorithm = "ppo"\n[ppo]\nlearning_rate = 0.1\n',
     "[ppo].learning_rate: unknown key"),
    ('[run]\nrobot = "cartpole"\nalgorithm = "ppo"\n[optimizer]\nlr = 1\n', "unknown section [optimizer]"),
    ('[run]\nrobot = "cartpole"\nalgorithm = "ppo"\n[model]\nhidden = [64, "x"]\n',
     "[model].hidden[1]: expected an integer"),
    ('[run]\nrobot = "cartpole"\nalgorithm = "ppo"\n[ppo]\ngamma = 1.5\n', "[ppo].gamma: must lie in [0, 1]"),
    ('[run]\nrobot = "humanoid"\nalgorithm = "ppo"\n', "[run].robot: unknown robot 'humanoid'"),
    ('[run\nrobot = 1\n', "malformed TOML"),
])
def test_bad_launch_file_names_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert fragment in str(e.value)
    assert str(p) in str(e.value)


def test_unknown_launch_name_lists_bundled() -> None:
    with pytest.raises(ConfigError, match="cartpole-all-rma"):
        load_config("no-such-launch")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    import tomllib

    from robot_meta.learn.config import config_from_dict

    cfg = load_config("arm2-payload-pearl")
    again = config_from_dict(tomllib.loads(cfg.to_toml()))
    assert again == cfg and again.digest() == cfg.digest()
