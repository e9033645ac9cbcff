"""``robot-meta bench NAME ...``: run a benchmark script from ``benchmarks/bench_NAME.py``.

Benchmarks measure side by side in one run and print JSON with ``--json``; their results are
recorded in BENCHMARKS.md with the command that produced them. They ship with the source
checkout (not the wheel), next to the ``robot_meta`` package.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

from robot_meta.errors import UserError

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def available() -> list[str]:
    """Names of the benchmark scripts present in the checkout."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    names = available()
    p = sub.add_parser("bench", help="run a benchmark (sim, bus, train, meta, infer, headroom, sysid, ...)",
                       description="Run a benchmark script; `robot-meta bench NAME --help` shows "
                                   f"its options. Available: {', '.join(names) or 'none'}.")
    p.add_argument("name", help="benchmark name: " + ", ".join(names))
    p.add_argument("args", nargs=argparse.REMAINDER, help="options passed to the benchmark")
    p.set_defaults(func=run)


def load(name: str) -> ModuleType:
    """The benchmark module ``benchmarks/bench_NAME.py``, loaded by path (benchmarks ship with
    the source checkout, not as an installed package). ``step-info`` and ``step_info`` are the
    same benchmark."""
    name = name.replace("-", "_")
    path = BENCH_DIR / f"bench_{name}.py"
    if not path.exists():
        raise UserError(f"no benchmark {name!r}; available: {', '.join(available())} "
                        f"(benchmarks live in {BENCH_DIR}, part of the source checkout)")
    spec = importlib.util.spec_from_file_location(f"benchmarks.bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(args: argparse.Namespace) -> int:
    return int(load(args.name).main(args.args) or 0)
