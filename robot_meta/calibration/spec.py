"""What each robot's calibration measures, as data in its folder (``robot.toml``: each
joint's ``rest`` and ``calibration``): per joint, how its zero is found and how its direction is revealed.

Zero methods:

* ``hang``: with the motors pushing nothing, the joint hangs under gravity at ``rest`` (0 for
  arm2's links, pi for the cartpole's pole). Joint friction holds a hanging link anywhere in a
  dead band around the bottom, so an actuated joint is released quasi-statically from both
  sides and the zero is the mean of the two resting points (Coulomb friction is symmetric, so
  the two ends of the dead band are symmetric about the bottom); a passive, lightly damped
  joint (the pole) is fitted as a decaying oscillation about its centre.
* ``end_stops``: driven slowly at a limited current to both end stops; the zero is their
  midpoint (``rest`` is the joint position there, 0 for a centred rail) and the range is
  measured.

Direction methods. A servo reports its own motion in its own frame, so a reversed servo looks
perfect from its own current and encoder alone: positive current always moves its reading
positive. Only the physics that couples joints shows a reversal, and a robot that is its own
mirror image (arm2 in its vertical plane, the cartpole on its rail) cannot tell a mirrored
robot from itself. So one joint is the ``reference`` (its direction is taken as designed: it
*defines* the positive sense), and every other joint's direction is measured relative to it:

* ``hangs_with``: while ``relative_to`` is held away from its zero, this joint (pushing
  nothing) hangs so that its link stays vertical, moving ``expected_sign`` times as far
  (arm2's elbow: -1, since q_elbow = -q_shoulder keeps link 2 vertical);
* ``swings_with``: a velocity change of ``relative_to`` kicks this passive joint's velocity
  with sign ``expected_sign`` (the cartpole's pole: +1, since a cart accelerating toward +x
  leaves the hanging pole's tip behind, toward larger theta).

Plain data, no imports beyond the standard library: the robot computer loads it.
"""

from __future__ import annotations

from dataclasses import dataclass

ZERO_METHODS = ("hang", "end_stops")
DIRECTION_METHODS = ("reference", "hangs_with", "swings_with")


@dataclass(frozen=True)
class JointCalibration:
    """How one joint is calibrated (module docstring)."""

    joint: str
    zero: str
    rest: float = 0.0  # joint position at the zero reference (rad or m)
    direction: str = "reference"
    relative_to: str = ""
    expected_sign: int = 1

    def __post_init__(self) -> None:
        if self.zero not in ZERO_METHODS:
            raise ValueError(f"joint {self.joint!r}: zero must be one of {ZERO_METHODS}, "
                             f"got {self.zero!r}")
        if self.direction not in DIRECTION_METHODS:
            raise ValueError(f"joint {self.joint!r}: direction must be one of "
                             f"{DIRECTION_METHODS}, got {self.direction!r}")
        if (self.direction == "reference") != (not self.relative_to):
            raise ValueError(f"joint {self.joint!r}: give relative_to exactly when the direction "
                             "is measured relative to another joint")
        if self.expected_sign not in (-1, 1):
            raise ValueError(f"joint {self.joint!r}: expected_sign must be -1 or +1")


@dataclass(frozen=True)
class CalibrationSpec:
    """The calibration of one robot: one entry per joint, in hardware-map order."""

    robot: str
    joints: tuple[JointCalibration, ...]

    def joint(self, name: str) -> JointCalibration:
        """The entry of one joint."""
        for j in self.joints:
            if j.joint == name:
                return j
        raise KeyError(f"robot {self.robot!r}: no calibration entry for joint {name!r}")


def load_calibration_spec(robot: str) -> CalibrationSpec:
    """The calibration spec of a robot (by name or folder path): the ``rest`` and
    ``calibration`` of each joint in its ``robot.toml``."""
    from robot_meta.robot_toml import calibration_spec_from_toml, load_robot_toml

    spec: CalibrationSpec = calibration_spec_from_toml(load_robot_toml(robot))
    return spec
