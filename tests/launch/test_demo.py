"""`robot-meta demo`, end to end: a tiny train -> export -> emulate (hidden payload beyond the
training range, servo horns homed off, a reversed elbow servo) -> calibrate -> flash -> adapt,
through the real CLI, the emulator process and its pty."""

import json
from pathlib import Path

import numpy as np
import pytest

from robot_meta.hardware.servos import load_servo
from robot_meta.launch.cli import main

# The demo trains on arm2's headline `servo` family and adapts on the emulated arm as built (a
# payload beyond the training range, horns homed off, a low supply, latency, and servo stiction,
# backlash, encoder ticks, current lag and supply sag), with the overspeed trip on. A step budget
# makes the training bit-identical for a given seed on this kind of CPU.
#
# What this asserts is the pipeline under real servo physics: trained, exported, flashed with the
# servos' current and PWM limits written and verified, 3 adaptation rollouts and 3 shared targets
# per column on the real-time emulator, no overspeed trip, every recorded joint speed within the
# servo's no-load speed (plus what gravity adds while the motor brakes), and the report.
# It no longer asserts an adaptation gain: on the ideal-motor model the pinned 1.8 M-step PEARL run
# gained +5.6..+5.8, but with the servo envelope that run gains nothing on the payload family
# (174.9 -> 174.8), and on the servo family the posterior of a 6 M-step PEARL run, which gains
# +6.0 over 3 rollouts in simulation, moves the wrong way on the emulated arm (168.0 -> 158.5 in
# distribution; BENCHMARKS.md, "The demo"). Issue 20's demo target is open on that evidence.
DEMO = ["demo", "--steps", "1800000", "--seed", "1", "--no-baseline", "--rollouts", "3",
        "--eval-rollouts", "3", "--json"]


@pytest.mark.slow
def test_tiny_train_export_emulate_flash_adapt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([*DEMO, "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["rollouts"]) == 3
    assert all(isinstance(res[k], float) for k in ("before", "after", "oracle"))
    assert res["robust"] is None  # --no-baseline
    assert Path(res["report"]).is_file() and (tmp_path / "session" / "returns.png").is_file()
    assert (tmp_path / "deploy" / "adapted" / "adapted.json").is_file()
    assert res["deadlines"]["fraction_met"] > 0.9  # loose: the machine is shared
    assert res["family"] == "servo" and res["hidden_payload_kg"] == 0.45
    # step 4 calibrated the hidden horn offsets (+0.2, -0.15 rad) and the reversed elbow servo
    cal = res["calibration"]["joints"]
    assert cal["elbow"]["reversed"] and not cal["shoulder"]["reversed"]
    assert abs(cal["shoulder"]["offset_rad"] - 0.2) < 0.01 and abs(cal["elbow"]["offset_rad"] + 0.15) < 0.01
    assert (tmp_path / "deploy" / "calibration.json").is_file()
    journal = [json.loads(line) for line in
               (tmp_path / "session" / "journal.jsonl").read_text().splitlines()]
    limits = [e for e in journal if e["event"] == "servo_limits"]
    assert limits and all(v == {"current_limit": 743, "pwm_limit": 885}
                          for v in limits[0]["servos"].values())
    w0 = load_servo("xm430-w350").no_load_speed
    rollouts = sorted((tmp_path / "session" / "rollouts").glob("*.npz"))
    assert len(rollouts) >= 3 + 3 * 3
    top = max(float(np.abs(np.load(f)["dq"]).max()) for f in rollouts)
    assert 0.3 * w0 < top < 1.1 * w0, top  # it moves, and the physics caps it (trip at 2 w0)
