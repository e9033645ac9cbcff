"""The outputs of ``robot-meta sysid``: ``params.toml``, ``family.toml`` and ``report/``.

* ``params.toml``: the twin-params format (:func:`robot_meta.sim.randomize.load_twin_params`):
  ``robot`` and a ``[params]`` table with every identifiable factor (the latency rounded to
  whole control steps); unidentifiable factors are listed as comments with the reason, so a
  loader gives them their nominal value and no one mistakes it for a measurement.
* ``family.toml``: one family ``ident`` centred on the identified values. Each identifiable
  factor x ~ U(lo, hi), where [lo, hi] is its 95 % interval widened by the identification's
  model error: [lo, hi] = [min(x - h, x - w W / 2), max(x + h, x + w W / 2)], with h the 95 %
  half-width, W the source family's training width and w = max(e, MIN_WIDTH), e =
  RMSE_identified / RMSE_nominal of the held-out open-loop prediction (in [0, 1]; 1 without
  held-out data). A model that predicts the robot no better than nominal keeps the whole
  training width around x; a good one keeps half of it (MIN_WIDTH), never less. On 8 emulated
  arms beyond the ranges, fine-tuning on families narrowed to e W lost zero-shot return on 4 of
  the 5 with e <= 0.24 and gained on the 3 with e >= 0.29 (the twin's stiction, backlash and
  current lag, which MuJoCo does not model, need the robustness); with the floor it gained
  +9.3 [+0.5, +18.0] on the same arms, but -6.3 [-14.6, +2.0] on a fresh draw with another
  RMA seed (BENCHMARKS.md, issue 22).
  Bounds are the factor's physical ones; the latency is a randint over the whole steps
  [lo, hi] touches; a load-adding range whose widened end the servos cannot hold is pulled in
  to the last value they can (:func:`robot_meta.sim.feasibility.clip_to_feasible`), and the
  file's header says so. Unidentifiable factors keep the source family's training
  distribution; OOD ranges are the source family's.
* the real2sim2real decision (``result.json``'s ``real2sim2real``, ``--json``): fine-tune
  only when an identified factor's 95 % interval lies wholly outside the source family's
  training range. Within the ranges the meta-trained run was trained for this robot already,
  and fine-tuning on a narrower family only loses robustness (BENCHMARKS.md, issue 22).
* ``fit_params.toml``: every fitted factor at its estimate (those determined only in
  combination marked so): the best predicting model, not a measurement of each factor.
* ``report/``: ``report.html`` from ``mujoco.sysid.default_report``, and ours: ``README.md``
  (each value with its 95 % interval, held-out open-loop RMSE nominal vs identified),
  ``result.json`` and ``heldout_*.png`` (measured vs simulated joint positions).

Everything is computed first and written last, each file atomically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.calibration.sysid import Recording, SysidResult, SystemIdentifier
from robot_meta.robot_registry import robot_ref
from robot_meta.runtime.atomic import write_atomic
from robot_meta.sim.feasibility import clip_to_feasible
from robot_meta.sim.randomize import Distribution, parse_family, read_toml

MIN_WIDTH = 0.5  # the narrowed family keeps at least this share of each training width


def _num(x: float) -> str:
    return f"{float(x):.6g}"


def _dist_toml(d: Distribution) -> str:
    if d.dist == "fixed":
        return f'{{ dist = "fixed", value = {_num(d.low)} }}'
    if d.dist == "randint":
        return f'{{ dist = "randint", low = {int(d.low)}, high = {int(d.high)} }}'
    return f'{{ dist = "{d.dist}", low = {_num(d.low)}, high = {_num(d.high)} }}'


class SysidReport:
    """Renders and writes the outputs of one identification.

    Args:
        sid: the identifier that produced ``result``.
        result: the fit.
        objects: the sysid objects returned by :meth:`SystemIdentifier.fit`.
        heldout: the held-out recordings (plotted), may be empty.
        source: where the data came from (printed in the files).
    """

    def __init__(self, sid: SystemIdentifier, result: SysidResult, objects: dict[str, Any],
                 heldout: Sequence[Recording] = (), source: str = ""):
        self.sid = sid
        self.result = result
        self.objects = objects
        self.heldout = list(heldout)
        self.source = source
        self.stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())

    # ---- params.toml ---------------------------------------------------------------------
    def params_toml(self) -> str:
        r, rdef = self.result, self.sid.robot
        lines = [f"# Identified by robot-meta sysid, {self.stamp}, from {self.source or 'recordings'}",
                 f"# ({r.windows} windows, {r.data_seconds:.1f} s of data, family "
                 f"{r.family!r}). Values are the least-squares estimates; the comment gives the",
                 "# 95 % interval. Factors not listed are nominal.",
                 f'robot = "{robot_ref(rdef.folder)}"',  # a name, or a folder robot's path
                 f'description = "identified by robot-meta sysid from {self.source}"',
                 "", "[params]"]
        for name, e in r.estimates.items():
            if e.value is not None:
                f = rdef.factor(name)
                v = round(e.value) if f.integer else e.value
                lo, hi = e.interval()
                lines.append(f"{name} = {v if f.integer else _num(v)}  "
                             f"# 95 %: [{_num(lo)}, {_num(hi)}] {e.unit}")
        unident = [(n, e) for n, e in r.estimates.items() if e.value is None]
        if unident:
            lines.append("# Unidentifiable from these data (left nominal):")
            lines += [f"#   {n}: {e.reason}" for n, e in unident]
        return "\n".join(lines) + "\n"

    def fit_params_toml(self) -> str:
        """``fit_params.toml``: every fitted factor at the optimizer's estimate, identifiable or
        not: the model that best predicts the robot (see the held-out "fit" column) when some
        factors are determined only in combination. Not a measurement of those factors."""
        r, rdef = self.result, self.sid.robot
        lines = [f"# The full least-squares fit of robot-meta sysid, {self.stamp}: every fitted "
                 "factor at its estimate.",
                 "# Factors marked (combination) are determined only together with others: "
                 "use this file to predict,",
                 "# params.toml to know a factor.",
                 f'robot = "{robot_ref(rdef.folder)}"',  # a name, or a folder robot's path
                 f'description = "full sysid fit from {self.source}"', "", "[params]"]
        for name, e in r.estimates.items():
            if name not in self.sid.ranges or not math.isfinite(e.estimate):
                continue
            f = rdef.factor(name)
            v = min(max(e.estimate, f.bounds[0]), f.bounds[1])
            val = str(round(v)) if f.integer else _num(v)
            lines.append(f"{name} = {val}" + ("" if e.identifiable else "  # (combination)"))
        return "\n".join(lines) + "\n"

    # ---- the real2sim2real decision ------------------------------------------------------
    def model_error(self) -> float:
        """e = RMSE_identified / RMSE_nominal of the held-out open-loop prediction, clipped to
        [0, 1]: the fraction of the nominal model's error that the identified one still makes
        (1 without held-out data: nothing shows that the model predicts the robot)."""
        h = self.result.heldout
        if not h or h["nominal"]["rmse"] <= 0:
            return 1.0
        return float(min(1.0, max(0.0, h["identified"]["rmse"] / h["nominal"]["rmse"])))

    def outside_training(self) -> dict[str, dict[str, Any]]:
        """{factor: {value, interval95, range}} of the identified factors whose whole 95 %
        interval (the latency's: whole steps) lies outside the source family's training range:
        the data show the robot is beyond what the run was trained for, not just noise at an
        edge."""
        out: dict[str, dict[str, Any]] = {}
        for name, src in self.sid.family.train.items():
            e = self.result.estimates.get(name)
            if e is None or e.value is None:
                continue
            lo, hi = e.interval()
            if hi < src.low or lo > src.high:
                v = float(round(e.value)) if self.sid.robot.factor(name).integer else e.value
                out[name] = {"value": v, "interval95": [lo, hi], "range": [src.low, src.high],
                             "unit": e.unit}
        return out

    def decision(self) -> dict[str, Any]:
        """Whether to fine-tune on ``family.toml`` (module docstring), with its evidence."""
        outside = self.outside_training()
        return {"fine_tune": bool(outside), "outside_training": outside,
                "model_error": round(self.model_error(), 4),
                "rule": "fine-tune only when an identified factor's 95 % interval lies outside "
                        "the source family's training range"}

    # ---- family.toml ---------------------------------------------------------------------
    def family_dists(self) -> dict[str, Distribution]:
        """The ``ident`` family's training distributions (module docstring)."""
        return self._clipped_family()[0]

    def _clipped_family(self) -> tuple[dict[str, Distribution], dict[str, tuple[float, float]]]:
        """(the ``ident`` training distributions, {factor: (widened end, end used)} for the
        load ranges pulled in to what the servos can hold)."""
        rdef, fam = self.sid.robot, self.sid.family
        width = max(self.model_error(), MIN_WIDTH)
        out: dict[str, Distribution] = {}
        for name, src in fam.train.items():
            e = self.result.estimates.get(name)
            f = rdef.factor(name)
            if e is None or e.value is None:
                out[name] = src
                continue
            lo, hi = e.interval()
            # widened by the model error: at least w W / 2 on each side of the value
            half = 0.5 * width * (src.high - src.low)
            lo, hi = min(lo, e.value - half), max(hi, e.value + half)
            lo, hi = max(lo, f.bounds[0]), min(hi, f.bounds[1])
            if f.integer:
                a, b = int(math.floor(lo + 0.5)), int(math.ceil(hi - 0.5))
                a, b = max(a, int(f.bounds[0])), max(b, a)
                out[name] = Distribution("randint", a, b)
            else:
                out[name] = Distribution("uniform", lo, max(hi, lo))
        # widening may ask for a load the servos cannot hold (a payload beyond the stall
        # torque at the weakest strength): such an end is pulled in to the last value they can
        return clip_to_feasible(rdef, out)

    def family_toml(self) -> str:
        fam = self.sid.family
        dists, clipped = self._clipped_family()
        lines = [f"# A family narrowed by robot-meta sysid, {self.stamp}: identified factors",
                 "# ~ their 95 % interval widened to max(model error "
                 f"{self.model_error():.3g}, {MIN_WIDTH:g}) of the training width;",
                 "# unidentifiable ones keep the source family's range.",
                 *[f"# {k}: widened end {a:.4g} pulled in to {b:.4g}, the most the servos can hold"
                   for k, (a, b) in clipped.items()],
                 f'robot = "{self.sid.robot.name}"', 'headline = "ident"', "", "[ident]",
                 f'description = "{fam.name} narrowed to the identified robot ({self.source})"',
                 f"init = {{ qpos_noise = {_num(fam.init.qpos_noise)}, "
                 f"qvel_noise = {_num(fam.init.qvel_noise)} }}",
                 f"resample_prob = {_num(fam.resample_prob)}", "[ident.train]"]
        lines += [f"{k} = {_dist_toml(d)}" for k, d in dists.items()]
        if fam.ood:
            lines.append("[ident.ood]")
            lines += [f"{k} = {_dist_toml(d)}" for k, d in fam.ood.items()]
        text = "\n".join(lines) + "\n"
        import tomllib

        raw = tomllib.loads(text)  # validate before anything is written
        parse_family(self.sid.robot, "ident", raw["ident"], "family.toml")
        return text

    # ---- report --------------------------------------------------------------------------
    def markdown(self) -> str:
        r = self.result
        lines = [f"# System identification: {r.robot}", "",
                 f"{self.stamp}. Data: {self.source} ({r.windows} windows of "
                 f"{self.sid.cfg.segment_s or 'auto (2 or 0.6)'} s, {r.data_seconds:.1f} s). "
                 f"Family `{r.family}`, "
                 f"search ranges = its training ranges widened by {self.sid.cfg.widen:.0%} "
                 "on each side.", "",
                 f"Fit: `mujoco.sysid.optimize` (LM), {r.iterations} iterations, "
                 f"{r.fit_seconds:.1f} s; cost {r.cost_initial:.4g} -> {r.cost_final:.4g}. "
                 "95 % intervals from `calculate_intervals`, widened by "
                 f"{getattr(self.sid, 'inflation', 1.0):.2f} for autocorrelated residuals.", "",
                 "| factor | nominal | identified | 95 % interval | search range | status |",
                 "|---|---|---|---|---|---|"]
        for n, e in r.estimates.items():
            if e.value is not None:
                lo, hi = e.interval()
                lines.append(f"| {n} [{e.unit}] | {_num(e.nominal)} | {_num(e.value)} | "
                             f"[{_num(lo)}, {_num(hi)}] | [{_num(e.low)}, {_num(e.high)}] | "
                             "identified |")
            else:
                lines.append(f"| {n} [{e.unit}] | {_num(e.nominal)} | - | - | "
                             f"[{_num(e.low)}, {_num(e.high)}] | unidentifiable: {e.reason} |")
        h = r.heldout
        if h:
            lines += ["", f"## Held-out open-loop prediction ({h['windows']} windows of "
                      f"{h['horizon_s']:g} s)", "",
                      "| joint | RMSE nominal | RMSE identified |", "|---|---|---|"]
            for j in self.sid.robot.joints:
                lines.append(f"| {j} | {h['nominal']['per_joint'][j]:.4g} | "
                             f"{h['identified']['per_joint'][j]:.4g} |")
            lines.append(f"| all | {h['nominal']['rmse']:.4g} | {h['identified']['rmse']:.4g} |")
            lines += ["", f"Nominal / identified: {h['ratio']:.1f}x (params.toml: unidentifiable "
                      f"factors nominal). With every fitted factor at its estimate "
                      f"(fit_params.toml): RMSE {h['fit']['rmse']:.4g}, "
                      f"{h['nominal']['rmse'] / max(h['fit']['rmse'], 1e-12):.1f}x.", ""]
            lines += [f"![held-out {i}](heldout_{i}.png)" for i in range(len(self.heldout))]
        d = self.decision()
        lines += ["", "## Real2sim2real", ""]
        if d["fine_tune"]:
            lines.append("The identified robot lies outside the training ranges: " + ", ".join(
                f"{k} = {_num(v['value'])} {v['unit']} (trained on [{_num(v['range'][0])}, "
                f"{_num(v['range'][1])}])" for k, v in d["outside_training"].items())
                + ". Fine-tune the meta-trained run on `family.toml`: "
                "`robot-meta train RUN/config.toml --family OUT/family.toml --init RUN`.")
        else:
            lines.append("Every identified factor lies within the training ranges: the "
                         "meta-trained run was trained for this robot; deploy it as it is "
                         "(fine-tuning on a narrower family only loses robustness).")
        lines.append(f"`family.toml` keeps {max(d['model_error'], MIN_WIDTH):.3g} of each "
                     "training width around the identified value (the held-out model error "
                     f"{d['model_error']:.3g}, at least {MIN_WIDTH:g}).")
        lines += ["", "`report.html` is the mujoco.sysid report of the fit (its *nominal* column "
                  "is the measured data)."]
        return "\n".join(lines) + "\n"

    def plots(self, report_dir: Path) -> list[Path]:
        """heldout_<i>.png: measured vs simulated (nominal, identified) joint positions over
        each held-out recording, replayed open loop in ``heldout_s`` windows."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sid, rdef = self.sid, self.sid.robot
        out = []
        nominal = sid.param_dict({})
        ident = sid.param_dict({k: (round(v) if rdef.factor(k).integer else v)
                                for k, v in self.result.identified().items()})
        nq = len(rdef.joints)
        for i, rec in enumerate(self.heldout):
            wins = sid.windows([rec], sid.cfg.heldout_s)
            if not wins:
                continue
            fig, axes = plt.subplots(nq, 1, figsize=(8, 2.4 * nq), sharex=True, squeeze=False)
            n_win = int(round(sid.cfg.heldout_s / sid.dt))
            for label, pd, style in (("nominal", nominal, "C1--"), ("identified", ident, "C2-")):
                for w_i, (meas, pred) in enumerate(sid.predictions(wins, pd)):
                    t0 = w_i * n_win * sid.dt
                    for k in range(nq):
                        ax = axes[k, 0]
                        if label == "nominal":
                            ax.plot(t0 + meas.times, meas.data[:, k], "k-", lw=1.2,
                                    label="real" if w_i == 0 else None)
                        ax.plot(t0 + pred.times, pred.data[:, k], style, lw=1,
                                label=f"sim {label}" if w_i == 0 else None)
            for k, j in enumerate(rdef.joints):
                axes[k, 0].set_ylabel(j)
                axes[k, 0].legend(loc="upper right", fontsize=7)
            axes[-1, 0].set_xlabel("t [s] (open loop from each window's start)")
            fig.suptitle(f"held-out {rec.name}: real vs sim")
            fig.tight_layout()
            path = report_dir / f"heldout_{i}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            out.append(path)
        return out

    def write(self, out_dir: str | Path, mujoco_report: bool = True) -> dict[str, str]:
        """Write params.toml, family.toml and report/ into out_dir; returns their paths."""
        out = Path(out_dir)
        params = self.params_toml()
        fit_params = self.fit_params_toml()
        family = self.family_toml()
        md = self.markdown()
        result_json = json.dumps({**self.result.as_dict(), "real2sim2real": self.decision()},
                                 indent=2, default=_jsonable) + "\n"
        out.mkdir(parents=True, exist_ok=True)
        report = out / "report"
        report.mkdir(exist_ok=True)
        self.plots(report)
        if mujoco_report:
            o = self.objects
            self.sid.sysid.default_report(
                [o["sequences"]], o["initial"], o["opt"], o["residual_fn"], o["opt_result"],
                title=f"SysID {self.result.robot}", save_path=report,
                build_model=self.sid._build_model, generate_videos=False)
        write_atomic(report / "README.md", md)
        write_atomic(report / "result.json", result_json)
        write_atomic(report / "optimizer.log", self.result.optimizer_log)
        write_atomic(out / "family.toml", family)
        write_atomic(out / "fit_params.toml", fit_params)
        write_atomic(out / "params.toml", params)
        read_toml(out / "params.toml")
        return {"params": str(out / "params.toml"), "family": str(out / "family.toml"),
                "fit_params": str(out / "fit_params.toml"), "report": str(report)}


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    raise TypeError(f"not JSON serializable: {type(x).__name__}")
