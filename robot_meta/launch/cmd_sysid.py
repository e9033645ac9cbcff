"""``robot-meta sysid --robot R [--port P] [--from SESSION ...] -o ident/``: identify the robot's
dynamics with mujoco.sysid and narrow its task family (real2sim2real)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robot_meta.launch.robot_args import add_calibration_arg, add_robot_args, load_config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sysid", help="identify the robot's dynamics (mujoco.sysid) and narrow its task family",
        description="Without --from, run safe excitation on the robot (chirps and steps per "
                    "joint in current mode, PD-bounded, within the safety limits, motor-driven "
                    "resets between; every rollout saved atomically, --resume continues). With "
                    "--from, reuse the rollouts of earlier adaptation or excitation sessions. "
                    "Then fit the family's factors and write OUT/params.toml (twin-params "
                    "format), OUT/family.toml (the family narrowed to the 95 % intervals, "
                    "widened by the held-out model error, to at least half the training "
                    "width) and OUT/report/, which says whether to fine-tune (only when the "
                    "robot lies outside the training ranges). "
                    "Factors the data cannot identify are reported as such.")
    add_robot_args(p)
    add_calibration_arg(p)
    p.add_argument("--from", dest="sources", nargs="+", metavar="SESSION_DIR",
                   help="fit the rollouts of these session directories instead of exciting")
    p.add_argument("--resume", metavar="EXCITATION_DIR",
                   help="continue an interrupted excitation session, then fit")
    p.add_argument("--session", metavar="DIR",
                   help="where the excitation session goes (default OUT/excitation)")
    p.add_argument("-o", "--out", required=True, help="output directory (params.toml, ...)")
    p.add_argument("--family", help="the family whose factors are fitted (default: the robot's "
                                    "headline family; a name or a .toml path)")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds per excitation rollout")
    p.add_argument("--segment", type=float, default=0.0,
                   help="fit window [s] (default 2 s; 0.6 s on an unstable robot)")
    p.add_argument("--max-iters", type=int, default=25, help="optimizer iterations (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seeds the excitation references")
    p.add_argument("--timestamps", action="store_true",
                   help="replay on the recorded reading times rather than the nominal control "
                        "grid (for a control loop that missed deadlines)")
    p.add_argument("--no-html", action="store_true", help="skip mujoco.sysid's report.html")
    p.add_argument("--json", action="store_true",
                   help='print {"factors": {name: {value, interval95, identifiable, reason}}, '
                        '"heldout", "files", "robot_seconds", "real2sim2real": {"fine_tune", '
                        '"outside_training", "model_error"}}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_meta.calibration.session_logs import load_recordings
    from robot_meta.calibration.sysid import SysidConfig, SystemIdentifier
    from robot_meta.calibration.sysid_report import SysidReport
    from robot_meta.errors import UserError
    from robot_meta.sim.robots.robot_def import get_robot

    def status(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    if args.sources and (args.resume or args.session):
        raise UserError("--from fits existing sessions; --resume/--session are for excitation")
    if args.seconds <= 0 or args.max_iters < 1:
        raise UserError("--seconds must be > 0 and --max-iters >= 1")
    cfg = load_config(args)
    rdef = get_robot(cfg.robot)
    out = Path(args.out)
    robot_seconds = 0.0
    if args.sources:
        sources = [Path(s) for s in args.sources]
    else:
        session = Path(args.resume or args.session or out / "excitation")
        robot_seconds = excite(cfg, rdef, session, args, status)
        sources = [session]
    fit, held = load_recordings(sources, rdef)
    status(f"fitting {len(fit)} rollout(s), {len(held)} held out")
    sid = SystemIdentifier(rdef, args.family,
                           SysidConfig(segment_s=args.segment, max_iters=args.max_iters,
                                       use_times=args.timestamps))
    result, objects = sid.fit(fit, held)
    report = SysidReport(sid, result, objects, held, source=", ".join(str(s) for s in sources))
    files = report.write(out, mujoco_report=not args.no_html)
    if args.json:
        d = result.as_dict()
        print(json.dumps({"factors": d["factors"], "heldout": d["heldout"], "files": files,
                          "robot_seconds": robot_seconds, "fit_seconds": result.fit_seconds,
                          "real2sim2real": report.decision()}))
        return 0
    print(report.markdown())
    print(f"wrote {files['params']}, {files['family']}, {files['report']}/")
    return 0


def excite(cfg: object, rdef: object, session: Path, args: argparse.Namespace,
           status: object) -> float:
    """Run (or resume) the excitation session on the robot; returns its robot seconds."""
    import math

    import numpy as np

    from robot_meta.calibration.excitation import ExcitationRunner, default_config
    from robot_meta.runtime.connect import open_robot

    # the calibrated frame, as flash and adapt (sysid identifies the robot a policy will drive)
    robot = open_robot(cfg, overspeed_factor=2.0,  # type: ignore[arg-type]
                       calibration=not args.no_calibration)
    try:
        hw = robot.hw  # torque goes on in each rollout's reset (arming the watchdog then)
        q_start = np.array([math.pi if (not j.actuated and j.kind == "revolute") else 0.0
                            for j in hw.joints])  # passive poles hang at pi
        ecfg = default_config(hw)
        ecfg.seconds = args.seconds
        runner = ExcitationRunner(robot, session, dt=rdef.control_dt, cfg=ecfg,  # type: ignore[attr-defined]
                                  seed=args.seed, resume=bool(args.resume), status=status,  # type: ignore[arg-type]
                                  q_start=q_start)
        res = runner.run()
    finally:
        robot.close()  # torque off
    return float(res["robot_seconds"])
