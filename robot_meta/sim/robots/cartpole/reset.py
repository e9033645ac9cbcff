"""The cartpole's special reset: a start with the pole upright (the ``balance`` task) is out of
reach of PID on the cart, so the pole is swung up and caught (robot_meta.runtime.swing_up).
Any other start is left to the standard PID reset (``make_reset`` returns None)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.hardware.hardware_map import load_hardware_map
from robot_meta.robot_toml import load_robot_toml
from robot_meta.runtime.reset import upright_passive
from robot_meta.runtime.swing_up import CartPoleModel, SwingUpReset, reflected_armature

from . import constants as C


def nominal_model(hw: Any = None) -> CartPoleModel:
    """The nominal cartpole with half of the training payload range at the tip. The cart
    drive's reflected armature J_r N^2 / r^2 comes from the hardware map ``hw`` (default: this
    folder's) when its simulators model the servo (``servo_physics``)."""
    folder = Path(__file__).resolve().parent
    if hw is None:
        hw = load_hardware_map(folder)
    cart_damping = load_robot_toml(folder).joints[0].damping  # b [N s/m], nominal
    rod_l, payload = C.POLE_LENGTH, 0.05  # a thin rod and a point payload at its tip
    m = C.POLE_MASS + payload
    # centre of mass l = (m_rod l_rod / 2 + m_p l_rod) / m; inertia about the pivot
    # I = m_rod l_rod^2 / 3 + m_p l_rod^2
    ml = C.POLE_MASS * rod_l / 2 + payload * rod_l
    inertia = C.POLE_MASS * rod_l**2 / 3 + payload * rod_l**2
    return CartPoleModel(C.CART_MASS, m, ml / m, inertia, cart_damping,
                         armature=reflected_armature(hw.joints[0]))


def make_reset(robot: Any, q_start: np.ndarray) -> SwingUpReset | None:
    """The swing-up when the pole must start upright, else None (the standard PID reset)."""
    if upright_passive(robot.hw, q_start):
        return SwingUpReset(robot, q_start, model=nominal_model(robot.hw))
    return None
