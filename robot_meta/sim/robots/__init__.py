"""Bundled robots, one folder each: model.xml (MJCF), twin.urdf (PyBullet), constants.py,
tasks.py, hardware.py (hardware map) and families.toml (task families)."""

from robot_meta.hardware.hardware_map import ROBOT_NAMES
from robot_meta.sim.robots.robot_def import FactorDef, RobotDef, get_robot

__all__ = ["ROBOT_NAMES", "FactorDef", "RobotDef", "get_robot"]
