"""The ``main()`` that every ``benchmarks/bench_*.py`` shares.

``robot-meta bench NAME [options] [--json]`` (:mod:`robot_meta.launch.cmd_bench`) calls the
script's ``main(argv)``, which hands its options, its measurement and its text report to
:func:`bench_main`: one parser (``prog="robot-meta bench NAME"``, the script's docstring as the
description, ``--json`` last), one place that prints the result as JSON or as text, one exit code.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class Done(NamedTuple):
    """What a measurement returns when it has printed its own output (or an error): the exit code."""

    code: int


Options = Callable[[argparse.ArgumentParser], object]  # adds the benchmark's own options
Measure = Callable[[argparse.Namespace, argparse.ArgumentParser], Any]
Text = Callable[[Any], "str | None"]


def bench_main(name: str, doc: str | None, argv: Sequence[str] | None, options: Options, measure: Measure,
               text: Text, *, json_help: str | None = "print JSON only", indent: int | None = 2,
               raw_doc: bool = True) -> int:
    """Parse ``argv`` with the benchmark's ``options`` and ``--json``, run ``measure(args, parser)``
    and print its result: ``json.dumps(result, indent=indent)`` with ``--json``, else ``text(result)``
    (printed when it returns a string; it may print itself and return None). A measurement that
    returns :class:`Done` has printed already: its code is the exit code. Returns 0 otherwise.

    ``raw_doc`` keeps the docstring's line breaks in ``--help``; ``parser.error`` exits with 2."""
    fmt = argparse.RawDescriptionHelpFormatter if raw_doc else argparse.HelpFormatter
    p = argparse.ArgumentParser(prog=f"robot-meta bench {name}", description=doc, formatter_class=fmt)
    options(p)
    p.add_argument("--json", action="store_true", help=json_help)
    args = p.parse_args(argv)
    result = measure(args, p)
    if isinstance(result, Done):
        return result.code
    if args.json:
        print(json.dumps(result, indent=indent))
    else:
        out = text(result)
        if out is not None:
            print(out)
    return 0


def add_methods_option(p: argparse.ArgumentParser, methods: Sequence[str]) -> None:
    """``--methods a,b,...``: a comma-separated subset of ``methods`` (default: all of them)."""
    p.add_argument("--methods", default=",".join(methods),
                   help="comma-separated subset of " + ",".join(methods))


def split_methods(value: str, methods: Sequence[str]) -> tuple[list[str], str | None]:
    """The methods a ``--methods`` value names, and the error message when some are unknown."""
    chosen = [m.strip() for m in value.split(",") if m.strip()]
    bad = [m for m in chosen if m not in methods]
    if bad:
        return chosen, f"--methods: unknown {', '.join(bad)}; choose from {', '.join(methods)}"
    return chosen, None
