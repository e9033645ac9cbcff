"""Dynamixel Protocol 2.0: packet layout, CRC, byte stuffing and an incremental parser.

Packet layout (all multi-byte fields little-endian)::

    FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAM ... | CRC_L CRC_H
    header        id   length        instruction         CRC-16

* ``LEN`` counts the bytes after itself: instruction + (stuffed) parameters + 2 CRC bytes.
* A status packet has ``INST = 0x55`` and its first parameter is the error byte.
* CRC-16/BUYPASS (poly 0x8005, not reflected, init 0, no final xor) over every byte from the
  header up to the last parameter, after stuffing.
* Byte stuffing: inside instruction + parameters, every ``FF FF FD`` is sent as
  ``FF FF FD FD`` so that a header never appears inside a packet.
* Fast Sync Read answers with one status packet of ID 0xFE whose parameters are one block per
  device, ``ERR ID DATA... CRC_L CRC_H``. A block's CRC is the running CRC of the packet up to
  the end of that block's data; the last block's CRC is the packet CRC. Nothing is stuffed.

This module is pure Python (no numpy) and is shared by the serial driver and the emulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

HEADER = b"\xff\xff\xfd\x00"
HEADER_LEN = 4
BROADCAST_ID = 0xFE
MAX_ID = 0xFC  # 252: the highest unicast ID
MIN_PACKET_LEN = 10  # header(4) id(1) length(2) instruction(1) crc(2)
DEFAULT_MAX_LENGTH = 1024  # largest LEN field the parser accepts (anything longer is noise)

# Instructions.
PING = 0x01
READ = 0x02
WRITE = 0x03
REG_WRITE = 0x04
ACTION = 0x05
FACTORY_RESET = 0x06
REBOOT = 0x08
CLEAR = 0x10
STATUS = 0x55
SYNC_READ = 0x82
SYNC_WRITE = 0x83
FAST_SYNC_READ = 0x8A
BULK_READ = 0x92
BULK_WRITE = 0x93
FAST_BULK_READ = 0x9A

INSTRUCTION_NAMES = {
    PING: "ping", READ: "read", WRITE: "write", REG_WRITE: "reg_write", ACTION: "action",
    FACTORY_RESET: "factory_reset", REBOOT: "reboot", CLEAR: "clear", STATUS: "status",
    SYNC_READ: "sync_read", SYNC_WRITE: "sync_write", FAST_SYNC_READ: "fast_sync_read",
    BULK_READ: "bulk_read", BULK_WRITE: "bulk_write", FAST_BULK_READ: "fast_bulk_read",
}

# Status error byte: bit 7 is the hardware alert, bits 0..6 the error number.
ALERT_BIT = 0x80
ERR_NONE = 0
ERR_RESULT_FAIL = 1
ERR_INSTRUCTION = 2
ERR_CRC = 3
ERR_DATA_RANGE = 4
ERR_DATA_LENGTH = 5
ERR_DATA_LIMIT = 6
ERR_ACCESS = 7

ERROR_NAMES = {
    ERR_RESULT_FAIL: "result fail (the instruction could not be processed)",
    ERR_INSTRUCTION: "instruction error (undefined instruction, or action without reg_write)",
    ERR_CRC: "CRC error (the servo received a corrupted packet)",
    ERR_DATA_RANGE: "data range error (value outside the register's range)",
    ERR_DATA_LENGTH: "data length error (fewer bytes than the register needs)",
    ERR_DATA_LIMIT: "data limit error (value beyond a configured limit register)",
    ERR_ACCESS: "access error (read-only, undefined, or EEPROM while torque is on)",
}


def _make_crc_table() -> tuple[int, ...]:
    # MSB-first CRC-16 with generator x^16 + x^15 + x^2 + 1 (0x8005): for each byte value b,
    # the remainder of b * x^16 divided by the generator.
    table = []
    for b in range(256):
        crc = b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_crc_table()


def crc16(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-16/BUYPASS of data, continuing from ``crc`` (0 to start).

    Per byte: crc = (crc << 8) ^ T[(crc >> 8) ^ b], with T the table above.
    The check value of b"123456789" is 0xFEE8.
    """
    table = _CRC_TABLE
    for b in bytes(data):
        crc = ((crc << 8) ^ table[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes | bytearray) -> bytes:
    """Byte-stuff an instruction + parameter field: insert an extra 0xFD after each FF FF FD."""
    out = bytearray()
    for b in body:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-2] == 0xFF and out[-3] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes | bytearray) -> bytes:
    """Undo :func:`stuff`: drop the 0xFD that follows each FF FF FD."""
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        b = body[i]
        out.append(b)
        i += 1
        if b == 0xFD and len(out) >= 3 and out[-2] == 0xFF and out[-3] == 0xFF \
                and i < n and body[i] == 0xFD:
            i += 1  # the stuffed byte
    return bytes(out)


def le(value: int, size: int) -> bytes:
    """value as ``size`` little-endian bytes (two's complement for negatives)."""
    return (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def from_le(data: bytes | bytearray, signed: bool = False) -> int:
    """A little-endian integer."""
    return int.from_bytes(bytes(data), "little", signed=signed)


@dataclass(frozen=True)
class Packet:
    """One decoded packet (parameters already unstuffed).

    For a status packet ``instruction == STATUS`` and ``params[0]`` is the error byte; see
    :attr:`error` and :attr:`data`.
    """

    id: int
    instruction: int
    params: bytes = b""
    size: int = field(default=0, compare=False)  # bytes on the wire (set by the parser)

    @property
    def is_status(self) -> bool:
        return self.instruction == STATUS

    @property
    def error(self) -> int:
        """The status error byte (0 for an instruction packet)."""
        return self.params[0] if self.is_status and self.params else 0

    @property
    def data(self) -> bytes:
        """The status data after the error byte (the parameters of an instruction packet)."""
        return self.params[1:] if self.is_status else self.params

    def encode(self) -> bytes:
        """The wire bytes of this packet (stuffed, with CRC)."""
        return encode_packet(self.id, self.instruction, self.params)

    def describe(self) -> str:
        name = INSTRUCTION_NAMES.get(self.instruction, f"0x{self.instruction:02X}")
        return f"{name} id={self.id} params={self.params.hex(' ')}"


def encode_packet(dxl_id: int, instruction: int, params: bytes | bytearray = b"") -> bytes:
    """Frame one packet: header, ID, length, stuffed instruction+params, CRC."""
    if not 0 <= dxl_id <= BROADCAST_ID:
        raise ValueError(f"Dynamixel ID must lie in [0, 254], got {dxl_id}")
    body = stuff(bytes([instruction]) + bytes(params))
    length = len(body) + 2  # + CRC
    if length > 0xFFFF:
        raise ValueError(f"packet too long ({length} bytes)")
    head = HEADER + bytes([dxl_id]) + le(length, 2)
    crc = crc16(head + body)
    return head + body + le(crc, 2)


def encode_status(dxl_id: int, error: int, data: bytes | bytearray = b"") -> bytes:
    """Frame a status packet (instruction 0x55, error byte, data)."""
    return encode_packet(dxl_id, STATUS, bytes([error & 0xFF]) + bytes(data))


def encode_fast_status(blocks: Sequence[tuple[int, int, bytes]]) -> bytes:
    """Frame a Fast Sync Read answer: blocks of (id, error, data), in ID-list order.

    ``FF FF FD 00 FE LEN 55 [ERR ID DATA CRC]...`` where each block's CRC is the running CRC
    of everything before it and the final block's CRC is the packet CRC. Not stuffed.
    """
    n_payload = sum(4 + len(d) for _, _, d in blocks)  # ERR + ID + DATA + CRC per block
    length = 1 + n_payload  # instruction + blocks (the last CRC is the packet CRC)
    out = bytearray(HEADER + bytes([BROADCAST_ID]) + le(length, 2) + bytes([STATUS]))
    for dxl_id, error, data in blocks:
        out += bytes([error & 0xFF, dxl_id]) + bytes(data)
        out += le(crc16(out), 2)
    return bytes(out)


def decode_fast_status(packet: Packet, ids: Sequence[int], length: int
                       ) -> dict[int, tuple[int, bytes]]:
    """Split a Fast Sync Read answer into {id: (error, data)}.

    ``packet.params`` holds the blocks without the final CRC (the parser checked that one,
    which covers every block). The intermediate block CRCs are checked here as well; a block
    that fails, and every block after it, is left out.
    """
    out: dict[int, tuple[int, bytes]] = {}
    p = packet.params
    # Rebuild the running-CRC prefix: header, ID 0xFE, LEN, instruction 0x55.
    total_len = 1 + len(p) + 2
    running = crc16(HEADER + bytes([BROADCAST_ID]) + le(total_len, 2) + bytes([STATUS]))
    pos = 0
    for k in range(len(ids)):
        end = pos + 2 + length
        if end > len(p):
            break
        err, dxl_id = p[pos], p[pos + 1]
        running = crc16(p[pos:end], running)
        if k < len(ids) - 1:
            if end + 2 > len(p) or from_le(p[end:end + 2]) != running:
                break
            running = crc16(p[end:end + 2], running)
            end += 2
        out[dxl_id] = (err, bytes(p[pos + 2: pos + 2 + length]))
        pos = end
    return out


@dataclass
class ParserStats:
    """What a parser has seen: good frames, CRC failures, and bytes skipped while resyncing."""

    frames: int = 0
    crc_errors: int = 0
    bad_lengths: int = 0
    skipped_bytes: int = 0


@dataclass
class PacketParser:
    """Incremental Protocol 2.0 deframer.

    ``feed`` bytes in any chunking; ``pop`` complete, CRC-checked packets. It never raises on
    input and never waits on more than ``max_length`` bytes for one frame: a header whose
    length is out of range, or a frame whose CRC fails, is skipped one byte at a time so that
    a real header inside the garbage is still found. Work per byte fed is bounded.
    """

    max_length: int = DEFAULT_MAX_LENGTH
    stats: ParserStats = field(default_factory=ParserStats)
    _buf: bytearray = field(default_factory=bytearray)

    def reset(self) -> None:
        """Drop any partial frame."""
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Add bytes; return the complete packets they finish, in order."""
        self._buf += data
        out: list[Packet] = []
        while True:
            pkt = self._next()
            if pkt is None:
                return out
            out.append(pkt)

    def _skip(self, n: int) -> None:
        del self._buf[:n]
        self.stats.skipped_bytes += n

    def _next(self) -> Packet | None:
        buf = self._buf
        while True:
            i = buf.find(HEADER)
            if i < 0:
                # Keep a possible header prefix (up to 3 bytes) at the end.
                keep = 0
                for k in (3, 2, 1):
                    if len(buf) >= k and buf[-k:] == HEADER[:k]:
                        keep = k
                        break
                if len(buf) > keep:
                    self._skip(len(buf) - keep)
                return None
            if i:
                self._skip(i)
            if len(buf) < 7:
                return None
            length = buf[5] | (buf[6] << 8)
            if length < 3 or length > self.max_length:
                self.stats.bad_lengths += 1
                self._skip(1)
                continue
            total = 7 + length
            if len(buf) < total:
                return None
            frame = bytes(buf[:total])
            if crc16(frame[:-2]) != (frame[-2] | (frame[-1] << 8)):
                self.stats.crc_errors += 1
                self._skip(1)
                continue
            dxl_id, inst = frame[4], frame[7]
            body = frame[8:-2]
            if inst == STATUS and dxl_id == BROADCAST_ID:
                # Fast sync read: not stuffed; the blocks' intermediate CRCs stay in place
                # (decode_fast_status checks and strips them).
                params = body
            else:
                params = unstuff(frame[7:-2])[1:]
            del buf[:total]
            self.stats.frames += 1
            return Packet(dxl_id, inst, params, total)


def iter_packets(data: bytes, max_length: int = DEFAULT_MAX_LENGTH) -> list[Packet]:
    """All complete packets in a byte string (convenience for tests and tools)."""
    return PacketParser(max_length=max_length).feed(data)
