"""Bundled robots, one folder each: robot.toml (joints, motors, limits, rest pose, calibration),
model.xml (MJCF), twin.urdf (PyBullet), families.toml (task families), tasks.py, an optional
reset.py and randomize.py, and launch/*.toml. :meth:`RobotDef.from_folder` builds a robot from
its folder; robots outside the package register the same way (:func:`register_robot` or the
``robot_meta.robots`` entry-point group, see :mod:`robot_meta.robot_registry`)."""

from robot_meta.robot_registry import register_robot, robot_names
from robot_meta.sim.robots.robot_def import ROBOT_NAMES, FactorDef, RobotDef, get_robot

__all__ = ["ROBOT_NAMES", "FactorDef", "RobotDef", "get_robot", "register_robot", "robot_names"]
