"""``robot-meta train``: meta-train a policy (and context encoder) in simulation."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train", help="meta-train in simulation from a launch file",
        description="Train a policy and its context encoder from a launch file (a launch name "
                    "from a robot folder's launch/, see --list, or a path to a TOML file). Writes "
                    "checkpoint.pt, config.toml, metrics.jsonl and TensorBoard logs (tb/) into the run dir.")
    p.add_argument("launch", nargs="?", help="bundled launch name or path to a launch TOML")
    p.add_argument("--list", action="store_true", help="list the bundled launch files and exit")
    p.add_argument("--out", help="run directory (default runs/<launch name>)")
    p.add_argument("--minutes", type=float, help="wall-clock budget in minutes (overrides the file)")
    p.add_argument("--steps", type=int, help="env-step budget (overrides the file)")
    p.add_argument("--seed", type=int, help="the run seed (overrides the file)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (budgets count the time "
                        "and steps already spent)")
    p.add_argument("--family", metavar="FAMILY",
                   help="train on this family instead of the launch file's (a bundled name or a "
                        "TOML path, e.g. the ident/family.toml of robot-meta sysid)")
    p.add_argument("--init", metavar="RUN",
                   help="start from the weights of this run (fine-tune; real2sim2real with "
                        "--family ident/family.toml)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="collect rollouts on N Ray actors, each owning a shard of the batch (default: "
                        "[run].workers of the launch file; 0: in-process). Needs "
                        "pip install 'robot-meta[train,ray]'")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="join the Ray cluster at ADDR (HOST:PORT as `ray start --head` prints, or "
                        "auto) instead of starting a local one; needs --workers")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(func=run)


def list_launch() -> list[dict[str, str]]:
    """The bundled launch files with robot, family, algorithm and budget."""
    from robot_meta.learn.config import launch_files, load_config

    rows = []
    for name, path in sorted(launch_files().items()):
        cfg = load_config(path)
        fam = cfg.run.family if "/" not in cfg.run.family else cfg.run.family.rsplit("/", 1)[-1]
        rows.append({"name": name, "robot": cfg.run.robot, "family": fam, "task": cfg.run.task,
                     "algorithm": cfg.run.algorithm, "minutes": f"{cfg.run.minutes:g}"})
    return rows


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robot_meta.errors import UserError

    if args.list:
        rows = list_launch()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'launch':24s} {'robot':9s} {'family':16s} {'task':8s} {'algorithm':9s} minutes")
        for r in rows:
            print(f"{r['name']:24s} {r['robot']:9s} {r['family']:16s} {r['task']:8s} {r['algorithm']:9s} "
                  f"{r['minutes']}")
        return 0

    from robot_meta.learn.config import load_config
    from robot_meta.learn.trainer import CONFIG_NAME, Trainer

    if args.resume:
        if not args.out and not args.launch:
            raise UserError("--resume needs the run directory: --out RUN_DIR")
        if args.out:
            out = Path(args.out)
        else:
            out = Path("runs") / load_config(args.launch).run.name
        saved = out / CONFIG_NAME
        if not saved.is_file():
            raise UserError(f"{out}: nothing to resume (no {CONFIG_NAME})")
        cfg = load_config(saved)
        if args.launch:
            new = load_config(args.launch)
            if (new.run.robot, new.run.algorithm) != (cfg.run.robot, cfg.run.algorithm):
                raise UserError(f"{args.launch} is {new.run.robot}/{new.run.algorithm}, but the run in "
                                f"{out} is {cfg.run.robot}/{cfg.run.algorithm}")
        if args.seed is not None and args.seed != cfg.run.seed:
            raise UserError(f"--seed {args.seed}: the run in {out} has seed {cfg.run.seed}; a resumed "
                            "run keeps its seed")
    else:
        if not args.launch:
            raise UserError("give a launch file or name (robot-meta train --list shows the bundled ones)")
        cfg = load_config(args.launch)
        if args.seed is not None:
            cfg.run.seed = args.seed
        out = Path(args.out) if args.out else Path("runs") / cfg.run.name
    if args.minutes is not None:
        if args.minutes < 0:
            raise UserError("--minutes must be >= 0")
        cfg.run.minutes = args.minutes
    if args.steps is not None:
        if args.steps < 0:
            raise UserError("--steps must be >= 0")
        cfg.run.steps = args.steps
    if args.steps is not None and args.minutes is None and not args.resume:
        cfg.run.minutes = 0.0  # a step budget alone: reproducible
    if cfg.run.minutes == 0 and cfg.run.steps == 0:
        raise UserError("no budget: give --minutes or --steps")
    init = None
    if args.family or args.init:
        if args.resume:
            raise UserError("--family and --init start a new run; a resumed run keeps its own")
        if args.family:
            from robot_meta.sim.randomize import load_family

            fam = args.family
            if fam.endswith(".toml") or ".toml:" in fam:
                path, _, rest = fam.partition(".toml")
                fam = str(Path(path + ".toml").resolve()) + rest
            load_family(cfg.run.robot, fam)  # a clear error now rather than at the first reset
            cfg.run.family = fam
        if args.init:
            from robot_meta.learn.checkpoint import FILENAME, load_checkpoint

            init = Path(args.init)
            load_checkpoint(init / FILENAME, algorithm=cfg.run.algorithm, robot=cfg.run.robot)
    if args.workers is not None:
        if args.workers < 0:
            raise UserError("--workers must be >= 0")
        cfg.run.workers = args.workers  # a resumed run may change it: the checkpoint does not depend on it
    if args.ray_address and not cfg.run.workers:
        raise UserError("--ray-address needs --workers N (or [run].workers) to have anything to run there")
    trainer = Trainer(cfg, out, resume=args.resume, progress=not args.no_progress, init_from=init,
                      ray_address=args.ray_address)
    summary = trainer.train()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"trained {summary['steps']:,} steps in {summary['minutes']:.1f} min "
              f"({summary['steps_per_second']:,.0f} steps/s); run dir {out}\n"
              f"next: robot-meta eval {out}")
    return 0
