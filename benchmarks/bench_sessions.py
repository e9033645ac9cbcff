"""Few-shot adaptation sessions on the emulated robot, for every method: the runtime's table.

    robot-meta bench sessions --robot arm2 --runs runs/table --json
    robot-meta bench sessions --robot cartpole --methods rl2,pearl --eval-rollouts 2

For each hidden-parameter file of the robot (``examples/hidden``: one inside the training
ranges, one beyond them) it starts the emulator (``robot-meta emulate ROBOT --params FILE``:
the PyBullet twin behind Dynamixel servos on a pty), and for each method exports the trained run
``RUNS/<robot>-<family>-<method>`` (as ``robot-meta bench methods`` leaves them), flashes it
and runs one ``robot-meta adapt`` session: K adaptation rollouts, then E evaluation rollouts
each of before (zero-shot), after (adapted), oracle (the true parameters, or the adaptation
state after a warm-up, as ``robot-meta adapt --oracle-params`` defines it per method) and robust
(the PPO run's bundle), all on the same E targets. Every rollout starts from a motor-driven
reset and runs in real time at the bundle's control rate, so one session takes a few minutes.

Per session it reports before, after, oracle and robust returns, ``after / oracle``, whether
``after`` beats ``robust``, and the fraction of control deadlines met; per hidden file, the
best method by ``after``. Sessions run with the overspeed trip on, as ``robot-meta demo`` does:
the simulators give the servos their torque-speed line, so trained policies stay under the
no-load speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

METHODS = ("rma", "pearl", "maml", "fomaml", "reptile", "rl2")
FAMILY = {"cartpole": "all", "arm2": "payload"}
HIDDEN = {"cartpole": ("cartpole_heavy", "cartpole_beyond"), "arm2": ("arm2_payload", "arm2_beyond")}
ROOT = Path(__file__).resolve().parents[1]


def export(run: Path, bundle: Path) -> Path:
    """``robot-meta export RUN -o BUNDLE`` (re-exported when the run's checkpoint is newer)."""
    from robot_meta.errors import UserError
    from robot_meta.launch.cli import main

    if not (run / "checkpoint.pt").exists():
        raise UserError(
            f"{run}: no trained run; train it first (robot-meta bench methods --out {run.parent})"
        )
    manifest = bundle / "manifest.json"
    if manifest.exists() and manifest.stat().st_mtime > (run / "checkpoint.pt").stat().st_mtime:
        return bundle
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["export", str(run), "-o", str(bundle), "--force"])
    if rc:
        raise UserError(f"export of {run} failed (exit {rc})")
    return bundle


def session(
    robot: str, port: str, bundle: Path, baseline: Path, hidden: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Flash ``bundle`` to the emulated robot on ``port`` and run one adaptation session."""
    from robot_meta.runtime.flash import flash
    from robot_meta.runtime.robot_config import load_robot_config
    from robot_meta.runtime.session import AdaptationSession, SessionSpec

    cfg = load_robot_config(robot).with_overrides(port=port, deploy_dir=out / "deploy")
    from robot_meta.hardware.errors import SafetyError

    for attempt in range(6):
        # The previous session ended with torque off, and the arm may still be swinging down:
        # flash's torque-off dry run refuses a joint moving beyond its limits. Let it settle.
        try:
            flash(bundle, cfg, calibration=False)  # the emulator mounts its servos as designed
            break
        except SafetyError as e:
            if attempt == 5:
                raise
            print(f"      flash: {e}; waiting for the robot to come to rest", file=sys.stderr, flush=True)
            time.sleep(3.0)
    spec = SessionSpec(
        method="auto",
        rollouts=args.rollouts,
        eval_rollouts=args.eval_rollouts,
        seed=args.seed,
        oracle_params=str(hidden),
        baseline=str(baseline),
        command=f"robot-meta adapt --robot {robot} --rollouts {args.rollouts} "
        f"--eval-rollouts {args.eval_rollouts} --oracle-params {hidden} "
        f"--baseline {baseline}",
    )
    t = time.perf_counter()
    res = AdaptationSession(
        cfg,
        spec,
        session_dir=out / "session",
        status=lambda m: print("      " + m, file=sys.stderr, flush=True),
        calibration=False,  # the emulator mounts its servos as designed
    ).run()
    assert res.after is not None and res.oracle is not None and res.robust is not None
    return {
        "method": res.method,
        "rollouts": [round(r, 1) for r in res.rollouts],
        "before": round(res.before or 0.0, 1),
        "after": round(res.after, 1),
        "oracle": round(res.oracle, 1),
        "robust": round(res.robust, 1),
        "frac_oracle": round(res.after / res.oracle, 3) if res.oracle > 0 else None,
        "beats_robust": res.after > res.robust,
        "deadlines_met": res.deadlines["fraction_met"],
        "cycles": res.deadlines["cycles"],
        "columns": {k: [round(x, 1) for x in v] for k, v in res.columns.items()},
        "minutes": round((time.perf_counter() - t) / 60, 2),
        "session": res.session,
    }


def markdown(result: dict[str, Any]) -> str:
    """A table per hidden-parameter file: a row per method."""
    lines = []
    for name, block in result["hidden"].items():
        lines += [
            f"**{result['robot']}, hidden `{name}`** ({block['description']})",
            "",
            "| method | before | after | oracle | robust | after / oracle | beats robust | deadlines met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, r in block["methods"].items():
            if "error" in r:
                lines.append(f"| {m} | failed: {r['error'][:200]} |||||||")
                continue
            lines.append(
                f"| {m} | {r['before']} | {r['after']} | {r['oracle']} | {r['robust']} | "
                f"{r['frac_oracle']} | {'yes' if r['beats_robust'] else 'no'} | "
                f"{100 * r['deadlines_met']:.2f} % |"
            )
        b = block.get("best")
        if b:
            lines += ["", f"Best by `after`: **{b}**."]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench sessions`` calls it with its arguments)."""
    import tomllib

    p = argparse.ArgumentParser(
        prog="robot-meta bench sessions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--robot", default="arm2", choices=sorted(FAMILY))
    p.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS)
    )
    p.add_argument(
        "--runs", default="runs/table", help="trained runs <robot>-<family>-<method> (default runs/table)"
    )
    p.add_argument(
        "--hidden",
        help="comma-separated hidden-parameter files or names in examples/hidden "
        "(default: the robot's in-range and beyond-range files)",
    )
    p.add_argument("--rollouts", type=int, default=3, help="adaptation rollouts K (default 3)")
    p.add_argument("--eval-rollouts", type=int, default=2, help="evaluation rollouts per column (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="working directory (default <runs>/sessions-<robot>)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    args = p.parse_args(argv)
    from robot_meta.errors import UserError
    from robot_meta.hardware.errors import HardwareError
    from robot_meta.launch.emulator_process import EmulatorProcess

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f"--methods: unknown {', '.join(bad)}; choose from {', '.join(METHODS)}")
    runs = Path(args.runs)
    out = Path(args.out or runs / f"sessions-{args.robot}").resolve()
    fam = FAMILY[args.robot]
    names = args.hidden.split(",") if args.hidden else HIDDEN[args.robot]
    hidden = [Path(n) if n.endswith(".toml") else ROOT / "examples" / "hidden" / f"{n}.toml" for n in names]
    bundles: dict[str, Path | str] = {
        "ppo": export(runs / f"{args.robot}-{fam}-ppo", out / "bundles" / "ppo")
    }
    for m in methods:
        try:
            bundles[m] = export(runs / f"{args.robot}-{fam}-{m}", out / "bundles" / m)
        except UserError as e:  # e.g. an export that fails parity: its row says so
            print(f"{m}: {e}", file=sys.stderr, flush=True)
            bundles[m] = f"export failed: {e}"
    result: dict[str, Any] = {
        "robot": args.robot,
        "runs": str(runs),
        "rollouts": args.rollouts,
        "eval_rollouts": args.eval_rollouts,
        "hidden": {},
    }
    for h in hidden:
        meta = tomllib.loads(h.read_text())
        block: dict[str, Any] = {
            "file": str(h),
            "description": meta.get("description", ""),
            "params": meta.get("params", {}),
            "methods": {},
        }
        result["hidden"][h.stem] = block
        print(f"[{h.stem}] emulating {args.robot} with {block['params']}", file=sys.stderr, flush=True)
        with EmulatorProcess(args.robot, h, seed=args.seed, log=out / f"emulator-{h.stem}.log") as emu:
            for m in methods:
                print(f"[{h.stem}] {m}: flash + session", file=sys.stderr, flush=True)
                shutil.rmtree(out / h.stem / m, ignore_errors=True)  # a fresh session each run
                b = bundles[m]
                if isinstance(b, str):
                    block["methods"][m] = {"error": b}
                    continue
                try:
                    block["methods"][m] = session(
                        args.robot, emu.port, b, Path(bundles["ppo"]), h, out / h.stem / m, args
                    )
                except (UserError, HardwareError) as e:  # reported in its row; the others still run
                    print(f"[{h.stem}] {m}: failed: {e}", file=sys.stderr, flush=True)
                    block["methods"][m] = {"error": str(e)}
        done = [m for m, r in block["methods"].items() if "error" not in r]
        if done:
            block["best"] = max(done, key=lambda k: block["methods"][k]["after"])
        (out / f"sessions_{args.robot}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
