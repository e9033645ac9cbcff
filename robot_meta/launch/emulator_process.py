"""Run ``robot-meta emulate`` as a child process (the demo and the tests talk to it over its
pty like to a real robot; a separate process also keeps the emulator's real-time thread away
from the controller's interpreter lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from robot_meta.errors import UserError


class EmulatorProcess:
    """``with EmulatorProcess("arm2", params="hidden.toml") as emu: emu.port``."""

    def __init__(self, robot: str, params: str | Path | None = None, *, faults: str = "",
                 seed: int = 0, port: str = "pty", log: str | Path | None = None):
        self.argv = [sys.executable, "-m", "robot_meta.hardware.emulation.emulator", robot, "--port", port,
                     "--seed", str(seed)]
        if params:
            self.argv += ["--params", str(params)]
        if faults:
            self.argv += ["--faults", faults]
        self.proc: subprocess.Popen[str] | None = None
        self.port = ""
        self.log = Path(log) if log else None
        self.lines: list[str] = []  # everything the emulator printed after the port line

    def start(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.wait(timeout=10)
            raise UserError(f"the emulator did not start: {err.strip()[-500:]}")
        self.port = line
        # Drain its output for as long as it runs: a full pipe would block the emulator.
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()
        return self

    def _drain(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            self.lines.append(line)
            if self.log is not None:
                with open(self.log, "a") as f:
                    f.write(line)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
