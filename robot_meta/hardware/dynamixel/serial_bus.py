"""The Protocol 2.0 serial driver over pyserial.

Timing. A byte on the wire takes 10 bit times (start + 8 data + stop), so at ``baud`` bits/s
one byte takes ``10 / baud`` s. An exchange waits for

    timeout = (tx_bytes + rx_bytes) * 10 / baud + n_answers * return_delay + latency

where ``rx_bytes`` is the size of the expected answers (11 + data bytes each, plus worst-case
stuffing), ``return_delay`` is the servos' factory return delay (500 us; smaller settings only
make answers arrive earlier) and ``latency`` covers the OS and USB adapter: 2 ms when the
adapter accepted low-latency mode, 5 ms for a pty or a socket URL, 20 ms otherwise (an FTDI
adapter's default latency timer is 16 ms).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import serial

from robot_meta.hardware.bus import register_bus
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.dynamixel.bus import DynamixelBus, Exchange
from robot_meta.hardware.errors import PortError

FACTORY_RETURN_DELAY_S = 500e-6  # register 9 default 250 * 2 us
LATENCY_LOW_S = 0.002
LATENCY_VIRTUAL_S = 0.005
LATENCY_USB_S = 0.020
BITS_PER_BYTE = 10

try:  # termios raises its own error type (not an OSError) when a pty or adapter goes away
    import termios

    _PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError,
                                                     termios.error)
except ImportError:  # pragma: no cover - Windows
    _PORT_ERRORS = (serial.SerialException, OSError)


class SerialLike(Protocol):
    """What the driver needs from a port: a subset of ``serial.Serial``."""

    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...
    def reset_input_buffer(self) -> None: ...
    def close(self) -> None: ...


def status_size(n_data: int) -> int:
    """Worst-case bytes of a status packet carrying n_data bytes: 11 + n_data, plus one
    stuffing byte per 3 data bytes."""
    return 11 + n_data + n_data // 3


class SerialBus(DynamixelBus):
    """A Dynamixel Protocol 2.0 bus on a serial port.

    Args:
        port: a device path, a pyserial URL (``socket://host:port``, ``loop://``), or an open
            serial-like object (anything with write/read/reset_input_buffer/close).
        baud: bits per second.
        latency_ms: the OS/adapter allowance added to every timeout; None picks it from the
            port type (see the module docstring).
        kwargs: see :class:`~robot_meta.hardware.dynamixel.bus.DynamixelBus`.
    """

    def __init__(self, port: str | SerialLike, baud: int = 1_000_000, *,
                 latency_ms: float | None = None, model: str = "xm430-w350", retries: int = 3,
                 names: Mapping[int, str] | None = None, raise_on_alert: bool = True):
        super().__init__(model=model, retries=retries, names=names, raise_on_alert=raise_on_alert)
        if baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        self.port = port
        self.baud = baud
        self.byte_time_s = BITS_PER_BYTE / baud
        self._latency_ms = latency_ms
        self.latency_s = LATENCY_VIRTUAL_S if latency_ms is None else latency_ms / 1000.0
        self.low_latency = False
        self._ser: Any = None
        self._fd: int | None = None
        self._parser = p.PacketParser()

    @property
    def port_name(self) -> str:
        return self.port if isinstance(self.port, str) else type(self.port).__name__

    @property
    def is_connected(self) -> bool:
        return self._ser is not None

    def connect(self) -> None:
        """Open the port (raw 8N1, non-blocking reads), try low-latency mode, flush input."""
        if self._ser is not None:
            return
        if isinstance(self.port, str):
            try:
                ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0,
                                            write_timeout=1.0)
            except (serial.SerialException, OSError, ValueError) as e:
                raise PortError(
                    f"cannot open serial port {self.port!r} at {self.baud} baud: {e}. Check the "
                    "path (ls /dev/ttyUSB* /dev/ttyACM*), that no other program holds it, and "
                    "that you may use it (the dialout group)") from e
            sock = getattr(ser, "_socket", None)
            if sock is not None:
                # socket:// URLs: pyserial leaves Nagle's algorithm on, which holds a small
                # packet sent right after a sync write (no answer) until the peer's delayed ACK
                # (~40 ms). A serial line has no such coalescing, so turn it off.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.low_latency = False
            if hasattr(ser, "set_low_latency_mode"):
                try:
                    ser.set_low_latency_mode(True)
                    self.low_latency = True
                except (ValueError, OSError, NotImplementedError):
                    pass  # a pty or an adapter without ASYNC_LOW_LATENCY: optional
            if self._latency_ms is None:
                virtual = "://" in self.port or self.port.startswith("/dev/pts/")
                self.latency_s = (LATENCY_LOW_S if self.low_latency
                                  else LATENCY_VIRTUAL_S if virtual else LATENCY_USB_S)
        else:
            ser = self.port
        self._ser = ser
        self._fd = None
        fileno = getattr(ser, "fileno", None)
        if fileno is not None:
            try:
                self._fd = fileno()
            except Exception:  # noqa: BLE001 - loop:// and friends have no descriptor
                self._fd = None
        self._flush_input()

    def disconnect(self) -> None:
        """Close the port (idempotent)."""
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(*_PORT_ERRORS):
                ser.close()

    # ---- byte I/O -----------------------------------------------------------------------------
    def _port_gone(self, e: BaseException) -> PortError:
        return PortError(f"serial port {self.port_name} failed: {e}. The adapter was unplugged "
                         "or the emulator stopped; reconnect and restart")

    def _flush_input(self) -> None:
        try:
            self._ser.reset_input_buffer()
        except _PORT_ERRORS as e:
            raise self._port_gone(e) from e
        self._parser.reset()

    def _read_some(self, timeout: float) -> bytes:
        """Wait up to ``timeout`` s for input and return what is there (maybe nothing)."""
        ser = self._ser
        try:
            if self._fd is not None:
                ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
                if not ready:
                    return b""
                data = ser.read(4096)
                if not data and isinstance(ser, serial.Serial):
                    raise serial.SerialException("the port reported data but returned none")
                return bytes(data)
            data = ser.read(4096)
            if not data:
                time.sleep(min(timeout, 5e-5))
            return bytes(data)
        except _PORT_ERRORS as e:
            raise self._port_gone(e) from e

    def timeout_for(self, tx_bytes: int, rx_bytes: int, n_answers: int) -> float:
        """The wait for one exchange: wire time at the baud rate + return delays + latency."""
        return ((tx_bytes + rx_bytes) * self.byte_time_s
                + n_answers * FACTORY_RETURN_DELAY_S + self.latency_s)

    def _exchange(self, packet: p.Packet, expect: Sequence[int], n_data: int,
                  fast: bool = False) -> Exchange:
        """Write one packet; read answers until every expected ID answered or time is up."""
        self._require_connected()
        raw = packet.encode()
        # Stale bytes (a late answer to an earlier packet) must not be taken for this answer.
        self._flush_input()
        try:
            self._ser.write(raw)
        except _PORT_ERRORS as e:
            raise self._port_gone(e) from e
        st = self.stats
        st.tx_packets += 1
        st.tx_bytes += len(raw)
        result = Exchange()
        if not expect:
            return result
        if fast:
            rx = 8 + len(expect) * (4 + n_data) + 2
        else:
            rx = len(expect) * status_size(n_data)
        deadline = time.perf_counter() + self.timeout_for(len(raw), rx, len(expect))
        crc0 = self._parser.stats.crc_errors + self._parser.stats.bad_lengths
        want = set(expect)
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                result.timed_out = True
                break
            data = self._read_some(remaining)
            if not data:
                continue
            st.rx_bytes += len(data)
            for pkt in self._parser.feed(data):
                if not pkt.is_status:
                    continue  # an echo of our own packet (half-duplex adapters, loop://)
                st.rx_packets += 1
                if fast and pkt.id == p.BROADCAST_ID:
                    for i, ans in p.decode_fast_status(pkt, expect, n_data).items():
                        if i in want:
                            result.answers[i] = ans
                elif pkt.id in want and pkt.id not in result.answers:
                    result.answers[pkt.id] = (pkt.error, pkt.data)
            result.crc_errors = (self._parser.stats.crc_errors + self._parser.stats.bad_lengths
                                 - crc0)
            if len(result.answers) >= len(want):
                break
            # Every missing answer is accounted for by a corrupted frame: retry now.
            if result.crc_errors and (fast or len(result.answers) + result.crc_errors
                                      >= len(want)) and self._parser.pending == 0:
                break
        return result


def open_serial_bus(port: str, baud: int, *, model: str = "xm430-w350", **kwargs: Any
                    ) -> SerialBus:
    """The ``dynamixel2`` driver of :func:`robot_meta.hardware.bus.open_bus`: a device path or
    a pyserial URL (``socket://``, ``loop://``); ``dynamixel2:PATH`` names the protocol."""
    if port.startswith("dynamixel2:"):
        port = port[len("dynamixel2:"):]
    return SerialBus(port, baud, model=model, **kwargs)


register_bus("dynamixel2", open_serial_bus)
