"""Task families as data, and randomization as a pure function.

A family (see ``robots/<name>/families.toml``) names, for each randomized factor, a training
distribution and an out-of-distribution (OOD) distribution for evaluation. Sampling is

    params = sample_params(robot, ranges, rng, n)      # pure: (nominal, ranges, rng) -> params

and returns an (n, F) array in the robot's factor order: nominal values, with each listed factor
replaced by a draw from its distribution. Nothing here touches a physics engine; the backends
apply params to an MjModel (without recompiling) or to the PyBullet twin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta import toml_config
from robot_meta.errors import UserError
from robot_meta.hardware.servos import Mounting, ServoEffects, ServoSpecError
from robot_meta.robot_registry import UnknownRobotError, robot_folder
from robot_meta.sim.robots.robot_def import RobotDef, get_robot
from robot_meta.sim.task import InitSpec

DISTRIBUTIONS = ("uniform", "loguniform", "randint", "fixed")
SPLITS = ("train", "ood")


class SpecError(UserError, ValueError):
    """A task-family or parameter file is invalid; the message names the file and field."""


@dataclass(frozen=True)
class Distribution:
    """A one-dimensional distribution over a factor's values."""

    dist: str
    low: float
    high: float

    def describe(self) -> str:
        return {
            "uniform": f"U({self.low:g}, {self.high:g})",
            "loguniform": f"logU({self.low:g}, {self.high:g})",
            "randint": f"randint{{{int(self.low)}..{int(self.high)}}}",
            "fixed": f"{self.low:g}",
        }[self.dist]


@dataclass(frozen=True)
class FamilySpec:
    """A named task family of one robot: training and OOD distributions per factor."""

    robot: str
    name: str
    description: str
    train: Mapping[str, Distribution]
    ood: Mapping[str, Distribution]
    init: InitSpec = field(default_factory=InitSpec)
    resample_prob: float = 0.0  # per-step probability of redrawing an env's params (RMA-style)

    def ranges(self, split: str) -> Mapping[str, Distribution]:
        """The distributions of one split, ``train`` or ``ood``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        return self.train if split == "train" else self.ood


# ---------------------------------------------------------------------------------------------
# Sampling (pure)


def nominal_params(robot: RobotDef) -> np.ndarray:
    """The robot's nominal factor values, shape (F,)."""
    return np.array([f.nominal for f in robot.factors], dtype=float)


def sample_params(
    robot: RobotDef, ranges: Mapping[str, Distribution], rng: np.random.Generator, n: int = 1
) -> np.ndarray:
    """Draw n parameter vectors (n, F): nominal values with every listed factor redrawn.

    Pure: the only state used is ``rng``. Each factor's distribution is written beside it in
    the family file. All factors are drawn from one (n, F) block of U(0, 1) numbers:
      uniform:    x = low + (high - low) u                      ~ U(low, high)
      loguniform: x = exp(log low + (log high - log low) u)      log x ~ U(log low, log high)
      randint:    x = low + floor((high - low + 1) u)            ~ uniform on {low..high}
      fixed:      x = low
    """
    sampler = _compiled(robot, ranges)
    return sampler.from_uniform(rng.random((n, sampler.num_drawn)))


class ParamSampler:
    """:func:`sample_params` for one robot and range table, compiled once.

    ``from_uniform(u)`` maps an (n, num_drawn) block of U(0, 1) numbers to (n, F) params by the
    formulas of :func:`sample_params`, which is ``from_uniform(rng.random((n, num_drawn)))``.
    The env core keeps one per env, so a draw costs no table lookup.
    """

    def __init__(self, robot: RobotDef, ranges: Mapping[str, Distribution]):
        names = robot.factor_names
        items = sorted(ranges.items(), key=lambda kv: names.index(kv[0]))
        self.nominal = nominal_params(robot)
        self.cols = np.array([names.index(k) for k, _ in items], dtype=np.intp)
        self.num_drawn = len(items)
        code = {"uniform": 0, "loguniform": 1, "randint": 2, "fixed": 3}
        kind = np.array([code[d.dist] for _, d in items], dtype=np.int64)
        lo = np.array([math.log(d.low) if d.dist == "loguniform" else d.low for _, d in items])
        hi = np.array([math.log(d.high) if d.dist == "loguniform" else d.high for _, d in items])
        self.lo, self.span = lo, hi - lo  # log-space for loguniform
        self._log = np.flatnonzero(kind == 1)
        self._int = np.flatnonzero(kind == 2)
        self._fixed = np.flatnonzero(kind == 3)
        self._int_lo = lo[self._int]
        self._int_span = (hi - lo)[self._int] + 1.0  # high - low + 1 values
        self._fixed_lo = lo[self._fixed]

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        """(n, F) params from an (n, num_drawn) block of U(0, 1) numbers."""
        params = np.empty((u.shape[0], len(self.nominal)))
        params[:] = self.nominal
        if not self.num_drawn:
            return params
        x = self.lo + self.span * u  # uniform (and the log of loguniform)
        if len(self._log):
            x[:, self._log] = np.exp(x[:, self._log])
        if len(self._int):
            x[:, self._int] = np.floor(self._int_lo + self._int_span * u[:, self._int])
        if len(self._fixed):
            x[:, self._fixed] = self._fixed_lo
        params[:, self.cols] = x
        return params


_COMPILED: dict[tuple[str, tuple[tuple[str, Distribution], ...]], ParamSampler] = {}  # by folder


def _compiled(robot: RobotDef, ranges: Mapping[str, Distribution]) -> ParamSampler:
    """The compiled sampler of a range table (cached by robot name and table)."""
    key = (str(robot.folder), tuple(sorted(ranges.items())))
    if key not in _COMPILED:
        _COMPILED[key] = ParamSampler(robot, ranges)
    return _COMPILED[key]


def normalize_params(robot: RobotDef, params: np.ndarray) -> np.ndarray:
    """The privileged factor vector e = 2 (x - lo) / (hi - lo) - 1 per factor, with (lo, hi) the
    factor's ``norm_range`` (the ``all`` family's training range). In-range values lie in
    [-1, 1]; OOD values fall outside."""
    lo = np.array([f.norm_range[0] for f in robot.factors])
    hi = np.array([f.norm_range[1] for f in robot.factors])
    return 2.0 * (np.asarray(params) - lo) / (hi - lo) - 1.0


def params_to_dict(robot: RobotDef, params: np.ndarray) -> dict[str, float]:
    """One parameter vector (F,) as {factor name: value}."""
    return {f.name: float(v) for f, v in zip(robot.factors, np.asarray(params), strict=True)}


def params_from_dict(robot: RobotDef, values: Mapping[str, Any], where: str) -> np.ndarray:
    """{factor name: value} -> (F,) vector, nominal where missing. Validates names and bounds."""
    params = nominal_params(robot)
    for key, value in values.items():
        if key not in robot.factor_names:
            raise SpecError(
                f"{where}: unknown factor {key!r} for robot {robot.name!r}; "
                f"known factors: {', '.join(robot.factor_names)}"
            )
        f = robot.factor(key)
        v = _number(value, f"{where}.{key}")
        _check_bounds(f.name, f.bounds, v, v, f"{where}.{key}")
        params[robot.factor_names.index(key)] = v
    return params


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise SpecError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _check_bounds(name: str, bounds: tuple[float, float], low: float, high: float,
                  where: str) -> None:
    if low < bounds[0] or high > bounds[1]:
        raise SpecError(
            f"{where}: values must lie in [{bounds[0]:g}, {bounds[1]:g}] for factor {name!r}, "
            f"got [{low:g}, {high:g}]"
        )


def parse_distribution(robot: RobotDef, name: str, raw: Any, where: str) -> Distribution:
    """Validate one ``factor = { dist = ..., low = ..., high = ... }`` entry."""
    if name not in robot.factor_names:
        raise SpecError(
            f"{where}: unknown factor {name!r} for robot {robot.name!r}; "
            f"known factors: {', '.join(robot.factor_names)}"
        )
    f = robot.factor(name)
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a table like {{ dist = \"uniform\", low = 0, high = 1 }}")
    unknown = set(raw) - {"dist", "low", "high", "value"}
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: dist, low, high, value")
    dist = raw.get("dist", "uniform")
    if dist not in DISTRIBUTIONS:
        raise SpecError(f"{where}.dist: unknown distribution {dist!r}; use one of {DISTRIBUTIONS}")
    if dist == "fixed":
        if "value" not in raw:
            raise SpecError(f"{where}.value: a fixed distribution needs `value`")
        low = high = _number(raw["value"], f"{where}.value")
    else:
        for k in ("low", "high"):
            if k not in raw:
                raise SpecError(f"{where}.{k}: missing (a {dist} distribution needs low and high)")
        low, high = _number(raw["low"], f"{where}.low"), _number(raw["high"], f"{where}.high")
        if low > high:
            raise SpecError(f"{where}: low ({low:g}) > high ({high:g})")
    if dist == "loguniform" and low <= 0:
        raise SpecError(f"{where}.low: loguniform needs low > 0, got {low:g}")
    if (dist == "randint" or f.integer) and (low != int(low) or high != int(high)):
        raise SpecError(f"{where}: factor {name!r} takes integers, got [{low:g}, {high:g}]")
    if f.integer and dist not in ("randint", "fixed"):
        raise SpecError(f"{where}.dist: factor {name!r} is an integer; use randint or fixed")
    _check_bounds(name, f.bounds, low, high, where)
    return Distribution(dist, low, high)


_FAMILY_KEYS = {"description", "init", "resample_prob", "train", "ood"}


def parse_family(robot: RobotDef, name: str, raw: Any, where: str) -> FamilySpec:
    """Validate one ``[<family>]`` table."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a table")
    unknown = set(raw) - _FAMILY_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FAMILY_KEYS)}")
    splits: dict[str, dict[str, Distribution]] = {}
    for split in SPLITS:
        table = raw.get(split, {})
        if not isinstance(table, dict):
            raise SpecError(f"{where}.{split}: expected a table of factors")
        splits[split] = {
            k: parse_distribution(robot, k, v, f"{where}.{split}.{k}") for k, v in table.items()
        }
    if not splits["train"]:
        raise SpecError(f"{where}.train: a family must randomize at least one factor")
    init_raw = raw.get("init", {})
    if not isinstance(init_raw, dict):
        raise SpecError(f"{where}.init: expected a table {{ qpos_noise = .., qvel_noise = .. }}")
    bad = set(init_raw) - {"qpos_noise", "qvel_noise"}
    if bad:
        raise SpecError(f"{where}.init: unknown key(s) {sorted(bad)}; allowed: qpos_noise, qvel_noise")
    init_vals = {k: _number(v, f"{where}.init.{k}") for k, v in init_raw.items()}
    for k, v in init_vals.items():
        if v < 0:
            raise SpecError(f"{where}.init.{k}: must be >= 0, got {v:g}")
    p = _number(raw.get("resample_prob", 0.0), f"{where}.resample_prob")
    if not 0.0 <= p <= 1.0:
        raise SpecError(f"{where}.resample_prob: must lie in [0, 1], got {p:g}")
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise SpecError(f"{where}.description: expected a string")
    return FamilySpec(robot.name, name, desc, splits["train"], splits["ood"],
                      InitSpec(**init_vals), p)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into a SpecError that names the file
    (:func:`robot_meta.toml_config.read_toml`)."""
    return toml_config.read_toml(path, SpecError)


def _resolve_like(data: dict[str, Any], name: str, path: Path) -> Any:
    """Family ``name``'s table with ``like = "<other>"`` resolved: the other family's keys, then
    this one's on top; its ``train`` and ``ood`` factors merge factor by factor, so a family
    that differs from another in one factor lists only that factor. One level: the family named
    by ``like`` must not itself use ``like``."""
    raw = data[name]
    if not isinstance(raw, dict) or "like" not in raw:
        return raw
    base_name = raw["like"]
    where = f"{path}: [{name}].like"
    if not isinstance(base_name, str) or base_name == name or base_name not in data:
        raise SpecError(f"{where}: {base_name!r} names no other family of the file; families: "
                        f"{', '.join(data)}")
    base = data[base_name]
    if not isinstance(base, dict) or "like" in base:
        raise SpecError(f"{where}: [{base_name}] uses like itself; name a family that lists its "
                        "own factors")
    merged = {**base, **{k: v for k, v in raw.items() if k != "like"}}
    for split in SPLITS:
        if isinstance(base.get(split), dict) and isinstance(raw.get(split), dict):
            merged[split] = {**base[split], **raw[split]}
    return merged


def _read_family_file(rdef: RobotDef, path: Path) -> tuple[dict[str, FamilySpec], str | None]:
    """The families of a family file and its top-level ``headline`` (None when absent): the
    family whose results headline the robot, validated to name a family of the file."""
    data = read_toml(path)
    file_robot = data.pop("robot", rdef.name)
    if file_robot != rdef.name:
        raise SpecError(f"{path}: robot = {file_robot!r}, but families were requested for "
                        f"{rdef.name!r}")
    headline = data.pop("headline", None)
    fams = {name: parse_family(rdef, name, _resolve_like(data, name, path), f"{path}: [{name}]")
            for name in data}
    if headline is not None and (not isinstance(headline, str) or headline not in fams):
        raise SpecError(f"{path}: headline = {headline!r} names no family of the file; "
                        f"families: {', '.join(fams)}")
    return fams, headline


def load_families(robot: str | RobotDef, path: str | Path | None = None) -> dict[str, FamilySpec]:
    """All families in a family file (the robot's bundled ``families.toml`` by default)."""
    rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
    return _read_family_file(rdef, Path(path) if path else rdef.families_path)[0]


def headline_family(robot: str | RobotDef) -> str:
    """The robot's headline family: the top-level ``headline = "<family>"`` of its bundled
    ``families.toml``, the family its benchmarks default to."""
    rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
    _, headline = _read_family_file(rdef, rdef.families_path)
    if headline is None:
        raise SpecError(f"{rdef.families_path}: no top-level headline = \"<family>\" naming the "
                        "robot's headline family")
    return headline


def load_family(robot: str | RobotDef, family: str | Path | FamilySpec) -> FamilySpec:
    """A family by bundled name (``friction``, ``mass``, ``payload``, ``all``) or from a TOML file
    (``path.toml`` holding one family, or ``path.toml:name``)."""
    if isinstance(family, FamilySpec):
        return family
    rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
    text = str(family)
    if text.endswith(".toml") or ".toml:" in text:
        path, _, name = text.partition(".toml")
        path += ".toml"
        name = name.lstrip(":")
        fams = load_families(rdef, path)
        if name:
            if name not in fams:
                raise SpecError(f"{path}: no family {name!r}; families: {', '.join(fams)}")
            return fams[name]
        if len(fams) != 1:
            raise SpecError(f"{path}: holds {len(fams)} families ({', '.join(fams)}); "
                            f"pick one with {path}:<name>")
        return next(iter(fams.values()))
    fams = load_families(rdef)
    if text not in fams:
        raise SpecError(f"unknown family {text!r} for robot {rdef.name!r}; "
                        f"families: {', '.join(fams)} (or a path to a .toml file)")
    return fams[text]


def load_params_file(path: str | Path, robot: str | None = None) -> tuple[RobotDef, np.ndarray]:
    """Read a hidden-parameter file (``robot = "<name or folder>"`` and a ``[params]`` table of factor
    values; missing factors are nominal). Returns the robot and its (F,) parameter vector.
    A ``[servo]`` table (the twin's unmodeled servo effects, see :func:`load_twin_params`) is
    validated and otherwise ignored."""
    rdef, params, _ = load_twin_params(path, robot)
    return rdef, params


def load_twin_params(path: str | Path, robot: str | None = None
                     ) -> tuple[RobotDef, np.ndarray, ServoEffects]:
    """Read a hidden-parameter file for the twin: ``robot``, a ``[params]`` table of factor
    values (missing factors are nominal) and an optional ``[servo]`` table of unmodeled servo
    effects (:class:`robot_meta.hardware.servos.ServoEffects`; missing effects are off).
    Returns the robot, its (F,) parameter vector and the effects. The ``[params]`` keys of the
    servos' mounting (``<joint>_encoder_offset``, ``<joint>_reversed``) are validated and left
    out; :func:`load_twin_file` returns them too."""
    rdef, params, effects, _ = load_twin_file(path, robot)
    return rdef, params, effects


def split_mounting(robot: RobotDef, values: Mapping[str, Any], where: str
                   ) -> tuple[Mounting, dict[str, Any]]:
    """Take the mounting keys (``<joint>_encoder_offset`` [rad], ``<joint>_reversed`` 0/1; see
    :mod:`robot_meta.hardware.servos.mounting`) out of {key: value}: (mounting, factors)."""
    try:
        return Mounting.split(values, robot.joints, where)
    except ServoSpecError as e:
        raise SpecError(str(e)) from e


def load_twin_file(path: str | Path, robot: str | None = None
                   ) -> tuple[RobotDef, np.ndarray, ServoEffects, Mounting]:
    """:func:`load_twin_params` plus the hidden mounting of the servos (encoder offsets and
    reversed servos, the emulator's miscalibration), from one read of the file."""
    data = read_toml(Path(path))
    unknown = set(data) - {"robot", "params", "servo", "description"}
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: robot, params, "
                        "servo, description")
    name = data.get("robot", robot)
    if name is None:
        raise SpecError(f"{path}: missing `robot = \"<name>\"` (a registered robot, or the path "
                        "of a robot folder relative to this file)")
    if not isinstance(name, str):
        raise SpecError(f"{path}: robot: expected a string, got {name!r}")
    try:
        # a folder path is relative to the parameter file
        rdef = get_robot(robot_folder(name, base=Path(path).parent))
        if robot is not None and get_robot(robot) is not rdef:
            raise SpecError(f"{path}: robot = {name!r}, but {robot!r} was requested")
    except UnknownRobotError as e:
        raise SpecError(f"{path}: robot: {e}") from e
    values = data.get("params", {})
    if not isinstance(values, dict):
        raise SpecError(f"{path}: [params] must be a table of factor = value")
    mounting, values = split_mounting(rdef, values, f"{path}: [params]")
    params = params_from_dict(rdef, values, f"{path}: [params]")
    try:
        effects = ServoEffects.from_table(data.get("servo", {}), f"{path}: [servo]")
    except ServoSpecError as e:
        raise SpecError(str(e)) from e
    return rdef, params, effects, mounting
