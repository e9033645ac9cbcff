"""Dynamixel Protocol 2.0, the ``dynamixel2`` bus driver: packets and CRC (``protocol``), the bus
over them (``bus``: :class:`~robot_meta.hardware.dynamixel.bus.DynamixelBus`), the pyserial
driver (``serial_bus``, which registers ``dynamixel2`` with
:func:`robot_meta.hardware.bus.register_bus`), control tables as data (``control_table``, one
TOML file per table family in ``tables/``), and the firmware of an emulated device (``device``,
``network``). Nothing outside this folder imports pyserial or knows a Dynamixel address."""
