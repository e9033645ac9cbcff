"""Does a launch file's adaptation gain survive retraining? One launch file, several training
seeds, each run evaluated on fresh held-out tasks with several eval seeds.

    robot-meta bench seeds cartpole-all-fomaml --seeds 0,1,2 --eval-seeds 1,2 --tasks 256
    robot-meta bench seeds my_variant.toml --seeds 0,1 --out runs/seeds --reuse --json

A minutes budget trains a different policy every time, so one run whose gain CI excludes 0 can be
luck: the CI of one evaluation covers the noise of its tasks, not the spread between trained runs.
This benchmark measures both. Each seed trains ``LAUNCH`` with its default budget into
``OUT/<name>-s<seed>`` (``--reuse`` keeps a finished run), then ``robot-meta eval``'s
``evaluate_run`` scores it with ``--rollouts 1,3`` for each eval seed. Per (run, eval seed) it
reports, for ``in_dist`` and ``ood``: zero-shot, oracle and the paired gains after 1 and 3
rollouts with their 95 % CIs. The summary counts the cells whose gain[3] CI lies above 0 and
below 0, and gives the mean gain[3] across the trained runs (each run averaged over its eval
seeds) with a Student-t 95 % CI over runs: that interval is the one to read when asking whether
the method adapts, rather than whether one run did.

Results are written to ``OUT/seeds_<name>.json`` after every evaluation, atomically, so an
interrupted study keeps what it measured; ``--reuse`` continues it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from robot_meta.launch.bench_cli import bench_main

SETTINGS = ("in_dist", "ood")


def cell(block: dict[str, Any]) -> dict[str, Any]:
    """The figures of one eval setting: zero-shot, oracle, gains after 1 and 3 rollouts."""
    out: dict[str, Any] = {
        "zero_shot": round(block["zero_shot"]["mean"], 2),
        "oracle": round(block["oracle"]["mean"], 2),
        "n": block["n_tasks"],
    }
    for k in ("1", "3"):
        g = block["gain"][k]
        out[f"gain_{k}"] = round(g["mean"], 2)
        out[f"gain_{k}_ci95"] = [round(x, 2) for x in g["ci95"]]
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting: cells whose gain[3] CI excludes 0 (above / below), and the across-run CI of
    the mean gain[3], where each run contributes the mean over its eval seeds."""
    import numpy as np

    from robot_meta.learn.evaluate import ci95

    out: dict[str, Any] = {}
    for s in SETTINGS:
        cells = [c[s] for r in runs for c in r["eval"].values() if s in c]
        per_run = [np.mean([c[s]["gain_3"] for c in r["eval"].values()]) for r in runs if r["eval"]]
        g = ci95(np.array(per_run)) if per_run else None
        out[s] = {
            "cells": len(cells),
            "cells_gain_3_above_0": sum(c["gain_3_ci95"][0] > 0 for c in cells),
            "cells_gain_3_below_0": sum(c["gain_3_ci95"][1] < 0 for c in cells),
            "runs": len(per_run),
            "gain_3_across_runs": None if g is None else {
                "mean": round(g["mean"], 2), "ci95": [round(x, 2) for x in g["ci95"]]},
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    """A row per (training seed, eval seed), then the summary."""
    def gain(c: dict[str, Any], k: str) -> str:
        lo, hi = c[f"gain_{k}_ci95"]
        return f"{c[f'gain_{k}']:+.2f} [{lo:+.2f}, {hi:+.2f}]"

    lines = [
        f"**{result['launch']}**, {result['tasks']} tasks per evaluation",
        "",
        "| seed | budget | eval seed | in_dist zero-shot / oracle | in_dist gain[1] | in_dist gain[3] "
        "| ood gain[3] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        t = r["train"]
        for es, c in r["eval"].items():
            i, o = c["in_dist"], c["ood"]
            lines.append(
                f"| {r['seed']} | {t['minutes']:.1f} min, {t['steps'] / 1e6:.2f} M steps | {es} "
                f"| {i['zero_shot']:.1f} / {i['oracle']:.1f} | {gain(i, '1')} | {gain(i, '3')} "
                f"| {gain(o, '3')} |"
            )
    lines.append("")
    for s, v in result["summary"].items():
        g = v["gain_3_across_runs"]
        across = "n/a" if g is None else f"{g['mean']:+.2f} [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]"
        lines.append(
            f"* {s}: gain[3] CI above 0 in {v['cells_gain_3_above_0']} of {v['cells']} evaluations, "
            f"below 0 in {v['cells_gain_3_below_0']}; mean gain[3] across {v['runs']} runs {across}"
        )
    return "\n".join(lines)


def _ints(p: argparse.ArgumentParser, text: str, flag: str) -> list[int]:
    """Comma-separated seeds; a usage error (exit 2) that names the flag otherwise."""
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        p.error(f"{flag}: give comma-separated integers, e.g. 0,1,2 (got {text!r})")
    if not vals:
        p.error(f"{flag}: give at least one seed")
    return vals


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("launch", help="a bundled launch file name or a path to one")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--eval-seeds", default="1,2", help="eval seeds per run (default 1,2)")
    p.add_argument("--tasks", type=int, default=256, help="eval tasks per setting (default 256)")
    p.add_argument("--out", default="runs/seeds", help="where the runs are trained (default runs/seeds)")
    p.add_argument("--reuse", action="store_true",
                   help="keep finished runs in --out and the evaluations already in its results file")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any]:
    seeds = _ints(p, args.seeds, "--seeds")
    eval_seeds = _ints(p, args.eval_seeds, "--eval-seeds")
    if args.tasks < 2:
        p.error("--tasks: a confidence interval needs at least 2 tasks")

    from robot_meta.launch.cmd_bench import load as load_benchmark
    from robot_meta.learn.config import load_config
    from robot_meta.learn.evaluate import evaluate_run
    from robot_meta.runtime.atomic import write_json_atomic

    name = load_config(args.launch).run.name  # validates the launch file before any training
    out = Path(args.out)
    results_path = out / f"seeds_{name}.json"
    done: dict[tuple[int, str], Any] = {}
    if args.reuse and results_path.exists():
        for r in json.loads(results_path.read_text()).get("runs", []):
            for es, c in r["eval"].items():
                done[(r["seed"], es)] = c
    bm = load_benchmark("methods")  # its train(): the same budget and --reuse rule as the table
    result: dict[str, Any] = {"launch": args.launch, "name": name, "tasks": args.tasks,
                              "eval_seeds": eval_seeds, "runs": [], "summary": {}}
    for seed in seeds:
        run = out / f"{name}-s{seed}"
        print(f"[{run.name}] training ...", file=sys.stderr, flush=True)
        t = bm.train(args.launch, run, args.reuse, seed=seed)
        if not t["reused"]:  # a new run: old evaluations of this seed no longer describe it
            done = {k: v for k, v in done.items() if k[0] != seed}
        row: dict[str, Any] = {"seed": seed, "run": str(run), "train": t, "eval": {}}
        result["runs"].append(row)
        for es in eval_seeds:
            if (seed, str(es)) in done:
                row["eval"][str(es)] = done[(seed, str(es))]
                continue
            print(f"[{run.name}] evaluating (eval seed {es}) ...", file=sys.stderr, flush=True)
            table = evaluate_run(run, rollouts=[1, 3], tasks=args.tasks, seed=es, settings=SETTINGS,
                                 plot=False)
            row["eval"][str(es)] = {s: cell(table[s]) for s in SETTINGS}
            result["summary"] = summary(result["runs"])
            write_json_atomic(results_path, result)
    result["summary"] = summary(result["runs"])
    write_json_atomic(results_path, result)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench seeds`` calls it with its arguments)."""
    return bench_main("seeds", __doc__, argv, _options, _measure, markdown,
                      json_help="print JSON instead of the Markdown table")


if __name__ == "__main__":
    sys.exit(main())
