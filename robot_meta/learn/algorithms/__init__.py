"""Learning algorithms, one class per file. ``algorithm_class(name)`` maps a launch file's
``[run].algorithm`` to its class (imported lazily: torch is only needed when training)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robot_meta.learn.algorithms.base import Algorithm

_CLASSES = {
    "ppo": ("robot_meta.learn.algorithms.ppo", "PPO"),
    "rma": ("robot_meta.learn.algorithms.rma", "RMA"),
    "pearl": ("robot_meta.learn.algorithms.pearl", "PEARL"),
    "maml": ("robot_meta.learn.algorithms.maml", "MAML"),
    "fomaml": ("robot_meta.learn.algorithms.maml", "FOMAML"),
    "reptile": ("robot_meta.learn.algorithms.reptile", "Reptile"),
    "rl2": ("robot_meta.learn.algorithms.rl2", "RL2"),
    "cavia": ("robot_meta.learn.algorithms.cavia", "CAVIA"),
}


def algorithm_class(name: str) -> type[Algorithm]:
    """The Algorithm subclass registered under ``name``."""
    module, cls = _CLASSES[name]
    algo: type[Algorithm] = getattr(importlib.import_module(module), cls)
    return algo
