"""The one TOML-to-dataclass loader: types, nesting, required fields, did-you-mean, validate."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from robot_meta.toml_config import TomlConfigError, from_dict, load_dataclass


@dataclass
class Motor:
    id: int
    model: str = "xm430-w350"
    limits: tuple[float, float] = (-1.0, 1.0)

    def validate(self, where: str) -> None:
        if self.limits[0] >= self.limits[1]:
            raise TomlConfigError(f"{where}.limits: low must be < high")


@dataclass
class Robot:
    name: str
    mode: Literal["current", "pwm"] = "current"
    gains: list[float] = field(default_factory=list)
    motors: dict[str, Motor] = field(default_factory=dict)
    rest: float | None = None


def test_builds_nested_dataclasses_and_widens_ints() -> None:
    r = from_dict(Robot, {"name": "r", "gains": [1, 2.5], "motors": {"a": {"id": 3, "limits": [-2, 2]}}},
                  "robot.toml")
    assert r.gains == [1.0, 2.5] and isinstance(r.gains[0], float)
    assert r.motors["a"] == Motor(3, "xm430-w350", (-2.0, 2.0)) and r.rest is None


@pytest.mark.parametrize("data, fragment", [
    ({"name": "r", "moters": {}}, "robot.toml.moters: unknown key; did you mean 'motors'?"),
    ({"name": "r", "colour": 1}, "robot.toml.colour: unknown key; allowed: name, mode, gains"),
    ({}, "robot.toml.name: missing (required)"),
    ({"name": "r", "mode": "pmw"},
     "robot.toml.mode: expected one of 'current', 'pwm', got 'pmw'; did you mean 'pwm'?"),
    ({"name": "r", "gains": [1, "x"]}, "robot.toml.gains[1]: expected a number"),
    ({"name": "r", "motors": {"a": {"id": True}}}, "robot.toml.motors.a.id: expected an integer"),
    ({"name": "r", "motors": {"a": {"id": 1, "limits": [1]}}},
     "robot.toml.motors.a.limits: expected a list of 2"),
    ({"name": "r", "motors": {"a": {"id": 1, "limits": [1, 0]}}},
     "robot.toml.motors.a.limits: low must be < high"),
    ({"name": "r", "rest": "up"}, "robot.toml.rest: expected a number"),
])
def test_bad_tables_name_the_field(data: dict, fragment: str) -> None:
    with pytest.raises(TomlConfigError) as e:
        from_dict(Robot, data, "robot.toml")
    assert fragment in str(e.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TomlConfigError, match="no such file"):
        load_dataclass(Robot, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [\n")
    with pytest.raises(TomlConfigError, match=f"{bad}: malformed TOML"):
        load_dataclass(Robot, bad)
