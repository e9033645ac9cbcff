"""``robot-meta bench sysid``: system identification on the emulator, over hidden parameter sets.

For each of ``--sets`` hidden parameter sets of a robot (drawn from its headline family: even
sets from the training ranges, odd sets with three factors from the OOD ranges, i.e. beyond
the training ranges, kept inside the identifier's search range), with the twin's unmodeled
servo effects on (encoder quantization, stiction, current-loop lag, backlash, supply sag, each
drawn per set), in one run:

1. **Excitation** through the real hardware path: an in-process emulated Dynamixel bus
   (:class:`robot_meta.hardware.emulation.mock_bus.MockBus`, PyBullet twin plant, manual clock so the run is
   faster than real time), the :class:`~robot_meta.calibration.excitation.ExcitationRunner`
   with its motor-driven resets and safety layer. *Robot seconds* is the emulator's simulated
   time from the first reset to the last reading (resets included).
2. **Fit** with :class:`~robot_meta.calibration.sysid.SystemIdentifier` (wall time on this
   machine; the load average is recorded beside it).
3. **Coverage**: over every factor reported identifiable, the fraction whose true value lies
   inside its reported 95 % interval (target >= 90 %).
4. **Held-out prediction**: the excitation's held-out rollout replayed open loop in 2 s windows,
   joint-position RMSE with nominal factors vs identified ones (target: nominal / identified
   >= 5).

Targets (issue 22): coverage >= 90 %, error drop >= 5x, excitation <= 60 robot seconds, fit
<= 2 min on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.launch.bench_cli import bench_main

if TYPE_CHECKING:
    from robot_meta.sim.randomize import FamilySpec
    from robot_meta.sim.robots.robot_def import RobotDef

os.environ.setdefault("MUJOCO_GL", "disable")


def hidden_sets(robot: RobotDef, family: FamilySpec, n: int, seed: int, widen: float
                ) -> list[dict[str, Any]]:
    """n hidden sets {"params": {factor: value}, "servo": {effect: value}, "ood": [names]}."""
    rng = np.random.default_rng(seed)
    out = []
    names = list(family.train)
    for i in range(n):
        ood: list[str] = []
        if i % 2 == 1:
            cand = [k for k in names if k in family.ood and robot.factor(k).kind not in
                    ("pos_noise", "vel_noise")]
            ood = [str(x) for x in rng.choice(cand, size=min(3, len(cand)), replace=False)]
        vals = {}
        for k in names:
            d = (family.ood if k in ood else family.train)[k]
            f = robot.factor(k)
            if d.dist == "randint" or f.integer:
                v = float(rng.integers(int(d.low), int(d.high) + 1))
            elif d.dist == "fixed":
                v = d.low
            else:
                v = float(rng.uniform(d.low, d.high))
            # keep an OOD value inside the search range (the train range widened by `widen`,
            # within the physical bounds), 5 % of it away from a widened end
            t = family.train[k]
            w = t.high - t.low
            lo_s, hi_s = max(t.low - widen * w, f.bounds[0]), min(t.high + widen * w, f.bounds[1])
            m = 0.05 * (hi_s - lo_s)
            v = min(max(v, lo_s + (m if lo_s > f.bounds[0] else 0.0)),
                    hi_s - (m if hi_s < f.bounds[1] else 0.0))
            vals[k] = round(v) if f.integer else v
        servo = {"encoder_quantization": True,
                 "stiction": float(rng.uniform(0.0, 0.05)),
                 "current_lag": float(rng.uniform(0.0, 0.002)),
                 "backlash": float(rng.uniform(0.0, 0.004)),
                 "supply_resistance": float(rng.uniform(0.0, 0.2))}
        out.append({"params": vals, "servo": servo, "ood": ood})
    return out


def _write_params(path: Path, robot: str, h: dict[str, Any]) -> None:
    lines = [f'robot = "{robot}"', "[params]"]
    lines += [f"{k} = {v!r}" for k, v in h["params"].items()]
    lines.append("[servo]")
    for k, v in h["servo"].items():
        lines.append(f"{k} = {'true' if v is True else ('false' if v is False else repr(v))}")
    path.write_text("\n".join(lines) + "\n")


def run_set(robot_name: str, h: dict[str, Any], workdir: Path, family: str | None,
            seconds: float, max_iters: int) -> dict[str, Any]:
    """Excite, fit and score one hidden set."""
    from robot_meta.calibration.excitation import ExcitationRunner, default_config
    from robot_meta.calibration.session_logs import load_recordings
    from robot_meta.calibration.sysid import SysidConfig, SystemIdentifier
    from robot_meta.hardware import Robot
    from robot_meta.hardware.emulation.mock_bus import MockBus
    from robot_meta.sim.robots.robot_def import get_robot

    rdef = get_robot(robot_name)
    pfile = workdir / "hidden.toml"
    _write_params(pfile, robot_name, h)
    bus = MockBus(robot_name, plant="twin", params=str(pfile), clock="manual")
    robot = Robot(bus, rdef.hardware_map, mode="current", watchdog_ms=0, overspeed_factor=None)
    robot.connect()
    q0 = np.array([math.pi if j == "hinge" else 0.0 for j in rdef.joints])
    cfg = default_config(rdef.hardware_map)
    cfg.seconds = seconds
    t_emu0 = bus.emulated.time
    t0 = time.perf_counter()
    try:
        ExcitationRunner(robot, workdir / "excitation", dt=rdef.control_dt, cfg=cfg, q_start=q0,
                         wait=lambda: bus.advance(rdef.control_dt)).run()
    finally:
        robot.close()
        bus.shutdown()
    excite_wall = time.perf_counter() - t0
    robot_s = bus.emulated.time - t_emu0
    fit, held = load_recordings([workdir / "excitation"], rdef)
    sid = SystemIdentifier(rdef, family, SysidConfig(max_iters=max_iters))
    load = os.getloadavg()[0]
    res, _ = sid.fit(fit, held)
    factors = {}
    inside = n_ident = 0
    for k, e in res.estimates.items():
        true = h["params"].get(k, rdef.factor(k).nominal)
        row = {"true": true, "estimate": e.estimate if math.isfinite(e.estimate) else None,
               "half_width": e.half_width if math.isfinite(e.half_width) else None,
               "identifiable": e.identifiable, "ood": k in h["ood"]}
        if e.identifiable:
            lo, hi = e.interval()
            row["inside"] = bool(lo <= true <= hi)
            n_ident += 1
            inside += int(row["inside"])
        else:
            row["reason"] = e.reason
        factors[k] = row
    return {"factors": factors, "identifiable": n_ident, "inside": inside,
            "coverage": inside / n_ident if n_ident else None,
            "heldout": res.heldout, "robot_seconds": robot_s,
            "excitation_seconds": sum(len(r.action) for r in fit + held) * rdef.control_dt,
            "excite_wall_s": excite_wall, "fit_s": res.fit_seconds, "iterations": res.iterations,
            "load_at_fit": load, "inflation": getattr(sid, "inflation", None),
            "servo": h["servo"], "ood": h["ood"]}


def run(robot: str, sets: int, seed: int, family: str | None, seconds: float,
        max_iters: int) -> dict[str, Any]:
    from robot_meta.calibration.sysid import SysidConfig
    from robot_meta.sim.randomize import headline_family, load_family
    from robot_meta.sim.robots.robot_def import get_robot

    rdef = get_robot(robot)
    fam = load_family(rdef, family or headline_family(rdef))
    hs = hidden_sets(rdef, fam, sets, seed, SysidConfig().widen)
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for i, h in enumerate(hs):
        from robot_meta.errors import UserError

        with tempfile.TemporaryDirectory(prefix="bench-sysid-") as d:
            try:
                r = run_set(robot, h, Path(d), family, seconds, max_iters)
            except UserError as e:  # a failed excitation or fit counts, and is reported
                print(f"[{robot} set {i}] failed: {e}", file=sys.stderr, flush=True)
                failed.append({"set": i, "error": str(e), "params": h["params"],
                               "servo": h["servo"]})
                continue
        r["set"] = i
        rows.append(r)
        print(f"[{robot} set {i}] coverage {r['inside']}/{r['identifiable']}, held-out RMSE "
              f"{r['heldout']['nominal']['rmse']:.4g} -> {r['heldout']['identified']['rmse']:.4g} "
              f"({r['heldout']['ratio']:.1f}x), robot {r['robot_seconds']:.1f} s, fit "
              f"{r['fit_s']:.1f} s (load {r['load_at_fit']:.2f})", file=sys.stderr, flush=True)
    n_ident = sum(r["identifiable"] for r in rows)
    inside = sum(r["inside"] for r in rows)
    ratios = [r["heldout"]["ratio"] for r in rows]
    misses: dict[str, int] = {}
    unident: dict[str, int] = {}
    for r in rows:
        for k, f in r["factors"].items():
            if f["identifiable"] and not f["inside"]:
                misses[k] = misses.get(k, 0) + 1
            if not f["identifiable"]:
                unident[k] = unident.get(k, 0) + 1
    return {
        "bench": "sysid", "robot": robot, "family": fam.name, "sets": sets, "seed": seed,
        "sets_failed": len(failed),
        "date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "summary": {
            "coverage": inside / n_ident if n_ident else None, "identifiable_reports": n_ident,
            "inside": inside, "misses_by_factor": misses, "unidentifiable_by_factor": unident,
            "heldout_ratio_median": float(np.median(ratios)),
            "heldout_ratio_min": float(np.min(ratios)),
            # every fitted factor at its estimate (unidentifiable ones included), for contrast
            "heldout_ratio_fit_median": float(np.median(
                [r["heldout"]["nominal"]["rmse"] / r["heldout"]["fit"]["rmse"] for r in rows])),
            "heldout_rmse_nominal_median": float(np.median([r["heldout"]["nominal"]["rmse"]
                                                            for r in rows])),
            "heldout_rmse_identified_median": float(np.median([r["heldout"]["identified"]["rmse"]
                                                               for r in rows])),
            "robot_seconds_max": max(r["robot_seconds"] for r in rows),
            "excitation_seconds": rows[0]["excitation_seconds"],
            "fit_s_max": max(r["fit_s"] for r in rows),
            "fit_s_median": float(np.median([r["fit_s"] for r in rows])),
            "load_at_fit_max": max(r["load_at_fit"] for r in rows),
            "targets": {"coverage>=0.9": bool(n_ident and inside / n_ident >= 0.9),
                        "ratio>=5 (median)": bool(np.median(ratios) >= 5),
                        "robot_s<=60": bool(max(r["robot_seconds"] for r in rows) <= 60),
                        "fit_s<=120": bool(max(r["fit_s"] for r in rows) <= 120)},
        },
        "failed": failed,
        "per_set": rows,
    }


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="arm2", help="arm2, cartpole or all (default arm2)")
    p.add_argument("--sets", type=int, default=8, help="hidden parameter sets (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", help="family to identify (default: the robot's headline)")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds per excitation rollout")
    p.add_argument("--max-iters", type=int, default=25)


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> Any:
    robots = ["arm2", "cartpole"] if args.robot == "all" else [args.robot]
    res = [run(r, args.sets, args.seed, args.family, args.seconds, args.max_iters) for r in robots]
    return res[0] if len(res) == 1 else {"bench": "sysid", "robots": res}


def _text(out: dict[str, Any]) -> None:
    for r in out.get("robots", [out]):
        s = r["summary"]
        print(f"{r['robot']} ({r['family']}, {r['sets']} hidden sets): coverage "
              f"{s['inside']}/{s['identifiable_reports']} = {s['coverage']:.1%}, held-out RMSE "
              f"{s['heldout_rmse_nominal_median']:.4g} -> {s['heldout_rmse_identified_median']:.4g}"
              f" (median ratio {s['heldout_ratio_median']:.1f}x, min {s['heldout_ratio_min']:.1f}x),"
              f" robot {s['robot_seconds_max']:.1f} s max, fit {s['fit_s_max']:.1f} s max")
        print(f"  misses: {s['misses_by_factor']}; unidentifiable: {s['unidentifiable_by_factor']}")


def main(argv: list[str] | None = None) -> int:
    return bench_main("sysid", __doc__, argv, _options, _measure, _text)


if __name__ == "__main__":
    sys.exit(main())
