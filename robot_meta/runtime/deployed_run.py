"""``robot-meta run``: the deployed bundle, conditioned on the adapted state, in a control loop.

The runtime picks what to act with (the CLI only parses arguments):

* the adaptation method: the one saved by ``robot-meta adapt`` for this bundle (its
  ``adapted.json``), else the bundle's zero-shot rule (see
  :func:`~robot_meta.runtime.adapters.deployed_method`);
* the mode: ``adapt`` with a saved state, or for a rule that adapts online within a rollout
  (RMA), else ``prior`` (zero-shot).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_meta.errors import UserError
from robot_meta.runtime.adapters import Adapter, adapter_class, deployed_method, make_adapter
from robot_meta.runtime.bundle import Bundle, load_bundle
from robot_meta.runtime.robot_config import RobotConfig


@dataclass
class RunSpec:
    """What ``run`` does."""

    duration: float = 10.0  # seconds
    episode_steps: int = 0  # 0: the task's episode length
    seed: int = 0  # seeds the task draws
    zero_shot: bool = False  # ignore the adapted state
    overspeed_factor: float | None = 2.0  # None disables the overspeed trip (emulator only)
    calibration: bool = True  # run in the calibrated frame
    robot_arg: str = ""  # how the user named the robot (for messages); default the config's name


@dataclass
class DeployedPolicy:
    """The installed bundle and the adapter it acts with."""

    path: Path
    bundle: Bundle
    method: str
    mode: str  # the adapter mode of every episode: prior | adapt
    adapted: bool  # a saved adapted state was loaded
    adapter: Adapter


def deployed_policy(cfg: RobotConfig, zero_shot: bool = False,
                    note: Callable[[str], None] | None = None, robot_arg: str = "") -> DeployedPolicy:
    """Open the installed bundle and its adapted state (unless ``zero_shot``), and choose the
    method and mode it runs with. ``note`` receives a message when a saved state is ignored."""
    from robot_meta.export.manifest import manifest_sha
    from robot_meta.runtime.connect import check_rate
    from robot_meta.runtime.deploy_store import DeployStore
    from robot_meta.runtime.session import ADAPTED_FILE

    store = DeployStore(cfg.deploy_dir)
    current = store.current()
    if current is None:
        raise UserError(f"{cfg.deploy_dir}: nothing is installed; run `robot-meta flash BUNDLE "
                        f"--robot {robot_arg or cfg.robot}` first")
    bundle = load_bundle(current, robot=cfg.robot)
    check_rate(cfg, bundle.manifest)
    adapted_path = store.adapted_dir / ADAPTED_FILE
    state = None
    if not zero_shot and adapted_path.exists():
        state = json.loads(adapted_path.read_text())
        if state.get("manifest_sha256") != manifest_sha(current):
            if note is not None:
                note(f"note: the adapted state in {adapted_path} belongs to bundle "
                     f"{state.get('bundle_version')}, not the deployed {current.name}; running "
                     "zero-shot (run `robot-meta adapt` for this bundle)")
            state = None
    method = deployed_method(bundle, state["method"] if state is not None else None)
    adapter = make_adapter(bundle, method, rollouts=5)
    mode = "prior"
    if state is not None:
        adapter.load_state(state["state"])
        mode = "adapt"
    elif adapter_class(method).online:
        mode = "adapt"  # e.g. RMA adapts online without a session
    return DeployedPolicy(current, bundle, method, mode, state is not None, adapter)


def run_deployed(cfg: RobotConfig, spec: RunSpec, *,
                 progress: Callable[[str], None] | None = None,
                 note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run episodes of the deployed policy for ``spec.duration`` seconds, each after a
    motor-driven reset; torque goes off at the end, on error and on Ctrl-C. Returns the summary
    that ``run --json`` prints. ``progress`` receives a status line every 10 control steps."""
    from robot_meta.runtime.connect import open_robot
    from robot_meta.runtime.control_loop import DeadlineStats
    from robot_meta.runtime.reset import make_reset
    from robot_meta.runtime.rollout import RolloutRunner

    if spec.duration <= 0:
        raise UserError("--duration must be positive")
    dep = deployed_policy(cfg, spec.zero_shot, note, spec.robot_arg)
    robot = open_robot(cfg, calibration=spec.calibration, overspeed_factor=spec.overspeed_factor)
    total = DeadlineStats(dep.bundle.manifest.control_dt)
    returns: list[float] = []
    t_end = time.monotonic() + spec.duration

    def status(k: int, ret: float, loop: object) -> None:
        if progress is not None and k % 10 == 0:
            st = loop.stats  # type: ignore[attr-defined]
            progress(f"episode {len(returns) + 1} step {k:4d} return {ret:7.2f} | deadlines met "
                     f"{100 * (total.met + st.met) / max(1, total.cycles + st.cycles):.2f} % "
                     f"worst {1e3 * max(total.worst_work_s, st.worst_work_s):.2f} ms")

    try:
        robot.enable()
        runner = RolloutRunner(robot, dep.bundle.manifest, spec.episode_steps or None)
        full = runner.steps
        ep = 0
        while time.monotonic() < t_end:
            make_reset(robot, runner.start_pose()).run()
            left = int((t_end - time.monotonic()) / runner.dt)
            if left < 1:
                break
            runner.steps = min(full, left)
            res = runner.run(dep.adapter, dep.mode, runner.sample_task([spec.seed, ep]), learn=False,
                             status=status)
            total.add(res.loop.stats)
            returns.append(res.ret)
            ep += 1
    finally:
        robot.close()  # torque off, also on Ctrl-C
    return {"bundle": dep.path.name, "method": dep.method, "adapted": dep.adapted,
            "episodes": len(returns), "returns": returns, "deadlines": total.as_dict()}
