"""Control tables as data: register name -> (address, size, access, range, default).

Register names are the e-Manual names in snake case; values are raw device units. The XM430-W350
table follows the ROBOTIS e-Manual (firmware 45+, Protocol 2.0); the XM430-W210 has the same
table with its own model number (and Velocity Limit default). The ``encoder`` device is the
cartpole's passive pole encoder: not a ROBOTIS product, but a Protocol 2.0 slave (for example a
microcontroller with a 4096-count encoder) that exposes the XM430 addresses it can fill, so that
one sync read covers the servo and the encoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from robot_meta.hardware.hardware_map import XM430_MODEL_NUMBER
from robot_meta.hardware.servos import load_servo


@dataclass(frozen=True)
class Register:
    """One control-table entry.

    ``limit`` names a register (or a pair ``min,max``) whose current value bounds this one, as
    the servo checks on write: ``"current_limit"`` means |value| <= current_limit.
    """

    name: str
    address: int
    size: int  # bytes: 1, 2 or 4
    access: str  # "R" or "RW"
    eeprom: bool
    signed: bool = False
    default: int = 0
    low: int = 0
    high: int = 0
    limit: str = ""
    unit: str = ""

    @property
    def writable(self) -> bool:
        return self.access == "RW"

    @property
    def end(self) -> int:
        return self.address + self.size

    def encode(self, value: int) -> bytes:
        """Raw value -> little-endian bytes (two's complement when signed)."""
        return (int(value) & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little")

    def decode(self, data: bytes | bytearray) -> int:
        """Little-endian bytes -> raw value."""
        return int.from_bytes(bytes(data[: self.size]), "little", signed=self.signed)


@dataclass(frozen=True)
class ControlTable:
    """The registers of one device model."""

    model: str
    model_number: int
    size: int  # bytes of addressable memory (addresses 0 .. size-1)
    registers: tuple[Register, ...]
    torque: bool = True  # False for a passive sensor
    doc: str = ""
    # Indirect addressing: (first indirect address register, first indirect data byte, count).
    # Indirect Data k reads and writes the byte at the address held in Indirect Address k.
    indirect: tuple[int, int, int] | None = None
    _by_name: dict[str, Register] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({r.name: r for r in self.registers})
        used: dict[int, str] = {}
        for r in self.registers:
            assert r.end <= self.size, f"{self.model}: {r.name} beyond the table"
            for a in range(r.address, r.end):
                assert a not in used, f"{self.model}: {r.name} overlaps {used[a]}"
                used[a] = r.name

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"model {self.model!r} has no register {name!r}; registers: "
                f"{', '.join(r.name for r in self.registers)}"
            ) from None

    def at(self, address: int) -> Register | None:
        """The register that contains byte ``address`` (None for a reserved byte)."""
        for r in self.registers:
            if r.address <= address < r.end:
                return r
        return None

    def span(self, names: list[str] | tuple[str, ...]) -> tuple[int, int]:
        """(start address, length) of the smallest contiguous block holding all names."""
        regs = [self[n] for n in names]
        start = min(r.address for r in regs)
        return start, max(r.end for r in regs) - start


INDIRECT_ADDRESS_0 = 168  # Indirect Address 1..20: 168, 170, ..., 206 (2 bytes each)
INDIRECT_DATA_0 = 224  # Indirect Data 1..20: 224 .. 243 (1 byte each)
N_INDIRECT = 20  # Indirect Address/Data 21..28 (578.., 634..) are not modelled


def _indirect_registers() -> tuple[Register, ...]:
    regs = []
    for k in range(N_INDIRECT):
        regs.append(_r(f"indirect_address_{k + 1}", INDIRECT_ADDRESS_0 + 2 * k, 2, "RW", False,
                       INDIRECT_DATA_0 + k, 64, INDIRECT_DATA_0 + N_INDIRECT - 1))
    for k in range(N_INDIRECT):
        regs.append(_r(f"indirect_data_{k + 1}", INDIRECT_DATA_0 + k, 1, "RW", False, 0))
    return tuple(regs)


def _r(name: str, address: int, size: int, access: str, eeprom: bool, default: int = 0,
       low: int | None = None, high: int | None = None, signed: bool = False, limit: str = "",
       unit: str = "") -> Register:
    full = (1 << (8 * size)) - 1
    if low is None:
        low = -(1 << (8 * size - 1)) if signed else 0
    if high is None:
        high = (full >> 1) if signed else full
    return Register(name, address, size, access, eeprom, signed, default, low, high, limit, unit)


# Baud rate register values (register 8) -> bits per second.
BAUD_RATES = {0: 9600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000,
              6: 4_000_000, 7: 4_500_000}

# Operating modes (register 11).
MODE_CURRENT = 0
MODE_VELOCITY = 1
MODE_POSITION = 3
MODE_EXTENDED_POSITION = 4
MODE_CURRENT_POSITION = 5
MODE_PWM = 16

# Hardware error status bits (register 70).
HW_INPUT_VOLTAGE = 0x01
HW_OVERHEATING = 0x04
HW_MOTOR_ENCODER = 0x08
HW_ELECTRICAL_SHOCK = 0x10
HW_OVERLOAD = 0x20
HARDWARE_ERROR_NAMES = {
    HW_INPUT_VOLTAGE: "input voltage error (supply outside the voltage limits)",
    HW_OVERHEATING: "overheating (internal temperature above the temperature limit)",
    HW_MOTOR_ENCODER: "motor encoder error",
    HW_ELECTRICAL_SHOCK: "electrical shock (circuit fault or insufficient power)",
    HW_OVERLOAD: "overload (a persistent load beyond the servo's maximum output)",
}


def describe_hardware_error(bits: int) -> str:
    """The hardware error status bits as text."""
    names = [text for bit, text in HARDWARE_ERROR_NAMES.items() if bits & bit]
    return "; ".join(names) if names else f"unknown hardware error bits 0x{bits:02X}"


XM430_W350 = ControlTable(
    model="xm430-w350",
    model_number=XM430_MODEL_NUMBER,
    size=INDIRECT_DATA_0 + N_INDIRECT,
    doc="ROBOTIS XM430-W350-T/R, Protocol 2.0 (e-Manual control table); indirect addresses "
    "1..20 only.",
    indirect=(INDIRECT_ADDRESS_0, INDIRECT_DATA_0, N_INDIRECT),
    registers=(
        # ---- EEPROM (writable only with torque off) ----
        _r("model_number", 0, 2, "R", True, XM430_MODEL_NUMBER),
        _r("model_information", 2, 4, "R", True, 0),
        _r("firmware_version", 6, 1, "R", True, 48),
        _r("id", 7, 1, "RW", True, 1, 0, 252),
        _r("baud_rate", 8, 1, "RW", True, 1, 0, 7),
        _r("return_delay_time", 9, 1, "RW", True, 250, 0, 254, unit="2 us"),
        _r("drive_mode", 10, 1, "RW", True, 0, 0, 13),
        _r("operating_mode", 11, 1, "RW", True, MODE_POSITION, 0, 16),
        _r("secondary_id", 12, 1, "RW", True, 255, 0, 255),
        _r("protocol_type", 13, 1, "RW", True, 2, 1, 2),
        _r("homing_offset", 20, 4, "RW", True, 0, -1_044_479, 1_044_479, signed=True,
           unit="0.088 deg"),
        _r("moving_threshold", 24, 4, "RW", True, 10, 0, 1023, unit="0.229 rpm"),
        _r("temperature_limit", 31, 1, "RW", True, 80, 0, 100, unit="degC"),
        _r("max_voltage_limit", 32, 2, "RW", True, 160, 60, 160, unit="0.1 V"),
        _r("min_voltage_limit", 34, 2, "RW", True, 95, 60, 160, unit="0.1 V"),
        _r("pwm_limit", 36, 2, "RW", True, 885, 0, 885, unit="0.113 %"),
        _r("current_limit", 38, 2, "RW", True, 1193, 0, 1193, unit="2.69 mA"),
        _r("velocity_limit", 44, 4, "RW", True, 200, 0, 1023, unit="0.229 rpm"),
        _r("max_position_limit", 48, 4, "RW", True, 4095, 0, 4095, unit="0.088 deg"),
        _r("min_position_limit", 52, 4, "RW", True, 0, 0, 4095, unit="0.088 deg"),
        _r("startup_configuration", 60, 1, "RW", True, 0, 0, 3),
        _r("shutdown", 63, 1, "RW", True, 52, 0, 255),
        # ---- RAM ----
        _r("torque_enable", 64, 1, "RW", False, 0, 0, 1),
        _r("led", 65, 1, "RW", False, 0, 0, 1),
        _r("status_return_level", 68, 1, "RW", False, 2, 0, 2),
        _r("registered_instruction", 69, 1, "R", False, 0),
        _r("hardware_error_status", 70, 1, "R", False, 0),
        _r("velocity_i_gain", 76, 2, "RW", False, 1920, 0, 16383),
        _r("velocity_p_gain", 78, 2, "RW", False, 100, 0, 16383),
        _r("position_d_gain", 80, 2, "RW", False, 0, 0, 16383),
        _r("position_i_gain", 82, 2, "RW", False, 0, 0, 16383),
        _r("position_p_gain", 84, 2, "RW", False, 800, 0, 16383),
        _r("feedforward_2nd_gain", 88, 2, "RW", False, 0, 0, 16383),
        _r("feedforward_1st_gain", 90, 2, "RW", False, 0, 0, 16383),
        # Bus watchdog: 0 off, 1..127 -> timeout = value * 20 ms, -1 after it expired.
        _r("bus_watchdog", 98, 1, "RW", False, 0, -1, 127, signed=True, unit="20 ms"),
        _r("goal_pwm", 100, 2, "RW", False, 0, -885, 885, signed=True, limit="pwm_limit",
           unit="0.113 %"),
        _r("goal_current", 102, 2, "RW", False, 0, -1193, 1193, signed=True,
           limit="current_limit", unit="2.69 mA"),
        _r("goal_velocity", 104, 4, "RW", False, 0, -1023, 1023, signed=True,
           limit="velocity_limit", unit="0.229 rpm"),
        _r("profile_acceleration", 108, 4, "RW", False, 0, 0, 32767),
        _r("profile_velocity", 112, 4, "RW", False, 0, 0, 32767),
        _r("goal_position", 116, 4, "RW", False, 0, -1_048_575, 1_048_575, signed=True,
           limit="min_position_limit,max_position_limit", unit="0.088 deg"),
        _r("realtime_tick", 120, 2, "R", False, 0, unit="ms"),
        _r("moving", 122, 1, "R", False, 0),
        _r("moving_status", 123, 1, "R", False, 0),
        _r("present_pwm", 124, 2, "R", False, 0, signed=True, unit="0.113 %"),
        _r("present_current", 126, 2, "R", False, 0, signed=True, unit="2.69 mA"),
        _r("present_velocity", 128, 4, "R", False, 0, signed=True, unit="0.229 rpm"),
        _r("present_position", 132, 4, "R", False, 0, signed=True, unit="0.088 deg"),
        _r("velocity_trajectory", 136, 4, "R", False, 0, signed=True),
        _r("position_trajectory", 140, 4, "R", False, 0, signed=True),
        _r("present_input_voltage", 144, 2, "R", False, 120, unit="0.1 V"),
        _r("present_temperature", 146, 1, "R", False, 30, unit="degC"),
        _r("backup_ready", 147, 1, "R", False, 0),
        *_indirect_registers(),
    ),
)



def _xm430_variant(model: str, model_number: int, velocity_limit: int) -> ControlTable:
    """Another XM430 (the same control table as the W350, per the e-Manual) with its own model
    number and Velocity Limit (44) default."""
    defaults = {"model_number": model_number, "velocity_limit": velocity_limit}
    regs = tuple(dataclasses.replace(r, default=defaults[r.name]) if r.name in defaults else r
                 for r in XM430_W350.registers)
    return ControlTable(model=model, model_number=model_number, size=XM430_W350.size,
                        registers=regs, doc=XM430_W350.doc.replace("XM430-W350", model.upper()),
                        indirect=XM430_W350.indirect)


# ROBOTIS XM430-W210-T/R (the cartpole's cart): e-Manual Model Number 1,030, Velocity Limit
# initial value 330 (servos/xm430-w210.toml).
XM430_W210 = _xm430_variant("xm430-w210", load_servo("xm430-w210").model_number, 330)

ENCODER_MODEL_NUMBER = 0x5E01  # robot_meta's passive encoder (not a ROBOTIS model number)

ENCODER = ControlTable(
    model="encoder",
    model_number=ENCODER_MODEL_NUMBER,
    size=INDIRECT_DATA_0 + N_INDIRECT,
    torque=False,
    doc="A passive 4096-count joint encoder behind a Protocol 2.0 slave. It has no motor: "
    "present_current (126) reads 0 so that one sync read spans servos and encoders; it has "
    "the XM430's indirect addresses 1..20 for the same reason.",
    indirect=(INDIRECT_ADDRESS_0, INDIRECT_DATA_0, N_INDIRECT),
    registers=(
        _r("model_number", 0, 2, "R", True, ENCODER_MODEL_NUMBER),
        _r("model_information", 2, 4, "R", True, 0),
        _r("firmware_version", 6, 1, "R", True, 1),
        _r("id", 7, 1, "RW", True, 1, 0, 252),
        _r("baud_rate", 8, 1, "RW", True, 3, 0, 7),
        _r("return_delay_time", 9, 1, "RW", True, 0, 0, 254, unit="2 us"),
        _r("homing_offset", 20, 4, "RW", True, 0, -1_044_479, 1_044_479, signed=True),
        _r("status_return_level", 68, 1, "RW", False, 2, 0, 2),
        _r("hardware_error_status", 70, 1, "R", False, 0),
        _r("realtime_tick", 120, 2, "R", False, 0, unit="ms"),
        _r("present_current", 126, 2, "R", False, 0, signed=True),
        _r("present_velocity", 128, 4, "R", False, 0, signed=True, unit="0.229 rpm"),
        _r("present_position", 132, 4, "R", False, 0, signed=True, unit="0.088 deg"),
        *_indirect_registers(),
    ),
)

TABLES: dict[str, ControlTable] = {t.model: t for t in (XM430_W350, XM430_W210, ENCODER)}
TABLES_BY_NUMBER: dict[int, ControlTable] = {t.model_number: t for t in TABLES.values()}


def get_table(model: str) -> ControlTable:
    """The control table of a model name (``xm430-w350``, ``xm430-w210`` or ``encoder``)."""
    try:
        return TABLES[model]
    except KeyError:
        raise KeyError(f"unknown device model {model!r}; known models: {', '.join(TABLES)}"
                       ) from None


def model_name(model_number: int) -> str:
    """A model number as text, e.g. ``xm430-w350 (1020)``."""
    t = TABLES_BY_NUMBER.get(model_number)
    return f"{t.model} ({model_number})" if t else f"unknown model number {model_number}"
