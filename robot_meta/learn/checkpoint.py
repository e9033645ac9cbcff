"""Checkpoints: plain state dicts, written atomically, loaded with ``weights_only=True``."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from robot_meta.errors import UserError

FORMAT = "robot_meta/checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, foreign, or made for another run."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write {format, version, **payload} to path atomically: a temporary file in the same
    directory, fsync, then os.replace (a crash never leaves a half-written checkpoint)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    data = {"format": FORMAT, "version": VERSION, **payload}
    with open(tmp, "wb") as f:
        torch.save(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, *, algorithm: str | None = None, robot: str | None = None
                    ) -> dict[str, Any]:
    """Load and check a checkpoint. Only tensors and plain containers are accepted
    (``weights_only=True``: no code runs on load). Raises CheckpointError with what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (train first, or check the run dir)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, AttributeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, truncated, or not a "
                              f"torch state-dict file): {first}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a robot_meta checkpoint (no format = {FORMAT!r}); "
                              "was it written by another program?")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {data.get('version')!r}, this "
                              f"robot_meta reads version {VERSION}")
    for key in ("algorithm", "robot", "state", "iteration", "steps"):
        if key not in data:
            raise CheckpointError(f"{path}: checkpoint is missing {key!r}")
    if algorithm is not None and data["algorithm"] != algorithm:
        raise CheckpointError(f"{path}: checkpoint is for algorithm {data['algorithm']!r}, "
                              f"but the config says {algorithm!r}")
    if robot is not None and data["robot"] != robot:
        raise CheckpointError(f"{path}: checkpoint is for robot {data['robot']!r}, "
                              f"but the config says {robot!r}")
    return data
