"""An in-process bus with the serial bus's interface, for tests and dry runs.

:class:`MockBus` hands each instruction packet straight to emulated devices
(:class:`~robot_meta.hardware.emulation.emulated_robot.EmulatedRobot`) backed by the PyBullet twin, the
MuJoCo model, or no physics at all, and decodes their status packets: the same firmware
behaviour as the emulator, without a port and without wire timing.

Time: with ``clock="wall"`` (default) the physics catches up with the wall clock before each
exchange, so a control loop sees a robot moving in real time; with ``clock="manual"`` it moves
only when :meth:`MockBus.advance` is called (deterministic tests).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from robot_meta.hardware.bus import register_bus
from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.dynamixel.bus import DynamixelBus, Exchange
from robot_meta.hardware.emulation.emulated_robot import EmulatedRobot, HiddenParams

if TYPE_CHECKING:
    from robot_meta.sim.batched_env import PhysicsBackend
    from robot_meta.sim.robots.robot_def import RobotDef


class MockBus(DynamixelBus):
    """A bus whose devices are emulated in-process.

    Args:
        robot: a bundled robot name or a RobotDef, or an :class:`EmulatedRobot` to wrap.
        plant: ``"twin"`` (PyBullet), ``"mujoco"``, ``"none"`` (joints stay where they are
            put) or a PhysicsBackend instance with one env.
        params: hidden parameters (None nominal, a TOML path, {factor: value}, or (F,)).
        clock: ``"wall"`` or ``"manual"``.
        seed: sensor-noise seed.
        kwargs: see :class:`~robot_meta.hardware.dynamixel.bus.DynamixelBus`.
    """

    def __init__(self, robot: str | RobotDef | EmulatedRobot | None = None, *,
                 plant: str | PhysicsBackend = "twin", params: HiddenParams = None,
                 clock: str = "wall", seed: int = 0, model: str = "xm430-w350",
                 retries: int = 0, names: Mapping[int, str] | None = None,
                 raise_on_alert: bool = True, physics_dt: float | None = None):
        super().__init__(model=model, retries=retries, names=names, raise_on_alert=raise_on_alert)
        if clock not in ("wall", "manual"):
            raise ValueError(f"clock must be 'wall' or 'manual', got {clock!r}")
        if robot is None:  # the default robot (robot.toml: demo = true)
            from robot_meta.robot_registry import default_robot

            robot = default_robot("demo")
        if isinstance(robot, EmulatedRobot):
            self.emulated = robot
        else:
            self.emulated = EmulatedRobot.from_robot(robot, params, plant=plant,
                                                     physics_dt=physics_dt, seed=seed)
        self.clock = clock
        self._connected = False
        self._t0 = 0.0
        self._parser = p.PacketParser()
        self.packets: list[p.Packet] = []  # every instruction sent, when record=True
        self.record = False

    @property
    def port_name(self) -> str:
        return f"mock:{self.emulated.hw.robot}"

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Start the clock."""
        if not self._connected:
            self._t0 = time.perf_counter() - self.emulated.time
            self._connected = True

    def disconnect(self) -> None:
        """Stop talking to the devices (the physics is kept; see :meth:`shutdown`)."""
        self._connected = False

    def shutdown(self) -> None:
        """Disconnect and free the physics engine."""
        self.disconnect()
        self.emulated.close()

    def advance(self, seconds: float) -> None:
        """Step physics forward by ``seconds`` (manual clock)."""
        self.emulated.advance_to(self.emulated.time + seconds)

    def _exchange(self, packet: p.Packet, expect: Sequence[int], n_data: int,
                  fast: bool = False) -> Exchange:
        self._require_connected()
        emu = self.emulated
        if self.clock == "wall":
            emu.advance_to(time.perf_counter() - self._t0)
        if self.record:
            self.packets.append(packet)
        raw = packet.encode()
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(raw)
        # Through the bytes, as on a wire: the devices parse what we framed.
        result = Exchange()
        for pkt in self._parser.feed(raw):
            for r in emu.network.handle(pkt, emu.time):
                self.stats.rx_bytes += len(r.frame)
                for status in self._parser.feed(r.frame):
                    self.stats.rx_packets += 1
                    if fast and status.id == p.BROADCAST_ID:
                        result.answers.update(p.decode_fast_status(status, expect, n_data))
                    elif status.id in expect:
                        result.answers[status.id] = (status.error, status.data)
        result.timed_out = any(i not in result.answers for i in expect)
        return result


def open_mock_bus(port: str, baud: int, *, model: str = "xm430-w350", **kwargs: Any) -> MockBus:
    """The ``mock`` driver of :func:`robot_meta.hardware.bus.open_bus`: port ``mock:ROBOT``
    (a bundled robot name); the baud rate has no meaning without a wire."""
    robot = port[len("mock:"):] if port.startswith("mock:") else port
    return MockBus(robot, model=model, **kwargs)


register_bus("mock", open_mock_bus)
