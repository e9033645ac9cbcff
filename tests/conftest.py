"""Shared test setup: no display for MuJoCo, and small helpers."""

import os

os.environ.setdefault("MUJOCO_GL", "disable")
