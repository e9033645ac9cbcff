"""Shared test setup: no display for MuJoCo, and small helpers."""

import os

os.environ.setdefault("MUJOCO_GL", "disable")

from tests.bundle_fixtures import bundles  # noqa: E402, F401  (a session fixture)
from tests.run_fixtures import tiny_runs  # noqa: E402, F401  (a session fixture)
