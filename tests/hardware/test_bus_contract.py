"""The HAL contract is enough for a robot: a bus that is not Dynamixel (registers in a dict, no
packets, no addresses) registers itself and runs the Robot end to end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from robot_meta.hardware import (
    HardwareAlertError,
    Robot,
    ServoNotFoundError,
    load_hardware_map,
    open_bus,
)
from robot_meta.hardware import bus as bus_mod
from robot_meta.hardware.bus import MotorBus, register_bus
from robot_meta.hardware.errors import RegisterError

MODES = {"current": 0, "position": 3, "current_position": 5}
RANGES = {"current_limit": (0, 1193), "pwm_limit": (0, 885), "torque_enable": (0, 1),
          "min_position_limit": (0, 4095), "max_position_limit": (0, 4095)}
REGISTERS = ("torque_enable", "operating_mode", "current_limit", "pwm_limit", "goal_current",
             "present_current", "present_velocity", "present_position", "hardware_error_status",
             "min_position_limit", "max_position_limit")


class DictBus(MotorBus):
    """Devices as {ID: {register: value}}: what a CAN or EtherCAT driver would map its objects
    to. It knows register names and ranges, nothing else."""

    protocol = "dict"

    def __init__(self, models: Mapping[int, int]):
        super().__init__()
        self.devices = {i: dict.fromkeys(REGISTERS, 0) | {"model_number": m}
                        for i, m in models.items()}
        self.watchdog_ms: dict[int, int] = {}
        self.writes: list[tuple[int, str, int]] = []
        self._open = False

    def connect(self) -> None:
        self._open = True

    def disconnect(self) -> None:
        self._open = False

    @property
    def is_connected(self) -> bool:
        return self._open

    def _dev(self, i: int) -> dict[str, int]:
        self._require_connected()
        if i not in self.devices:
            raise ServoNotFoundError(f"{self.label(i)} is not on the bus", i, self.names.get(i))
        return self.devices[i]

    def ping(self, motor_id: int, *, retries: int | None = None) -> int:
        return self._dev(motor_id)["model_number"]

    def read(self, motor_id: int, name: str) -> int:
        return self._dev(motor_id)[name]

    def write(self, motor_id: int, name: str, value: int) -> None:
        low, high = self.register_range(motor_id, name)
        if not low <= value <= high:
            raise RegisterError(f"{name} = {value} outside [{low}, {high}]", motor_id, None)
        self._dev(motor_id)[name] = int(value)
        self.writes.append((motor_id, name, int(value)))
        self._track_torque(motor_id, name, value)

    def sync_read(self, name: str, ids: Sequence[int], *, fast: bool = False) -> dict[int, int]:
        return {i: self.read(i, name) for i in ids}

    def sync_write(self, name: str, values: Mapping[int, int]) -> None:
        for i, v in values.items():
            self.write(i, name, v)

    def set_model(self, motor_id: int, model: str) -> None:
        pass

    def has_register(self, motor_id: int, name: str) -> bool:
        return name in self._dev(motor_id)

    def register_range(self, motor_id: int, name: str) -> tuple[int, int]:
        return RANGES.get(name, (-(2**31), 2**31 - 1))

    def named_value(self, motor_id: int, name: str, value: str) -> int:
        assert name == "operating_mode"
        return MODES[value]

    def hardware_error(self, motor_id: int) -> int:
        return self.read(motor_id, "hardware_error_status")

    def describe_hardware_error(self, bits: int) -> str:
        return f"fault bits {bits:#x}"

    def reboot(self, motor_id: int, *, wait_s: float = 1.0) -> None:
        self._dev(motor_id).update(hardware_error_status=0, torque_enable=0)

    def arm_watchdog(self, motor_id: int, timeout_ms: int) -> None:
        self.watchdog_ms[motor_id] = timeout_ms

    def watchdog_expired(self, motor_id: int) -> bool:
        return False


@pytest.fixture
def dict_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_mod, "_DRIVERS", dict(bus_mod._DRIVERS))
    register_bus("dict", lambda port, baud, *, model, **kw: DictBus({1: 1020, 2: 1020}))


@pytest.mark.usefixtures("dict_protocol")
def test_robot_runs_on_a_bus_that_is_not_dynamixel() -> None:
    hw = load_hardware_map("arm2")
    bus = open_bus("dict:arm2")
    assert isinstance(bus, DictBus)
    with Robot(bus, hw, handle_signals=False, watchdog_ms=100) as robot:
        for i in (1, 2):
            d = bus.devices[i]
            assert d["operating_mode"] == MODES["current"]
            assert d["current_limit"] == 743 and d["pwm_limit"] == 885  # from the servo file
            assert bus.watchdog_ms[i] == 100
        assert robot._state_block is None  # no register mapping: per-register sync reads
        robot.enable()
        assert bus.devices[1]["torque_enable"] == bus.devices[2]["torque_enable"] == 1
        for i, q in ((1, 0.5), (2, -0.25)):
            bus.devices[i]["present_position"] = hw.by_motor_id(i).position_to_ticks(q)
        state = robot.read_state()
        np.testing.assert_allclose(state.q, [0.5, -0.25], atol=2e-3)
        sent = robot.write_currents([0.5, 9.0])  # the second is clamped to max_current_a (2 A)
        assert bus.devices[1]["goal_current"] == int(0.5 / 0.00269)
        assert bus.devices[2]["goal_current"] == 743
        np.testing.assert_allclose(sent, [185 * 0.00269, 743 * 0.00269])
        bus.devices[2]["hardware_error_status"] = 0x20
        with pytest.raises(HardwareAlertError, match=r"joint 'elbow' \(ID 2\) reports a hardware error: "
                           "fault bits 0x20"):
            robot.check_health()
        assert bus.devices[1]["torque_enable"] == bus.devices[2]["torque_enable"] == 0
    assert not bus.is_connected


@pytest.mark.usefixtures("dict_protocol")
def test_a_missing_device_is_named_on_a_non_dynamixel_bus() -> None:
    bus = open_bus("dict:arm2")
    del bus.devices[2]  # type: ignore[attr-defined]
    robot = Robot(bus, load_hardware_map("arm2"), handle_signals=False)
    with pytest.raises(ServoNotFoundError, match=r"joint 'elbow': no xm430-w350 answered at ID 2"):
        robot.connect()
