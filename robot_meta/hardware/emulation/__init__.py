"""Robots without hardware: Dynamixel devices (``robot_meta.hardware.dynamixel.device``) wired to
a physics plant with hidden parameters (``emulated_robot``), served on a pty or TCP port in real
time (``emulator``, ``robot-meta emulate``), called in-process (``mock_bus``, protocol ``mock``),
or answered instantly over an in-memory wire (``loopback``)."""
