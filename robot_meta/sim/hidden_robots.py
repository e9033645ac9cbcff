"""Held-out "real robots" for the emulator tables: hidden parameter sets drawn with a fixed seed.

The emulator benchmarks (``robot-meta bench sessions --hidden-sets N``) need many hidden robots,
not two hand-written files, and the draw must be reproducible. :func:`draw_hidden_robots` draws
``n`` of them for a robot's task family from this documented held-out distribution:

* **in range** (the first ``ceil(n / 2)``): every factor the family randomizes is drawn from its
  training distribution, ``x ~ family.train[factor]``;
* **beyond** (the rest): every such factor is drawn from the family's out-of-distribution
  distribution, ``x ~ family.ood[factor]``, and the draw is repeated (rejection) until at least
  one factor lies outside its training interval ``[low, high]``. The families' OOD ranges are
  mostly disjoint from the training ranges, so the first draw nearly always qualifies;
* **servo effects on**, in both halves, around the typical values of the robot's servo data file
  (``[gearbox]`` of e.g. ``xm430-w350.toml``), on the twin only (the training model leaves them
  out):

  - ``stiction ~ U(0.5, 1.5) * gearbox.stiction`` [N*m];
  - ``backlash ~ U(0.5, 1.5) * gearbox.backlash`` [rad];
  - ``encoder_quantization = true``;
  - ``current_lag ~ U(1, 3)`` ms;
  - ``supply_resistance ~ U(0.1, 0.4)`` ohm.

  A robot with no servo-driven joint gets no effects (they apply to servo joints only); a servo
  file without ``[gearbox]`` gives no stiction or backlash.

* **as calibrated** (``calibration_residual=r``): the emulator tables score each rollout from
  the robot's own encoders, as the runtime on a real robot does, so an encoder offset the
  session does not know about corrupts the score itself (a policy that compensates a horn
  homed 0.2 rad off looks 0.2 rad off target). On a robot the sessions come after
  ``robot-meta calibrate``, which recovers the offsets within 0.01 rad (``bench calibrate``).
  With ``r`` given, every ``<joint>_bias`` factor is therefore the residual after calibration,
  ``b ~ U(-r, r)``, drawn from a stream of its own (so the rest of robot i is the same with and
  without calibration), and the beyond split's test ignores it.

Pure: the only state used is ``seed`` (``default_rng(seed)``, and a stream spawned from it for the
residuals). Factors the family does not list stay nominal, as in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from robot_meta.hardware.servos import ServoEffects
from robot_meta.robot_registry import robot_ref
from robot_meta.sim.randomize import (
    Distribution,
    FamilySpec,
    load_family,
    params_to_dict,
    sample_params,
)
from robot_meta.sim.robots import RobotDef, get_robot
from robot_meta.sim.servo_physics import servo_joints

SPLITS = ("in_range", "beyond")
MAX_REJECTIONS = 1000


@dataclass(frozen=True)
class HiddenRobot:
    """One hidden robot: factor values for the twin and its unmodeled servo effects."""

    name: str  # e.g. "arm2-servo-beyond-09"
    robot: str  # a registered name, or the folder of a robot given by path
    family: str
    split: str  # "in_range" | "beyond"
    params: dict[str, float]  # the family's factors only; the rest are nominal
    effects: ServoEffects
    calibrated: bool = False  # encoder offsets are calibration residuals (module docstring)

    def to_toml(self) -> str:
        """The twin-params file (``robot-meta emulate ROBOT --params FILE`` reads it)."""
        lines = [
            f'robot = "{self.robot}"',
            f'description = "Hidden robot {self.name}: family {self.family}, {self.split}'
            f'{", as calibrated" if self.calibrated else ""} (robot_meta.sim.hidden_robots)."',
            "",
            "[params]",
        ]
        lines += [f"{k} = {_num(v)}" for k, v in sorted(self.params.items())]
        if self.effects.any:
            lines += ["", "[servo]"]
            for f in fields(self.effects):
                v = getattr(self.effects, f.name)
                lines.append(f"{f.name} = {str(v).lower() if isinstance(v, bool) else _num(v)}")
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path) -> Path:
        """Write ``<directory>/<name>.toml`` atomically and return its path."""
        from robot_meta.runtime.atomic import write_atomic

        path = Path(directory) / f"{self.name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, self.to_toml())
        return path


def _num(v: float) -> str:
    """A TOML number that reads back to the same float (integers stay integers)."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def outside(value: float, dist: Distribution) -> bool:
    """True when ``value`` lies outside the support of a training distribution."""
    return not (dist.low - 1e-12 <= value <= dist.high + 1e-12)


def _effects(robot: RobotDef, rng: np.random.Generator) -> ServoEffects:
    """Servo effects around the servo file's typical values (module docstring)."""
    joints = servo_joints(robot)
    u = rng.random(4)  # drawn even for a robot without servos, so the stream does not depend on it
    if not joints:
        return ServoEffects()
    gearbox = robot.hardware_map.joint(joints[0][0]).servo.gearbox
    stiction, backlash = (gearbox.stiction, gearbox.backlash) if gearbox else (0.0, 0.0)
    return ServoEffects(
        stiction=round((0.5 + u[0]) * stiction, 5),
        backlash=round((0.5 + u[1]) * backlash, 6),
        encoder_quantization=True,
        current_lag=round(1e-3 + 2e-3 * u[2], 5),
        supply_resistance=round(0.1 + 0.3 * u[3], 4),
    )


def draw_hidden_robots(
    robot: str | RobotDef, family: str | FamilySpec, n: int, seed: int = 0,
    calibration_residual: float | None = None,
) -> list[HiddenRobot]:
    """Draw ``n`` hidden robots (module docstring): ``ceil(n/2)`` in range, the rest beyond;
    with ``calibration_residual`` r [rad or m], encoder offsets as left by calibration."""
    rdef = get_robot(robot) if isinstance(robot, str) else robot
    fam = load_family(rdef, family)
    if n < 1:
        raise ValueError(f"n: need at least one hidden robot, got {n}")
    rng = np.random.default_rng(seed)
    n_in = math.ceil(n / 2)
    biases = [f"{j}_bias" for j in rdef.joints if f"{j}_bias" in rdef.factor_names]
    # residuals from a stream of their own, so the rest of every robot is the uncalibrated draw's
    cal_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    if calibration_residual is not None and calibration_residual < 0:
        raise ValueError(f"calibration_residual: must be >= 0, got {calibration_residual}")
    out: list[HiddenRobot] = []
    for i in range(n):
        split = SPLITS[0] if i < n_in else SPLITS[1]
        ranges = fam.train if split == "in_range" else fam.ood
        for _ in range(MAX_REJECTIONS):
            values = params_to_dict(rdef, sample_params(rdef, ranges, rng, 1)[0])
            params = {k: round(values[k], 6) for k in ranges}
            tested = [k for k in params if k in fam.train
                      and not (calibration_residual is not None and k in biases)]
            if split == "in_range" or any(outside(params[k], fam.train[k]) for k in tested):
                break
        else:
            raise ValueError(
                f"family {fam.name!r}: its ood ranges never leave the training ranges in "
                f"{MAX_REJECTIONS} draws; widen [{fam.name}.ood]"
            )
        effects = _effects(rdef, rng)
        if calibration_residual is not None:
            r = calibration_residual
            for k in biases:  # b ~ U(-r, r): the offset calibration leaves
                params[k] = round(float(cal_rng.uniform(-r, r)), 6)
        out.append(HiddenRobot(
            name=f"{rdef.name}-{fam.name}-{split.replace('_', '')}-{i:02d}",
            robot=robot_ref(rdef.folder),  # a name, or a folder robot's path (another process reads it)
            family=fam.name,
            split=split,
            params=params,
            effects=effects,
            calibrated=calibration_residual is not None,
        ))
    return out
