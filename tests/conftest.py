"""Shared test setup: no display for MuJoCo, and small helpers."""

import os

os.environ.setdefault("MUJOCO_GL", "disable")

from tests.bundle_fixtures import bundles, cavia_bundle, maml_bundle, rl2_bundle  # noqa: E402, F401  (session fixtures)
from tests.run_fixtures import tiny_runs  # noqa: E402, F401  (a session fixture)
