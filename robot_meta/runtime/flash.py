"""``robot-meta flash``: verify a bundle against the robot, dry-run it, install it.

Steps, each refusing with a message that names what is wrong and what to do:

1. the bundle: manifest format and version, the SHA-256 of every file, the robot type, and
   (when the robot config lists ``trusted_keys``) an ed25519 signature by one of them;
2. the hardware, through the HAL: every motor ID answers with the expected model number
   and every actuated servo takes its own Current Limit and PWM Limit (``Robot.connect`` writes
   them with torque off and reads them back), the actuated servos read back in current-control
   mode with those limits (:func:`~robot_meta.hardware.safety.verify_servo_limits`: the current
   limit is the bundle's ``max_current_a``, the PWM limit the servo file's), and the bundle's
   joints, actuated joints, action limits and control rate agree with this robot's hardware
   map and config;
3. a dry run with torque off: a few control cycles reading the joints, building observations
   with the task code and running the encoder and policy, checking that every observation is
   finite and every joint within its limits, and every action finite and in [-1, 1];
4. the atomic install into the deploy directory (:class:`DeployStore`: version history, a
   ``current`` pointer, ``--rollback``) and a deployment record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.export.manifest import BundleError, manifest_sha, sha256_file, verify_signature
from robot_meta.runtime.bundle import Bundle, load_bundle
from robot_meta.runtime.connect import check_rate, hardware_map_for, open_robot
from robot_meta.runtime.deploy_store import DeployStore
from robot_meta.runtime.robot_config import RobotConfig

if TYPE_CHECKING:
    from robot_meta.hardware.robot import Robot


class HardwareMismatchError(UserError):
    """The robot on the bus is not the robot the bundle was made for."""


@dataclass
class FlashResult:
    """What flash did."""

    installed: Path
    version: str
    signer: str | None
    hardware: dict[str, Any]
    dry_run: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"installed": str(self.installed), "version": self.version, "signer": self.signer,
                "hardware": self.hardware, "dry_run": self.dry_run}


def verify_bundle(bundle_dir: str | Path, cfg: RobotConfig) -> tuple[Bundle, str | None]:
    """Step 1: hashes, version, robot type, signature. Returns the loaded bundle and signer."""
    p = Path(bundle_dir)
    signer = verify_signature(p, cfg.trusted_keys)  # before loading anything it covers
    bundle = load_bundle(p, robot=cfg.robot)
    return bundle, signer


def check_hardware(robot: Robot, bundle: Bundle, cfg: RobotConfig) -> dict[str, Any]:
    """Step 2 (after ``Robot.connect`` checked IDs and model numbers and wrote the servo limits).
    Raises :class:`HardwareMismatchError`, or :class:`~robot_meta.hardware.safety.ServoLimitError`
    when a servo's Current Limit or PWM Limit does not read back as written."""
    from robot_meta.hardware.safety import verify_servo_limits

    m, hw = bundle.manifest, robot.hw
    where = f"{bundle.path} on {cfg.source or cfg.robot}"
    if list(m.joints) != list(hw.joint_names):
        raise HardwareMismatchError(f"{where}: the bundle drives joints {m.joints}, this robot has "
                                    f"{list(hw.joint_names)}")
    act = [j.joint for j in hw.actuated]
    if list(m.actuated_joints) != act:
        raise HardwareMismatchError(f"{where}: the bundle actuates {m.actuated_joints}, this robot "
                                    f"actuates {act}")
    imax = [float(x) for x in m.action.get("max_current_a", [])]
    elim = [float(x) for x in m.action.get("effort_limit", [])]
    for k, j in enumerate(hw.actuated):
        if k >= len(imax) or abs(imax[k] - j.max_current_a) > 1e-6:
            raise HardwareMismatchError(
                f"{where}: joint {j.joint!r}: the bundle maps action 1 to "
                f"{imax[k] if k < len(imax) else '?'} A, this robot's hardware map to "
                f"{j.max_current_a} A; the policy would apply other torques than it was trained on")
        if k < len(elim) and abs(elim[k] - j.effort_limit) > 1e-6:
            raise HardwareMismatchError(f"{where}: joint {j.joint!r}: effort limit {elim[k]} in the "
                                        f"bundle, {j.effort_limit} on this robot")
    check_rate(cfg, m)
    servos = {}
    for j in hw.joints:
        info: dict[str, Any] = {"joint": j.joint, "model": j.model}
        if j.actuated:
            mode = robot.bus.read(j.motor_id, "operating_mode")
            current_mode = robot.bus.named_value(j.motor_id, "operating_mode", "current")
            if mode != current_mode:
                raise HardwareMismatchError(
                    f"joint {j.joint!r} (ID {j.motor_id}) reads operating mode {mode}, not current "
                    f"control ({current_mode}); the bundle commands currents. Check that nothing "
                    "else reconfigures the servo")
            limits = verify_servo_limits(robot.bus, j)
            limit_a = limits["current_limit"] * j.current_unit_a
            if limit_a + j.current_unit_a < j.max_current_a:
                raise HardwareMismatchError(
                    f"joint {j.joint!r} (ID {j.motor_id}): current limit {limit_a:.3f} A is below the "
                    f"bundle's max current {j.max_current_a} A")
            info |= {"operating_mode": mode, "current_limit_a": round(limit_a, 4),
                     "current_limit": limits["current_limit"], "pwm_limit": limits.get("pwm_limit")}
        servos[str(j.motor_id)] = info
    id_note = None
    if list(m.motor_ids) != list(hw.motor_ids):
        id_note = (f"motor IDs {list(hw.motor_ids)} from {cfg.source} differ from the training "
                   f"hardware map's {m.motor_ids}; joints are matched by name")
    return {"servos": servos, "joints": list(hw.joint_names), "control_hz": cfg.control_hz,
            "note": id_note}


def dry_run(robot: Robot, bundle: Bundle, cycles: int) -> dict[str, Any]:
    """Step 3: ``cycles`` control cycles with torque off; raises on an out-of-range reading."""
    from robot_meta.runtime.control_loop import ControlLoop
    from robot_meta.runtime.rollout import RolloutRunner

    if robot.torque_on:
        raise RuntimeError("dry_run needs torque off")
    runner = RolloutRunner(robot, bundle.manifest)
    task_state = runner.sample_task([0, 0])
    hw = robot.hw
    lo = np.array([j.position_limits[0] for j in hw.joints])
    hi = np.array([j.position_limits[1] for j in hw.joints])
    vmax = np.array([j.velocity_limit for j in hw.joints])
    L = bundle.manifest.latent_dim
    enc = bundle.encoder
    obs_min = obs_max = None
    loop = ControlLoop(bundle.manifest.control_dt)
    loop.start()
    hist: list[np.ndarray] = []
    a = np.zeros(len(hw.actuated))
    h = bundle.recurrent.initial_state(1) if bundle.recurrent is not None else np.zeros((1, 0))
    for k in range(cycles):
        s = robot.read_state()
        for i, j in enumerate(hw.joints):
            # a passive revolute joint (the pole) may turn freely: only actuated limits matter
            if j.actuated and not lo[i] <= s.q[i] <= hi[i]:
                raise UserError(f"dry run: joint {j.joint!r} reads {s.q[i]:.3f}, outside its limits "
                                f"[{lo[i]}, {hi[i]}]. Move it into range by hand (torque is off), or "
                                "check the calibration / zero offset")
            if abs(s.dq[i]) > vmax[i]:
                raise UserError(f"dry run: joint {j.joint!r} reads velocity {s.dq[i]:.3f}, above "
                                f"{vmax[i]}; is it moving, or is the velocity unit wrong?")
        o = runner.task.observe(s.q[None], s.dq[None], task_state, np.array([k]))[0]
        if not np.all(np.isfinite(o)):
            raise UserError(f"dry run: non-finite observation {o}")
        obs_min = o if obs_min is None else np.minimum(obs_min, o)
        obs_max = o if obs_max is None else np.maximum(obs_max, o)
        z = np.zeros(L, np.float32)
        if enc is not None and enc.role == "history_encoder":
            hist.append(np.concatenate([o, a]))
            h = np.zeros((bundle.manifest.history_length, len(o) + len(a)), np.float32)
            tail = np.array(hist[-len(h):])
            h[len(h) - len(tail):] = tail
            z = enc.infer(h)[0]
        elif enc is not None:
            c = np.concatenate([o, a, [0.0], o])[None].astype(np.float32)
            z = enc.infer(c, np.ones(1, np.float32))[0]
        if bundle.recurrent is not None:  # RL2: one GRU step, h carried as in a rollout
            a_out, h = bundle.recurrent.step(o, h, a.astype(np.float32), 0.0, float(k == 0))
            a = np.asarray(a_out, dtype=float)
        else:
            assert bundle.policy is not None
            a = np.asarray(bundle.policy.act(o, z if L else None), dtype=float)
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            raise UserError(f"dry run: the policy gives action {a} (must be finite, in [-1, 1]) for "
                            f"observation {o}; the bundle is broken, re-export it")
        loop.wait()
    return {"cycles": cycles, "torque": "off",
            "obs_min": [round(float(x), 4) for x in (obs_min if obs_min is not None else [])],
            "obs_max": [round(float(x), 4) for x in (obs_max if obs_max is not None else [])],
            "deadlines_met": loop.stats.fraction_met}


def flash(bundle_dir: str | Path, cfg: RobotConfig, *, dry_run_cycles: int = 25,
          robot_factory: Callable[[], Any] | None = None, source: str = "",
          calibration: bool = True) -> FlashResult:
    """Verify, dry-run and install a bundle; see the module docstring. ``calibration``: the
    robot must have a calibration file that matches it (``robot-meta calibrate``), and the dry
    run reads it in the calibrated frame; False: the hardware map as designed."""
    bundle, signer = verify_bundle(bundle_dir, cfg)
    cal_record: dict[str, Any] = {"applied": False}
    if calibration:
        from robot_meta.calibration.calibration_file import calibration_path

        hardware_map_for(cfg, calibration=True)  # refuses an uncalibrated robot before connecting
        path = calibration_path(cfg)
        cal_record = {"applied": True, "file": str(path), "sha256": sha256_file(path)}
    robot = robot_factory() if robot_factory else open_robot(cfg, calibration=calibration)
    try:
        hardware = check_hardware(robot, bundle, cfg)
        dry = dry_run(robot, bundle, dry_run_cycles) if dry_run_cycles > 0 else {"cycles": 0}
    finally:
        robot.close()  # torque was never enabled; close turns it off regardless
    store = DeployStore(cfg.deploy_dir)
    record = {"robot": cfg.robot, "port": cfg.port, "source": source or str(Path(bundle_dir).resolve()),
              "method": bundle.manifest.method, "task": bundle.manifest.task,
              "manifest_sha256": manifest_sha(bundle_dir), "signer": signer,
              "hardware": hardware, "dry_run": dry, "config": cfg.source,
              "calibration": cal_record}
    path = store.install(bundle_dir, record)
    return FlashResult(path, path.name, signer, hardware, dry)


def rollback(cfg: RobotConfig) -> Path:
    """Make the previously installed bundle current again."""
    return DeployStore(cfg.deploy_dir).rollback()


__all__ = ["BundleError", "FlashResult", "HardwareMismatchError", "check_hardware", "dry_run",
           "flash", "hardware_map_for", "rollback", "verify_bundle"]
