"""Hardware exceptions. Each message says which servo (ID and joint) and what to do.

Setup problems (a missing servo, a wrong model, an unknown register) also derive from
:class:`robot_meta.errors.UserError` so that the CLI prints them without a traceback.
"""

from __future__ import annotations

from robot_meta.errors import UserError


def servo_label(dxl_id: int, joint: str | None = None) -> str:
    """``ID 2 (joint 'elbow')`` or ``ID 2``."""
    return f"ID {dxl_id} (joint {joint!r})" if joint else f"ID {dxl_id}"


class HardwareError(Exception):
    """Base class of every error raised by the hardware layer."""

    def __init__(self, message: str, dxl_id: int | None = None, joint: str | None = None):
        super().__init__(message)
        self.dxl_id = dxl_id
        self.joint = joint


class BusNotConnectedError(HardwareError, UserError):
    """An operation was attempted on a closed bus."""


class PortError(HardwareError, UserError):
    """The serial port cannot be opened, or it went away (unplugged adapter, emulator exit)."""


class ServoTimeoutError(HardwareError):
    """A servo did not answer (after the bounded retries): a lost servo."""


class ServoNotFoundError(ServoTimeoutError, UserError):
    """No servo answers a ping at this ID."""


class ModelMismatchError(HardwareError, UserError):
    """The servo at an ID is not the model the hardware map expects."""


class RegisterError(HardwareError, UserError):
    """A register name that the device's control table does not have, or a value that does not
    fit the register."""


class CorruptPacketError(HardwareError):
    """Answers kept failing their CRC (after the bounded retries): noise on the bus."""


class StatusError(HardwareError):
    """A servo answered with a nonzero error number in its status packet."""

    def __init__(self, message: str, dxl_id: int, joint: str | None, code: int):
        super().__init__(message, dxl_id, joint)
        self.code = code


class HardwareAlertError(HardwareError):
    """A servo reports a hardware error (the alert bit of its status, register 70)."""

    def __init__(self, message: str, dxl_id: int, joint: str | None, bits: int):
        super().__init__(message, dxl_id, joint)
        self.bits = bits


class TorqueLostError(HardwareError):
    """A servo's torque went off while the controller expected it on (bus watchdog expired,
    brown-out reboot, or a hardware shutdown)."""


class SafetyError(HardwareError):
    """The safety layer refused to continue (for example a joint far beyond its limits)."""


class OverspeedError(SafetyError):
    """An actuated joint moved faster than its overspeed limit (a factor of its velocity limit);
    torque is off."""
