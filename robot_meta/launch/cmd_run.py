"""``robot-meta run --robot R [--duration S]``: run the deployed, adapted policy."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from robot_meta.launch.robot_args import add_calibration_arg, add_robot_args, load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run", help="run the deployed (adapted) policy in a fixed-rate control loop",
        description="Run the bundle installed by `robot-meta flash`, conditioned on the state saved "
                    "by `robot-meta adapt` (zero-shot if there is none), at the bundle's control "
                    "rate with deadline monitoring (overruns skip cycles, never catch up) and the "
                    "hardware safety layer. Episodes of the bundle's task follow each other, each "
                    "after a motor-driven reset. Ctrl-C turns torque off.")
    add_robot_args(p)
    add_calibration_arg(p)
    p.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    p.add_argument("--episode-steps", type=int, default=0,
                   help="control steps per episode (default: the task's episode length)")
    p.add_argument("--seed", type=int, default=0, help="seeds the task draws (e.g. reach targets)")
    p.add_argument("--zero-shot", action="store_true", help="ignore the adapted state")
    p.add_argument("--overspeed-factor", type=float, default=2.0,
                   help="safety trip at this times the velocity limit (0 disables; emulator only)")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_meta.errors import UserError
    from robot_meta.runtime.adapters import make_adapter, resolve_method
    from robot_meta.runtime.bundle import load_bundle
    from robot_meta.runtime.connect import check_rate, open_robot
    from robot_meta.runtime.control_loop import DeadlineStats
    from robot_meta.runtime.deploy_store import DeployStore
    from robot_meta.runtime.reset import make_reset
    from robot_meta.runtime.rollout import RolloutRunner
    from robot_meta.runtime.session import ADAPTED_FILE, manifest_sha

    cfg = load_config(args)
    if args.duration <= 0:
        raise UserError("--duration must be positive")
    store = DeployStore(cfg.deploy_dir)
    current = store.current()
    if current is None:
        raise UserError(f"{cfg.deploy_dir}: nothing is installed; run `robot-meta flash BUNDLE "
                        f"--robot {args.robot}` first")
    bundle = load_bundle(current, robot=cfg.robot)
    check_rate(cfg, bundle.manifest)
    adapted_path = store.adapted_dir / ADAPTED_FILE
    state = None
    if not args.zero_shot and adapted_path.exists():
        state = json.loads(adapted_path.read_text())
        if state.get("manifest_sha256") != manifest_sha(current):
            print(f"note: the adapted state in {adapted_path} belongs to bundle "
                  f"{state.get('bundle_version')}, not the deployed {current.name}; running zero-shot "
                  "(run `robot-meta adapt` for this bundle)", file=sys.stderr)
            state = None
    if state is not None:
        method = state["method"]
    elif bundle.manifest.latent_dim == 0 and bundle.recurrent is None:
        method = "fixed"  # zero-shot with a plain policy (ppo, or an unadapted gradient bundle)
    else:
        method = resolve_method(bundle, "auto")
    adapter = make_adapter(bundle, method, rollouts=5)
    mode = "prior"
    if state is not None:
        adapter.load_state(state["state"])
        mode = "adapt"
    elif method == "rma":
        mode = "adapt"  # RMA adapts online without a session
    robot = open_robot(cfg, calibration=not args.no_calibration,
                       overspeed_factor=args.overspeed_factor or None)
    total = DeadlineStats(bundle.manifest.control_dt)
    returns: list[float] = []
    t_end = time.monotonic() + args.duration
    tty = sys.stderr.isatty()

    def status(k: int, ret: float, loop: object) -> None:
        if k % 10 == 0:
            st = loop.stats  # type: ignore[attr-defined]
            line = (f"episode {len(returns) + 1} step {k:4d} return {ret:7.2f} | deadlines met "
                    f"{100 * (total.met + st.met) / max(1, total.cycles + st.cycles):.2f} % "
                    f"worst {1e3 * max(total.worst_work_s, st.worst_work_s):.2f} ms")
            print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    try:
        robot.enable()
        runner = RolloutRunner(robot, bundle.manifest, args.episode_steps or None)
        full = runner.steps
        ep = 0
        while time.monotonic() < t_end:
            make_reset(robot, runner.start_pose()).run()
            left = int((t_end - time.monotonic()) / runner.dt)
            if left < 1:
                break
            runner.steps = min(full, left)
            res = runner.run(adapter, mode, runner.sample_task([args.seed, ep]), learn=False,
                             status=status)
            total.add(res.loop.stats)
            returns.append(res.ret)
            ep += 1
    finally:
        robot.close()  # torque off, also on Ctrl-C
        if tty:
            print(file=sys.stderr)
    out: dict[str, Any] = {"bundle": current.name, "method": method, "adapted": state is not None,
           "episodes": len(returns), "returns": returns, "deadlines": total.as_dict()}
    if args.json:
        print(json.dumps(out))
    else:
        d = out["deadlines"]
        print(f"ran {current.name} ({method}{', adapted' if state else ', zero-shot'}): "
              f"{len(returns)} episode(s), returns {', '.join(f'{r:.1f}' for r in returns)}; deadlines "
              f"met {d['met']}/{d['cycles']} ({100 * d['fraction_met']:.3f} %), {d['skipped']} skipped")
    return 0
