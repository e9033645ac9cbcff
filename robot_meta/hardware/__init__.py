"""The hardware abstraction layer: a vendor-free bus contract with drivers registered by
protocol (Dynamixel Protocol 2.0 in ``dynamixel/``), the robot, safety, servo models as data
(``servos/``), and the emulated robot that stands in for hardware (``emulation/``).

Imports only numpy and pyserial (no torch, mujoco or pybullet): the emulator and the mock bus
load their physics lazily, when one is built.

    from robot_meta.hardware import open_bus, Robot, load_hardware_map
    with open_bus("/dev/ttyUSB0") as bus:
        print(bus.ping(1))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robot_meta.hardware.bus import (
    BusStats,
    MotorBus,
    open_bus,
    register_bus,
    registered_protocols,
)
from robot_meta.hardware.errors import (
    BusNotConnectedError,
    CorruptPacketError,
    HardwareAlertError,
    HardwareError,
    ModelMismatchError,
    OverspeedError,
    PortError,
    RegisterError,
    SafetyError,
    ServoNotFoundError,
    ServoTimeoutError,
    StatusError,
    TorqueLostError,
)
from robot_meta.hardware.hardware_map import HardwareMap, JointHardware, load_hardware_map
from robot_meta.hardware.robot import JointState, Robot
from robot_meta.hardware.safety import SafetyLimits, ServoLimitError, TorqueGuard

if TYPE_CHECKING:
    from robot_meta.hardware.dynamixel.bus import DynamixelBus
    from robot_meta.hardware.dynamixel.serial_bus import SerialBus
    from robot_meta.hardware.emulation.emulator import Emulator, Faults
    from robot_meta.hardware.emulation.mock_bus import MockBus

_LAZY = {
    "DynamixelBus": "robot_meta.hardware.dynamixel.bus",
    "SerialBus": "robot_meta.hardware.dynamixel.serial_bus",
    "MockBus": "robot_meta.hardware.emulation.mock_bus",
    "Emulator": "robot_meta.hardware.emulation.emulator",
    "Faults": "robot_meta.hardware.emulation.emulator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robot_meta.hardware' has no attribute {name!r}")


__all__ = [
    "BusNotConnectedError", "BusStats", "CorruptPacketError", "DynamixelBus", "Emulator", "Faults",
    "HardwareAlertError", "HardwareError", "HardwareMap", "JointHardware", "JointState",
    "MockBus", "ModelMismatchError", "MotorBus", "OverspeedError", "PortError", "RegisterError", "Robot",
    "SafetyError", "SafetyLimits", "SerialBus", "ServoLimitError", "ServoNotFoundError",
    "ServoTimeoutError",
    "StatusError", "TorqueGuard", "TorqueLostError", "load_hardware_map", "open_bus", "register_bus",
    "registered_protocols",
]
