"""The official ROBOTIS ``dynamixel_sdk`` as a client of our emulator over a real pty."""

from __future__ import annotations

import time

from dynamixel_sdk import (
    COMM_SUCCESS,
    GroupSyncRead,
    GroupSyncWrite,
    PacketHandler,
    PortHandler,
)

from robot_meta.hardware.emulation.emulator import Emulator

ADDR_OPERATING_MODE = 11
ADDR_TORQUE_ENABLE = 64
ADDR_GOAL_CURRENT = 102
ADDR_PRESENT_CURRENT = 126
ADDR_PRESENT_POSITION = 132


def test_vendor_sdk_ping_read_write_sync(arm2_emulator: Emulator) -> None:
    emu = arm2_emulator
    port = PortHandler(emu.port)
    ph = PacketHandler(2.0)
    assert port.openPort() and port.setBaudRate(1_000_000)
    try:
        # ping
        for dxl_id in (1, 2):
            model, result, error = ph.ping(port, dxl_id)
            assert (model, result, error) == (1020, COMM_SUCCESS, 0)
        _, result, _ = ph.ping(port, 9)
        assert result != COMM_SUCCESS  # nobody at ID 9
        # read (1, 2, 4 bytes)
        mode, result, error = ph.read1ByteTxRx(port, 1, ADDR_OPERATING_MODE)
        assert (mode, result, error) == (3, COMM_SUCCESS, 0)  # factory default: position
        pos, result, _ = ph.read4ByteTxRx(port, 2, ADDR_PRESENT_POSITION)
        assert result == COMM_SUCCESS and pos == emu.register(2, "present_position")
        # write
        for dxl_id in (1, 2):
            assert ph.write1ByteTxRx(port, dxl_id, ADDR_OPERATING_MODE, 0) == (COMM_SUCCESS, 0)
            assert ph.write1ByteTxRx(port, dxl_id, ADDR_TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
        assert emu.torque_enabled() == {1: True, 2: True}
        # an EEPROM write with torque on is refused with an access error (7)
        result, error = ph.write1ByteTxRx(port, 1, ADDR_OPERATING_MODE, 3)
        assert result == COMM_SUCCESS and error == 7
        # sync write of goal current (two's complement for the negative one)
        gsw = GroupSyncWrite(port, ph, ADDR_GOAL_CURRENT, 2)
        assert gsw.addParam(1, [120, 0]) and gsw.addParam(2, list((-80 & 0xFFFF).to_bytes(2,
                                                                                      "little")))
        assert gsw.txPacket() == COMM_SUCCESS
        time.sleep(0.05)
        assert (emu.register(1, "goal_current"), emu.register(2, "goal_current")) == (120, -80)
        # sync read of present current..position (10 bytes), then fast sync read
        gsr = GroupSyncRead(port, ph, ADDR_PRESENT_CURRENT, 10)
        assert gsr.addParam(1) and gsr.addParam(2)
        assert gsr.txRxPacket() == COMM_SUCCESS
        for dxl_id, goal in ((1, 120), (2, -80)):
            assert gsr.isAvailable(dxl_id, ADDR_PRESENT_POSITION, 4)
            cur = gsr.getData(dxl_id, ADDR_PRESENT_CURRENT, 2)
            assert int.from_bytes(cur.to_bytes(2, "little"), "little", signed=True) == goal
        assert gsr.fastSyncRead() == COMM_SUCCESS
        pos1 = gsr.getData(1, ADDR_PRESENT_POSITION, 4)
        assert abs(pos1 - emu.register(1, "present_position")) < 200  # it moves meanwhile
        # torque off, reboot
        assert ph.write1ByteTxRx(port, 1, ADDR_TORQUE_ENABLE, 0) == (COMM_SUCCESS, 0)
        assert ph.reboot(port, 2) == (COMM_SUCCESS, 0)
        time.sleep(0.15)
        assert emu.torque_enabled() == {1: False, 2: False}
        # broadcast ping: every device answers in turn
        found, result = ph.broadcastPing(port)
        assert result == COMM_SUCCESS and sorted(found) == [1, 2]
        assert found[1][0] == 1020
    finally:
        port.closePort()
