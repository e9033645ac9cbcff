"""The robot-side packages import with only numpy, onnxruntime and pyserial available."""

import subprocess
import sys
import textwrap


def test_runtime_and_hardware_import_without_training_stack() -> None:
    code = textwrap.dedent("""
        import importlib.abc, sys
        BLOCKED = ("torch", "mujoco", "pybullet", "pybullet_utils", "dm_control", "gymnasium",
                   "onnx", "tensorboard", "matplotlib")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked on the robot computer")
                return None

        sys.meta_path.insert(0, Block())
        import robot_meta.runtime, robot_meta.hardware
        from robot_meta.hardware.hardware_map import load_hardware_map
        for robot in ("cartpole", "arm2"):
            hw = load_hardware_map(robot)
            assert hw.motor_ids
        import robot_meta.sim.robots.arm2.constants
        bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not bad, bad
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
