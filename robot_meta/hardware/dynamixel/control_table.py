"""Control tables as data: register name -> (address, size, access, range, default).

One TOML file per table family in ``tables/`` (``xm430.toml``, ``xm540.toml``, ``encoder.toml``),
loaded with the shared loader (:func:`robot_meta.toml_config.from_dict`). A servo model
(``robot_meta/hardware/servos/<model>.toml``) names its family in ``control_table`` and gives its
own Model Number and any initial values of its own in ``[registers]``; :func:`get_table` joins
the two. Register names are the e-Manual names in snake case; values are raw device units.
A family file may start from another (``base = "xm430"``) and restate only the registers that
differ. Adding a servo model of a known family is one servo file; a new family adds its table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from robot_meta.hardware.servos import ServoSpecError, load_servo, servo_models
from robot_meta.hardware.servos.servo_model import data_file
from robot_meta.toml_config import from_dict, read_toml

TABLE_DIR = Path(__file__).parent / "tables"


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
    # Named values of enumerated registers: {"operating_mode": {"current": 0, ...}}.
    values: dict[str, dict[str, int]] = field(default_factory=dict, compare=False, repr=False)
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


def _full_range(size: int, signed: bool) -> tuple[int, int]:
    full = (1 << (8 * size)) - 1
    return (-(1 << (8 * size - 1)), full >> 1) if signed else (0, full)


@dataclass(frozen=True)
class RegisterSpec:
    """One ``[registers]`` entry of a table file; ``range`` defaults to the size's full range."""

    address: int
    size: Literal[1, 2, 4]
    access: Literal["R", "RW"]
    eeprom: bool = False
    signed: bool = False
    default: int = 0
    range: tuple[int, int] | None = None
    limit: str = ""
    unit: str = ""

    def register(self, name: str) -> Register:
        low, high = self.range if self.range is not None else _full_range(self.size, self.signed)
        return Register(name, self.address, self.size, self.access, self.eeprom, self.signed,
                        self.default, low, high, self.limit, self.unit)


@dataclass(frozen=True)
class IndirectSpec:
    """Indirect addressing: Indirect Address k (2 bytes at ``address + 2 (k - 1)``) holds the
    address whose byte Indirect Data k (at ``data + k - 1``) reads and writes, k = 1..count."""

    address: int
    data: int
    count: int

    def registers(self) -> tuple[Register, ...]:
        last = self.data + self.count - 1
        addrs = [Register(f"indirect_address_{k + 1}", self.address + 2 * k, 2, "RW", False, False,
                          self.data + k, 64, last) for k in range(self.count)]
        data = [Register(f"indirect_data_{k + 1}", self.data + k, 1, "RW", False, False, 0, 0, 255)
                for k in range(self.count)]
        return tuple(addrs + data)


@dataclass(frozen=True)
class TableFile:
    """A control-table family file (``tables/<family>.toml``)."""

    registers: dict[str, RegisterSpec]
    doc: str = ""
    base: str = ""  # another family this one restates registers of
    size: int | None = None  # bytes of addressable memory (default: the base's)
    torque: bool | None = None  # False for a passive sensor (default: the base's, else True)
    indirect: IndirectSpec | None = None
    values: dict[str, dict[str, int]] = field(default_factory=dict)


@cache
def load_family(family: str) -> TableFile:
    """A control-table family with its base merged in (registers, values, size, indirect)."""
    path = data_file(TABLE_DIR, family, "control table")
    f = from_dict(TableFile, read_toml(path, ServoSpecError), str(path), ServoSpecError)
    if not f.base:
        return f
    b = load_family(f.base)
    return TableFile(registers={**b.registers, **f.registers}, doc=f.doc or b.doc,
                     size=f.size or b.size, torque=b.torque if f.torque is None else f.torque,
                     indirect=f.indirect or b.indirect, values={**b.values, **f.values})


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


@cache
def get_table(model: str) -> ControlTable:
    """The control table of a servo model (``xm430-w350``, ``xm540-w270``, ``encoder``, ...): its
    family's table with the model's Model Number and ``[registers]`` initial values."""
    try:
        servo = load_servo(model)
    except ServoSpecError as e:
        raise KeyError(f"unknown device model {model!r}; known models: "
                       f"{', '.join(dynamixel_models())}") from e
    fam = load_family(servo.control_table)
    where = f"{servo.source} [registers]"
    regs = {name: spec.register(name) for name, spec in fam.registers.items()}
    if fam.indirect is not None:
        regs |= {r.name: r for r in fam.indirect.registers()}
    if "model_number" in regs:
        regs["model_number"] = dataclasses.replace(regs["model_number"], default=servo.model_number)
    for name, o in servo.registers.items():
        if name not in regs:
            raise ServoSpecError(f"{where}.{name}: the {servo.control_table!r} table has no such "
                                 "register")
        r = regs[name]
        low, high = o.range if o.range is not None else (r.low, r.high)
        regs[name] = dataclasses.replace(r, default=r.default if o.default is None else o.default,
                                         low=low, high=high)
    ordered = tuple(sorted(regs.values(), key=lambda r: r.address))
    size = fam.size or max(r.end for r in ordered)
    ind = fam.indirect
    return ControlTable(model=model, model_number=servo.model_number, size=size,
                        registers=ordered, torque=fam.torque is not False,
                        doc=f"{model}: {fam.doc}",
                        indirect=None if ind is None else (ind.address, ind.data, ind.count),
                        values=fam.values)


def dynamixel_models() -> tuple[str, ...]:
    """The servo models whose control-table family is a table of this driver."""
    return tuple(m for m in servo_models()
                 if (TABLE_DIR / f"{load_servo(m).control_table}.toml").is_file())


XM430_W350 = get_table("xm430-w350")
ENCODER = get_table("encoder")
ENCODER_MODEL_NUMBER = ENCODER.model_number  # robot_meta's passive encoder (not a ROBOTIS number)
TABLES: dict[str, ControlTable] = {m: get_table(m) for m in dynamixel_models()}
TABLES_BY_NUMBER: dict[int, ControlTable] = {t.model_number: t for t in TABLES.values()}


def model_name(model_number: int) -> str:
    """A model number as text, e.g. ``xm430-w350 (1020)``."""
    t = TABLES_BY_NUMBER.get(model_number)
    return f"{t.model} ({model_number})" if t else f"unknown model number {model_number}"
