"""Calibration errors. Each message names the joint (when there is one) and what to do."""

from __future__ import annotations

from robot_meta.errors import UserError


class CalibrationError(UserError):
    """Calibration could not finish, or a calibration file does not fit the robot. The motors'
    torque is off when it is raised during a procedure."""

    def __init__(self, message: str, joint: str | None = None):
        super().__init__(message)
        self.joint = joint


class UncalibratedError(CalibrationError):
    """A command that needs a calibrated robot found no calibration file."""
