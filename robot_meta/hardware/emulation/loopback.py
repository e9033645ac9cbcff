"""A serial-like object whose far end is a set of emulated devices, answered instantly.

``SerialBus(LoopbackSerial(emulated))`` runs the real driver (framing, parsing, retries) with
no port and no wire timing. Every byte the driver writes is kept in ``written``: the wire as
a logic analyser would see it, which is what the limit tests inspect.
"""

from __future__ import annotations

from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.emulation.emulated_robot import EmulatedRobot


class LoopbackSerial:
    """The driver's side of an in-memory wire to ``emulated``'s devices."""

    def __init__(self, emulated: EmulatedRobot, keep: bool = True):
        self.emulated = emulated
        self.keep = keep
        self.written = bytearray()
        self._parser = p.PacketParser()
        self._rx = bytearray()

    def write(self, data: bytes) -> int:
        """Send bytes; the devices answer at once (into the read buffer)."""
        if self.keep:
            self.written += data
        for pkt in self._parser.feed(data):
            for r in self.emulated.network.handle(pkt, self.emulated.time):
                self._rx += r.frame
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` answered bytes."""
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def close(self) -> None:
        pass
