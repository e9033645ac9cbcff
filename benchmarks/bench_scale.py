"""Rollout workers on Ray: training throughput in-process, with 1 and with 2 workers.

    robot-meta bench scale --robot cartpole --json
    python benchmarks/bench_scale.py --robot arm2 --seconds 60 --repeats 2 --json

In one run, the robot's PPO launch file (its default batch size) trains for ``--seconds`` in
each mode, updates, logging and checkpoints included (Ray start-up and actor creation are not
counted: the trainer's clock starts after them):

* ``inproc_sps``: env steps/s in-process (no Ray);
* ``ray1_sps``, ``ray2_sps``: with ``--workers 1`` and ``--workers 2`` on a local Ray instance
  with the machine's CPUs (one worker gets them all; two get one each);
* ``ray_overhead`` = 1 - ray1_sps / inproc_sps;
* ``bytes_per_iteration``: the broadcast weights plus the returned shards (2 workers);
* ``broadcast_ms``: the ``ray.put`` of the weights; ``gather_ms``: the round trip beyond the
  slowest worker's own collection time (2 workers, mean over iterations after the first two).

``--repeats`` runs the three modes that many times, interleaved, and reports the medians.
``projection`` extrapolates the measured per-iteration times to N machines (see
:func:`projection`): it is a projection, not a measurement.

``--compare LAUNCH[,LAUNCH...]`` measures instead whether workers change what is learned: each
launch file trains with the same step budget (``--steps``) for each of ``--seeds``, in-process
and with ``--workers`` workers; each run is scored by its deterministic return on ``--tasks``
held-out training-family tasks (the policy's own adaptation rule running, e.g. RMA's phi).
``same_return`` says whether the workers' mean lies within the in-process 95 % CI over seeds.

    robot-meta bench scale --compare cartpole-all-ppo,cartpole-all-rma --steps 5000000 --json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_meta.launch.bench_cli import Done, bench_main

if TYPE_CHECKING:
    from robot_meta.learn.config import TrainConfig

LAUNCH = {"cartpole": "cartpole-all-ppo", "arm2": "arm2-payload-ppo"}


def train_mode(cfg: TrainConfig, workers: int, seconds: float, out: Path) -> dict[str, Any]:
    """Train ``cfg`` for ``seconds`` with ``workers`` rollout workers (0: in-process); the
    overall steps/s and per-iteration means after the first two iterations (warm-up)."""
    from robot_meta.learn.trainer import Trainer

    c = copy.deepcopy(cfg)
    c.run.minutes, c.run.steps = seconds / 60.0, 0
    c.rma.phase2_fraction = 0.0
    s = Trainer(c, out, progress=False, tensorboard=False, workers=workers).train()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steady = rows[2:] or rows
    it_steps = c.ppo.horizon * c.run.num_envs

    def mean(key: str) -> float | None:
        vals = [r[key] for r in steady if r.get(key) is not None]
        return statistics.fmean(vals) if vals else None

    res: dict[str, Any] = {"sps": s["steps_per_second"], "iterations": s["iterations"],
                           "iteration_ms": 1e3 * statistics.fmean(it_steps / r["sps"] for r in steady)}
    if workers:
        res["broadcast_ms"] = mean("workers/broadcast_ms")
        res["gather_ms"] = mean("workers/gather_ms")
        res["bytes_per_iteration"] = mean("workers/bytes")
        # the slowest worker's collection, per iteration
        res["collect_ms"] = 1e3 * statistics.fmean(
            max(r[f"workers/{k}/collect_s"] for k in range(workers)) for r in steady)
        # what remains of an iteration: the learner's merge + update (+ scheduling)
        res["update_ms"] = res["iteration_ms"] - res["collect_ms"] - res["broadcast_ms"] - res["gather_ms"]
    return res


def projection(ray1: dict[str, Any], ray2: dict[str, Any], it_steps: int,
               bandwidth_mb_s: float = 117.0) -> dict[str, Any]:
    """A projection (not a measurement) of a synchronous iteration on N single-worker machines:

        t(N) = C / N + U + broadcast + gather + bytes / bandwidth,

    with C the collection time of the whole batch by one worker (ray1 ``collect_ms``), U the
    learner's merge and update (ray2 ``update_ms``), broadcast and gather as measured with 2
    local workers, and the bytes of an iteration sent once over a network of ``bandwidth_mb_s``
    (1 GbE: ~117 MB/s; the learner's link carries all shards). The learner is the bottleneck
    from the N where C / N falls below the rest: N* = C / (U + broadcast + gather + transfer).
    """
    C, U = ray1["collect_ms"], ray2["update_ms"]
    transfer_ms = 1e3 * ray2["bytes_per_iteration"] / (bandwidth_mb_s * 1e6)
    comm = ray2["broadcast_ms"] + ray2["gather_ms"] + transfer_ms
    rows = []
    for n in (1, 2, 4, 8, 16, 32):
        t = C / n + U + comm
        rows.append({"machines": n, "iteration_ms": round(t, 1), "sps": round(it_steps / (t / 1e3))})
    return {"note": "projection from measured per-iteration times, not a measurement",
            "collect_ms_1_worker": round(C, 1), "update_ms": round(U, 1), "comm_ms": round(comm, 1),
            "bandwidth_mb_s": bandwidth_mb_s, "learner_bound_from_machines": round(C / (U + comm), 1),
            "rows": rows}


def held_out_return(run: Path, tasks: int, seed: int = 7) -> float:
    """Mean deterministic return of a trained run on ``tasks`` held-out tasks of its training
    family (mode ``adapt``: context methods infer their context online)."""
    import numpy as np

    from robot_meta.learn.evaluate import load_run, run_episode
    from robot_meta.sim import make_vec_env
    from robot_meta.sim.randomize import load_family, sample_params

    cfg, algo = load_run(run)
    env = make_vec_env(cfg.run.robot, cfg.run.family, tasks, seed, task=cfg.run.task or None)
    fam = load_family(cfg.run.robot, cfg.run.family)
    env.set_tasks(sample_params(env.robot, fam.ranges("train"), np.random.default_rng(seed), tasks))
    ret = float(run_episode(env, algo.agent(tasks), "adapt", seed).mean())
    env.close()
    return ret


def compare(launches: list[str], seeds: list[int], steps: int, tasks: int, workers: int,
            root: Path) -> dict[str, Any]:
    """Per launch file: held-out return of in-process and ``workers``-worker runs over seeds,
    each with its 95 % CI over seeds, and whether the workers' mean lies in the in-process CI."""
    import numpy as np

    from robot_meta.learn.config import load_config
    from robot_meta.learn.evaluate import ci95
    from robot_meta.learn.trainer import Trainer

    out: dict[str, Any] = {}
    for launch in launches:
        rets: dict[str, list[float]] = {"inproc": [], f"ray{workers}": []}
        for seed in seeds:
            for mode, w in (("inproc", 0), (f"ray{workers}", workers)):
                cfg = load_config(launch)
                cfg.run.seed, cfg.run.steps, cfg.run.minutes = seed, steps, 0.0
                run = root / f"{cfg.run.name}-{mode}-s{seed}"
                Trainer(cfg, run, progress=False, tensorboard=False, workers=w).train()
                rets[mode].append(held_out_return(run, tasks))
        base, other = ci95(np.array(rets["inproc"])), ci95(np.array(rets[f"ray{workers}"]))
        out[launch] = {"returns": rets, "inproc": base, f"ray{workers}": other,
                       "same_return": bool(base["ci95"][0] <= other["mean"] <= base["ci95"][1])}
    return out


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="cartpole", choices=sorted(LAUNCH))
    p.add_argument("--launch", help="a launch file instead of the robot's PPO one")
    p.add_argument("--seconds", type=float, default=60.0, help="training time per mode and repeat")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats of the three modes")
    p.add_argument("--compare", metavar="LAUNCH[,LAUNCH]",
                   help="instead of throughput: held-out return in-process vs with workers, over seeds")
    p.add_argument("--seeds", default="0,1,2", help="--compare: training seeds")
    p.add_argument("--steps", type=int, default=5_000_000, help="--compare: step budget of every run")
    p.add_argument("--tasks", type=int, default=64, help="--compare: held-out tasks per evaluation")
    p.add_argument("--workers", type=int, default=2, help="--compare: rollout workers")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any] | Done:
    if args.seconds <= 0 or args.repeats < 1:
        print("error: --seconds must be > 0 and --repeats >= 1", file=sys.stderr)
        return Done(2)
    import logging

    import ray

    from robot_meta.learn.config import load_config

    if args.compare:
        try:
            seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            print(f"error: --seeds: expected integers like 0,1,2, got {args.seeds!r}", file=sys.stderr)
            return Done(2)
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
        try:
            with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
                res = compare(args.compare.split(","), seeds, args.steps, args.tasks, args.workers, Path(tmp))
        finally:
            ray.shutdown()
        return {"steps": args.steps, "seeds": seeds, "tasks": args.tasks, "workers": args.workers,
                "load_avg": [round(x, 2) for x in os.getloadavg()], "launches": res}

    launch = args.launch or LAUNCH[args.robot]
    cfg = load_config(launch)
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {"inproc": [], "ray1": [], "ray2": []}
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
            for r in range(args.repeats):
                for mode, workers in (("inproc", 0), ("ray1", 1), ("ray2", 2)):
                    runs[mode].append(train_mode(cfg, workers, args.seconds, Path(tmp) / f"{mode}-{r}"))
    finally:
        ray.shutdown()

    def med(mode: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[mode])

    it_steps = cfg.ppo.horizon * cfg.run.num_envs
    ray1 = {k: med("ray1", k) for k in runs["ray1"][0]}
    ray2 = {k: med("ray2", k) for k in runs["ray2"][0]}
    result: dict[str, Any] = {
        "robot": cfg.run.robot, "launch": launch, "num_envs": cfg.run.num_envs, "horizon": cfg.ppo.horizon,
        "seconds": args.seconds, "repeats": args.repeats, "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "inproc_sps": round(med("inproc", "sps"), 1),
        "ray1_sps": round(ray1["sps"], 1),
        "ray2_sps": round(ray2["sps"], 1),
        "ray_overhead": round(1.0 - ray1["sps"] / med("inproc", "sps"), 4),
        "bytes_per_iteration": round(ray2["bytes_per_iteration"]),
        "broadcast_ms": round(ray2["broadcast_ms"], 2),
        "gather_ms": round(ray2["gather_ms"], 2),
        "projection": projection(ray1, ray2, it_steps),
        "details": runs,
    }
    return result


def _text(res: dict[str, Any]) -> str | None:
    if "launches" in res:  # --compare
        w = f"ray{res['workers']}"
        lines = [f"{launch}: in-process {r['inproc']['mean']:.1f} [{r['inproc']['ci95'][0]:.1f}, "
                 f"{r['inproc']['ci95'][1]:.1f}], {res['workers']} workers {r[w]['mean']:.1f}; "
                 f"same return: {r['same_return']}" for launch, r in res["launches"].items()]
        return "\n".join(lines) or None
    return (f"{res['launch']}: in-process {res['inproc_sps']:,.0f} steps/s, "
            f"Ray 1 worker {res['ray1_sps']:,.0f}, Ray 2 workers {res['ray2_sps']:,.0f}; "
            f"overhead {100 * res['ray_overhead']:.1f} %; "
            f"{res['bytes_per_iteration'] / 1e6:.2f} MB/iteration, broadcast {res['broadcast_ms']:.1f} ms, "
            f"gather {res['gather_ms']:.1f} ms (load {res['load_avg_before'][0]:.2f})")


def main(argv: list[str] | None = None) -> int:
    """Entry point (``robot-meta bench scale`` calls it with its arguments)."""
    return bench_main("scale", __doc__, argv, _options, _measure, _text)


if __name__ == "__main__":
    sys.exit(main())
