"""Dynamixel Protocol 2.0: packets and CRC (``protocol``), control tables as data
(``control_table``), the pyserial driver (``serial_bus``), and the emulated devices
(``device``, ``network``)."""
