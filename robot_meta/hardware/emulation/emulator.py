"""The emulated robot on a serial line: ``robot-meta emulate ROBOT``.

Dynamixel devices backed by the PyBullet twin with hidden parameters, served over a
pseudo-terminal (a path that any serial program opens like ``/dev/ttyUSB0``) or a TCP socket on
127.0.0.1 (pyserial URL ``socket://127.0.0.1:PORT``). The official ROBOTIS SDK and our driver
both talk to it as to real servos.

One thread runs everything, so the timing is deterministic given the arrival times:

* physics advances in real time, one ``physics_dt`` step whenever the wall clock passes it;
* the wire is emulated: an instruction of n bytes occupies the bus for n * 10 / baud s from
  its first byte, each answer starts after the device's return delay time (register 9,
  2 us per unit) and is released to the port only when its last byte would have arrived,
  m * 10 / baud s later (a pty ignores the baud rate, so the emulator must add this);
* faults (``--faults``): ``drop=P`` loses a packet (either direction) with probability P,
  ``corrupt=P`` flips one bit of a packet with probability P (a corrupted instruction reaches
  its servo as a CRC error), ``delay=P,delay_ms=D`` holds an answer back by D ms with
  probability P (P defaults to 1 when only delay_ms is given), ``disconnect=ID@T`` unplugs
  a servo T seconds after start.

In-process use (tests)::

    with Emulator("arm2", params="hidden.toml") as emu:
        bus = open_bus(emu.port)
        ...
        assert not emu.device(1).torque_enabled
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import math
import os
import pty
import random
import select
import signal
import socket
import sys
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from robot_meta.hardware.dynamixel import protocol as p
from robot_meta.hardware.dynamixel.device import DynamixelDevice
from robot_meta.hardware.emulation.emulated_robot import EmulatedRobot, HiddenParams
from robot_meta.hardware.timing import set_timer_slack

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from robot_meta.sim.batched_env import PhysicsBackend
    from robot_meta.sim.robots.robot_def import RobotDef

BITS_PER_BYTE = 10  # 8N1: start + 8 data + stop


@dataclass(frozen=True)
class Faults:
    """Fault injection settings (see the module docstring)."""

    drop: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    delay_ms: float = 0.0
    disconnect: tuple[tuple[int, float], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        """Parse ``drop=0.01,corrupt=0.01,delay=0.1,delay_ms=5,disconnect=2@10``."""
        if not text:
            return cls()
        vals: dict[str, Any] = {}
        disc: list[tuple[int, float]] = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                raise ValueError(f"--faults: expected key=value, got {item!r}")
            if key == "disconnect":
                ident, _, at = value.partition("@")
                try:
                    disc.append((int(ident), float(at or 0.0)))
                except ValueError:
                    raise ValueError(f"--faults disconnect: expected ID@SECONDS, got {value!r}"
                                     ) from None
                continue
            if key not in ("drop", "corrupt", "delay", "delay_ms"):
                raise ValueError(f"--faults: unknown fault {key!r}; known: drop, corrupt, delay, "
                                 "delay_ms, disconnect")
            try:
                v = float(value)
            except ValueError:
                raise ValueError(f"--faults {key}: expected a number, got {value!r}") from None
            hi = math.inf if key == "delay_ms" else 1.0
            if not 0.0 <= v <= hi:
                raise ValueError(f"--faults {key}: must lie in [0, {hi:g}], got {v:g}")
            vals[key] = v
        if vals.get("delay_ms") and "delay" not in vals:
            vals["delay"] = 1.0
        return cls(**vals, disconnect=tuple(disc))


@dataclass
class EmulatorStats:
    """Counters of one emulator."""

    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    dropped: int = 0
    corrupted: int = 0
    delayed: int = 0
    bad_frames: int = 0  # received frames that failed their CRC
    overruns: int = 0  # times physics fell behind the wall clock by more than 10 ms


class _PtyTransport:
    """A pseudo-terminal: we hold the master; clients open the slave path."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)  # no echo, no line editing, 8 bits through
        os.set_blocking(self.master, False)
        self.url = os.ttyname(self.slave)

    def fds(self) -> list[int]:
        return [self.master] if self.master >= 0 else []

    def read(self, ready: list[int]) -> bytes:
        if self.master < 0 or self.master not in ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.master >= 0:
            try:
                n = os.write(self.master, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self.master], [], 0.01)

    def hang_up(self) -> None:
        """Close the pty: clients see the port vanish."""
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1

    def close(self) -> None:
        self.hang_up()


class _TcpTransport:
    """A TCP server on 127.0.0.1 serving one client at a time."""

    def __init__(self, port: int):
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))  # loopback only, never a public interface
        self.server.listen(1)
        self.server.setblocking(False)
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.client: socket.socket | None = None
        self.accepted = 0

    def fds(self) -> list[int]:
        out = [self.server.fileno()] if self.server.fileno() >= 0 else []
        if self.client is not None:
            out.append(self.client.fileno())
        return out

    def read(self, ready: list[int]) -> bytes:
        if self.server.fileno() in ready:
            try:
                conn, _ = self.server.accept()
            except OSError:
                conn = None
            if conn is not None:
                if self.client is not None:
                    self.client.close()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setblocking(False)
                self.client = conn
                self.accepted += 1
        if self.client is None or self.client.fileno() not in ready:
            return b""
        try:
            data = self.client.recv(4096)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.client.close()
            self.client = None
        return data

    def write(self, data: bytes) -> None:
        if self.client is None:
            return
        try:
            self.client.setblocking(True)
            self.client.sendall(data)
            self.client.setblocking(False)
        except OSError:
            self.client.close()
            self.client = None

    def hang_up(self) -> None:
        """Drop the current client connection."""
        if self.client is not None:
            self.client.close()
            self.client = None

    def close(self) -> None:
        self.hang_up()
        self.server.close()


class Emulator:
    """Emulated Dynamixel devices of a robot on a pty or a TCP port, stepping in real time.

    Args:
        robot: a bundled robot name (``arm2``, ``cartpole``) or a RobotDef.
        params: hidden parameters: None (nominal), a TOML path, {factor: value}, or (F,).
        port: ``"pty"`` or ``"tcp:PORT"`` (``tcp:0`` picks a free port).
        baud: the emulated baud rate (transmission time per byte = 10 / baud).
        faults: a :class:`Faults` or its text form.
        seed: seeds sensor noise and fault draws.
        plant: ``"twin"`` (PyBullet, the default), ``"mujoco"`` or ``"none"``.
        physics_dt: the physics step (the twin's default 1 ms).
        qpos0: initial joint positions {joint: value} (default: the robot's rest pose).
        log_packets: keep the last 100k received instruction packets in ``packets``.
    """

    def __init__(self, robot: str | RobotDef, params: HiddenParams = None, port: str = "pty",
                 baud: int = 1_000_000, faults: Faults | str | None = None, *, seed: int = 0,
                 plant: str | PhysicsBackend = "twin", physics_dt: float | None = None,
                 qpos0: dict[str, float] | None = None, log_packets: bool = False):
        if baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        if port != "pty" and not port.startswith("tcp:"):
            raise ValueError(f"port must be 'pty' or 'tcp:PORT', got {port!r}")
        self._tcp_port: int | None = None
        if port.startswith("tcp:"):
            try:
                self._tcp_port = int(port[4:])
            except ValueError:
                raise ValueError(f"port: expected tcp:PORT with an integer PORT, got {port!r}"
                                 ) from None
            if not 0 <= self._tcp_port <= 65535:
                raise ValueError(f"port: TCP port must lie in [0, 65535], got {self._tcp_port}")
        self.baud = baud
        self.byte_time_s = BITS_PER_BYTE / baud
        self.faults = faults if isinstance(faults, Faults) else Faults.parse(faults)
        self.robot = EmulatedRobot.from_robot(robot, params, plant=plant, physics_dt=physics_dt,
                                              qpos0=qpos0, baud=baud, seed=seed)
        self.stats = EmulatorStats()
        self.packets: deque[p.Packet] | None = deque(maxlen=100_000) if log_packets else None
        self._rng = random.Random(seed + 1)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._hangup = threading.Event()
        self._thread: threading.Thread | None = None
        self._transport: _PtyTransport | _TcpTransport | None = None
        self._parser = p.PacketParser()
        self._outq: deque[tuple[float, bytes]] = deque()
        self._wire_free = 0.0
        self._rx_start = 0.0
        self._t0 = 0.0
        self._pending_disconnects = sorted(self.faults.disconnect, key=lambda x: x[1])
        self.error: BaseException | None = None
        self.port = ""

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Open the port and start the real-time thread."""
        if self._thread is not None:
            return self
        self._transport = _PtyTransport() if self._tcp_port is None else _TcpTransport(
            self._tcp_port)
        self.port = self._transport.url
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="dynamixel-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread, close the port and the physics."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.robot.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- inspection and faults (thread-safe) ------------------------------------------------
    def device(self, dxl_id: int) -> DynamixelDevice:
        """The emulated device at an ID (read its registers with ``.get(name)``)."""
        return self.robot.device(dxl_id)

    def register(self, dxl_id: int, name: str) -> int:
        """A register's current raw value."""
        with self._lock:
            return self.device(dxl_id).get(name)

    def torque_enabled(self) -> dict[int, bool]:
        """{ID: torque enable} of every device that has a motor."""
        with self._lock:
            return {i: d.torque_enabled for i, d in self.robot.devices.items() if d.table.torque}

    def true_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The plant's true joint positions and velocities (hardware-map order)."""
        with self._lock:
            return self.robot.true_state()

    @property
    def sim_time(self) -> float:
        return self.robot.time

    def disconnect(self, dxl_id: int | None = None) -> None:
        """Unplug one servo (silent, unpowered), or with no ID hang up the whole port."""
        with self._lock:
            if dxl_id is None:
                self._hangup.set()  # done by the loop thread, which owns the descriptors
            else:
                self.device(dxl_id).unplug()

    def reconnect(self, dxl_id: int) -> None:
        """Plug a servo back in (it powers up with RAM at defaults)."""
        with self._lock:
            self.device(dxl_id).plug(self.robot.time)

    def inject_hardware_error(self, dxl_id: int, bits: int) -> None:
        """Raise hardware error bits on a device (e.g. ``HW_OVERLOAD``)."""
        with self._lock:
            self.device(dxl_id).raise_hardware_error(bits)

    def set_state(self, qpos: npt.ArrayLike, qvel: npt.ArrayLike | None = None) -> None:
        """Place the plant's joints (hardware-map order); for tests and demos."""
        import numpy as np

        with self._lock:
            plant: Any = self.robot.plant
            q = np.asarray(qpos, dtype=float)
            dq = np.zeros_like(q) if qvel is None else np.asarray(qvel, dtype=float)
            cols = [plant.joints.index(j.joint) for j in self.robot.hw.joints]
            fq, fdq = (np.array(a, dtype=float).copy() for a in plant.state())
            fq[cols], fdq[cols] = q, dq
            if hasattr(plant, "twin"):
                plant.twin.set_state(np.array([0]), fq[None], fdq[None])
            elif hasattr(plant, "set_state"):
                plant.set_state(fq, fdq)
            else:
                plant.backend.set_state(np.array([0]), fq[None], fdq[None])

    # ---- the real-time loop -----------------------------------------------------------------
    def _now(self) -> float:
        return time.perf_counter() - self._t0

    def _run(self) -> None:
        set_timer_slack(1000)
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - surfaced through .error and close()
            self.error = e
            raise

    def _loop(self) -> None:
        robot = self.robot
        dt = robot.physics_dt
        tr = self._transport
        assert tr is not None
        while not self._stop.is_set():
            if self._hangup.is_set():
                self._hangup.clear()
                tr.hang_up()
                self._outq.clear()
                self._parser.reset()
            now = self._now()
            with self._lock:
                # Answers whose last byte is due, before the physics: their content was fixed
                # when the instruction arrived, and physics catching up after a stall (up to
                # 10 ms of steps) would only make them later.
                while self._outq and self._outq[0][0] <= now:
                    frame = self._outq.popleft()[1]
                    tr.write(frame)
                    self.stats.tx_packets += 1
                    self.stats.tx_bytes += len(frame)
                # Physics: catch up with the wall clock (resync if more than 10 ms behind).
                lag = now - robot.time
                if lag > 0.010:
                    self.stats.overruns += 1
                    robot.time = now - dt
                robot.advance_to(now)
                while self._pending_disconnects and self._pending_disconnects[0][1] <= robot.time:
                    dxl_id, _ = self._pending_disconnects.pop(0)
                    if dxl_id in robot.devices:
                        robot.devices[dxl_id].unplug()
            wake = robot.time + dt
            if self._outq:
                wake = min(wake, self._outq[0][0])
            timeout = max(0.0, wake - self._now())
            fds = tr.fds()
            if not fds:
                time.sleep(min(timeout, 0.01))
                continue
            ready, _, _ = select.select(fds, [], [], timeout)
            if not ready:
                continue
            arrival = self._now()
            data = tr.read(ready)
            if data:
                with self._lock:
                    self._on_bytes(data, arrival)

    def _on_bytes(self, data: bytes, arrival: float) -> None:
        st = self.stats
        st.rx_bytes += len(data)
        if self._parser.pending == 0:
            self._rx_start = arrival  # the first byte of a new packet
        crc0 = self._parser.stats.crc_errors
        packets = self._parser.feed(data)
        st.bad_frames += self._parser.stats.crc_errors - crc0
        for pkt in packets:
            st.rx_packets += 1
            # The instruction occupies the wire for size * 10 / baud from its first byte.
            start = max(self._rx_start, self._wire_free)
            end = start + pkt.size * self.byte_time_s
            self._wire_free = end
            self._rx_start = arrival
            if pkt.is_status:
                continue
            if self.packets is not None:
                self.packets.append(pkt)
            f = self.faults
            if f.drop and self._rng.random() < f.drop:
                st.dropped += 1
                continue
            if f.corrupt and self._rng.random() < f.corrupt:
                st.corrupted += 1
                responses = self.robot.network.corrupted(pkt, self.robot.time)
            else:
                responses = self.robot.network.handle(pkt, self.robot.time)
            t = end
            for r in responses:
                t += r.return_delay_s
                if f.delay and self._rng.random() < f.delay:
                    st.delayed += 1
                    t += f.delay_ms / 1000.0
                t += len(r.frame) * self.byte_time_s
                self._wire_free = t
                frame = r.frame
                if f.drop and self._rng.random() < f.drop:
                    st.dropped += 1
                    continue
                if f.corrupt and self._rng.random() < f.corrupt:
                    st.corrupted += 1
                    buf = bytearray(frame)
                    buf[self._rng.randrange(len(buf))] ^= 1 << self._rng.randrange(8)
                    frame = bytes(buf)
                self._outq.append((t, frame))


def main(argv: list[str] | None = None) -> int:
    """``robot-meta emulate ROBOT [--params P.toml] [--port pty|tcp:PORT] [--baud B]
    [--faults ...]``: serve the robot until interrupted. The first stdout line is the port."""
    ap = argparse.ArgumentParser(
        prog="robot-meta emulate",
        description="Serve a robot's joints as emulated Dynamixel Protocol 2.0 servos, backed "
        "by the PyBullet twin with hidden parameters. Prints the port (a pty path or a "
        "socket:// URL) on the first line of stdout.")
    ap.add_argument("robot", help="a robot name or the path of a robot folder")
    ap.add_argument("--params", help="hidden parameters (TOML: robot = ..., [params] ...)")
    ap.add_argument("--port", default="pty", help="pty (default) or tcp:PORT (127.0.0.1 only; "
                    "tcp:0 picks a free port)")
    ap.add_argument("--baud", type=int, default=1_000_000, help="baud rate (default 1000000)")
    ap.add_argument("--faults", default="", help="e.g. drop=0.01,corrupt=0.01,delay=0.05,"
                    "delay_ms=5,disconnect=2@10")
    ap.add_argument("--seed", type=int, default=0, help="seed of sensor noise and faults")
    ap.add_argument("--duration", type=float, default=0.0,
                    help="stop after this many seconds (default: run until interrupted)")
    args = ap.parse_args(argv)
    try:
        emu = Emulator(args.robot, args.params, port=args.port, baud=args.baud,
                       faults=args.faults, seed=args.seed).start()
    except (ValueError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(emu.port, flush=True)
    # Everything allocated so far (the plant, the control tables, imported modules) lives as
    # long as the process: keep it out of the cyclic collector's full passes, which would walk
    # it for milliseconds inside the real-time loop.
    gc.freeze()
    ids = ", ".join(f"{j.motor_id} ({j.joint}, {j.model})" for j in emu.robot.hw.joints)
    print(f"emulating {emu.robot.hw.robot} at {args.baud} baud on {emu.port}: IDs {ids}. "
          "Ctrl-C to stop.", file=sys.stderr, flush=True)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        end = time.monotonic() + args.duration if args.duration > 0 else math.inf
        while not stop.is_set() and emu.running and time.monotonic() < end:
            stop.wait(0.1)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        emu.close()
    if emu.error is not None:
        print(f"error: the emulator stopped: {emu.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

