"""open_bus picks a driver from a registry keyed by protocol; the bus contract knows no vendor."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import robot_meta
from robot_meta.hardware import MockBus, load_hardware_map, open_bus
from robot_meta.hardware import bus as bus_mod
from robot_meta.hardware.bus import UnknownProtocolError, register_bus, registered_protocols, split_port
from robot_meta.hardware.dynamixel.serial_bus import SerialBus
from robot_meta.hardware.emulation.emulated_robot import EmulatedRobot, StaticPlant
from robot_meta.hardware.emulation.loopback import LoopbackSerial

PACKAGE = Path(robot_meta.__file__).parent


@pytest.mark.parametrize(("port", "expected"), [
    ("/dev/ttyUSB0", ("dynamixel2", "/dev/ttyUSB0")),
    ("/dev/pts/3", ("dynamixel2", "/dev/pts/3")),
    ("socket://127.0.0.1:4000", ("dynamixel2", "socket://127.0.0.1:4000")),
    ("loop://", ("dynamixel2", "loop://")),
    ("mock:arm2", ("mock", "mock:arm2")),
    ("dynamixel2:/dev/ttyUSB0", ("dynamixel2", "dynamixel2:/dev/ttyUSB0")),
])
def test_the_port_names_the_protocol(port: str, expected: tuple[str, str]) -> None:
    assert split_port(port) == expected


def test_unknown_protocol_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownProtocolError, match=r"unknown bus protocol 'canopen'; registered: "
                       r"dynamixel2, mock\b"):
        open_bus("/dev/ttyUSB0", protocol="canopen")
    with pytest.raises(UnknownProtocolError, match="names protocol 'mock'"):
        split_port("mock:arm2", "dynamixel2")
    with pytest.raises(ValueError, match="without ':'"):
        register_bus("bad:name", open_bus)  # type: ignore[arg-type]


def test_a_registered_driver_serves_its_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver registered from outside the package: ``wire:ROBOT`` opens the real Protocol 2.0
    driver on an in-memory wire to that robot's emulated servos."""
    monkeypatch.setattr(bus_mod, "_DRIVERS", dict(bus_mod._DRIVERS))
    wires: list[LoopbackSerial] = []

    def open_wire(port: str, baud: int, *, model: str, **kwargs: object) -> SerialBus:
        hw = load_hardware_map(port.removeprefix("wire:"))
        wires.append(LoopbackSerial(EmulatedRobot(hw, StaticPlant(hw.joint_names))))
        return SerialBus(wires[-1], baud, model=model, **kwargs)  # type: ignore[arg-type]

    register_bus("wire", open_wire)
    assert "wire" in registered_protocols()
    with open_bus("wire:arm2", retries=0) as bus:
        assert bus.is_connected and bus.ping(2) == 1020
        bus.torque([1, 2], True)
        assert all(d.torque_enabled for d in wires[0].emulated.devices.values())
    # Leaving the block turned off the torque it turned on.
    assert not any(d.torque_enabled for d in wires[0].emulated.devices.values())


def test_mock_protocol_is_a_driver_like_any_other() -> None:
    bus = open_bus("mock:cartpole", plant="none", clock="manual")
    try:
        assert isinstance(bus, MockBus) and bus.protocol == "dynamixel2"
        assert bus.scan(range(1, 4)) == {1: 1030, 2: 0x5E01}
        assert bus.named_value(1, "operating_mode", "current") == 0
        assert bus.register_range(1, "current_limit") == (0, 1193)
        assert not bus.has_register(2, "torque_enable")  # the passive encoder
    finally:
        bus.shutdown()


def test_the_bus_contract_imports_no_vendor() -> None:
    code = textwrap.dedent("""
        import sys
        import robot_meta.hardware.bus, robot_meta.hardware.robot, robot_meta.hardware.safety
        bad = [m for m in sys.modules if m == "serial" or m.startswith("robot_meta.hardware.dynamixel")]
        print(",".join(bad))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
    return mods


def test_only_the_dynamixel_driver_imports_pyserial() -> None:
    """Nothing outside hardware/dynamixel/ opens a serial port; the vendor-free hardware
    modules (bus, robot, safety, hardware map, servo models) never import the Dynamixel driver,
    whose addresses and packets stay in dynamixel/ and the emulation that speaks them."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("hardware/dynamixel/"):
            continue
        mods = _imports(path)
        if any(m == "serial" or m.startswith("serial.") for m in mods):
            offenders.append(f"{rel}: pyserial")
        vendor_free = rel.startswith("hardware/") and not rel.startswith("hardware/emulation/")
        if vendor_free and rel != "hardware/__init__.py" \
                and any(m.startswith("robot_meta.hardware.dynamixel") for m in mods):
            offenders.append(f"{rel}: imports the Dynamixel driver")
    assert offenders == []
