"""Arm2: a two-link arm in the vertical plane (robot.toml; built by RobotDef.from_folder)."""
