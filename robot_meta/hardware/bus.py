"""The HAL contract: :class:`MotorBus`, and :func:`open_bus`.

A bus talks to the devices on one serial line. Register names are control-table names in snake
case (``present_position``, ``goal_current``); values are raw device units. The surface scripts
rely on::

    bus = open_bus("/dev/ttyUSB0", baud=1_000_000)         # or "socket://127.0.0.1:PORT"
    bus.ping(1) -> model_number
    bus.read(1, "present_position") -> int;   bus.write(1, "goal_current", 100)
    bus.sync_read("present_position", [1, 2]) -> {1: int, 2: int}
    bus.sync_write("goal_current", {1: 100, 2: -50})
    bus.torque([1, 2], True)

Subclasses provide the transport (:meth:`MotorBus._exchange`): the serial driver
(:class:`~robot_meta.hardware.dynamixel.serial_bus.SerialBus`) and the in-process mock
(:class:`~robot_meta.hardware.emulation.mock_bus.MockBus`). Everything else (register lookup, value checks,
bounded retries, status errors, the alert bit) lives here, identical for both.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.errors import (
    BusNotConnectedError,
    CorruptPacketError,
    HardwareAlertError,
    RegisterError,
    ServoNotFoundError,
    ServoTimeoutError,
    StatusError,
    servo_label,
)

PROTOCOLS = ("dynamixel2",)
NO_ALERT_REGISTERS = ("hardware_error_status", "torque_enable", "bus_watchdog")


@dataclass
class BusStats:
    """Counters of one bus. ``retries`` counts re-sent instructions (bounded per call by
    ``MotorBus.retries``); ``failures`` counts calls that gave up."""

    transactions: int = 0
    retries: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    status_crc_errors: int = 0  # answers "CRC error" from a servo: our packet was corrupted
    failures: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Exchange:
    """What a transport got back for one instruction: {id: (error byte, data)}, the number
    of frames that failed their CRC, and whether it gave up waiting."""

    answers: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    crc_errors: int = 0
    timed_out: bool = False


class MotorBus(ABC):
    """A Dynamixel Protocol 2.0 bus (the HAL contract). Use as a context manager.

    Args:
        model: the control table assumed for an ID until a ping tells its model number.
        retries: how many times an instruction is re-sent after a timeout or a corrupted
            answer before the call raises (bounded; every re-send is counted in ``stats``).
        names: {ID: joint name}, used in error messages.
        raise_on_alert: raise :class:`HardwareAlertError` when a status packet carries the
            hardware alert bit (reads of hardware_error_status never raise).
    """

    protocol = "dynamixel2"

    def __init__(self, *, model: str = "xm430-w350", retries: int = 3,
                 names: Mapping[int, str] | None = None, raise_on_alert: bool = True):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.default_table = ct.get_table(model)
        self.tables: dict[int, ct.ControlTable] = {}
        self.names: dict[int, str] = dict(names or {})
        self.retries = retries
        self.raise_on_alert = raise_on_alert
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

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Torque off every servo this bus turned on (best effort), then disconnect."""
        if self.is_connected and self._torque_on:
            # Best effort: the port may already be gone; disconnect anyway.
            with contextlib.suppress(Exception):
                self.torque(sorted(self._torque_on), False)
        self.disconnect()

    # ---- transport ------------------------------------------------------------------------------
    @abstractmethod
    def _exchange(self, packet: p.Packet, expect: Sequence[int], n_data: int,
                  fast: bool = False) -> Exchange:
        """Send one instruction packet and collect the status answers of ``expect`` (in order;
        empty for no answer). ``n_data`` is the data length each answer should carry."""

    def _require_connected(self) -> None:
        if not self.is_connected:
            raise BusNotConnectedError(
                f"the bus on {self.port_name} is not connected; call bus.connect() or use "
                "`with open_bus(...) as bus:`")

    def label(self, dxl_id: int) -> str:
        """``ID 2 (joint 'elbow')``: how messages name a servo."""
        return servo_label(dxl_id, self.names.get(dxl_id))

    def _transact(self, make: Callable[[list[int]], p.Packet], ids: Sequence[int], n_data: int,
                  what: str, *, fast: bool = False, retries: int | None = None,
                  alert_ok: bool = False) -> dict[int, bytes]:
        """One instruction with bounded retries; returns {id: data} for every ID in ``ids``.

        A re-send goes only to the IDs that have not answered yet (sync read builds a shorter
        ID list). Raises :class:`ServoTimeoutError` / :class:`CorruptPacketError` when retries
        run out, :class:`StatusError` on an error number, :class:`HardwareAlertError` on the
        alert bit (unless ``alert_ok``).
        """
        self._require_connected()
        max_retries = self.retries if retries is None else retries
        pending = list(ids)
        got: dict[int, bytes] = {}
        alerted: list[int] = []
        crc_total = 0
        self.stats.transactions += 1
        for attempt in range(max_retries + 1):
            if attempt:
                self.stats.retries += 1
            ex = self._exchange(make(pending), pending, n_data, fast)
            crc_total += ex.crc_errors
            self.stats.crc_errors += ex.crc_errors
            if ex.timed_out:
                self.stats.timeouts += 1
            for dxl_id in pending:
                if dxl_id not in ex.answers:
                    continue
                err, data = ex.answers[dxl_id]
                code = err & 0x7F
                if code == p.ERR_CRC:
                    self.stats.status_crc_errors += 1
                    continue  # the servo got a corrupted packet: send it again
                if code:
                    self.stats.failures += 1
                    raise StatusError(
                        f"{self.label(dxl_id)} refused {what}: "
                        f"{p.ERROR_NAMES.get(code, f'error number {code}')}",
                        dxl_id, self.names.get(dxl_id), code)
                if len(data) != n_data:
                    crc_total += 1  # a well-formed but wrong-sized answer is garbage to us
                    continue
                if err & p.ALERT_BIT:
                    alerted.append(dxl_id)
                got[dxl_id] = data
            pending = [i for i in pending if i not in got]
            if not pending:
                break
        if pending:
            self.stats.failures += 1
            first = pending[0]
            tries = max_retries + 1
            if crc_total:
                raise CorruptPacketError(
                    f"{what}: no valid answer from {', '.join(self.label(i) for i in pending)} "
                    f"after {tries} attempts ({crc_total} corrupted answers) on {self.port_name}; "
                    "check cabling, termination and the baud rate, or lower the baud",
                    first, self.names.get(first))
            raise ServoTimeoutError(
                f"{what}: {', '.join(self.label(i) for i in pending)} did not answer after "
                f"{tries} attempts on {self.port_name}; the servo is lost: check its power and "
                "cable, and that its ID and baud rate match (bus.scan() lists what answers)",
                first, self.names.get(first))
        if alerted and not alert_ok and self.raise_on_alert:
            self._raise_alert(alerted[0])
        return got

    def _raise_alert(self, dxl_id: int) -> None:
        bits = self.hardware_error(dxl_id)
        self.alerts[dxl_id] = bits
        raise HardwareAlertError(
            f"{self.label(dxl_id)} reports a hardware error: {ct.describe_hardware_error(bits)}. "
            "The servo cuts its torque for the errors selected in its shutdown register (63); "
            f"fix the cause (load, supply, temperature), then reboot it with bus.reboot({dxl_id})",
            dxl_id, self.names.get(dxl_id), bits)

    def _send(self, packet: p.Packet) -> None:
        """Send a packet that has no answer (broadcast, sync write)."""
        self._require_connected()
        self.stats.transactions += 1
        self._exchange(packet, [], 0)

    # ---- control tables ---------------------------------------------------------------------------
    def table(self, dxl_id: int) -> ct.ControlTable:
        """The control table used for an ID (its pinged model, else the bus default)."""
        return self.tables.get(dxl_id, self.default_table)

    def set_model(self, dxl_id: int, model: str) -> None:
        """Declare the model of an ID without pinging it."""
        self.tables[dxl_id] = ct.get_table(model)

    def register(self, dxl_id: int, name: str) -> ct.Register:
        """Look up a register of the device at ``dxl_id``."""
        t = self.table(dxl_id)
        if name not in t:
            raise RegisterError(
                f"{self.label(dxl_id)} is a {t.model!r}, which has no register {name!r}; "
                f"its registers: {', '.join(r.name for r in t.registers)}",
                dxl_id, self.names.get(dxl_id))
        return t[name]

    def _common_register(self, name: str, ids: Sequence[int]) -> ct.Register:
        regs = {i: self.register(i, name) for i in ids}
        first = next(iter(regs.values()))
        for i, r in regs.items():
            if (r.address, r.size) != (first.address, first.size):
                raise RegisterError(
                    f"{name!r} sits at different addresses on {self.label(ids[0])} and "
                    f"{self.label(i)}; a sync instruction needs one address: use per-ID calls",
                    i, self.names.get(i))
        return first

    def _encode(self, dxl_id: int, reg: ct.Register, value: int) -> bytes:
        if not reg.writable:
            raise RegisterError(f"{reg.name!r} of {self.label(dxl_id)} is read-only",
                                dxl_id, self.names.get(dxl_id))
        v = int(value)
        if v != value or not reg.low <= v <= reg.high:
            raise RegisterError(
                f"{reg.name} = {value!r} for {self.label(dxl_id)} is outside the register's "
                f"range [{reg.low}, {reg.high}] (an integer in raw units {reg.unit or ''})".rstrip(),
                dxl_id, self.names.get(dxl_id))
        return reg.encode(v)

    @staticmethod
    def _check_id(dxl_id: int) -> None:
        if not isinstance(dxl_id, int) or not 0 <= dxl_id <= p.MAX_ID:
            raise ValueError(f"a servo ID is an integer in [0, {p.MAX_ID}], got {dxl_id!r}")

    # ---- the HAL surface ----------------------------------------------------------------------
    def ping(self, dxl_id: int, *, retries: int | None = None) -> int:
        """Ping one ID; return its model number and remember its control table."""
        self._check_id(dxl_id)
        try:
            data = self._transact(lambda ids: p.Packet(ids[0], p.PING), [dxl_id], 3, "ping",
                                  retries=retries, alert_ok=True)[dxl_id]
        except ServoTimeoutError as e:
            raise ServoNotFoundError(
                f"no servo answered a ping at {self.label(dxl_id)} on {self.port_name} "
                f"({(self.retries if retries is None else retries) + 1} attempts); check power, "
                "cabling, the ID and the baud rate (bus.scan() lists what answers)",
                dxl_id, self.names.get(dxl_id)) from e
        model_number = p.from_le(data[0:2])
        table = ct.TABLES_BY_NUMBER.get(model_number)
        if table is not None:
            self.tables[dxl_id] = table
        return model_number

    def scan(self, ids: Iterable[int] = range(p.MAX_ID + 1)) -> dict[int, int]:
        """Ping each ID once (no retries); return {id: model number} of those that answer."""
        found = {}
        for i in ids:
            try:
                found[i] = self.ping(i, retries=0)
            except ServoNotFoundError:
                continue
        return found

    def read(self, dxl_id: int, name: str) -> int:
        """Read one register (raw units)."""
        self._check_id(dxl_id)
        reg = self.register(dxl_id, name)
        data = self._transact(
            lambda ids: p.Packet(ids[0], p.READ, p.le(reg.address, 2) + p.le(reg.size, 2)),
            [dxl_id], reg.size, f"read of {name}", alert_ok=name in NO_ALERT_REGISTERS)[dxl_id]
        return reg.decode(data)

    def write(self, dxl_id: int, name: str, value: int) -> None:
        """Write one register (raw units) and wait for the servo's acknowledgement."""
        self._check_id(dxl_id)
        reg = self.register(dxl_id, name)
        payload = p.le(reg.address, 2) + self._encode(dxl_id, reg, value)
        self._transact(lambda ids: p.Packet(ids[0], p.WRITE, payload), [dxl_id], 0,
                       f"write of {name} = {value}", alert_ok=name in NO_ALERT_REGISTERS)
        if name == "torque_enable":
            (self._torque_on.add if value else self._torque_on.discard)(dxl_id)

    def sync_read(self, name: str, ids: Sequence[int], *, fast: bool = False) -> dict[int, int]:
        """Read one register from several servos with one sync read: {id: raw value}."""
        return {i: v[name] for i, v in self.sync_read_many([name], ids, fast=fast).items()}

    def sync_read_many(self, names: Sequence[str], ids: Sequence[int], *, fast: bool = False
                       ) -> dict[int, dict[str, int]]:
        """Read several registers with one sync read over the contiguous block that holds them
        (e.g. present current, velocity, position = addresses 126..135): {id: {name: value}}.
        ``fast`` uses Fast Sync Read (one combined answer packet)."""
        ids = list(ids)
        if not ids:
            return {}
        regs = [self._common_register(n, ids) for n in names]
        start = min(r.address for r in regs)
        length = max(r.end for r in regs) - start
        got = self.sync_read_block(start, length, ids, fast=fast,
                                   alert_ok=all(n in NO_ALERT_REGISTERS for n in names),
                                   what=", ".join(names))
        return {i: {r.name: r.decode(got[i][r.address - start:r.end - start]) for r in regs}
                for i in ids}

    def sync_read_block(self, address: int, length: int, ids: Sequence[int], *,
                        fast: bool = False, alert_ok: bool = False, what: str = ""
                        ) -> dict[int, bytes]:
        """Sync read of ``length`` raw bytes at ``address`` from each ID: {id: bytes}."""
        ids = list(ids)
        for i in ids:
            self._check_id(i)
        if length <= 0:
            raise ValueError(f"sync read length must be positive, got {length}")
        inst = p.FAST_SYNC_READ if fast else p.SYNC_READ
        head = p.le(address, 2) + p.le(length, 2)
        label = f"{'fast ' if fast else ''}sync read of {what or f'{length} bytes at {address}'}"
        return self._transact(lambda pend: p.Packet(p.BROADCAST_ID, inst, head + bytes(pend)),
                              ids, length, label, fast=fast, alert_ok=alert_ok)

    def read_block(self, dxl_id: int, address: int, length: int) -> bytes:
        """Read ``length`` raw bytes at ``address``."""
        self._check_id(dxl_id)
        return self._transact(
            lambda ids: p.Packet(ids[0], p.READ, p.le(address, 2) + p.le(length, 2)),
            [dxl_id], length, f"read of {length} bytes at {address}")[dxl_id]

    def write_block(self, dxl_id: int, address: int, data: bytes) -> None:
        """Write raw bytes at ``address`` (the servo still checks each register it covers)."""
        self._check_id(dxl_id)
        payload = p.le(address, 2) + bytes(data)
        self._transact(lambda ids: p.Packet(ids[0], p.WRITE, payload), [dxl_id], 0,
                       f"write of {len(data)} bytes at {address}")

    def sync_write(self, name: str, values: Mapping[int, int]) -> None:
        """Write one register on several servos with one sync write (no answer)."""
        if not values:
            return
        ids = list(values)
        for i in ids:
            self._check_id(i)
        reg = self._common_register(name, ids)
        body = bytearray(p.le(reg.address, 2) + p.le(reg.size, 2))
        for i, v in values.items():
            body += bytes([i]) + self._encode(i, reg, v)
        self._send(p.Packet(p.BROADCAST_ID, p.SYNC_WRITE, bytes(body)))
        if name == "torque_enable":
            for i, v in values.items():
                (self._torque_on.add if v else self._torque_on.discard)(i)

    def torque(self, ids: Iterable[int], on: bool) -> None:
        """Enable or disable torque on each servo, one acknowledged write per ID."""
        for i in ids:
            self.write(i, "torque_enable", 1 if on else 0)

    def hardware_error(self, dxl_id: int) -> int:
        """The hardware error status register (70): 0 when healthy. See
        :func:`robot_meta.hardware.dynamixel.control_table.describe_hardware_error`."""
        bits = self.read(dxl_id, "hardware_error_status")
        if bits:
            self.alerts[dxl_id] = bits
        else:
            self.alerts.pop(dxl_id, None)
        return bits

    def reboot(self, dxl_id: int, *, wait_s: float = 1.0) -> None:
        """Reboot one servo (clears hardware errors; RAM returns to defaults, torque off) and
        wait until it answers a ping again."""
        self._check_id(dxl_id)
        self._transact(lambda ids: p.Packet(ids[0], p.REBOOT), [dxl_id], 0, "reboot",
                       alert_ok=True)
        self._torque_on.discard(dxl_id)
        self.alerts.pop(dxl_id, None)
        deadline = time.monotonic() + wait_s
        while True:
            time.sleep(0.02)
            try:
                self.ping(dxl_id, retries=0)
                return
            except ServoNotFoundError:
                if time.monotonic() > deadline:
                    raise


def open_bus(port: str, baud: int = 1_000_000, protocol: str = "dynamixel2",
             model: str = "xm430-w350", **kwargs: Any) -> MotorBus:
    """Open a connected bus.

    Args:
        port: a device path (``/dev/ttyUSB0``, a pty ``/dev/pts/N``), a pyserial URL
            (``socket://127.0.0.1:PORT``, ``loop://``), or ``mock:ROBOT`` for the in-process
            mock (:class:`robot_meta.hardware.emulation.mock_bus.MockBus`, needs the simulation extras).
        baud: the bus baud rate.
        protocol: only ``dynamixel2`` (Dynamixel Protocol 2.0).
        model: the control table assumed for IDs that have not been pinged.
        kwargs: passed to the bus class (``retries``, ``latency_ms``, ``names``, ...).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown bus protocol {protocol!r}; supported: {', '.join(PROTOCOLS)}")
    ct.get_table(model)
    bus: MotorBus
    if port.startswith("mock:"):
        from robot_meta.hardware.emulation.mock_bus import MockBus

        bus = MockBus(port[len("mock:"):], model=model, **kwargs)
    else:
        from robot_meta.hardware.dynamixel.serial_bus import SerialBus

        bus = SerialBus(port, baud, model=model, **kwargs)
    bus.connect()
    return bus
