"""The Dynamixel Protocol 2.0 bus: :class:`DynamixelBus`, the HAL contract
(:class:`~robot_meta.hardware.bus.MotorBus`) over instruction and status packets.

Register names resolve to addresses through the devices' control tables (data files in
``tables/``, :mod:`~robot_meta.hardware.dynamixel.control_table`). Subclasses provide the
transport (:meth:`DynamixelBus._exchange`): the serial driver
(:class:`~robot_meta.hardware.dynamixel.serial_bus.SerialBus`) and the in-process emulated bus
(:class:`~robot_meta.hardware.emulation.mock_bus.MockBus`). Everything else (register lookup,
value checks, bounded retries, status errors, the alert bit, indirect addressing, the bus
watchdog) lives here, identical for both.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from robot_meta.hardware.bus import MotorBus
from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.errors import (
    CorruptPacketError,
    HardwareAlertError,
    RegisterError,
    ServoNotFoundError,
    ServoTimeoutError,
    StatusError,
)

NO_ALERT_REGISTERS = ("hardware_error_status", "torque_enable", "bus_watchdog")


@dataclass
class Exchange:
    """What a transport got back for one instruction: {id: (error byte, data)}, the number
    of frames that failed their CRC, and whether it gave up waiting."""

    answers: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    crc_errors: int = 0
    timed_out: bool = False


WATCHDOG_UNIT_MS = 20  # Bus Watchdog (98) unit


@dataclass(frozen=True)
class MappedBlock:
    """Registers gathered by indirect addressing into one block per device:
    (address, length) of the indirect data read, and (name, size) in block order."""

    address: int
    length: int
    layout: tuple[tuple[str, int, bool], ...]  # (name, size, signed)


class DynamixelBus(MotorBus):
    """A Dynamixel Protocol 2.0 bus. Use as a context manager.

    Args:
        model: the servo model (control table) assumed for an ID until a ping tells its model
            number.
        retries: how many times an instruction is re-sent after a timeout or a corrupted
            answer before the call raises (bounded; every re-send is counted in ``stats``).
        names: {ID: joint name}, used in error messages.
        raise_on_alert: raise :class:`HardwareAlertError` when a status packet carries the
            hardware alert bit (reads of hardware_error_status never raise).
    """

    protocol: ClassVar[str] = "dynamixel2"

    def __init__(self, *, model: str = "xm430-w350", retries: int = 3,
                 names: Mapping[int, str] | None = None, raise_on_alert: bool = True):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        super().__init__(names=names)
        self.default_table = ct.get_table(model)
        self.tables: dict[int, ct.ControlTable] = {}
        self.retries = retries
        self.raise_on_alert = raise_on_alert

    # ---- transport ------------------------------------------------------------------------------
    @abstractmethod
    def _exchange(self, packet: p.Packet, expect: Sequence[int], n_data: int,
                  fast: bool = False) -> Exchange:
        """Send one instruction packet and collect the status answers of ``expect`` (in order;
        empty for no answer). ``n_data`` is the data length each answer should carry."""

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
        return super().scan(ids)

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
        self._track_torque(dxl_id, name, value)

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
        for i, v in values.items():
            self._track_torque(i, name, v)

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

    # ---- device description, from the control tables ------------------------------------------
    def has_register(self, dxl_id: int, name: str) -> bool:
        """Whether the control table of the device at an ID has a register."""
        return name in self.table(dxl_id)

    def register_range(self, dxl_id: int, name: str) -> tuple[int, int]:
        """(low, high) raw values of a register, from the control table."""
        reg = self.register(dxl_id, name)
        return reg.low, reg.high

    def named_value(self, dxl_id: int, name: str, value: str) -> int:
        """A named value of an enumerated register (the table file's ``[values]``)."""
        t = self.table(dxl_id)
        names = t.values.get(name, {})
        if value not in names:
            raise RegisterError(
                f"{self.label(dxl_id)} is a {t.model!r}, whose {name!r} has no value {value!r}; "
                f"its values: {', '.join(names) or 'none are named'}",
                dxl_id, self.names.get(dxl_id))
        return names[value]

    def describe_hardware_error(self, bits: int) -> str:
        """Hardware Error Status (70) bits as text."""
        return ct.describe_hardware_error(bits)

    def read_many(self, dxl_id: int, names: Sequence[str]) -> dict[str, int]:
        """Several registers of one device in one read of the block that holds them (a late
        answer to an earlier single-register read has another length, so it cannot pass for
        this one)."""
        t = self.table(dxl_id)
        regs = [self.register(dxl_id, n) for n in names]
        start, length = t.span(list(names))
        data = self.read_block(dxl_id, start, length)
        return {r.name: r.decode(data[r.address - start:r.end - start]) for r in regs}

    # ---- bus watchdog (98) ----------------------------------------------------------------------
    def arm_watchdog(self, dxl_id: int, timeout_ms: int) -> None:
        """0 clears a previous watchdog error (-1); then value = ceil(ms / 20) in 20 ms units
        (1..127, so 20..2540 ms)."""
        self.write(dxl_id, "bus_watchdog", 0)
        if timeout_ms:
            self.write(dxl_id, "bus_watchdog",
                       min(127, max(1, math.ceil(timeout_ms / WATCHDOG_UNIT_MS))))

    def watchdog_expired(self, dxl_id: int) -> bool:
        """The firmware sets Bus Watchdog to -1 when it stopped the motor."""
        return self.read(dxl_id, "bus_watchdog") == -1

    # ---- indirect addressing: one sync read for registers spread over the table ------------------
    def map_registers(self, ids: Sequence[int], names: Sequence[str]) -> MappedBlock | None:
        """Point indirect addresses 1..n of every device at ``names``' bytes, in order; a
        register a device lacks maps to its hardware_error_status byte (0 when healthy).
        Returns the block to read, or None if the devices' indirect layouts differ or lack
        room (or a device has no indirection)."""
        ids = list(ids)
        tables = [self.table(i) for i in ids]
        inds = {t.indirect for t in tables}
        ind = inds.pop() if len(inds) == 1 else None
        if ind is None or not ids:
            return None
        ref = next((t for t in tables if all(n in t for n in names)), None)
        if ref is None:
            return None
        layout = tuple((n, ref[n].size, ref[n].signed) for n in names)
        a0, d0, n_ind = ind
        length = sum(size for _, size, _ in layout)
        if length > n_ind:
            return None
        for i, t in zip(ids, tables, strict=True):
            filler = t["hardware_error_status"].address
            targets: list[int] = []
            for name, size, _ in layout:
                reg = t[name] if name in t else t["hardware_error_status"]
                targets += [reg.address + b for b in range(min(size, reg.size))]
                targets += [filler] * (size - min(size, reg.size))
            self.write_block(i, a0, b"".join(x.to_bytes(2, "little") for x in targets))
        return MappedBlock(d0, length, layout)

    def read_mapped(self, handle: object, ids: Sequence[int], *, fast: bool = False
                    ) -> dict[int, dict[str, int]]:
        """One sync read of a :class:`MappedBlock`: {id: {name: value}}."""
        if not isinstance(handle, MappedBlock):
            raise TypeError(f"expected the MappedBlock of map_registers, got {handle!r}")
        data = self.sync_read_block(handle.address, handle.length, ids, fast=fast,
                                    what="joint state")
        out: dict[int, dict[str, int]] = {}
        for i, d in data.items():
            vals, k = {}, 0
            for name, size, signed in handle.layout:
                vals[name] = int.from_bytes(d[k:k + size], "little", signed=signed)
                k += size
            out[i] = vals
        return out
