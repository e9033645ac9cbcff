"""The shared benchmark main(): options, --json vs text, and exit codes."""

from __future__ import annotations

import argparse
import json

import pytest

from robot_meta.launch.bench_cli import Done, bench_main, split_methods


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=2)


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, int] | Done:
    if args.n < 0:
        p.error("--n must be >= 0")
    if args.n == 0:
        print("nothing to measure")
        return Done(3)
    return {"n": args.n, "square": args.n ** 2}


def test_json_or_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main("demo", "A demo.", ["--n", "3", "--json"], _options, _measure, lambda r: "text") == 0
    assert json.loads(capsys.readouterr().out) == {"n": 3, "square": 9}
    assert bench_main("demo", None, ["--n", "3"], _options, _measure, lambda r: f"{r['square']} squared") == 0
    assert capsys.readouterr().out == "9 squared\n"
    # compact JSON on request, and a text report that prints itself
    assert bench_main("demo", None, ["--json"], _options, _measure, print, indent=None) == 0
    assert capsys.readouterr().out == '{"n": 2, "square": 4}\n'
    assert bench_main("demo", None, [], _options, _measure, lambda r: print("printed")) == 0
    assert capsys.readouterr().out == "printed\n"


def test_exit_codes_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main("demo", None, ["--n", "0", "--json"], _options, _measure, print) == 3
    assert capsys.readouterr().out == "nothing to measure\n"
    with pytest.raises(SystemExit) as e:
        bench_main("demo", None, ["--n", "-1"], _options, _measure, print)
    assert e.value.code == 2 and "--n must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_main("demo", "A demo.", ["--help"], _options, _measure, print)
    out = capsys.readouterr().out
    assert out.startswith("usage: robot-meta bench demo") and "--json" in out and "A demo." in out


def test_split_methods() -> None:
    assert split_methods("a, b,", ("a", "b", "c")) == (["a", "b"], None)
    chosen, error = split_methods("a,x", ("a", "b"))
    assert chosen == ["a", "x"] and error == "--methods: unknown x; choose from a, b"
