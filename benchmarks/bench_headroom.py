"""Can adapting to the dynamics pay on a task family at all? The headroom of a family:

    H = (oracle - robust) / oracle

where oracle is the return of the privileged RMA teacher pi(o, mu(e)), which observes the true
normalized factor vector e, and robust is the return of domain-randomized PPO trained with the
same budget, both scored on the same tasks. H near 0: a policy blind to the dynamics already
does as well as one that knows them, so no adaptation method can gain much; the larger H, the
more there is to win.

    robot-meta bench headroom --robot cartpole --seeds 0,1,2 --json
    robot-meta bench headroom --robot arm2 --family servo --steps 2000000 --out runs/headroom --reuse

Per training seed it trains the teacher with the budget of ``<robot>-<family>-rma`` (all of it in
the teacher phase: the student phase never changes the teacher, so it is skipped) and the robust
policy with the budget of ``<robot>-<family>-ppo``; ``--steps`` or ``--minutes`` replaces both
budgets. Each pair is scored on ``--tasks`` in_dist tasks (the family's train ranges) and as many
OOD tasks, drawn and started exactly as ``robot-meta eval --seed EVAL_SEED`` draws them (its
oracle and robust columns), the same tasks for every training seed. Per setting it reports the
mean robust and oracle returns and H across the seeds, each with a Student-t 95 % CI over the
per-seed values (null with one seed).

Results go to ``OUT/headroom_<robot>-<family>.json`` after every trained run and evaluation,
atomically; ``--reuse`` keeps the finished runs in OUT and the evaluations already made.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_meta.launch.bench_cli import bench_main

if TYPE_CHECKING:
    from robot_meta.learn.config import TrainConfig

SETTINGS = ("in_dist", "ood")
ROLES = ("oracle", "robust")  # oracle: the RMA teacher; robust: domain-randomized PPO
EVAL_SEED = 12345  # robot-meta eval's default seed: the same tasks as its table


def launch_names(robot: str, family: str) -> dict[str, str]:
    """The bundled launch files whose budgets train each role."""
    return {"oracle": f"{robot}-{family}-rma", "robust": f"{robot}-{family}-ppo"}


def check_launch_files(robot: str, family: str) -> None:
    """A UserError (exit 2) naming every missing launch file and how to create it."""
    from robot_meta.errors import UserError
    from robot_meta.learn.config import launch_names as bundled
    from robot_meta.sim.robots import get_robot

    have = set(bundled())
    missing = [n for n in launch_names(robot, family).values() if n not in have]
    if missing:
        algo = {n: n.rsplit("-", 1)[1] for n in missing}
        like = {n: next((b for b in sorted(have) if b.startswith(f"{robot}-") and b.endswith(f"-{algo[n]}")),
                        None) for n in missing}
        how = "; ".join(f'copy {like[n]}.toml to {n}.toml and set [run].family = "{family}"' if like[n]
                        else f'write {n}.toml with [run] robot = "{robot}", family = "{family}", '
                             f'algorithm = "{algo[n]}"' for n in missing)
        where = get_robot(robot).folder / "launch"
        raise UserError(f"no launch file {' or '.join(f'{n}.toml' for n in missing)} in {where} "
                        f"for the {robot} family {family!r}; create {'it' if len(missing) == 1 else 'them'}: "
                        f"{how} (robot-meta train --list shows the bundled ones)")


def role_config(launch: str, role: str, steps: int | None, minutes: float | None) -> TrainConfig:
    """The resolved TrainConfig of one role: the launch file, with the teacher phase taking the
    whole budget for the oracle and ``steps`` / ``minutes`` replacing the budget when given."""
    from robot_meta.learn.config import load_config

    cfg = load_config(launch)
    if role == "oracle":
        cfg.rma.phase2_fraction = 0.0  # phase_at(p) = "teacher" for every p < 1
        cfg.run.name = f"{launch}-teacher"
    if steps:
        cfg.run.steps, cfg.run.minutes = steps, 0.0
    elif minutes:
        cfg.run.steps, cfg.run.minutes = 0, minutes
    return cfg


def train_run(launch: Path, run: Path, reuse: bool, seed: int) -> dict[str, Any]:
    """Train ``launch`` with ``seed`` into ``run`` (or keep it when finished and ``reuse``), with
    ``bench methods``' training helper."""
    from robot_meta.launch.cmd_bench import load

    t: dict[str, Any] = load("methods").train(str(launch), run, reuse, seed=seed)
    return t


def score(oracle_run: Path, robust_run: Path, setting: str, tasks: int, eval_seed: int) -> dict[str, Any]:
    """Mean returns of the teacher in oracle mode and of the robust policy on ``tasks`` tasks of
    ``setting``. Tasks, start states and noise are those of ``evaluate_run(seed=eval_seed)``:
    params ~ family ranges with rng seed derive_seed(eval_seed, 10 + i) and both policies' rollout
    on seed s0 = derive_seed(derive_seed(eval_seed, 20 + i), 0), i the setting's index."""
    import numpy as np
    import torch

    from robot_meta.errors import UserError
    from robot_meta.learn.evaluate import ci95, load_run, run_episode
    from robot_meta.learn.trainer import derive_seed
    from robot_meta.sim import make_vec_env
    from robot_meta.sim.randomize import load_family, sample_params

    t0 = time.perf_counter()
    cfg, teacher = load_run(oracle_run)
    rcfg, robust = load_run(robust_run)
    if (rcfg.run.robot, rcfg.run.family, rcfg.run.task) != (cfg.run.robot, cfg.run.family, cfg.run.task):
        raise UserError(f"{robust_run} ({rcfg.run.robot}/{rcfg.run.family}/{rcfg.run.task or 'default'}) "
                        f"and {oracle_run} ({cfg.run.robot}/{cfg.run.family}/{cfg.run.task or 'default'}) "
                        "train different tasks: headroom compares two policies on one task family")
    if cfg.run.torch_threads:
        torch.set_num_threads(cfg.run.torch_threads)
    i = SETTINGS.index(setting)
    fam = load_family(cfg.run.robot, cfg.run.family)
    task = cfg.run.task or None
    env0 = make_vec_env(cfg.run.robot, fam, 1, 0, task=task, nthread=0)
    P = sample_params(env0.robot, fam.ranges("train" if setting == "in_dist" else "ood"),
                      np.random.default_rng(derive_seed(eval_seed, 10 + i)), tasks)
    env0.close()
    env = make_vec_env(cfg.run.robot, fam, tasks, eval_seed, task=task, params=P)
    try:
        s = derive_seed(eval_seed, 20 + i)
        base = robust.agent(tasks)
        base.reset_task()
        r = run_episode(env, base, "prior", derive_seed(s, 0))
        agent = teacher.agent(tasks)
        agent.reset_task()
        for j in range(agent.oracle_warmup):  # as evaluate_setting (0 for RMA)
            run_episode(env, agent, agent.explore_mode, derive_seed(s, 100 + j))
        o = run_episode(env, agent, "oracle", derive_seed(s, 0))
    finally:
        env.close()
    robust_m, oracle_m = float(r.mean()), float(o.mean())
    return {
        "robust": robust_m, "oracle": oracle_m, "headroom": headroom(oracle_m, robust_m),
        # the task-noise CIs of this seed's two means (not the across-seed CI of the summary)
        "robust_ci95_tasks": ci95(r)["ci95"], "oracle_ci95_tasks": ci95(o)["ci95"],
        "tasks": tasks, "eval_seed": eval_seed, "seconds": round(time.perf_counter() - t0, 2),
    }


def headroom(oracle: float, robust: float) -> float | None:
    """H = (oracle - robust) / oracle; None when oracle <= 0 (a ratio to a non-positive return
    measures nothing)."""
    return (oracle - robust) / oracle if oracle > 0 else None


def across_seeds(values: list[float]) -> dict[str, Any]:
    """{"mean", "ci95"} over per-seed values: m -/+ t_{0.975, n-1} s / sqrt(n); the CI is None with
    fewer than 2 values, and the mean too with none."""
    import numpy as np

    from robot_meta.learn.evaluate import ci95

    if not values:
        return {"mean": None, "ci95": None}
    c = ci95(np.array(values, dtype=float))
    return {"mean": c["mean"], "ci95": c["ci95"] if len(values) > 1 else None}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting: robust, oracle and H across the seeds evaluated so far (a seed whose H is
    undefined counts in robust and oracle only), and how many seeds that is."""
    out: dict[str, Any] = {}
    for s in SETTINGS:
        cells = [r["eval"][s] for r in runs if s in r.get("eval", {})]
        out[s] = {k: across_seeds([c[k] for c in cells if c[k] is not None])
                  for k in ("robust", "oracle", "headroom")}
        out[s]["seeds"] = len(cells)
    return out


def _ci(c: dict[str, Any], fmt: str) -> str:
    if c["mean"] is None:
        return "n/a"
    ci = "" if c["ci95"] is None else f" [{c['ci95'][0]:{fmt}}, {c['ci95'][1]:{fmt}}]"
    return f"{c['mean']:{fmt}}{ci}"


def markdown(result: dict[str, Any]) -> str:
    """A row per training seed, then the across-seed means with their 95 % CIs."""
    def h(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.3f}"

    lines = [
        f"**{result['robot']} / {result['family']}**: headroom H = (oracle - robust) / oracle, "
        f"{result['tasks']} tasks per setting (eval seed {result['eval_seed']})",
        "",
        "| seed | oracle budget | robust budget | in_dist robust / oracle | in_dist H "
        "| ood robust / oracle | ood H |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        cells = []
        for s in SETTINGS:
            c = r["eval"].get(s)
            cells += ["-", "-"] if c is None else [f"{c['robust']:.1f} / {c['oracle']:.1f}", h(c["headroom"])]
        budget = [f"{r[k]['train']['minutes']:.1f} min, {r[k]['train']['steps'] / 1e6:.2f} M steps"
                  if r[k].get("train") else "-" for k in ROLES]
        lines.append(f"| {r['seed']} | {budget[0]} | {budget[1]} | " + " | ".join(cells) + " |")
    cells = []
    for s in SETTINGS:
        v = result[s]
        cells += [f"{_ci(v['robust'], '.1f')} / {_ci(v['oracle'], '.1f')}", _ci(v["headroom"], "+.3f")]
    lines.append("| mean, 95 % CI | | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _options(p: argparse.ArgumentParser) -> None:
    from robot_meta.sim.robots.robot_def import ROBOT_NAMES

    p.add_argument("--robot", required=True, choices=list(ROBOT_NAMES))
    p.add_argument("--family", default=None, help="task family (default: the robot's headline family)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--tasks", type=int, default=256, help="eval tasks per setting (default 256)")
    p.add_argument("--eval-seed", type=int, default=EVAL_SEED,
                   help=f"seed of the eval tasks and start states, shared by every run (default {EVAL_SEED})")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="env-step budget of every run "
                        "(replaces the launch files' budgets)")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock budget of every run "
                        "(replaces the launch files' budgets)")
    p.add_argument("--out", default="runs/headroom",
                   help="where the runs are trained (default runs/headroom)")
    p.add_argument("--reuse", action="store_true",
                   help="keep finished runs in --out and the evaluations already in its results file")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser, argv: list[str]) -> dict[str, Any]:
    """Train the runs (or keep them with --reuse), evaluate them and save the results file."""
    from robot_meta.errors import UserError
    from robot_meta.launch.cmd_bench import load as load_benchmark
    from robot_meta.runtime.atomic import write_atomic, write_json_atomic
    from robot_meta.sim.randomize import headline_family, load_families

    seeds = load_benchmark("seeds")._ints(p, args.seeds, "--seeds")
    if len(set(seeds)) != len(seeds):
        p.error(f"--seeds: each seed once (got {args.seeds!r})")
    if args.tasks < 2:
        p.error("--tasks: a confidence interval needs at least 2 tasks")
    if args.steps is not None and args.steps <= 0:
        p.error("--steps: give a positive number of env steps")
    if args.minutes is not None and args.minutes <= 0:
        p.error("--minutes: give a positive number of minutes")
    family = args.family or headline_family(args.robot)
    fams = load_families(args.robot)
    if family not in fams:
        p.error(f"--family: {args.robot} has no family {family!r}; families: {', '.join(fams)}")
    check_launch_files(args.robot, family)  # before anything is trained

    # ---- the runs, and what --reuse may keep (checked before any training) ----------------------
    out = Path(args.out)
    names = launch_names(args.robot, family)
    cfgs = {role: role_config(names[role], role, args.steps, args.minutes) for role in ROLES}
    launches = {role: out / "launch" / f"{cfgs[role].run.name}.toml" for role in ROLES}
    run_dirs = {(sd, role): out / f"{cfgs[role].run.name}-s{sd}" for sd in seeds for role in ROLES}
    for (sd, role), run in run_dirs.items():
        if not (run.exists() and any(run.iterdir())):
            continue
        if not args.reuse:
            raise UserError(f"{run} already holds a run; pass --reuse to keep it, or pick another --out")
        cfg = copy.deepcopy(cfgs[role])
        cfg.run.seed = sd  # run.json records the digest of the config trained, seed included
        meta = run / "run.json"
        if meta.exists() and json.loads(meta.read_text()).get("config_sha256") != cfg.digest():
            raise UserError(f"{run} was trained with another config than {names[role]} with seed {sd} and "
                            "this budget: pick another --out to train anew, or give the budget it had")
    for role in ROLES:  # the derived launch files the runs are trained from, kept next to them
        write_atomic(launches[role], cfgs[role].to_toml())
    budgets = {role: {"steps": c.run.steps, "minutes": c.run.minutes} for role, c in cfgs.items()}

    results_path = out / f"headroom_{args.robot}-{family}.json"
    done: dict[tuple[int, str], dict[str, Any]] = {}
    if args.reuse and results_path.exists():
        old = json.loads(results_path.read_text())
        for r in old.get("runs", []):
            for setting, c in r.get("eval", {}).items():
                if (c.get("tasks"), c.get("eval_seed")) == (args.tasks, args.eval_seed):
                    done[(r["seed"], setting)] = c

    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "robot": args.robot, "family": family, "seeds": seeds, "tasks": args.tasks,
        "eval_seed": args.eval_seed, "launch": names,
        "budget": budgets,
        "command": shlex.join(["robot-meta", "bench", "headroom", *argv]),
        "runs": [], "wall_minutes": 0.0,
    }

    def save() -> None:
        result.update(summary(result["runs"]))
        result["wall_minutes"] = round((time.perf_counter() - t_start) / 60, 2)
        write_json_atomic(results_path, result)

    def progress(msg: str) -> None:
        print(f"[headroom {args.robot}/{family}] {msg}", file=sys.stderr, flush=True)

    for seed in seeds:
        row: dict[str, Any] = {"seed": seed, "eval": {}}
        result["runs"].append(row)
        for role in ROLES:
            run = run_dirs[(seed, role)]
            progress(f"seed {seed}: training {role} ({launches[role].stem}) into {run} ...")
            t = train_run(launches[role], run, args.reuse, seed)
            row[role] = {"run": str(run), "train": t}
            progress(f"seed {seed}: {role} {'kept' if t['reused'] else 'trained'}, "
                     f"{t['steps'] / 1e6:.2f} M steps in {t['minutes']:.1f} min")
            save()
        kept = all(row[role]["train"]["reused"] for role in ROLES)
        for setting in SETTINGS:
            c = done.get((seed, setting)) if kept else None  # a retrained run needs a new evaluation
            if c is None:
                progress(f"seed {seed}: evaluating {setting} on {args.tasks} tasks ...")
                c = score(run_dirs[(seed, "oracle")], run_dirs[(seed, "robust")], setting, args.tasks,
                          args.eval_seed)
            h = "n/a" if c["headroom"] is None else f"{c['headroom']:+.3f}"
            progress(f"seed {seed}: {setting} robust {c['robust']:.1f}, oracle {c['oracle']:.1f}, H {h}")
            row["eval"][setting] = c
            save()
    save()
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench headroom`` calls it with its arguments)."""
    args = sys.argv[1:] if argv is None else list(argv)
    return bench_main("headroom", __doc__, args, _options, lambda a, p: _measure(a, p, args), markdown,
                      json_help="print JSON instead of the Markdown table")


if __name__ == "__main__":
    sys.exit(main())
