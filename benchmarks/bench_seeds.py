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

``--baseline LAUNCH`` (a robust PPO launch file) trains the baseline with the same seeds into
``OUT/<baseline>-s<seed>`` and scores it on the same tasks, so each cell also has ``robust``,
``frac_oracle_3`` = adapted[3] / oracle and ``gap_closed_3`` = (adapted[3] - robust) /
(oracle - robust), and the summary gives across-run means and CIs of zero-shot, adapted[1],
adapted[3], oracle, robust, headroom = (oracle - robust) / oracle, frac_oracle_3, gap_closed_3,
and the training minutes and steps (``robot-meta bench table`` runs this for every method).

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
    """The figures of one eval setting: zero-shot, adapted and oracle returns, gains after 1 and
    3 rollouts, and with a baseline the robust return and the fractions of the oracle."""
    out: dict[str, Any] = {
        "zero_shot": round(block["zero_shot"]["mean"], 2),
        "oracle": round(block["oracle"]["mean"], 2),
        "n": block["n_tasks"],
    }
    for k in ("1", "3"):
        g = block["gain"][k]
        out[f"gain_{k}"] = round(g["mean"], 2)
        out[f"gain_{k}_ci95"] = [round(x, 2) for x in g["ci95"]]
        out[f"adapted_{k}"] = round(block["adapted"][k]["mean"], 2)
    robust = block.get("robust")
    out["robust"] = None if robust is None else round(robust["mean"], 2)
    out["frac_oracle_3"] = _round(block["frac_oracle"].get("3"), 4)
    out["gap_closed_3"] = _round(block["gap_closed"].get("3"), 4)
    # the fraction of rollout 3's episodes a servo overload shutdown ended (None: not recorded)
    out["overload_3"] = _round(block.get("overload_episodes", {}).get("adapted_3"), 4)
    return out


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


# Per-cell figures averaged across runs in the summary; headroom is derived from two of them.
ACROSS = ("zero_shot", "adapted_1", "adapted_3", "oracle", "robust", "frac_oracle_3", "gap_closed_3",
          "overload_3")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting: cells whose gain[3] CI excludes 0 (above / below), and the across-run CI of
    the mean gain[3], where each run contributes the mean over its eval seeds."""
    import numpy as np

    from robot_meta.learn.evaluate import ci95

    def across(values: list[float]) -> dict[str, Any] | None:
        if not values:
            return None
        g = ci95(np.array(values))
        return {"mean": round(g["mean"], 4), "ci95": [round(x, 4) for x in g["ci95"]]}

    def run_mean(r: dict[str, Any], key: str, s: str) -> float | None:
        """One run's mean over its eval seeds (None when a cell lacks the figure)."""
        xs = [c[s].get(key) for c in r["eval"].values()]
        return float(np.mean(xs)) if xs and all(x is not None for x in xs) else None

    def per_run(key: str, s: str) -> list[float]:
        return [x for r in runs if (x := run_mean(r, key, s)) is not None]

    out: dict[str, Any] = {}
    for s in SETTINGS:
        cells = [c[s] for r in runs for c in r["eval"].values() if s in c]
        gains = per_run("gain_3", s)
        g = ci95(np.array(gains)) if gains else None
        out[s] = {
            "cells": len(cells),
            "cells_gain_3_above_0": sum(c["gain_3_ci95"][0] > 0 for c in cells),
            "cells_gain_3_below_0": sum(c["gain_3_ci95"][1] < 0 for c in cells),
            "runs": len(gains),
            "gain_3_across_runs": None if g is None else {
                "mean": round(g["mean"], 2), "ci95": [round(x, 2) for x in g["ci95"]]},
        }
        for key in ACROSS:
            out[s][key] = across(per_run(key, s))
        # headroom per run: (oracle - robust) / oracle, on the same tasks
        heads = []
        for r in runs:
            o, b = run_mean(r, "oracle", s), run_mean(r, "robust", s)
            if o is not None and b is not None and o != 0:
                heads.append((o - b) / o)
        out[s]["headroom"] = across(heads)
    trained = [r["train"] for r in runs if r.get("train")]
    out["train_minutes"] = across([float(t["minutes"]) for t in trained])
    out["train_steps"] = across([float(t["steps"]) for t in trained])
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
    for s in SETTINGS:
        v = result["summary"].get(s)
        if v is None:
            continue
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


def study_options(p: argparse.ArgumentParser, eval_seeds: str, out: str) -> None:
    """The options of a seed study (``bench seeds``, ``bench table``)."""
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--eval-seeds", default=eval_seeds, help=f"eval seeds per run (default {eval_seeds})")
    p.add_argument("--tasks", type=int, default=256, help="eval tasks per setting (default 256)")
    p.add_argument("--out", default=out, help=f"where runs and results go (default {out})")
    p.add_argument("--reuse", action="store_true",
                   help="keep finished runs and evaluations in --out (resume a killed study)")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("launch", help="a bundled launch file name or a path to one")
    study_options(p, "1,2", "runs/seeds")
    p.add_argument("--baseline", default=None,
                   help="a robust (PPO) launch file trained with the same seeds and scored on the "
                        "same tasks: adds robust, headroom, frac_oracle and gap_closed")


def study(launch: str, seeds: list[int], eval_seeds: list[int], tasks: int, out: Path, reuse: bool,
          baseline: str | None = None, reuse_baseline: bool | None = None) -> dict[str, Any]:
    """Train ``launch`` (and ``baseline``) per seed, evaluate each run per eval seed, and write
    ``OUT/seeds_<name>.json`` after every evaluation. ``reuse_baseline`` (default ``reuse``)
    keeps finished baseline runs, so several studies can share them."""
    from robot_meta.launch.cmd_bench import load as load_benchmark
    from robot_meta.learn.config import load_config
    from robot_meta.learn.evaluate import evaluate_run
    from robot_meta.runtime.atomic import write_json_atomic

    name = load_config(launch).run.name  # validates the launch file before any training
    bname = load_config(baseline).run.name if baseline else None
    results_path = out / f"seeds_{name}.json"
    done: dict[tuple[int, str], Any] = {}
    if reuse and results_path.exists():
        old = json.loads(results_path.read_text())
        if old.get("baseline_name") == bname:  # cells scored against another baseline are redone
            for r in old.get("runs", []):
                for es, c in r["eval"].items():
                    done[(r["seed"], es)] = c
    bm = load_benchmark("methods")  # its train(): the same budget and --reuse rule as the table
    result: dict[str, Any] = {"launch": launch, "name": name, "tasks": tasks, "eval_seeds": eval_seeds,
                              "baseline": baseline, "baseline_name": bname, "runs": [], "summary": {}}
    for seed in seeds:
        run = out / f"{name}-s{seed}"
        print(f"[{run.name}] training ...", file=sys.stderr, flush=True)
        t = bm.train(launch, run, reuse, seed=seed)
        base_dir = None
        fresh = not t["reused"]
        if baseline:
            base_dir = out / f"{bname}-s{seed}"
            print(f"[{base_dir.name}] training the baseline ...", file=sys.stderr, flush=True)
            bt = bm.train(baseline, base_dir, reuse if reuse_baseline is None else reuse_baseline,
                          seed=seed)
            fresh = fresh or not bt["reused"]
        if fresh:  # a new run: old evaluations of this seed no longer describe it
            done = {k: v for k, v in done.items() if k[0] != seed}
        row: dict[str, Any] = {"seed": seed, "run": str(run), "train": t, "eval": {}}
        result["runs"].append(row)
        for es in eval_seeds:
            if (seed, str(es)) in done:
                row["eval"][str(es)] = done[(seed, str(es))]
                continue
            print(f"[{run.name}] evaluating (eval seed {es}) ...", file=sys.stderr, flush=True)
            table = evaluate_run(run, baseline_dir=base_dir, rollouts=[1, 3], tasks=tasks, seed=es,
                                 settings=SETTINGS, plot=False)
            row["eval"][str(es)] = {s: cell(table[s]) for s in SETTINGS}
            result["summary"] = summary(result["runs"])
            write_json_atomic(results_path, result)
    result["summary"] = summary(result["runs"])
    write_json_atomic(results_path, result)
    return result


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any]:
    seeds = _ints(p, args.seeds, "--seeds")
    eval_seeds = _ints(p, args.eval_seeds, "--eval-seeds")
    if args.tasks < 2:
        p.error("--tasks: a confidence interval needs at least 2 tasks")
    return study(args.launch, seeds, eval_seeds, args.tasks, Path(args.out), args.reuse, args.baseline)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench seeds`` calls it with its arguments)."""
    return bench_main("seeds", __doc__, argv, _options, _measure, markdown,
                      json_help="print JSON instead of the Markdown table")


if __name__ == "__main__":
    sys.exit(main())
