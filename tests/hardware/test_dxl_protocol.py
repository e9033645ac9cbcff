"""Protocol 2.0 framing: CRC vectors, e-Manual packets, stuffing, and the parser under fuzz."""

from __future__ import annotations

import random
import time

from dynamixel_sdk.protocol2_packet_handler import Protocol2PacketHandler
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_meta.hardware.dynamixel import protocol as p

SDK = Protocol2PacketHandler()


def test_crc_check_value() -> None:
    # CRC-16/BUYPASS check value.
    assert p.crc16(b"123456789") == 0xFEE8
    assert p.crc16(b"") == 0
    # Incremental use gives the same result.
    assert p.crc16(b"56789", p.crc16(b"1234")) == 0xFEE8


def test_ping_packet_bytes() -> None:
    assert p.encode_packet(1, p.PING) == bytes.fromhex("FF FF FD 00 01 03 00 01 19 4E")


def test_emanual_example_packets() -> None:
    """Instruction and status examples from the ROBOTIS Protocol 2.0 e-Manual."""
    assert p.encode_packet(1, p.READ, p.le(132, 2) + p.le(4, 2)) == bytes.fromhex(
        "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")
    assert p.encode_status(1, 0, p.le(166, 4)) == bytes.fromhex(
        "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0")
    assert p.encode_packet(1, p.WRITE, p.le(116, 2) + p.le(512, 4)) == bytes.fromhex(
        "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89")
    assert p.encode_packet(p.BROADCAST_ID, p.SYNC_READ, p.le(132, 2) + p.le(4, 2) + b"\x01\x02"
                           ) == bytes.fromhex("FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA")
    body = p.le(116, 2) + p.le(4, 2) + b"\x01" + p.le(150, 4) + b"\x02" + p.le(170, 4)
    assert p.encode_packet(p.BROADCAST_ID, p.SYNC_WRITE, body) == bytes.fromhex(
        "FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87")


@given(st.binary(max_size=300))
def test_crc_matches_vendor_sdk(data: bytes) -> None:
    assert p.crc16(data) == SDK.updateCRC(0, list(data), len(data))


def test_stuffing_example() -> None:
    # FF FF FD inside the parameters gets an extra FD; the length field counts it.
    pkt = p.encode_packet(1, p.WRITE, b"\x00\x01\xff\xff\xfd")
    assert pkt[5] == 1 + 5 + 1 + 2  # instruction + params + stuffed byte + CRC
    assert b"\xff\xff\xfd\xfd" in pkt[7:]
    assert p.iter_packets(pkt)[0].params == b"\x00\x01\xff\xff\xfd"


@given(st.binary(max_size=200))
def test_stuffing_round_trip(body: bytes) -> None:
    stuffed = p.stuff(body)
    assert p.unstuff(stuffed) == body
    # No header can appear inside a stuffed field.
    assert b"\xff\xff\xfd\x00" not in stuffed
    assert len(stuffed) - len(body) == stuffed.count(b"\xff\xff\xfd\xfd")


@given(st.integers(0, 252), st.sampled_from([p.READ, p.WRITE, p.STATUS, p.SYNC_WRITE]),
       st.binary(max_size=120))
def test_encode_matches_sdk_and_parses(dxl_id: int, inst: int, params: bytes) -> None:
    ours = p.encode_packet(dxl_id, inst, params)
    # The vendor SDK's framing of the same packet (txPacket stuffs, then adds the CRC).
    sdk_pkt = [0xFF, 0xFF, 0xFD, 0x00, dxl_id, *p.le(len(params) + 3, 2), inst, *params, 0, 0]
    sdk_pkt = SDK.addStuffing(sdk_pkt)
    n = p.from_le(bytes(sdk_pkt[5:7])) + 7
    crc = SDK.updateCRC(0, sdk_pkt, n - 2)
    sdk_pkt[n - 2], sdk_pkt[n - 1] = crc & 0xFF, crc >> 8
    assert ours == bytes(sdk_pkt[:n])
    (back,) = p.iter_packets(ours)
    assert (back.id, back.instruction, back.params, back.size) == (dxl_id, inst, params, len(ours))


def test_fast_sync_read_status_round_trip() -> None:
    blocks = [(1, 0, p.le(2048, 4)), (2, 0x80, b"\xff\xff\xfd\x00"), (7, 0, p.le(-5, 4))]
    frame = p.encode_fast_status(blocks)
    assert frame[4] == p.BROADCAST_ID and frame[7] == p.STATUS
    assert p.from_le(frame[5:7]) == 1 + 3 * (4 + 4)
    (pkt,) = p.iter_packets(frame)
    out = p.decode_fast_status(pkt, [1, 2, 7], 4)
    assert out == {1: (0, p.le(2048, 4)), 2: (0x80, b"\xff\xff\xfd\x00"), 7: (0, p.le(-5, 4))}
    # An intermediate CRC that does not match drops that block and the ones after it.
    bad = bytearray(pkt.params)
    bad[6] ^= 1
    assert list(p.decode_fast_status(p.Packet(pkt.id, pkt.instruction, bytes(bad)), [1, 2, 7],
                                     4)) == []


# ---- the parser under fuzz -----------------------------------------------------------------
FUZZ_REPORT = {"frames": 0, "crc_errors": 0, "bytes": 0}


def _valid_frames(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        params = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
        if rng.random() < 0.3:
            params += b"\xff\xff\xfd" + params  # force stuffing
        out.append(p.encode_packet(rng.randrange(253), rng.choice([p.STATUS, p.READ, p.WRITE]),
                                   params))
    return out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=20))
def test_parser_random_bytes_never_crash_or_hang(data: bytes, chunks: list[int]) -> None:
    parser = p.PacketParser()
    t = time.perf_counter()
    pos, frames = 0, 0
    for c in chunks + [len(data)]:
        frames += len(parser.feed(data[pos:pos + c]))
        pos += c
    assert time.perf_counter() - t < 1.0
    assert parser.pending <= max(6, p.DEFAULT_MAX_LENGTH + 7)
    FUZZ_REPORT["frames"] += frames
    FUZZ_REPORT["bytes"] += len(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.binary(max_size=64), st.floats(0.0, 0.5))
def test_parser_recovers_every_intact_frame(seed: int, junk: bytes, corrupt_p: float) -> None:
    """Valid frames interleaved with junk and corrupted frames: every intact frame comes out
    once, in order; corrupted ones are counted, never delivered."""
    rng = random.Random(seed)
    frames = _valid_frames(rng, 12)
    stream = bytearray()
    intact = []
    for f in frames:
        if rng.random() < 0.5:
            stream += junk[: rng.randrange(len(junk) + 1)]
        if rng.random() < corrupt_p:
            g = bytearray(f)
            g[rng.randrange(7, len(g))] ^= 1 << rng.randrange(8)  # a body bit: CRC must fail
            stream += g
        else:
            stream += f
            intact.append(f)
    parser = p.PacketParser()
    got = []
    pos = 0
    while pos < len(stream):
        step = rng.randrange(1, 40)
        got += parser.feed(stream[pos:pos + step])
        pos += step
    # Junk can, rarely, contain a plausible header whose length swallows a real frame; the
    # parser then resynchronises one byte on, so intact frames still come out in order.
    encoded = [g.encode() for g in got]
    it = iter(encoded)
    assert all(any(f == e for e in it) for f in intact)
    FUZZ_REPORT["frames"] += len(got)
    FUZZ_REPORT["crc_errors"] += parser.stats.crc_errors
    FUZZ_REPORT["bytes"] += len(stream)


def test_parser_fuzz_report() -> None:
    """Prints how much the two fuzz tests above pushed through the parser (run with -s)."""
    print(f"\nparser fuzz: {FUZZ_REPORT['bytes']} bytes, {FUZZ_REPORT['frames']} frames decoded, "
          f"{FUZZ_REPORT['crc_errors']} CRC failures rejected")
    assert FUZZ_REPORT["frames"] > 0


def test_parser_rejects_bad_length_and_reserved() -> None:
    parser = p.PacketParser(max_length=64)
    huge = b"\xff\xff\xfd\x00\x01\xff\xff" + bytes(10)  # LEN = 65535 > max: skipped at once
    good = p.encode_packet(3, p.PING)
    assert [x.id for x in parser.feed(huge + good)] == [3]
    assert parser.stats.bad_lengths >= 1
    # FF FF FD FD (a stuffed byte) is not a header.
    assert parser.feed(b"\xff\xff\xfd\xfd\x01\x03\x00\x01\x00\x00") == []
