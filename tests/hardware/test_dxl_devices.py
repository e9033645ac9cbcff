"""Control tables as data, and the emulated devices' firmware semantics (no physics)."""

from __future__ import annotations

import pytest

from robot_meta.hardware.dynamixel import control_table as ct
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.dynamixel.device import REBOOT_TIME_S, DynamixelDevice
from robot_meta.hardware.dynamixel.network import DeviceNetwork
from robot_meta.hardware.hardware_map import load_hardware_map


def test_xm430_addresses_from_the_emanual() -> None:
    t = ct.XM430_W350
    expected = {
        "operating_mode": (11, 1), "homing_offset": (20, 4), "current_limit": (38, 2),
        "max_position_limit": (48, 4), "min_position_limit": (52, 4), "torque_enable": (64, 1),
        "hardware_error_status": (70, 1), "bus_watchdog": (98, 1), "goal_current": (102, 2),
        "goal_position": (116, 4), "present_current": (126, 2), "present_velocity": (128, 4),
        "present_position": (132, 4), "return_delay_time": (9, 1), "model_number": (0, 2),
    }
    for name, (addr, size) in expected.items():
        assert (t[name].address, t[name].size) == (addr, size), name
    assert t.model_number == 1020
    assert t.span(["present_current", "present_velocity", "present_position"]) == (126, 10)
    with pytest.raises(KeyError, match="no register 'goal_torque'"):
        t["goal_torque"]


def test_encoder_table_shares_the_state_block() -> None:
    e = ct.ENCODER
    assert not e.torque and "torque_enable" not in e
    for name in ("present_position", "present_velocity", "present_current", "model_number"):
        assert (e[name].address, e[name].size) == (ct.XM430_W350[name].address,
                                                   ct.XM430_W350[name].size)


def _net(*ids: int) -> tuple[DeviceNetwork, dict[int, DynamixelDevice]]:
    hw = load_hardware_map("arm2")
    devs = {i: DynamixelDevice(i, ct.XM430_W350, hw.by_motor_id(i)) for i in ids}
    return DeviceNetwork(devs.values()), devs


def _ask(net: DeviceNetwork, dxl_id: int, inst: int, params: bytes = b"", now: float = 0.0
         ) -> list[p.Packet]:
    out: list[p.Packet] = []
    for r in net.handle(p.Packet(dxl_id, inst, params), now):
        out += p.iter_packets(r.frame)
    return out


def _write(net: DeviceNetwork, dxl_id: int, name: str, value: int, now: float = 0.0) -> int:
    reg = ct.XM430_W350[name]
    (st,) = _ask(net, dxl_id, p.WRITE, p.le(reg.address, 2) + reg.encode(value), now)
    return st.error & 0x7F


def test_ping_read_write_and_errors() -> None:
    net, devs = _net(1, 2)
    (st,) = _ask(net, 1, p.PING)
    assert (st.id, p.from_le(st.data[:2])) == (1, 1020)
    assert _ask(net, 9, p.PING) == []  # nobody at ID 9
    assert sorted(s.id for s in _ask(net, p.BROADCAST_ID, p.PING)) == [1, 2]
    assert _write(net, 1, "goal_current", 100) == 0
    assert devs[1].get("goal_current") == 100
    assert _write(net, 1, "goal_current", 2000) == p.ERR_DATA_RANGE  # beyond 1193
    assert _write(net, 1, "current_limit", 500) == 0
    assert _write(net, 1, "goal_current", 600) == p.ERR_DATA_LIMIT  # beyond the limit register
    assert devs[1].get("goal_current") == 100  # a refused write changes nothing
    (st,) = _ask(net, 1, p.WRITE, p.le(132, 2) + p.le(5, 4))
    assert st.error == p.ERR_ACCESS  # present position is read-only
    (st,) = _ask(net, 1, p.WRITE, p.le(102, 2) + b"\x01")
    assert st.error == p.ERR_DATA_LENGTH  # half a register
    (st,) = _ask(net, 1, p.READ, p.le(102, 2) + p.le(2, 2))
    assert p.from_le(st.data, signed=True) == 100
    (st,) = _ask(net, 1, p.BULK_READ, b"")
    assert st.error == p.ERR_INSTRUCTION


def test_eeprom_locked_while_torque_on() -> None:
    net, devs = _net(1)
    assert _write(net, 1, "operating_mode", 0) == 0
    assert _write(net, 1, "torque_enable", 1) == 0
    assert _write(net, 1, "operating_mode", 3) == p.ERR_ACCESS
    assert devs[1].get("operating_mode") == 0


def test_sync_read_order_and_fast_sync_read() -> None:
    net, devs = _net(1, 2)
    devs[1].set("present_position", 1111)
    devs[2].set("present_position", -2222)
    params = p.le(132, 2) + p.le(4, 2) + bytes([2, 1])
    statuses = _ask(net, p.BROADCAST_ID, p.SYNC_READ, params)
    assert [(s.id, p.from_le(s.data, True)) for s in statuses] == [(2, -2222), (1, 1111)]
    (fast,) = _ask(net, p.BROADCAST_ID, p.FAST_SYNC_READ, params)
    assert fast.id == p.BROADCAST_ID
    assert {i: p.from_le(d, True) for i, (_, d) in p.decode_fast_status(fast, [2, 1], 4).items()
            } == {2: -2222, 1: 1111}


def test_sync_write_has_no_answer() -> None:
    net, devs = _net(1, 2)
    body = p.le(102, 2) + p.le(2, 2) + b"\x01" + p.le(50, 2) + b"\x02" + p.le(-60, 2)
    assert _ask(net, p.BROADCAST_ID, p.SYNC_WRITE, body) == []
    assert (devs[1].get("goal_current"), devs[2].get("goal_current")) == (50, -60)


def test_watchdog_stops_motor_and_locks_goals() -> None:
    net, devs = _net(1)
    d = devs[1]
    assert _write(net, 1, "operating_mode", 0) == 0
    assert _write(net, 1, "bus_watchdog", 5, now=0.0) == 0  # 100 ms
    assert _write(net, 1, "torque_enable", 1, now=0.0) == 0
    assert _write(net, 1, "goal_current", 200, now=0.05) == 0
    assert not d.check_watchdog(0.14)  # 90 ms since the last packet
    assert d.drive_current() > 0
    assert d.check_watchdog(0.16)  # 110 ms: expired
    assert not d.torque_enabled and d.get("bus_watchdog") == -1
    assert d.drive_current() == 0.0
    assert _write(net, 1, "goal_current", 10, now=0.2) == p.ERR_ACCESS  # goals read-only
    assert _write(net, 1, "bus_watchdog", 0, now=0.2) == 0  # clears the error
    assert _write(net, 1, "goal_current", 10, now=0.2) == 0


def test_hardware_error_sets_alert_bit_and_reboot_clears_it() -> None:
    net, devs = _net(1)
    assert _write(net, 1, "torque_enable", 1) == 0
    devs[1].raise_hardware_error(ct.HW_OVERLOAD)
    assert not devs[1].torque_enabled  # overload is in the default shutdown mask (52)
    (st,) = _ask(net, 1, p.PING)
    assert st.error & p.ALERT_BIT
    st = _ask(net, 1, p.WRITE, p.le(64, 2) + b"\x01")[0]
    assert st.error == p.ALERT_BIT | p.ERR_RESULT_FAIL  # cannot re-enable before a reboot
    (st,) = _ask(net, 1, p.REBOOT, now=1.0)
    assert _ask(net, 1, p.PING, now=1.0 + REBOOT_TIME_S / 2) == []  # still booting
    (st,) = _ask(net, 1, p.PING, now=1.0 + REBOOT_TIME_S)
    assert st.error == 0 and devs[1].hardware_error == 0
    assert "overload" in ct.describe_hardware_error(ct.HW_OVERLOAD)


def test_corrupted_instruction_gets_crc_error_status() -> None:
    net, _ = _net(1)
    (r,) = net.corrupted(p.Packet(1, p.READ, b""), 0.0)
    (st,) = p.iter_packets(r.frame)
    assert st.error == p.ERR_CRC
    assert net.corrupted(p.Packet(p.BROADCAST_ID, p.SYNC_WRITE, b""), 0.0) == []


def test_indirect_addressing() -> None:
    net, devs = _net(1)
    d = devs[1]
    d.set("present_position", 0x01020304)
    d.set("present_current", -2)
    # Indirect data 1..6 <- present position (4 bytes) + present current (2 bytes).
    targets = [132, 133, 134, 135, 126, 127]
    body = b"".join(p.le(a, 2) for a in targets)
    (st,) = _ask(net, 1, p.WRITE, p.le(168, 2) + body)
    assert st.error == 0
    (st,) = _ask(net, 1, p.READ, p.le(224, 2) + p.le(6, 2))
    assert p.from_le(st.data[:4]) == 0x01020304 and p.from_le(st.data[4:], signed=True) == -2
    # Writing through indirect data reaches the target register, with its checks.
    (st,) = _ask(net, 1, p.WRITE, p.le(170 + 2 * 6 - 2, 2) + p.le(102, 2) + p.le(103, 2))
    assert st.error == 0  # indirect 7, 8 -> goal current
    assert _ask(net, 1, p.WRITE, p.le(230, 2) + p.le(-7, 2))[0].error == 0
    assert d.get("goal_current") == -7
    assert _ask(net, 1, p.WRITE, p.le(230, 2) + p.le(5000, 2))[0].error == p.ERR_DATA_RANGE
