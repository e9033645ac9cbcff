"""The robot-side code imports with only numpy, onnxruntime and pyserial available: every
test runs its imports in a subprocess where the training stack is made unimportable."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = ("torch", "mujoco", "pybullet", "pybullet_utils", "dm_control", "gymnasium",
               "onnx", "tensorboard", "matplotlib", "ray")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked on the robot computer")
            return None

    sys.meta_path.insert(0, Block())
""")
CHECK = textwrap.dedent("""
    bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not bad, bad
    print("ok")
""")


def run_blocked(body: str) -> None:
    """Run ``body`` with the training stack blocked; fail with its stderr unless it succeeds
    and imported none of the blocked packages."""
    code = BLOCKER + textwrap.dedent(body) + CHECK
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_runtime_and_hardware_import_without_training_stack() -> None:
    run_blocked("""
        import robot_meta.runtime, robot_meta.hardware
        from robot_meta.hardware.hardware_map import load_hardware_map
        for robot in ("cartpole", "arm2"):
            assert load_hardware_map(robot).motor_ids
        import robot_meta.sim.robots.arm2.constants
    """)


def test_session_flash_and_task_code_import_without_training_stack() -> None:
    """The whole on-robot runtime (flash, session, control loop, reset, report, latent search)
    and the task code it builds observations with."""
    run_blocked("""
        import robot_meta.runtime.session, robot_meta.runtime.flash, robot_meta.runtime.rollout
        import robot_meta.runtime.reset, robot_meta.runtime.report, robot_meta.runtime.adapters.latent_search
        import robot_meta.launch.cmd_adapt, robot_meta.launch.cmd_flash, robot_meta.launch.cmd_run
        import robot_meta.sim.randomize  # --oracle-params parsing
        from robot_meta.sim.robots import get_robot
        for robot in ("arm2", "cartpole"):
            assert get_robot(robot).task().obs_dim > 0
    """)


def test_calibration_imports_without_training_stack_or_scipy() -> None:
    """Motor calibration runs on the robot computer: no torch, mujoco or scipy."""
    body = """
        import robot_meta.calibration.calibrator, robot_meta.calibration.calibration_file
        import robot_meta.launch.cmd_calibrate
        from robot_meta.calibration.spec import load_calibration_spec
        for robot in ("arm2", "cartpole"):
            assert load_calibration_spec(robot).joints
    """
    code = BLOCKER.replace('"matplotlib")', '"matplotlib", "scipy")') + textwrap.dedent(body) + CHECK
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
