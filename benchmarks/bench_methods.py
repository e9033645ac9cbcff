"""The method comparison table: every meta-RL method on one robot, trained with its bundled
launch file's default budget and evaluated on the same held-out tasks.

    robot-meta bench methods --robot cartpole --out runs/table --json
    robot-meta bench methods --robot arm2 --methods maml,rl2 --reuse

For each method (ppo, rma, pearl, maml, fomaml, reptile, rl2) it trains ``<robot>-<family>-<method>``
into ``OUT/<launch>`` (``--reuse`` keeps a finished run there), then runs ``robot-meta eval`` with
the PPO run as the robust baseline, ``--rollouts 1,3`` and the robot's twin parameter files from
``examples/hidden``. It prints one row per method: for ``in_dist``, ``ood`` and each twin file,
zero-shot, adapted after 3 rollouts, oracle and robust means, and the adaptation gain
(adapted[3] - zero-shot) with its 95 % confidence interval; plus the training budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from robot_meta.launch.bench_cli import Done, add_methods_option, bench_main, split_methods

METHODS = ("ppo", "rma", "pearl", "maml", "fomaml", "reptile", "rl2")
FAMILY = {"cartpole": "all", "arm2": "payload"}
TWINS = {"cartpole": ("cartpole_heavy", "cartpole_beyond"), "arm2": ("arm2_payload", "arm2_beyond")}
ROOT = Path(__file__).resolve().parents[1]


def train(launch: str, out: Path, reuse: bool, seed: int | None = None) -> dict[str, Any]:
    """Train ``launch`` into ``out`` with its default budget (or keep a finished run); ``seed``
    overrides the launch file's run seed."""
    from robot_meta.learn.checkpoint import FILENAME, load_checkpoint
    from robot_meta.learn.config import load_config
    from robot_meta.learn.trainer import Trainer

    if reuse and (out / FILENAME).exists():
        ck = load_checkpoint(out / FILENAME)
        if ck.get("final"):
            return {"steps": int(ck["steps"]), "minutes": round(float(ck["elapsed"]) / 60, 2), "reused": True}
    cfg = load_config(launch)
    if seed is not None:
        cfg.run.seed = seed
    s = Trainer(cfg, out, progress=False, tensorboard=False, resume=(out / FILENAME).exists()).train()
    return {"steps": s["steps"], "minutes": round(float(s["minutes"]), 2), "reused": False}  # as reused


def summarize(block: dict[str, Any]) -> dict[str, Any]:
    """The table cells of one eval setting."""
    r = block.get("robust")
    return {
        "zero_shot": round(block["zero_shot"]["mean"], 1),
        # the zero-shot rollouts that share seeds with adapted[3] (what the gain is paired with)
        "zero_shot_paired_3": round(block["adapted"]["3"]["mean"] - block["gain"]["3"]["mean"], 1),
        "adapted_3": round(block["adapted"]["3"]["mean"], 1),
        # two decimals: a CI bound of +0.04 must not print as +0.0
        "gain_3": round(block["gain"]["3"]["mean"], 2),
        "gain_3_ci95": [round(x, 2) for x in block["gain"]["3"]["ci95"]],
        "oracle": round(block["oracle"]["mean"], 1),
        "robust": None if r is None else round(r["mean"], 1),
        "n": block["n_tasks"],
    }


def markdown(robot: str, rows: dict[str, Any]) -> str:
    """One Markdown table: a row per method, in_dist / ood / twin cells."""
    settings = [k for k in next(iter(rows.values()))["eval"]]
    first = next(iter(rows.values()))["eval"]
    head = "| method | budget | " + " | ".join(
        f"{s} (n={first[s]['n']}): zero-shot → adapted[3] (gain, 95 % CI) / oracle" for s in settings
    )
    lines = [
        f"**{robot}** (robust = PPO: "
        + ", ".join(f"{s} {rows['ppo']['eval'][s]['zero_shot']}" for s in settings if "ppo" in rows)
        + ")",
        "",
        head + " |",
        "|" + "---|" * (len(settings) + 2),
    ]
    for m, row in rows.items():
        cells = []
        for s in settings:
            c = row["eval"][s]
            lo, hi = c["gain_3_ci95"]
            gain = f"{c['gain_3']:+.2f}, [{lo:+.2f}, {hi:+.2f}]"
            cells.append(f"{c['zero_shot_paired_3']} → {c['adapted_3']} ({gain}) / {c['oracle']}")
        lines.append(
            f"| {m} | {row['train']['minutes']:.1f} min, {row['train']['steps'] / 1e6:.2f} M steps | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="cartpole", choices=sorted(FAMILY))
    add_methods_option(p, METHODS)
    p.add_argument("--out", default="runs/table", help="where the runs are trained (default runs/table)")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep finished runs found in --out, and their eval.json when it is newer",
    )
    p.add_argument("--tasks", type=int, default=None, help="eval tasks per sim setting (launch file default)")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any] | Done:
    methods, error = split_methods(args.methods, METHODS)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return Done(2)
    from robot_meta.learn.evaluate import evaluate_run

    out = Path(args.out)
    fam = FAMILY[args.robot]
    twins = [ROOT / "examples" / "hidden" / f"{t}.toml" for t in TWINS[args.robot]]
    baseline = out / f"{args.robot}-{fam}-ppo"
    order = ["ppo"] + [m for m in methods if m != "ppo"]  # the baseline first
    rows: dict[str, Any] = {}
    for m in order:
        launch = f"{args.robot}-{fam}-{m}"
        print(f"[{launch}] training ...", file=sys.stderr, flush=True)
        t = train(launch, out / launch, args.reuse)
        run = out / launch
        ev = run / "eval.json"
        if args.reuse and ev.exists() and ev.stat().st_mtime > (run / "checkpoint.pt").stat().st_mtime:
            table = json.loads(ev.read_text())  # evaluated since it was trained: keep it
        else:
            print(f"[{launch}] evaluating ...", file=sys.stderr, flush=True)
            table = evaluate_run(run, baseline_dir=baseline, twins=twins, rollouts=[1, 3], tasks=args.tasks)
        if m in methods:
            rows[m] = {"train": t, "eval": {k: summarize(v) for k, v in table.items()}}
    result = {"robot": args.robot, "runs": str(out), "methods": rows}
    (out / f"table_{args.robot}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench methods`` calls it with its arguments)."""
    return bench_main("methods", __doc__, argv, _options, _measure,
                      lambda r: markdown(r["robot"], r["methods"]),
                      json_help="print JSON instead of the Markdown table")


if __name__ == "__main__":
    sys.exit(main())
