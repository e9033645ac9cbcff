"""``robot-meta sim``: inspect robots and task families."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim", help="inspect robots, factors and task families in simulation",
                       description="Inspect the simulated robots and their task families.")
    ss = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    f = ss.add_parser("factors", help="list a robot's randomizable factors and family ranges",
                      description="Print factor names, units, nominal values, and the training "
                                  "and OOD ranges of every family.")
    f.add_argument("robot", help="a robot name or the path of a robot folder")
    f.add_argument("--family", help="a family file (TOML) instead of the bundled families")
    f.add_argument("--json", action="store_true", help="print JSON")
    f.set_defaults(func=run_factors)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def factors_table(robot: str, family_file: str | None = None) -> dict[str, Any]:
    """The factor table of a robot as plain data."""
    from robot_meta.errors import UserError
    from robot_meta.sim.randomize import load_families
    from robot_meta.sim.robots import get_robot

    try:
        rdef = get_robot(robot)
    except ValueError as e:
        raise UserError(str(e)) from e
    fams = load_families(rdef, family_file)

    def rng(d: Any) -> dict[str, Any]:
        return {"dist": d.dist, "low": d.low, "high": d.high, "text": d.describe()}

    def num(x: float) -> float | str:
        return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")

    factors = []
    for f in rdef.factors:
        factors.append({
            "name": f.name, "kind": f.kind, "target": f.target, "unit": f.unit,
            "nominal": f.nominal, "bounds": [num(b) for b in f.bounds],
            "norm_range": list(f.norm_range), "doc": f.doc,
            "families": {
                name: {s: rng(fam.ranges(s)[f.name]) for s in ("train", "ood")
                       if f.name in fam.ranges(s)}
                for name, fam in fams.items()
            },
        })
    return {
        "robot": rdef.name,
        "normalization": "e = 2 (x - lo) / (hi - lo) - 1 with (lo, hi) = norm_range",
        "families": {n: fam.description for n, fam in fams.items()},
        "factors": factors,
    }


def run_factors(args: argparse.Namespace) -> int:
    table = factors_table(args.robot, args.family)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    fams = list(table["families"])
    head = f"{'factor':24s} {'unit':14s} {'nominal':>8s}  " + "  ".join(
        f"{n + ' train / ood':34s}" for n in fams)
    print(f"robot {table['robot']}: {len(table['factors'])} factors")
    print(head)
    for f in table["factors"]:
        cells = []
        for n in fams:
            r = f["families"][n]
            cells.append(f"{r['train']['text'] + ' / ' + r['ood']['text'] if r else '-':34s}")
        print(f"{f['name']:24s} {f['unit']:14s} {f['nominal']:8.4g}  " + "  ".join(cells))
    return 0
