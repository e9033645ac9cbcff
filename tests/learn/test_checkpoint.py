"""Checkpoints: atomic state dicts; corrupt and foreign files are refused with a clear error."""

from pathlib import Path

import pytest
import torch

from robot_meta.learn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def payload() -> dict:
    return {"algorithm": "ppo", "robot": "cartpole", "iteration": 3, "steps": 10,
            "state": {"w": torch.ones(2)}}


def test_round_trip_and_no_temp_files(tmp_path: Path) -> None:
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, payload())
    d = load_checkpoint(p, algorithm="ppo", robot="cartpole")
    assert torch.equal(d["state"]["w"], torch.ones(2)) and d["iteration"] == 3
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_corrupt_checkpoint_refused(tmp_path: Path) -> None:
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, payload())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(p)
    p.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(p)


def test_foreign_checkpoints_refused(tmp_path: Path) -> None:
    p = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3)}, p)  # a plain state dict from another program
    with pytest.raises(CheckpointError, match="not a robot_meta checkpoint"):
        load_checkpoint(p)

    class Evil:
        def __reduce__(self):  # would run code under a full unpickler
            return (print, ("pwned",))

    torch.save({"format": "robot_meta/checkpoint", "x": Evil()}, p)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(p)


def test_checkpoint_for_other_algorithm_or_robot_refused(tmp_path: Path) -> None:
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, payload())
    with pytest.raises(CheckpointError, match="algorithm 'ppo', but the config says 'rma'"):
        load_checkpoint(p, algorithm="rma")
    with pytest.raises(CheckpointError, match="robot 'cartpole', but the config says 'arm2'"):
        load_checkpoint(p, robot="arm2")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        load_checkpoint(tmp_path / "nope.pt")
