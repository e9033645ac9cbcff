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

``--hidden-sets N`` replaces the hand-written files by N hidden robots drawn with a fixed seed
(``--hidden-seed``) from the documented held-out distribution of
:mod:`robot_meta.sim.hidden_robots` (half in the training ranges, half beyond them, the twin's
servo effects on), as calibrated: a session scores its rollouts from the robot's encoders, as
on a real robot, so an encoder offset would skew the score (a policy that compensates it would
look off target); the robots' offsets are therefore the residuals ``robot-meta calibrate``
leaves, within 0.01 rad (``--miscalibrated`` keeps the family's offsets). Each finished
(hidden robot, method) session is saved atomically as ``OUT/<hidden>/<method>/result.json``,
and a rerun skips it, so a long table resumes where it was killed. The table then gives, per
method and over the hidden robots (all, in range, beyond), the mean and 95 % CI of before,
after, oracle and robust, the paired ``after - robust`` difference with its CI, and the fraction
of control deadlines met.
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

from robot_meta.launch.bench_cli import add_methods_option, bench_main, split_methods

METHODS = ("rma", "pearl", "maml", "fomaml", "reptile", "rl2", "cavia", "sysid", "real2sim2real")
# A bench method that is not a training algorithm: the run it adapts and its `adapt --method`.
# sysid identifies the factors from the K rollouts (mujoco.sysid) and drives RMA's teacher.
# real2sim2real identifies each hidden robot from an excitation session (robot-meta sysid) and,
# where sysid finds it outside the training ranges, fine-tunes the RMA run on the narrowed
# family (train --family ident/family.toml --init RUN) and runs the session with that run's
# bundle (prepare_real2sim2real); elsewhere it deploys the RMA run, whose session it shares.
RUN_OF = {"sysid": "rma", "real2sim2real": "rma"}
# Paired comparisons over the hidden robots both methods completed: (method, column) minus
# (method, column). Issue 22: sysid against the context method it drives, and the fine-tuned
# run's zero-shot against the un-tuned one's.
PAIRED = ((("sysid", "after"), ("rma", "after")),
          (("real2sim2real", "before"), ("rma", "before")),
          (("real2sim2real", "after"), ("rma", "after")))
ADAPT_METHOD = {"sysid": "sysid"}
# The hand-written hidden files were written for these families; --hidden-sets uses the headline.
FAMILY = {"cartpole": "all", "arm2": "payload"}
HIDDEN = {"cartpole": ("cartpole_heavy", "cartpole_beyond"), "arm2": ("arm2_payload", "arm2_beyond")}
COLUMNS = ("before", "after", "oracle", "robust")
# --hidden-sets robots are drawn as calibrated: encoder offsets within what `robot-meta calibrate`
# leaves (every offset within 0.01 rad, `bench calibrate`); see robot_meta.sim.hidden_robots.
CALIBRATION_RESIDUAL = 0.01
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


def prepare_real2sim2real(robot: str, port: str, run: Path, out: Path, steps: int,
                          family: str) -> tuple[Path | None, dict[str, Any]]:
    """Real2sim2real on one emulated robot: ``robot-meta sysid --family FAMILY`` (the run's
    training family) with excitation on ``port`` (OUT/ident). When it finds the robot outside
    the training ranges (its ``real2sim2real`` decision): ``robot-meta train RUN/config.toml
    --family OUT/ident/family.toml --init RUN --steps STEPS`` (OUT/run) and its export
    (OUT/bundle). Each step is skipped when its output exists, so a killed table resumes.
    Returns the fine-tuned bundle (None: deploy RUN as it is) and the decision."""
    from robot_meta.errors import UserError
    from robot_meta.launch.cli import main

    ident, tuned = out / "ident", out / "run"
    if not (ident / "family.toml").is_file():
        print("      real2sim2real: identifying (robot-meta sysid, excitation)", file=sys.stderr, flush=True)
        resume = ["--resume", str(ident / "excitation")] if (ident / "excitation").is_dir() else []
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(["sysid", "--robot", robot, "--port", port, "--no-calibration",
                       "--family", family, "-o", str(ident), "--no-html", *resume])
        if rc:
            raise UserError(f"real2sim2real: sysid failed (exit {rc})")
    decision = json.loads((ident / "report" / "result.json").read_text()).get("real2sim2real")
    if decision is None:
        raise UserError(f"{ident}: identified by an older robot-meta sysid (no real2sim2real "
                        "decision); delete it and rerun")
    if not decision["fine_tune"]:
        print("      real2sim2real: the robot lies within the training ranges; deploying "
              f"{run.name} as it is", file=sys.stderr, flush=True)
        return None, decision
    if not (tuned / "checkpoint.pt").is_file():
        print(f"      real2sim2real: outside the training ranges on "
              f"{', '.join(decision['outside_training'])}; fine-tuning {run.name} for {steps:,} "
              "steps on the narrowed family", file=sys.stderr, flush=True)
        shutil.rmtree(tuned, ignore_errors=True)  # a killed fine-tuning restarts
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(["train", str(run / "config.toml"), "--family", str(ident / "family.toml"),
                       "--init", str(run), "--steps", str(steps), "--out", str(tuned), "--no-progress"])
        if rc:
            raise UserError(f"real2sim2real: fine-tuning failed (exit {rc})")
    return export(tuned, out / "bundle"), decision


def session(
    robot: str, port: str, bundle: Path, baseline: Path, hidden: Path, out: Path, args: argparse.Namespace,
    method: str = "auto",
) -> dict[str, Any]:
    """Flash ``bundle`` to the emulated robot on ``port`` and run one adaptation session with
    ``adapt --method METHOD``."""
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
        method=method,
        rollouts=args.rollouts,
        eval_rollouts=args.eval_rollouts,
        seed=args.seed,
        oracle_params=str(hidden),
        baseline=str(baseline),
        command=f"robot-meta adapt --robot {robot} --method {method} --rollouts {args.rollouts} "
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


def hidden_table(robot: str, family: str, results: dict[str, dict[str, dict[str, Any]]],
                 splits: dict[str, str]) -> dict[str, Any]:
    """Per method and split (all, in_range, beyond): mean and 95 % CI over hidden robots of each
    column, of ``after - robust`` paired per hidden robot, and the deadlines met.

    ``results[hidden][method]`` is one session's result (or ``{"error": ...}``)."""
    import numpy as np

    from robot_meta.learn.evaluate import ci95

    def cell(x: list[float]) -> dict[str, Any]:
        c = ci95(np.array(x))
        return {"mean": round(c["mean"], 2), "ci95": [round(v, 2) for v in c["ci95"]], "n": len(x)}

    methods = sorted({m for per in results.values() for m in per})
    table: dict[str, Any] = {}
    for m in methods:
        table[m] = {}
        for split in ("all", "in_range", "beyond"):
            rows = [per[m] for h, per in results.items()
                    if m in per and "error" not in per[m] and split in ("all", splits[h])]
            failed = [per[m] for h, per in results.items()
                      if m in per and "error" in per[m] and split in ("all", splits[h])]
            trips = sum(1 for r in failed if r.get("overspeed", False))
            shutdowns = sum(1 for r in failed if r.get("hardware_error", False))
            if not rows:
                table[m][split] = {"sets": 0, "failed": len(failed), "overspeed_trips": trips,
                                   "hardware_errors": shutdowns}
                continue
            entry: dict[str, Any] = {"sets": len(rows), "failed": len(failed), "overspeed_trips": trips,
                                     "hardware_errors": shutdowns}
            for col in COLUMNS:
                entry[col] = cell([r[col] for r in rows])
            entry["after_minus_robust"] = cell([r["after"] - r["robust"] for r in rows])
            entry["frac_oracle"] = (round(entry["after"]["mean"] / entry["oracle"]["mean"], 3)
                                    if entry["oracle"]["mean"] > 0 else None)
            entry["deadlines_met_min"] = min(r["deadlines_met"] for r in rows)
            table[m][split] = entry
    paired: dict[str, Any] = {}
    for (ma, ca), (mb, cb) in PAIRED:
        key = f"{ma} {ca} - {mb} {cb}"
        # fine_tuned: the robots real2sim2real fine-tuned for (found outside the training
        # ranges); on the others it deploys the un-tuned run, and the difference is 0
        for split in ("all", "in_range", "beyond", "fine_tuned"):
            d = [per[ma][ca] - per[mb][cb] for h, per in results.items()
                 if all(m in per and "error" not in per[m] for m in (ma, mb))
                 and (per[ma].get("real2sim2real", {}).get("fine_tune") is True
                      if split == "fine_tuned" else split in ("all", splits[h]))]
            if d:
                paired.setdefault(key, {})[split] = cell(d)
    return {"robot": robot, "family": family, "hidden_sets": len(results), "methods": table,
            "paired": paired}


def hidden_markdown(t: dict[str, Any]) -> str:
    """One table per split: a row per method, CIs in brackets."""
    def c(x: dict[str, Any]) -> str:
        return f"{x['mean']:.1f} [{x['ci95'][0]:.1f}, {x['ci95'][1]:.1f}]"

    lines: list[str] = []
    for split in ("all", "in_range", "beyond"):
        lines += [
            f"**{t['robot']} `{t['family']}`, {t['hidden_sets']} hidden robots, {split}**",
            "",
            "| method | sets | before | after | oracle | robust | after - robust | after / oracle "
            "| min deadlines met |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for m, per in t["methods"].items():
            e = per[split]
            if not e["sets"]:
                lines.append(f"| {m} | 0 ({e['failed']} failed) ||||||||")
                continue
            fail = f" ({e['failed']} failed)" if e["failed"] else ""
            lines.append(
                f"| {m} | {e['sets']}{fail} | {c(e['before'])} | {c(e['after'])} | {c(e['oracle'])} | "
                f"{c(e['robust'])} | {c(e['after_minus_robust'])} | {e['frac_oracle']} | "
                f"{100 * e['deadlines_met_min']:.2f} % |"
            )
        lines.append("")
    for key, per_split in t.get("paired", {}).items():
        cells = ", ".join(f"{s} {c(v)} (n = {v['n']})" for s, v in per_split.items())
        lines.append(f"Paired over hidden robots, **{key}**: {cells}")
    return "\n".join(lines)


def run_hidden_sets(args: argparse.Namespace, methods: list[str], bundles: dict[str, Path | str],
                    family: str, out: Path, runs: dict[str, Path] | None = None) -> dict[str, Any]:
    """``--hidden-sets N``: N drawn hidden robots x methods, one saved result per session, resumable."""
    import hashlib

    from robot_meta.errors import UserError
    from robot_meta.hardware.errors import HardwareError, OverspeedError
    from robot_meta.launch.emulator_process import EmulatorProcess
    from robot_meta.runtime.atomic import write_json_atomic
    from robot_meta.sim.hidden_robots import draw_hidden_robots

    residual = None if args.miscalibrated else CALIBRATION_RESIDUAL
    robots = draw_hidden_robots(args.robot, family, args.hidden_sets, seed=args.hidden_seed,
                                calibration_residual=residual)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    splits: dict[str, str] = {}
    for i, h in enumerate(robots):
        path = h.write(out / "hidden")
        sha = hashlib.sha256(h.to_toml().encode()).hexdigest()
        splits[h.name] = h.split
        per = results.setdefault(h.name, {})
        todo = []
        for m in methods:
            saved = out / h.name / m / "result.json"
            old = json.loads(saved.read_text()) if saved.is_file() else None
            if old is not None and old.get("hidden_sha256", sha) != sha:
                raise UserError(f"{saved}: a session on a different {h.name} (another --hidden-seed "
                                f"or --miscalibrated); give another --out")
            if old is not None:  # finished before: resume without redoing it
                per[m] = old
            else:
                todo.append(m)
        print(f"[{i + 1}/{len(robots)} {h.name}] {len(methods) - len(todo)} done, {len(todo)} to run",
              file=sys.stderr, flush=True)
        if not todo:
            continue
        emu = None
        try:
            for m in todo:
                for stale in ("session", "deploy"):  # a half-finished session restarts
                    shutil.rmtree(out / h.name / m / stale, ignore_errors=True)
                if emu is None:
                    emu = EmulatorProcess(args.robot, path, seed=args.seed,
                                          log=out / f"emulator-{h.name}.log").__enter__()
                b = bundles[m]
                try:
                    if isinstance(b, str):
                        raise UserError(b)
                    decision = None
                    if m == "real2sim2real":
                        assert runs is not None
                        tuned, decision = prepare_real2sim2real(
                            args.robot, emu.port, runs[m], out / h.name / m, args.finetune_steps,
                            family)
                        b = tuned or b  # within the training ranges: the un-tuned run's bundle
                    shared = per.get(RUN_OF.get(m, ""), {})
                    if decision is not None and not decision["fine_tune"] and shared \
                            and "error" not in shared:
                        # the same bundle as the un-tuned method's session on this robot: one
                        # session is that deployment's measurement (re-running it would only
                        # redraw session noise)
                        r = {**shared, "shared_session": RUN_OF[m]}
                    else:
                        r = session(args.robot, emu.port, b, Path(bundles["ppo"]), path,
                                    out / h.name / m, args, method=ADAPT_METHOD.get(m, "auto"))
                    if decision is not None:
                        r["real2sim2real"] = decision
                except (UserError, HardwareError) as e:  # saved too: a rerun does not retry it
                    print(f"[{h.name}] {m}: failed: {e}", file=sys.stderr, flush=True)
                    r = {"error": str(e), "overspeed": isinstance(e, OverspeedError),
                         "hardware_error": isinstance(e, HardwareError)}
                    if isinstance(e, HardwareError):
                        # A servo that shut down (overload, overspeed) stays latched: the next
                        # method gets a freshly powered robot, as an operator would give it.
                        emu.__exit__(None, None, None)
                        emu = None
                r["hidden"] = h.name
                r["split"] = h.split
                r["hidden_sha256"] = sha
                write_json_atomic(out / h.name / m / "result.json", r)
                per[m] = r
        finally:
            if emu is not None:
                emu.__exit__(None, None, None)
    table = hidden_table(args.robot, family, results, splits)
    table["hidden_seed"] = args.hidden_seed
    table["rollouts"] = args.rollouts
    table["eval_rollouts"] = args.eval_rollouts
    table["sessions"] = results
    write_json_atomic(out / f"hidden_sets_{args.robot}.json", table)
    return table


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="arm2", choices=sorted(FAMILY))
    add_methods_option(p, METHODS)
    p.add_argument(
        "--runs", default="runs/table", help="trained runs <robot>-<family>-<method> (default runs/table)"
    )
    p.add_argument(
        "--family",
        help="the runs' task family (default: the headline family with --hidden-sets, "
        "else the family the hand-written hidden files were written for)",
    )
    p.add_argument(
        "--hidden",
        help="comma-separated hidden-parameter files or names in examples/hidden "
        "(default: the robot's in-range and beyond-range files)",
    )
    p.add_argument(
        "--hidden-sets", type=int, metavar="N",
        help="instead of --hidden: N hidden robots drawn from the family's held-out distribution "
        "(half in range, half beyond, servo effects on); resumable",
    )
    p.add_argument("--hidden-seed", type=int, default=2026,
                   help="seed of the hidden-robot draw (default 2026)")
    p.add_argument("--miscalibrated", action="store_true",
                   help="--hidden-sets: keep the family's encoder offsets instead of drawing them as "
                        f"calibration leaves them (within +-{CALIBRATION_RESIDUAL} rad). The session "
                        "scores rollouts from the robot's own encoders, so an offset it does not "
                        "know skews the score itself")
    p.add_argument("--rollouts", type=int, default=3, help="adaptation rollouts K (default 3)")
    p.add_argument("--eval-rollouts", type=int, default=2, help="evaluation rollouts per column (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="working directory (default <runs>/sessions-<robot>)")
    p.add_argument("--finetune-steps", type=int, default=1_000_000,
                   help="real2sim2real: env steps of fine-tuning on each identified family "
                        "(default 1,000,000)")
    p.add_argument("--baseline-run", metavar="RUN",
                   help="the robust baseline's trained run (default RUNS/<robot>-<family>-ppo, "
                        "with -s<N> for --run-seed). E.g. a PPO trained for calibrated arms: "
                        "robot-meta train arm2-servo-ppo --family fast --out RUN")
    p.add_argument("--run-seed", type=int, default=None,
                   help="use the runs of this training seed, <robot>-<family>-<method>-s<N> "
                        "(as `bench table` and `bench seeds` leave them)")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any]:
    import tomllib

    from robot_meta.errors import UserError
    from robot_meta.hardware.errors import HardwareError
    from robot_meta.launch.emulator_process import EmulatorProcess
    from robot_meta.sim.randomize import headline_family

    methods, error = split_methods(args.methods, METHODS)
    if error:
        raise UserError(error)
    if args.hidden_sets is not None and args.hidden:
        raise UserError("--hidden and --hidden-sets: give one of them")
    if "real2sim2real" in methods and args.hidden_sets is None:
        raise UserError("real2sim2real identifies and fine-tunes per hidden robot: give --hidden-sets N")
    if args.hidden_sets is not None and args.hidden_sets < 1:
        raise UserError(f"--hidden-sets: need at least 1, got {args.hidden_sets}")
    runs = Path(args.runs)
    out = Path(args.out or runs / f"sessions-{args.robot}").resolve()
    fam = args.family or (headline_family(args.robot) if args.hidden_sets else FAMILY[args.robot])
    suffix = "" if args.run_seed is None else f"-s{args.run_seed}"
    baseline = Path(args.baseline_run) if args.baseline_run else runs / f"{args.robot}-{fam}-ppo{suffix}"
    bundles: dict[str, Path | str] = {"ppo": export(baseline, out / "bundles" / "ppo")}
    run_dirs: dict[str, Path] = {}
    for m in methods:
        try:
            run = run_dirs[m] = runs / f"{args.robot}-{fam}-{RUN_OF.get(m, m)}{suffix}"
            bundles[m] = export(run, out / "bundles" / m)
        except UserError as e:  # e.g. an export that fails parity: its row says so
            print(f"{m}: {e}", file=sys.stderr, flush=True)
            bundles[m] = f"export failed: {e}"
    if args.hidden_sets is not None:
        return run_hidden_sets(args, methods, bundles, fam, out, run_dirs)
    names = args.hidden.split(",") if args.hidden else HIDDEN[args.robot]
    hidden = [Path(n) if n.endswith(".toml") else ROOT / "examples" / "hidden" / f"{n}.toml" for n in names]
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
                        args.robot, emu.port, b, Path(bundles["ppo"]), h, out / h.stem / m, args,
                        method=ADAPT_METHOD.get(m, "auto"),
                    )
                except (UserError, HardwareError) as e:  # reported in its row; the others still run
                    print(f"[{h.stem}] {m}: failed: {e}", file=sys.stderr, flush=True)
                    block["methods"][m] = {"error": str(e)}
        done = [m for m, r in block["methods"].items() if "error" not in r]
        if done:
            block["best"] = max(done, key=lambda k: block["methods"][k]["after"])
        (out / f"sessions_{args.robot}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench sessions`` calls it with its arguments)."""
    return bench_main("sessions", __doc__, argv, _options, _measure,
                      lambda r: hidden_markdown(r) if "hidden_sets" in r else markdown(r),
                      json_help="print JSON instead of Markdown tables")


if __name__ == "__main__":
    sys.exit(main())
