"""Fine-tuning a run on another family (real2sim2real: ``train --family ident/family.toml
--init RUN``)."""

from pathlib import Path

import pytest
import torch

from robot_meta.learn.checkpoint import CheckpointError, load_checkpoint
from robot_meta.learn.trainer import Trainer
from tests.run_fixtures import tiny_config

IDENT = """robot = "cartpole"
[ident]
[ident.train]
payload_mass = { dist = "uniform", low = 0.04, high = 0.05 }
latency_steps = { dist = "randint", low = 1, high = 1 }
"""


def _tensors(run: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's network weights (optimizer moments and counters excluded)."""
    out: dict[str, torch.Tensor] = {}

    def walk(prefix: str, x: object) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if "optim" not in str(k):
                    walk(f"{prefix}.{k}", v)
        elif isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 1:
            out[prefix] = x

    walk("", load_checkpoint(run / "checkpoint.pt")["state"])
    return out


def test_init_starts_from_the_runs_weights_on_the_new_family(tmp_path: Path) -> None:
    base = tiny_config("ppo", robot="cartpole")
    Trainer(base, tmp_path / "base", progress=False, tensorboard=False).train()
    fam = tmp_path / "family.toml"
    fam.write_text(IDENT)
    cfg = tiny_config("ppo", robot="cartpole")
    cfg.run.family = str(fam)
    t = Trainer(cfg, tmp_path / "tuned", progress=False, tensorboard=False, stop_at=0,
                init_from=tmp_path / "base")
    t.train()  # stops before the first update: the saved weights are the initial ones
    a, b = _tensors(tmp_path / "base"), _tensors(tmp_path / "tuned")
    assert a and all(torch.equal(a[k], b[k]) for k in a)
    assert str(fam) in (tmp_path / "tuned" / "config.toml").read_text()
    fresh = Trainer(tiny_config("ppo", robot="cartpole"), tmp_path / "fresh", progress=False,
                    tensorboard=False, stop_at=0)
    fresh.train()
    c = _tensors(tmp_path / "fresh")
    assert not all(torch.equal(a[k], c[k]) for k in a)  # training moved the base run


def test_init_from_another_robot_is_refused(tmp_path: Path) -> None:
    Trainer(tiny_config("ppo", robot="cartpole"), tmp_path / "base", progress=False,
            tensorboard=False, stop_at=1).train()
    with pytest.raises(CheckpointError, match="robot"):
        Trainer(tiny_config("ppo", robot="arm2"), tmp_path / "x", progress=False,
                tensorboard=False, init_from=tmp_path / "base").train()
