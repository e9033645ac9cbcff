"""The HAL contract: :class:`MotorBus`, vendor-free, and :func:`open_bus`, which picks a driver.

A bus talks to the devices on one line. Registers are named, never addressed: the names are the
HAL's vocabulary (``present_position``, ``goal_current``, ``torque_enable``, ...), values are raw
device units, and each driver maps a name to its devices' memory from its own control-table data.
The surface scripts rely on::

    bus = open_bus("/dev/ttyUSB0", baud=1_000_000)         # or "socket://127.0.0.1:PORT", "mock:arm2"
    bus.ping(1) -> model_number
    bus.read(1, "present_position") -> int;   bus.write(1, "goal_current", 100)
    bus.sync_read("present_position", [1, 2]) -> {1: int, 2: int}
    bus.sync_write("goal_current", {1: 100, 2: -50})
    bus.torque([1, 2], True)

Drivers register themselves by protocol name with :func:`register_bus` (Dynamixel Protocol 2.0 is
``dynamixel2``, :mod:`robot_meta.hardware.dynamixel.serial_bus`; the in-process emulated bus is
``mock``, :mod:`robot_meta.hardware.emulation.mock_bus`); a package outside robot_meta adds one
the same way, or through the entry-point group ``robot_meta.buses``. :func:`open_bus` takes the
protocol from the port (``mock:arm2``, ``dynamixel2:/dev/ttyUSB0``) or its ``protocol`` argument,
else ``dynamixel2``.

This module knows no vendor: it imports neither pyserial nor a control table.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

from robot_meta.errors import UserError
from robot_meta.hardware.errors import BusNotConnectedError, ServoNotFoundError, servo_label

DEFAULT_PROTOCOL = "dynamixel2"
ENTRY_POINT_GROUP = "robot_meta.buses"
TORQUE_REGISTER = "torque_enable"  # 1: the motor is powered, 0: it is free


@dataclass
class BusStats:
    """Counters of one bus. ``retries`` counts re-sent instructions (bounded per call by the
    driver's ``retries``); ``failures`` counts calls that gave up."""

    transactions: int = 0
    retries: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    status_crc_errors: int = 0  # answers "CRC error" from a device: our packet was corrupted
    failures: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class MotorBus(ABC):
    """The devices on one bus, addressed by ID and register name (the HAL contract).

    Use as a context manager: leaving it turns off the torque this bus turned on, then closes
    the transport. Drivers subclass it (:class:`~robot_meta.hardware.dynamixel.bus.DynamixelBus`).

    Args:
        names: {ID: joint name}, used in error messages.
    """

    protocol: ClassVar[str] = ""

    def __init__(self, *, names: Mapping[int, str] | None = None):
        self.names: dict[int, str] = dict(names or {})
        self.stats = BusStats()
        self.alerts: dict[int, int] = {}  # ID -> hardware error status last read as nonzero
        self._torque_on: set[int] = set()

    # ---- lifecycle ------------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the transport."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close the transport (idempotent)."""

    @property
    @abstractmethod
    def is_connected(self) -> bool: ...

    @property
    def port_name(self) -> str:
        return "bus"

    def __enter__(self) -> MotorBus:
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Torque off every device this bus turned on (best effort), then disconnect."""
        if self.is_connected and self._torque_on:
            # Best effort: the port may already be gone; disconnect anyway.
            with contextlib.suppress(Exception):
                self.torque(sorted(self._torque_on), False)
        self.disconnect()

    def _require_connected(self) -> None:
        if not self.is_connected:
            raise BusNotConnectedError(
                f"the bus on {self.port_name} is not connected; call bus.connect() or use "
                "`with open_bus(...) as bus:`")

    def label(self, motor_id: int) -> str:
        """``ID 2 (joint 'elbow')``: how messages name a device."""
        return servo_label(motor_id, self.names.get(motor_id))

    def _track_torque(self, motor_id: int, name: str, value: int) -> None:
        """Remember which devices this bus powered, so that :meth:`close` can free them."""
        if name == TORQUE_REGISTER:
            (self._torque_on.add if value else self._torque_on.discard)(motor_id)

    # ---- the HAL surface ----------------------------------------------------------------------
    @abstractmethod
    def ping(self, motor_id: int, *, retries: int | None = None) -> int:
        """Ping one ID; return its model number (:class:`ServoNotFoundError` if none answers)."""

    @abstractmethod
    def read(self, motor_id: int, name: str) -> int:
        """Read one register (raw units)."""

    @abstractmethod
    def write(self, motor_id: int, name: str, value: int) -> None:
        """Write one register (raw units) and wait for the device's acknowledgement."""

    @abstractmethod
    def sync_read(self, name: str, ids: Sequence[int], *, fast: bool = False) -> dict[int, int]:
        """Read one register from several devices at once: {id: raw value}."""

    @abstractmethod
    def sync_write(self, name: str, values: Mapping[int, int]) -> None:
        """Write one register on several devices at once (no acknowledgement)."""

    def torque(self, ids: Iterable[int], on: bool) -> None:
        """Enable or disable torque on each device, one acknowledged write per ID."""
        for i in ids:
            self.write(i, TORQUE_REGISTER, 1 if on else 0)

    def sync_read_many(self, names: Sequence[str], ids: Sequence[int], *, fast: bool = False
                       ) -> dict[int, dict[str, int]]:
        """Read several registers from several devices: {id: {name: value}}. A driver that can
        read them in one transaction overrides this; here, one sync read per register."""
        out: dict[int, dict[str, int]] = {i: {} for i in ids}
        for n in names:
            for i, v in self.sync_read(n, ids, fast=fast).items():
                out[i][n] = v
        return out

    def read_many(self, motor_id: int, names: Sequence[str]) -> dict[str, int]:
        """Read several registers of one device: {name: value} (one read per register here)."""
        return {n: self.read(motor_id, n) for n in names}

    def scan(self, ids: Iterable[int]) -> dict[int, int]:
        """Ping each ID once (no retries); return {id: model number} of those that answer."""
        found = {}
        for i in ids:
            try:
                found[i] = self.ping(i, retries=0)
            except ServoNotFoundError:
                continue
        return found

    # ---- what a device is and can do (the driver reads it from its control-table data) -----
    @abstractmethod
    def set_model(self, motor_id: int, model: str) -> None:
        """Declare the servo model at an ID (a servo file's name) without pinging it."""

    @abstractmethod
    def has_register(self, motor_id: int, name: str) -> bool:
        """Whether the device at an ID has a register (a passive encoder has no torque)."""

    @abstractmethod
    def register_range(self, motor_id: int, name: str) -> tuple[int, int]:
        """The raw values a register accepts, (low, high)."""

    @abstractmethod
    def named_value(self, motor_id: int, name: str, value: str) -> int:
        """The raw value of a named setting, e.g. ("operating_mode", "current") -> 0."""

    @abstractmethod
    def hardware_error(self, motor_id: int) -> int:
        """The device's hardware error bits: 0 when healthy."""

    @abstractmethod
    def describe_hardware_error(self, bits: int) -> str:
        """Hardware error bits as text."""

    @abstractmethod
    def reboot(self, motor_id: int, *, wait_s: float = 1.0) -> None:
        """Reboot one device (clears hardware errors; torque off) and wait until it answers."""

    @abstractmethod
    def arm_watchdog(self, motor_id: int, timeout_ms: int) -> None:
        """Clear a previous watchdog trip and arm the device's own watchdog: with torque on, no
        instruction for ``timeout_ms`` turns the motor off (0 disables it)."""

    @abstractmethod
    def watchdog_expired(self, motor_id: int) -> bool:
        """Whether the device's watchdog turned its torque off."""

    def map_registers(self, ids: Sequence[int], names: Sequence[str]) -> object | None:
        """Arrange that one transaction reads ``names`` from every device in ``ids`` (a register
        a device lacks reads as 0); returns a handle for :meth:`read_mapped`, or None when the
        devices cannot (then use :meth:`sync_read_many`)."""
        return None

    def read_mapped(self, handle: object, ids: Sequence[int], *, fast: bool = False
                    ) -> dict[int, dict[str, int]]:
        """Read the registers arranged by :meth:`map_registers`: {id: {name: value}}."""
        raise NotImplementedError(f"{type(self).__name__} does not map registers")


class BusFactory(Protocol):
    """What :func:`register_bus` takes: builds an unconnected bus for a port."""

    def __call__(self, port: str, baud: int, *, model: str, **kwargs: Any) -> MotorBus: ...


class UnknownProtocolError(UserError, ValueError):
    """No bus driver is registered under a protocol name."""


_DRIVERS: dict[str, BusFactory] = {}
# Built-in drivers, imported on first use (each registers itself): the base module imports no
# driver, so pyserial loads only for a serial bus and the simulators only for a mock one.
_BUILTIN = {"dynamixel2": "robot_meta.hardware.dynamixel.serial_bus",
            "mock": "robot_meta.hardware.emulation.mock_bus"}


def register_bus(protocol: str, factory: BusFactory) -> None:
    """Register a bus driver under a protocol name (``open_bus(..., protocol=NAME)`` and ports
    ``NAME:...`` then use it). Registering a name again replaces its driver."""
    if not protocol or ":" in protocol or "/" in protocol:
        raise ValueError(f"a bus protocol name is a word without ':' or '/', got {protocol!r}")
    _DRIVERS[protocol] = factory


def registered_protocols() -> tuple[str, ...]:
    """The protocol names :func:`open_bus` accepts: built-in, registered and entry points."""
    names = set(_BUILTIN) | set(_DRIVERS)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return tuple(sorted(names))


def bus_driver(protocol: str) -> BusFactory:
    """The factory of a protocol, importing a built-in driver or loading an entry point."""
    if protocol not in _DRIVERS:
        if protocol in _BUILTIN:
            importlib.import_module(_BUILTIN[protocol])
        else:
            for ep in entry_points(group=ENTRY_POINT_GROUP, name=protocol):
                register_bus(protocol, ep.load())
    if protocol not in _DRIVERS:
        raise UnknownProtocolError(
            f"unknown bus protocol {protocol!r}; registered: {', '.join(registered_protocols())}. "
            "A driver registers itself with robot_meta.hardware.bus.register_bus(name, factory) "
            f"or the entry-point group {ENTRY_POINT_GROUP!r}")
    return _DRIVERS[protocol]


def split_port(port: str, protocol: str | None = None) -> tuple[str, str]:
    """(protocol, port): ``mock:arm2`` -> ("mock", "mock:arm2") when ``mock`` is a protocol;
    ``/dev/ttyUSB0``, ``socket://...``, ``loop://`` -> (protocol or "dynamixel2", port).
    A port prefixed with a protocol name and given another protocol is an error."""
    head, sep, rest = port.partition(":")
    if sep and not rest.startswith("//") and (head in _BUILTIN or head in _DRIVERS
                                              or head in registered_protocols()):
        if protocol is not None and protocol != head:
            raise UnknownProtocolError(f"port {port!r} names protocol {head!r}, but protocol "
                                       f"{protocol!r} was asked for")
        return head, port
    return protocol or DEFAULT_PROTOCOL, port


def open_bus(port: str, baud: int = 1_000_000, protocol: str | None = None,
             model: str = "xm430-w350", **kwargs: Any) -> MotorBus:
    """Open a connected bus.

    Args:
        port: a device path (``/dev/ttyUSB0``, a pty ``/dev/pts/N``), a pyserial URL
            (``socket://127.0.0.1:PORT``, ``loop://``), or ``PROTOCOL:...`` for a registered
            protocol, e.g. ``mock:ROBOT`` for the in-process emulated robot (needs the
            simulation extras).
        baud: the bus baud rate.
        protocol: the driver (see :func:`registered_protocols`); default: from the port, else
            ``dynamixel2`` (Dynamixel Protocol 2.0).
        model: the servo model assumed for IDs that have not been pinged.
        kwargs: passed to the driver (``retries``, ``latency_ms``, ``names``, ...).
    """
    proto, port = split_port(port, protocol)
    bus = bus_driver(proto)(port, baud, model=model, **kwargs)
    bus.connect()
    return bus
