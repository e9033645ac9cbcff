"""Robot configs, the deploy store (versions, rollback), signatures and session files."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from robot_meta.export.signing import SignatureError, generate_key, sign_bundle, verify_signature
from robot_meta.runtime.deploy_store import DeployError, DeployStore
from robot_meta.runtime.robot_config import RobotConfigError, load_robot_config
from robot_meta.runtime.session_store import SessionStore


def test_bundled_robot_configs_and_overrides(tmp_path: Path) -> None:
    cfg = load_robot_config("arm2")
    assert cfg.robot == "arm2" and cfg.ids == {"shoulder": 1, "elbow": 2}
    o = cfg.with_overrides(port="socket://127.0.0.1:9", baud=57600, deploy_dir=tmp_path)
    assert (o.port, o.baud, o.deploy_dir) == ("socket://127.0.0.1:9", 57600, tmp_path)
    assert load_robot_config("cartpole").ids == {"slider": 1, "hinge": 2}


@pytest.mark.parametrize("body, needle", [
    ('robot = "arm2"\n', ".port: missing (required)"),
    ('robot = "arm3"\nport = "x"\n', ".robot: unknown robot 'arm3'"),
    ('robot = "arm2"\nport = "x"\nbaud = "fast"\n', ".baud: expected an integer"),
    ('robot = "arm2"\nport = "x"\ncolor = 1\n', ".color: unknown key"),
    ('robot = "arm2"\nport = "x"\nbuad = 57600\n', ".buad: unknown key; did you mean 'baud'?"),
    ('robot = "arm2"\nport = "x"\n[motor_ids]\nwrist = 3\n', "motor_ids.wrist"),
    ('robot = "arm2"\nport = "x"\ntrusted_keys = ["abc"]\n', "trusted_keys[0]"),
    ('robot = "arm2"\nport = "x"\nwatchdog_ms = 5\n', "watchdog_ms"),
    ('robot = "arm2"\nport = \n', "malformed TOML"),
])
def test_bad_robot_config_names_the_field(tmp_path: Path, body: str, needle: str) -> None:
    p = tmp_path / "robot.toml"
    p.write_text(body)
    with pytest.raises(RobotConfigError) as e:
        load_robot_config(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_install_history_and_rollback(bundles, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = DeployStore(tmp_path / "deploy")
    with pytest.raises(DeployError, match="nothing is installed"):
        store.rollback()
    v1 = store.install(bundles["ppo"][0], {"who": "test"})
    v2 = store.install(bundles["rma"][0], {})
    assert store.current() == v2 and store.versions() == [v1.name, v2.name]
    assert (v2 / "encoder.onnx").exists() and not (v1 / "encoder.onnx").exists()
    assert store.rollback() == v1 and store.current() == v1  # rollback restores the previous
    with pytest.raises(DeployError, match="first installed version"):
        store.rollback()
    events = [r["event"] for r in store.history()]
    assert events == ["install", "install", "rollback"]


def test_install_refuses_a_tampered_bundle(bundles, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    src = tmp_path / "b"
    shutil.copytree(bundles["ppo"][0], src)
    data = bytearray((src / "policy.onnx").read_bytes())
    data[100] ^= 0xFF
    (src / "policy.onnx").write_bytes(bytes(data))
    store = DeployStore(tmp_path / "deploy")
    with pytest.raises(Exception, match="SHA-256 mismatch"):
        store.install(src, {})
    assert store.current() is None and store.versions() == []


def test_signatures(bundles, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    b = tmp_path / "b"
    shutil.copytree(bundles["ppo"][0], b)
    pub = generate_key(tmp_path / "key")
    other = generate_key(tmp_path / "other")
    assert oct((tmp_path / "key").stat().st_mode & 0o777) == "0o600"
    assert verify_signature(b, ()) is None  # no trusted keys: nothing required
    with pytest.raises(SignatureError, match="unsigned"):
        verify_signature(b, (pub,))
    sign_bundle(b, tmp_path / "key")
    assert verify_signature(b, (pub,)) == pub
    with pytest.raises(SignatureError, match="not in this robot's trusted_keys"):
        verify_signature(b, (other,))
    m = b / "manifest.json"
    m.write_text(m.read_text().replace('"ppo"', '"rma"'))
    with pytest.raises(SignatureError, match="does not match manifest.json"):
        verify_signature(b, (pub,))


def test_session_survives_sigkill(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-session: every rollout it finished is intact."""
    root = tmp_path / "session"
    code = textwrap.dedent(f"""
        import numpy as np, sys, time
        from robot_meta.runtime.session_store import SessionStore
        s = SessionStore.create({str(root)!r}, {{"robot": "arm2"}})
        for i in range(1000):
            s.save_rollout(i, "adapt", {{"obs": np.full((200, 12), i, dtype=np.float32)}},
                           {{"return": float(i)}})
            if i == 2:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    s = SessionStore.open(root)
    done = s.completed()
    assert len(done) >= 3
    for e in done:
        arrays = s.load_rollout(e)
        assert np.all(arrays["obs"] == e["index"]) and arrays["obs"].shape == (200, 12)
    assert [e["index"] for e in done] == list(range(len(done)))
