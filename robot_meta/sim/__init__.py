"""Simulation: robots, domain-randomized task families, the batched MuJoCo env, the PyBullet twin.

Entry points are imported lazily, so that ``robot_meta.sim.robots.<name>.constants`` and the
hardware maps stay importable on a robot computer that has no mujoco.
"""

from __future__ import annotations

import os
from typing import Any

# Nothing here renders: keep MuJoCo/dm_control from probing for a display (and warning).
os.environ.setdefault("MUJOCO_GL", "disable")

__all__ = ["make_vec_env", "make_gym_env", "make_gym_vector_env", "make_twin_env", "get_robot",
           "register_robot", "robot_names"]

_LAZY = {
    "get_robot": "robot_meta.sim.robots.robot_def",
    "register_robot": "robot_meta.robot_registry",
    "robot_names": "robot_meta.robot_registry",
    "make_vec_env": "robot_meta.sim.vec_env",
    "make_gym_env": "robot_meta.sim.gym_env",
    "make_gym_vector_env": "robot_meta.sim.gym_env",
    "make_twin_env": "robot_meta.sim.twin",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robot_meta.sim' has no attribute {name!r}")
