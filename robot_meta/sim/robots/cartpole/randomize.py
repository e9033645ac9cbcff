"""Cartpole factors beyond the standard set (``extra_factors``, read by the robot loader).

``slider_force``: a constant force along the rail, tau = x [N] on the slider joint, from a rail
that is not level (x = -(m_cart + m_pole) g sin(incline): 1 degree on the 1.1 kg cart and pole
is 0.19 N) or from a cable carrier's pull. Calibration cannot see it: the end stops and the
hanging pole are where they were. A balance policy that does not know it holds the cart where
its own force cancels x, off the target by about x / K_x (K_x its position gain), which is what
the ``rail`` family makes worth knowing.
"""

from __future__ import annotations

from typing import Any

from robot_meta.sim.robots.robot_def import FactorDef

# the privileged vector's scale: e = 2 (x - lo) / (hi - lo) - 1 spans [-1, 1] over +-2 N
SLIDER_FORCE_NORM = (-2.0, 2.0)  # N


def extra_factors(spec: Any) -> list[FactorDef]:
    """The cartpole's extra factors (module docstring)."""
    return [FactorDef("slider_force", "joint_force", "slider", "N", 0.0, (-10.0, 10.0),
                      SLIDER_FORCE_NORM,
                      "constant force along the rail (an incline, a cable carrier's pull)")]
