"""robot-meta flash: bundle verification, hardware match, torque-off dry run, atomic install,
rollback; and the refusals the issue lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from robot_meta.errors import UserError
from robot_meta.export.manifest import BundleError
from robot_meta.export.signing import SignatureError, generate_key, sign_bundle
from robot_meta.hardware import Emulator, ServoNotFoundError
from robot_meta.hardware.safety import ServoLimitError
from robot_meta.launch.cli import main
from robot_meta.runtime.deploy_store import DeployStore
from robot_meta.runtime.flash import HardwareMismatchError, flash
from tests.runtime.helpers import config, robot_toml


@pytest.fixture
def emu() -> Any:
    # No physics: flash only talks to the servos (IDs, models, registers, torque-off reads).
    with Emulator("arm2", plant="none", port="pty") as e:
        yield e


def _copy(bundles: dict[str, Any], method: str, tmp: Path) -> Path:
    dst = tmp / f"{method}-copy"
    shutil.copytree(bundles[method][0], dst)
    return dst


def test_flash_installs_records_and_rollback_restores(bundles: dict[str, Any], emu: Any, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = robot_toml(tmp_path, emu.port)
    assert main(["flash", str(bundles["pearl"][0]), "--robot", str(cfg_path), "--json", "--no-calibration",
                 ]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["dry_run"]["torque"] == "off" and first["dry_run"]["cycles"] == 25
    assert set(first["hardware"]["servos"]) == {"1", "2"}
    assert first["hardware"]["servos"]["1"]["operating_mode"] == 0  # current control
    # The servos' own limits, written at connect and read back by check_hardware.
    for i in ("1", "2"):
        assert first["hardware"]["servos"][i]["current_limit"] == 743  # floor(2.0 A / 2.69 mA)
        assert first["hardware"]["servos"][i]["pwm_limit"] == 885  # the servo file's 100 %
    assert not any(emu.torque_enabled().values())  # the dry run never enabled torque
    assert main(["flash", str(bundles["rma"][0]), "--robot", str(cfg_path), "--json", "--no-calibration",
                 ]) == 0
    second = json.loads(capsys.readouterr().out)
    store = DeployStore(tmp_path / "deploy")
    assert store.current().name == second["version"] != first["version"]
    rec = [r for r in store.history() if r["event"] == "install"]
    assert [r["method"] for r in rec] == ["pearl", "rma"]
    assert rec[1]["hardware"]["joints"] == ["shoulder", "elbow"]
    assert main(["flash", "--rollback", "--robot", str(cfg_path)]) == 0
    assert store.current().name == first["version"]
    assert json.loads((store.current() / "manifest.json").read_text())["method"] == "pearl"


def test_flash_refuses_a_tampered_bundle(bundles: dict[str, Any], emu: Any, tmp_path: Path) -> None:
    b = _copy(bundles, "pearl", tmp_path)
    data = bytearray((b / "policy.onnx").read_bytes())
    data[-10] ^= 0x01
    (b / "policy.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256 mismatch"):
        flash(b, config(tmp_path, emu.port), calibration=False)
    assert DeployStore(tmp_path / "deploy").current() is None


def test_flash_refuses_a_bundle_for_another_robot(bundles: dict[str, Any], emu: Any, tmp_path: Path) -> None:
    b = _copy(bundles, "ppo", tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["robot"] = "cartpole"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="made for robot 'cartpole', not 'arm2'"):
        flash(b, config(tmp_path, emu.port), calibration=False)


def test_flash_refuses_when_a_motor_is_missing(bundles: dict[str, Any], emu: Any, tmp_path: Path) -> None:
    emu.disconnect(2)  # the elbow servo is unplugged
    with pytest.raises(ServoNotFoundError, match="elbow"):
        flash(bundles["ppo"][0], config(tmp_path, emu.port), calibration=False)
    assert DeployStore(tmp_path / "deploy").current() is None


def test_flash_refuses_limits_that_disagree_with_the_manifest(bundles: dict[str, Any], emu: Any,
                                                               tmp_path: Path) -> None:
    b = _copy(bundles, "ppo", tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["action"]["max_current_a"] = [2.0, 1.0]  # trained with another current scale on the elbow
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(HardwareMismatchError, match="elbow"):
        flash(b, config(tmp_path, emu.port), calibration=False)


def test_flash_refuses_unsigned_and_untrusted_bundles(bundles: dict[str, Any], emu: Any,
                                                       tmp_path: Path) -> None:
    trusted = generate_key(tmp_path / "keys" / "trusted")
    generate_key(tmp_path / "keys" / "other")
    cfg = config(tmp_path, emu.port, trusted_keys=[trusted])
    b = _copy(bundles, "ppo", tmp_path)
    with pytest.raises(SignatureError, match="unsigned"):
        flash(b, cfg, calibration=False)
    sign_bundle(b, tmp_path / "keys" / "other")
    with pytest.raises(SignatureError, match="not in this robot's trusted_keys"):
        flash(b, cfg, calibration=False)
    assert DeployStore(tmp_path / "deploy").current() is None
    sign_bundle(b, tmp_path / "keys" / "trusted")
    res = flash(b, cfg, dry_run_cycles=3, calibration=False)
    assert res.signer == trusted


def test_dry_run_refuses_out_of_range_joints(bundles: dict[str, Any], emu: Any, tmp_path: Path) -> None:
    emu.set_state([0.0, 2.9])  # the elbow beyond its 2.5 rad limit (e.g. a wrong zero offset)
    with pytest.raises(UserError, match="elbow.*outside its limits"):
        flash(bundles["ppo"][0], config(tmp_path, emu.port), calibration=False)


def test_flash_writes_the_servo_limits_and_refuses_a_servo_that_alters_them(
        bundles: dict[str, Any], emu: Any, tmp_path: Path) -> None:
    """Limits another program left on the servos are rewritten (torque off) and verified; a
    servo whose register does not keep the value is refused with its joint and motor ID."""
    for i in (1, 2):
        emu.device(i).set("pwm_limit", 200)
        emu.device(i).set("current_limit", 1193)
    res = flash(bundles["ppo"][0], config(tmp_path, emu.port), dry_run_cycles=0, calibration=False)
    assert {i: (emu.register(i, "current_limit"), emu.register(i, "pwm_limit")) for i in (1, 2)
            } == {1: (743, 885), 2: (743, 885)}
    assert res.hardware["servos"]["2"]["pwm_limit"] == 885
    dev = emu.device(1)
    original = dev._apply_write

    def clamp_current_limit(r: Any, v: int, now: float) -> None:  # a firmware that caps it
        original(r, min(v, 500) if r.name == "current_limit" else v, now)

    dev._apply_write = clamp_current_limit
    dev.set("current_limit", 1193)  # changed since: the next flash must write it
    with pytest.raises(ServoLimitError, match=r"joint 'shoulder' \(motor ID 1\): current_limit "
                                              r"reads back 500, not the 743 written"):
        flash(bundles["ppo"][0], config(tmp_path, emu.port), dry_run_cycles=0, calibration=False)
    assert not any(emu.torque_enabled().values())
    store = DeployStore(tmp_path / "deploy")
    assert len([r for r in store.history() if r["event"] == "install"]) == 1  # nothing new


def test_flash_needs_the_calibration_and_reads_the_robot_in_its_frame(bundles: dict[str, Any],
                                                                       tmp_path: Path) -> None:
    """A robot with a horn homed off and a reversed elbow: flash refuses it uncalibrated; after
    calibration (here on the in-process twin of the same emulated robot) the robot reads its
    true joint positions and the install records which calibration it used."""
    from robot_meta.calibration.calibration_file import calibration_path
    from robot_meta.calibration.calibrator import BusClock, Calibrator
    from robot_meta.calibration.errors import UncalibratedError
    from robot_meta.hardware import MockBus, Robot
    from robot_meta.runtime.connect import open_robot

    hidden = {"shoulder_encoder_offset": 0.45, "elbow_encoder_offset": -0.3, "elbow_reversed": 1}
    with Emulator("arm2", params=hidden, plant="none", port="pty") as e:
        cfg = config(tmp_path, e.port)
        with pytest.raises(UncalibratedError, match="robot-meta calibrate"):
            flash(bundles["ppo"][0], cfg, dry_run_cycles=0)
        bus = MockBus("arm2", params=hidden, clock="manual")
        robot = Robot(bus, bus.emulated.hw, handle_signals=False)
        robot.connect()
        try:
            Calibrator(robot, clock=BusClock(bus)).run().save(calibration_path(cfg))
        finally:
            robot.close()
            bus.shutdown()
        res = flash(bundles["ppo"][0], cfg, dry_run_cycles=3)
        rec = [r for r in DeployStore(tmp_path / "deploy").history() if r["event"] == "install"]
        assert rec[-1]["calibration"]["applied"] and len(rec[-1]["calibration"]["sha256"]) == 64
        assert res.dry_run["cycles"] == 3
        robot = open_robot(cfg)
        try:
            assert abs(robot.read_state().q).max() < 0.01  # at rest, both links hang at 0
        finally:
            robot.close()
