"""robot_meta: an open Sim2Real meta-learning stack.

Subpackages are roles: ``sim`` (MuJoCo task families and the PyBullet twin), ``learn``
(meta-RL), ``export`` (ONNX bundles), ``hardware`` (HAL, Dynamixel, emulator, safety),
``runtime`` (on-robot loop and adaptation), ``calibration`` and ``launch`` (CLI).

``robot_meta.runtime`` and ``robot_meta.hardware`` import with only numpy, onnxruntime and
pyserial installed.
"""

__version__ = "0.1.0"
