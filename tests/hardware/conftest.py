"""Shared fixtures of the hardware tests: emulators on a real pty."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def arm2_emulator() -> Iterator[object]:
    """The arm2 emulator (PyBullet twin, nominal params) on a real pty."""
    from robot_meta.hardware.emulation.emulator import Emulator

    with Emulator("arm2") as emu:
        yield emu


@pytest.fixture
def cartpole_emulator() -> Iterator[object]:
    """The cartpole emulator (servo ID 1 + passive encoder ID 2) on a real pty."""
    from robot_meta.hardware.emulation.emulator import Emulator

    with Emulator("cartpole") as emu:
        yield emu
