"""Cartpole: a cart pushed by a servo, with a passive pole (robot.toml; built by RobotDef.from_folder)."""
