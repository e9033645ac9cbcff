"""Servo models as data (one TOML file each) and the actuator envelope they imply."""

from robot_meta.hardware.servos.effects import ServoEffects
from robot_meta.hardware.servos.mounting import Mounting
from robot_meta.hardware.servos.servo_model import (
    SERVO_DIR,
    GearboxSpec,
    MotorSpec,
    ServoModel,
    ServoSpecError,
    describe_model_number,
    load_servo,
    servo_models,
)

__all__ = ["SERVO_DIR", "GearboxSpec", "MotorSpec", "Mounting", "ServoEffects", "ServoModel",
           "ServoSpecError", "describe_model_number", "load_servo", "servo_models"]
