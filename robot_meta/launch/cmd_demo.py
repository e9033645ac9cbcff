"""``robot-meta demo``: the main job, end to end, on the emulated robot.

1. meta-train a policy with a quick budget (``robot-meta train arm2-<family>-<method>``, by
   default arm2's headline family ``servo``), and a robust PPO baseline with the same budget
   (skip it with ``--no-baseline``);
2. export both to ONNX bundles (``robot-meta export``);
3. start the emulator (``robot-meta emulate arm2``) with a hidden robot as built (``--hidden``
   for your own file): by default a 0.45 kg payload (beyond the 0..0.4 kg training range), both
   servo horns homed off (encoder offsets +0.2 and -0.15 rad) and the elbow servo mounted the
   other way round, a 10.8 V supply, one control step of latency, and the servo effects no
   simulator of ours models (stiction, backlash, a 12-bit encoder, a current loop and supply
   sag; ``xm430-w350.toml``). The overspeed trip stays on;
4. calibrate it (``robot-meta calibrate``): each joint's zero, direction and range, written to
   ``deploy/calibration.json``;
5. flash the bundle to the emulated robot (``robot-meta flash``);
6. adapt with 3 rollouts (``robot-meta adapt``), evaluating zero-shot (before), adapted
   (after), the oracle (the emulator's true parameters) and the robust baseline on the same
   targets; print the table and the path of the report.

``--run DIR`` (and ``--baseline-run DIR``) skip training with existing run directories.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="train, export, emulate, flash and adapt, end to end",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="pearl", choices=["pearl", "rma"],
                   help="the meta-RL method to train (default pearl)")
    p.add_argument("--minutes", type=float, default=3.0,
                   help="training budget per run in minutes (default 3)")
    p.add_argument("--steps", type=int, default=0,
                   help="training budget per run in env steps instead of --minutes: reproducible "
                        "for a given seed (bit-identical on the same kind of CPU)")
    p.add_argument("--run", help="an existing run directory of the method: skip its training")
    p.add_argument("--baseline-run", help="an existing PPO run directory: skip the baseline's training")
    p.add_argument("--no-baseline", action="store_true", help="no robust baseline column")
    p.add_argument("--robot", default="",
                   help="the robot: a registered name or a robot folder (default: the robot whose "
                        "robot.toml says demo = true)")
    p.add_argument("--family", default="",
                   help="the task family to train on (default: the robot's headline family)")
    p.add_argument("--hidden-payload", type=float, default=0.45,
                   help="the emulator's hidden payload mass in kg (default 0.45; servo training "
                        "range 0..0.4)")
    p.add_argument("--hidden", help="a hidden-parameter file for the emulator instead of the "
                                    "robot folder's demo_hidden.toml (robot = ..., [params], [servo])")
    p.add_argument("--rollouts", type=int, default=3, help="adaptation rollouts (default 3)")
    p.add_argument("--eval-rollouts", type=int, default=3,
                   help="evaluation rollouts per column, on shared targets (default 3)")
    p.add_argument("--episode-steps", type=int, default=0, help="steps per rollout (default: task's)")
    p.add_argument("--out", help="working directory (default robot_meta_demo/<time>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _say(args: argparse.Namespace, msg: str) -> None:
    import sys

    print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)


def _hidden_robot(folder: Path, robot_ref: str, payload: float) -> str:
    """The demo's hidden robot as a twin params file: the robot folder's ``demo_hidden.toml``
    (a robot as built, not as simulated) with the payload mass of ``--hidden-payload``, and
    ``robot`` written so that the emulator process resolves it."""
    import re

    from robot_meta.errors import UserError

    template = folder / "demo_hidden.toml"
    if not template.is_file():
        raise UserError(f"{folder}: no demo_hidden.toml (the demo's hidden robot); give one with "
                        "--hidden")
    text = template.read_text()
    text = re.sub(r"^robot\s*=.*$", f"robot = {json.dumps(robot_ref)}", text, count=1, flags=re.M)
    return re.sub(r"^payload_mass\s*=\s*[-+0-9.eE]+", f"payload_mass = {payload}", text, count=1,
                  flags=re.M)


def _budget(args: argparse.Namespace) -> tuple[list[str], str]:
    """The train command's budget flags and their description: --steps if given, else --minutes."""
    if args.steps:
        return ["--steps", str(args.steps)], f"{args.steps:,} steps"
    return ["--minutes", str(args.minutes)], f"{args.minutes:g} min"


def _train(launch: str, out: Path, budget: list[str], seed: int) -> None:
    import contextlib
    import sys

    from robot_meta.launch.cli import main

    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result (--json)
        rc = main(["train", launch, "--out", str(out), *budget, "--seed", str(seed), "--no-progress"])
    if rc:
        from robot_meta.errors import UserError

        raise UserError(f"training {launch} failed (exit {rc})")


def _export(run_dir: Path, bundle: Path) -> None:
    import contextlib
    import io

    from robot_meta.launch.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["export", str(run_dir), "-o", str(bundle), "--force"])
    if rc:
        from robot_meta.errors import UserError

        raise UserError(f"export of {run_dir} failed (exit {rc})")


def _calibrate(cfg: Any) -> dict[str, Any]:
    """``robot-meta calibrate`` on the emulated robot: its calibration summary (as --json)."""
    from robot_meta.calibration.calibration_file import calibration_path
    from robot_meta.launch.cmd_calibrate import calibrate
    from robot_meta.runtime.connect import hardware_map_for

    cal = calibrate(cfg, status=lambda m: None)
    path = cal.save(calibration_path(cfg))
    return {"joints": cal.summary(hardware_map_for(cfg)), "file": str(path),
            "robot_seconds": round(cal.robot_seconds, 3)}


def run(args: argparse.Namespace) -> int:
    from robot_meta.errors import UserError
    from robot_meta.launch.emulator_process import EmulatorProcess
    from robot_meta.runtime.flash import flash
    from robot_meta.runtime.robot_config import load_robot_config
    from robot_meta.runtime.session import AdaptationSession, SessionSpec

    t0 = time.perf_counter()
    if args.steps < 0:
        raise UserError("--steps must be positive")
    if args.minutes <= 0 and not args.steps and not args.run:
        raise UserError("--minutes must be positive (or give --steps N or --run DIR)")
    budget, budget_text = _budget(args)
    work = Path(args.out or f"robot_meta_demo/{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # 1. train (or reuse)
    run_dir = Path(args.run) if args.run else work / f"run-{args.method}"
    base_dir: Path | None = None
    if not args.no_baseline:
        base_dir = Path(args.baseline_run) if args.baseline_run else work / "run-ppo"
    from robot_meta.robot_registry import default_robot, robot_ref
    from robot_meta.sim.randomize import headline_family
    from robot_meta.sim.robots.robot_def import get_robot

    robot = args.robot or default_robot("demo")
    rdef = get_robot(robot)
    ref = robot_ref(robot)  # a name, or the folder's absolute path for the emulator process
    family = args.family or headline_family(rdef)
    if not args.run:
        _say(args, f"[1/6] meta-training {rdef.name}-{family}-{args.method} for {budget_text} -> {run_dir}")
        _train(f"{rdef.name}-{family}-{args.method}", run_dir, budget, args.seed)
    if base_dir is not None and not args.baseline_run:
        _say(args, f"[1/6] training the robust PPO baseline for {budget_text} -> {base_dir}")
        _train(f"{rdef.name}-{family}-ppo", base_dir, budget, args.seed)
    timings["train_s"] = time.perf_counter() - t0

    # 2. export
    t = time.perf_counter()
    bundle, base_bundle = work / "bundle", work / "bundle-ppo"
    _say(args, f"[2/6] exporting {run_dir} -> {bundle}")
    _export(run_dir, bundle)
    if base_dir is not None:
        _export(base_dir, base_bundle)
    timings["export_s"] = time.perf_counter() - t

    # 3. emulator with hidden dynamics beyond nominal
    hidden = work / "hidden.toml"
    if args.hidden:
        from robot_meta.sim.randomize import load_twin_params

        load_twin_params(args.hidden, robot=rdef.name)  # a clear error before anything starts
        hidden.write_text(Path(args.hidden).read_text())
        _say(args, f"[3/6] emulating {rdef.name} with the hidden robot of {args.hidden}")
    else:
        hidden.write_text(_hidden_robot(rdef.folder, ref, args.hidden_payload))
        _say(args, f"[3/6] emulating {rdef.name} as built: a hidden {args.hidden_payload:g} kg "
                   "payload and the rest of its demo_hidden.toml (mounting, supply, latency, "
                   "servo effects)")
    with EmulatorProcess(ref, hidden, seed=args.seed, log=work / "emulator.log") as emu:
        cfg = load_robot_config(robot).with_overrides(port=emu.port, deploy_dir=work / "deploy")
        # 4. calibrate
        t = time.perf_counter()
        calibration = _calibrate(cfg)
        timings["calibrate_s"] = time.perf_counter() - t
        _say(args, "[4/6] calibrated: " + ", ".join(
            f"{j} offset {r['offset_rad']:+.3f} rad{' (reversed)' if r['reversed'] else ''}"
            for j, r in calibration["joints"].items())
            + f", {calibration['robot_seconds']:.0f} s on the robot")
        # 5. flash
        t = time.perf_counter()
        res = flash(bundle, cfg)
        _say(args, f"[5/6] flashed {res.version}: hardware matches, torque-off dry run passed")
        # 5. adapt
        spec = SessionSpec(method="auto", rollouts=args.rollouts, eval_rollouts=args.eval_rollouts,
                           episode_steps=args.episode_steps, seed=args.seed,
                           oracle_params=str(hidden), baseline=str(base_bundle) if base_dir else "",
                           command=f"robot-meta demo --run {run_dir}"
                                   + (f" --baseline-run {base_dir}" if base_dir else " --no-baseline"))
        # The overspeed trip stays on: the simulators give the servos their torque-speed line,
        # so a trained policy cannot drive a joint past the no-load speed.
        session = AdaptationSession(cfg, spec, session_dir=work / "session",
                                    status=lambda m: _say(args, "      " + m))
        _say(args, f"[6/6] adapting: {len(session.plan)} rollouts on the emulated robot")
        result = session.run()
        timings["session_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    out: dict[str, Any] = {**result.public(), "method": result.method, "report": result.report,
                           "deadlines": result.deadlines, "family": family,
                           "hidden_payload_kg": None if args.hidden else args.hidden_payload,
                           "calibration": calibration,
                           "timings": {k: round(v, 1) for k, v in timings.items()}}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0

    def f(x: float | None) -> str:
        return "     -" if x is None else f"{x:6.1f}"

    steps = session.spec.episode_steps or 200
    what = f"hidden robot {args.hidden}" if args.hidden else f"hidden payload {args.hidden_payload:g} kg"
    print(f"\n{rdef.name} {rdef.default_task} ({family}), {what}; returns of {steps} steps, "
          f"mean of {args.eval_rollouts} shared targets")
    print(f"  adaptation rollouts ({result.method}): " + ", ".join(f"{r:.1f}" for r in result.rollouts))
    print(f"  {'before (zero-shot)':22s} {f(result.before)}")
    print(f"  {'after 3 rollouts' if args.rollouts == 3 else 'after adaptation':22s} {f(result.after)}")
    print(f"  {'oracle':22s} {f(result.oracle)}")
    print(f"  {'robust (PPO)':22s} {f(result.robust)}")
    d = result.deadlines
    print(f"  deadlines met {100 * d['fraction_met']:.2f} % of {d['cycles']} cycles")
    print(f"report: {result.report}  ({timings['total_s'] / 60:.1f} min)")
    return 0
