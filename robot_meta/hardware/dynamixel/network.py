"""The devices on one emulated bus: dispatch of instruction packets, and the status packets
they produce in wire order.

Instruction semantics (Protocol 2.0):

* ping / read / write / reboot to one ID: that device answers (if present).
* broadcast ping: every device answers, in ID order.
* sync read (0x82) ``ADDR(2) LEN(2) ID...``: each listed device answers with its own status
  packet, in list order.
* fast sync read (0x8A): one status packet of ID 0xFE with a block per listed device.
* sync write (0x83) ``ADDR(2) LEN(2) [ID DATA(LEN)]...``: no answer.
* broadcast write / reboot: no answer.

Every valid instruction packet feeds the bus watchdog of every device (they all hear it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.dynamixel.device import DynamixelDevice, Reply


@dataclass(frozen=True)
class Response:
    """One status packet to transmit: its bytes, and the return delay before it starts."""

    frame: bytes
    return_delay_s: float
    dxl_id: int


class DeviceNetwork:
    """A set of emulated devices sharing one bus."""

    def __init__(self, devices: Iterable[DynamixelDevice]):
        self.devices: dict[int, DynamixelDevice] = {}
        for d in devices:
            if d.id in self.devices:
                raise ValueError(f"two devices with ID {d.id} on one bus")
            self.devices[d.id] = d
        self.instructions = 0

    def _live(self, dxl_id: int, now: float) -> DynamixelDevice | None:
        d = self.devices.get(dxl_id)
        return d if d is not None and d.available(now) else None

    def _rekey(self) -> None:
        self.devices = {d.id: d for d in self.devices.values()}

    def corrupted(self, packet: p.Packet, now: float) -> list[Response]:
        """A packet arrived with a bad CRC (its header intact): a unicast target answers with
        error 3 (CRC error); broadcasts are ignored."""
        d = self._live(packet.id, now)
        if d is None or packet.id == p.BROADCAST_ID:
            return []
        return [self._frame(Reply(d.id, d.status_error(p.ERR_CRC)), d)]

    @staticmethod
    def _frame(reply: Reply, d: DynamixelDevice) -> Response:
        return Response(p.encode_status(reply.dxl_id, reply.error, reply.data), d.return_delay_s,
                        reply.dxl_id)

    def handle(self, packet: p.Packet, now: float) -> list[Response]:
        """Apply one instruction packet at time ``now``; return the answers in wire order."""
        if packet.is_status:
            return []  # another device's answer (or our own echo): devices ignore it
        self.instructions += 1
        for dev in self.devices.values():
            if dev.available(now):
                dev.hear(now)
        inst, params, target = packet.instruction, packet.params, packet.id
        bcast = target == p.BROADCAST_ID

        if inst == p.PING:
            targets = sorted(self.devices) if bcast else [target]
            out = []
            for i in targets:
                d = self._live(i, now)
                if d is not None:
                    out.append(self._frame(d.ping(), d))
            return out

        if inst in (p.SYNC_READ, p.FAST_SYNC_READ):
            if not bcast or len(params) < 5:
                return []
            addr, length = p.from_le(params[0:2]), p.from_le(params[2:4])
            ids = list(params[4:])
            replies: list[tuple[Reply, DynamixelDevice]] = []
            for i in ids:
                d = self._live(i, now)
                if d is None:
                    continue
                r = d.read(addr, length, unicast=False)
                if r is not None:
                    replies.append((r, d))
            if inst == p.SYNC_READ:
                return [self._frame(r, d) for r, d in replies]
            if not replies:
                return []
            blocks = []
            for r, _ in replies:
                # A device that cannot serve the read pads its block so the layout holds.
                data = r.data if len(r.data) == length else bytes(length)
                blocks.append((r.dxl_id, r.error, data))
            first = replies[0][1]
            return [Response(p.encode_fast_status(blocks), first.return_delay_s, p.BROADCAST_ID)]

        if inst == p.SYNC_WRITE:
            if not bcast or len(params) < 4:
                return []
            addr, length = p.from_le(params[0:2]), p.from_le(params[2:4])
            if length <= 0:
                return []
            body = params[4:]
            step = 1 + length
            for k in range(0, len(body) - step + 1, step):
                d = self._live(body[k], now)
                if d is not None:
                    d.write(addr, bytes(body[k + 1:k + step]), now)
            self._rekey()
            return []

        if inst == p.WRITE:
            if len(params) < 3:
                if bcast:
                    return []
                d = self._live(target, now)
                return [] if d is None else [self._frame(
                    Reply(d.id, d.status_error(p.ERR_DATA_LENGTH)), d)]
            addr = p.from_le(params[0:2])
            targets = list(self.devices) if bcast else [target]
            out = []
            for i in targets:
                d = self._live(i, now)
                if d is None:
                    continue
                old_id = d.id
                err = d.write(addr, bytes(params[2:]), now)
                if not bcast and d.status_level() >= 2:
                    out.append(self._frame(Reply(old_id, d.status_error(err)), d))
            self._rekey()
            return out

        if inst == p.READ:
            if bcast:
                return []
            d = self._live(target, now)
            if d is None:
                return []
            if len(params) != 4:
                return [self._frame(Reply(d.id, d.status_error(p.ERR_DATA_LENGTH)), d)]
            r = d.read(p.from_le(params[0:2]), p.from_le(params[2:4]))
            return [] if r is None else [self._frame(r, d)]

        if inst == p.REBOOT:
            targets = list(self.devices) if bcast else [target]
            out = []
            for i in targets:
                d = self._live(i, now)
                if d is not None:
                    r = d.reboot(now)
                    if not bcast:
                        out.append(self._frame(r, d))
            return out

        # Anything else (reg write, action, factory reset, bulk read/write, ...) is not
        # emulated: a unicast target answers "instruction error".
        if bcast:
            return []
        d = self._live(target, now)
        return [] if d is None else [self._frame(Reply(d.id, d.status_error(p.ERR_INSTRUCTION)),
                                                 d)]
