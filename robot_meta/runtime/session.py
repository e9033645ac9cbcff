"""The few-shot adaptation session: ``robot-meta adapt``.

A session is a fixed plan of rollouts, each preceded by a motor-driven reset to the task's
start state, run in order and saved one by one (:class:`SessionStore`: atomic rollout files +
an fsync'd journal):

    adapt    x K   the adaptation rollouts, each with the current adaptation state; the state
                   is updated after each (PEARL posterior, latent-search CEM step) or online
                   inside it (RMA)
    before   x E   evaluation, zero-shot (the prior z)
    after    x E   evaluation with the adapted state (it does not learn from these)
    oracle_warmup x W, oracle x E   (--oracle-params, PEARL: the posterior after W rollouts,
                   the closest equivalent of an oracle, as in robot_meta/learn/agent.py; RL2:
                   likewise the hidden state after W rollouts)
    oracle   x E   (--oracle-params, RMA: z = mu(e) of the true parameters)
    robust   x E   (--baseline ROBUST_BUNDLE: the robust bundle's policy)

Evaluation rollout j of every column uses the same task (arm2 reach: the same target), drawn
from the session seed, so the columns differ only by the policy's latent. The plan is a pure
function of session.json, so ``--resume`` replays the completed rollouts into the adaptation
state (same posterior, same CEM candidates) and continues with the first missing one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.export.manifest import MANIFEST, manifest_sha
from robot_meta.hardware.errors import CorruptPacketError, ServoTimeoutError, TorqueLostError
from robot_meta.runtime.adapters import (
    Adapter,
    adapter_class,
    deployed_method,
    make_adapter,
    oracle_adapter,
    oracle_latent,
    resolve_method,
)
from robot_meta.runtime.atomic import write_json_atomic
from robot_meta.runtime.bundle import Bundle, load_bundle
from robot_meta.runtime.control_loop import DeadlineStats
from robot_meta.runtime.deploy_store import DeployStore
from robot_meta.runtime.robot_config import RobotConfig
from robot_meta.runtime.session_store import SessionError, SessionStore

ADAPTED_FILE = "adapted.json"
# Communication failures that a fresh attempt can survive (not safety trips or servo alarms).
TRANSIENT = (ServoTimeoutError, CorruptPacketError, TorqueLostError)


@dataclass
class SessionSpec:
    """What a session does (saved as session.json; a resumed session reads it back)."""

    method: str = "auto"
    rollouts: int = 3
    eval_rollouts: int = 1
    episode_steps: int = 0  # 0: the task's episode length
    seed: int = 0
    oracle_params: str = ""
    oracle_warmup: int = 3
    baseline: str = ""
    command: str = ""

    def validate(self) -> None:
        """Refuse counts out of range, naming the ``adapt`` option."""
        for name, low in (("rollouts", 1), ("eval_rollouts", 1), ("episode_steps", 0),
                          ("oracle_warmup", 0)):
            v = getattr(self, name)
            if v < low:
                raise UserError(f"--{name.replace('_', '-')} must be >= {low}, got {v}")


@dataclass
class PlannedRollout:
    """One entry of the plan."""

    index: int
    kind: str  # adapt | before | after | oracle_warmup | oracle | robust
    mode: str  # the adapter mode: prior | adapt | oracle
    task_seed: list[int]
    learn: bool  # whether the rollout updates its adapter


@dataclass
class SessionResult:
    """The outcome, as printed by ``--json`` (plus details for the report)."""

    rollouts: list[float]
    before: float | None
    after: float | None
    oracle: float | None
    robust: float | None
    session: str
    method: str = ""
    uncertainty: list[float | None] = field(default_factory=list)
    deadlines: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, list[float]] = field(default_factory=dict)
    report: str = ""

    def public(self) -> dict[str, Any]:
        """Exactly the keys of ``robot-meta adapt --json``."""
        return {"rollouts": self.rollouts, "before": self.before, "after": self.after,
                "oracle": self.oracle, "robust": self.robust, "session": self.session}


def _mean(x: list[float]) -> float | None:
    return float(np.mean(x)) if x else None


class AdaptationSession:
    """Plans, runs, resumes and reports one adaptation session on a robot.

    Args:
        cfg: the robot config.
        spec: what to run (ignored on resume: session.json is the source of truth).
        session_dir: where to write; a new directory under ``<deploy_dir>/sessions`` if None.
        resume: continue the session in ``session_dir``.
        robot_factory: opens a connected robot (default: the config's port).
        status: called with one-line progress messages.
        robot_kwargs: passed to :class:`~robot_meta.hardware.Robot` (e.g. ``overspeed_factor``).
        calibration: the robot must be calibrated (``robot-meta calibrate``) and runs in its
            calibrated frame; False: the hardware map as designed (``--no-calibration``).
    """

    def __init__(self, cfg: RobotConfig, spec: SessionSpec, *, session_dir: str | Path | None = None,
                 resume: bool = False, robot_factory: Callable[[], Any] | None = None,
                 status: Callable[[str], None] | None = None,
                 robot_kwargs: dict[str, Any] | None = None, calibration: bool = True):
        spec.validate()  # the options given (a resumed session's own spec is checked below)
        self.cfg = cfg
        self.robot_kwargs = robot_kwargs or {}
        self.calibration = calibration
        if calibration and robot_factory is None:
            from robot_meta.runtime.connect import hardware_map_for

            hardware_map_for(cfg, calibration=True)  # refuse an uncalibrated robot up front
        self.max_attempts = 5
        self.deploy = DeployStore(cfg.deploy_dir)
        current = self.deploy.current()
        if current is None:
            raise UserError(f"{cfg.deploy_dir}: no bundle is installed on this robot; run "
                            f"`robot-meta flash BUNDLE --robot {cfg.source or cfg.robot}` first")
        self.bundle_dir = current.resolve()
        sha = manifest_sha(self.bundle_dir)
        if resume:
            if session_dir is None:
                raise UserError("--resume needs the session directory")
            self.store = SessionStore.open(session_dir)
            meta = self.store.meta
            if meta.get("manifest_sha256") != sha:
                raise SessionError(
                    f"{session_dir}: the session was started with bundle {meta.get('bundle_version')}, "
                    f"but {self.bundle_dir.name} is deployed now. Flash the session's bundle back "
                    "(robot-meta flash --rollback) or start a new session")
            if meta.get("robot") != cfg.robot:
                raise SessionError(f"{session_dir}: a session of robot {meta.get('robot')!r}, not "
                                   f"{cfg.robot!r}")
            spec = SessionSpec(**meta["spec"])
            if spec.baseline and (not (Path(spec.baseline) / MANIFEST).exists()
                                  or manifest_sha(Path(spec.baseline)) != meta.get("baseline_sha256")):
                raise SessionError(f"{session_dir}: the baseline bundle {spec.baseline} is gone or "
                                   "changed since the session started; restore it or start a new session")
        self.bundle: Bundle = load_bundle(self.bundle_dir, robot=cfg.robot)
        from robot_meta.runtime.connect import check_rate

        check_rate(cfg, self.bundle.manifest)
        self.method = resolve_method(self.bundle, spec.method)
        spec.validate()
        self.spec = spec
        self.adapter = make_adapter(self.bundle, self.method, rollouts=spec.rollouts, seed=spec.seed)
        self.baseline: Bundle | None = None
        self._robust: Adapter | None = None  # the baseline's adapter, made on first use
        if spec.baseline:
            self.baseline = load_bundle(spec.baseline, robot=cfg.robot)
            if self.baseline.manifest.task != self.bundle.manifest.task:
                raise UserError(f"--baseline {spec.baseline}: task {self.baseline.manifest.task!r}, "
                                f"but the deployed bundle's is {self.bundle.manifest.task!r}")
        self.oracle_adapter: Adapter | None = None
        self.true_params: dict[str, float] | None = None
        if spec.oracle_params:
            self._setup_oracle(spec.oracle_params)
        if not resume:
            root = Path(session_dir) if session_dir else (
                cfg.deploy_dir / "sessions" / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.method}")
            meta = {"robot": cfg.robot, "port": cfg.port, "bundle_version": self.bundle_dir.name,
                    "manifest_sha256": sha, "method": self.method, "spec": asdict(spec),
                    "baseline_sha256": manifest_sha(Path(spec.baseline)) if spec.baseline else None,
                    "true_params": self.true_params}
            self.store = SessionStore.create(root, meta)
        self.adapter.set_artifact_dir(self.store.root / "adapted_bundle")  # e.g. theta' (gradient)
        if self.oracle_adapter is not None:
            self.oracle_adapter.set_artifact_dir(self.store.root / "oracle_bundle")
        self.robot_factory = robot_factory
        self.status = status or (lambda msg: None)
        self.plan = self.make_plan()

    # ---- plan ------------------------------------------------------------------------------
    def _setup_oracle(self, path: str) -> None:
        from robot_meta.sim.randomize import load_params_file, normalize_params, params_to_dict

        rdef, vec = load_params_file(path, robot=self.cfg.robot)
        self.true_params = params_to_dict(rdef, vec)
        z = (oracle_latent(self.bundle, normalize_params(rdef, vec))
             if self.bundle.privileged_encoder is not None else None)
        self.oracle_adapter = oracle_adapter(self.bundle, self.method, z, rollouts=self.spec.rollouts,
                                             seed=self.spec.seed)

    def make_plan(self) -> list[PlannedRollout]:
        """The rollouts of the session, in order (a pure function of the spec)."""
        s = self.spec
        out: list[PlannedRollout] = []
        seed = s.seed

        def add(kind: str, mode: str, task: list[int], learn: bool = False) -> None:
            out.append(PlannedRollout(len(out), kind, mode, task, learn))

        same_task = adapter_class(self.method).same_task  # e.g. latent search: by return
        for i in range(s.rollouts):
            add("adapt", "adapt", [seed, 0 if same_task else i], True)
        for j in range(s.eval_rollouts):
            add("before", "prior", [seed, 10_000 + j])
        for j in range(s.eval_rollouts):
            add("after", "adapt", [seed, 10_000 + j])
        if self.oracle_adapter is not None:
            if self.oracle_adapter.oracle_z is None:  # PEARL, RL2: the state after W warm-up rollouts
                for w in range(s.oracle_warmup):
                    add("oracle_warmup", "adapt", [seed, 20_000 + w], True)
                for j in range(s.eval_rollouts):
                    add("oracle", "adapt", [seed, 10_000 + j])
            else:
                for j in range(s.eval_rollouts):
                    add("oracle", "oracle", [seed, 10_000 + j])
        if self.baseline is not None:
            for j in range(s.eval_rollouts):
                add("robust", "prior", [seed, 10_000 + j])
        return out

    def adapter_for(self, p: PlannedRollout) -> Adapter:
        if p.kind in ("oracle", "oracle_warmup"):
            assert self.oracle_adapter is not None
            return self.oracle_adapter
        if p.kind == "robust":
            assert self.baseline is not None
            if self._robust is None:
                self._robust = make_adapter(self.baseline, deployed_method(self.baseline))
            return self._robust
        return self.adapter

    # ---- run -------------------------------------------------------------------------------
    def _replay(self, p: PlannedRollout, entry: dict[str, Any]) -> None:
        """Fold a completed rollout back into its adapter (resume)."""
        if not p.learn:
            return
        arrays = self.store.load_rollout(entry)
        ad = self.adapter_for(p)
        ad.learning = True
        ad.begin(p.mode)
        want = ad.replayed_latent()
        if want is not None and ad.latent_dim and len(arrays["z"]) and \
                not np.allclose(arrays["z"][0], want, atol=1e-5):
            raise SessionError(f"{self.store.root}: rollout {p.index} was run with another latent "
                               "than this session's search replays; the session files are not "
                               "consistent with session.json")
        ad.replay(arrays, float(entry["return"]))

    def save_adapted(self) -> None:
        """The adaptation state, in the session and in the deploy dir for ``run``."""
        self.adapter.publish(self.deploy.adapted_dir / "adapted_bundle")  # e.g. an adapted bundle
        state = {"method": self.method, "state": self.adapter.state(),
                 "bundle_version": self.bundle_dir.name,
                 "manifest_sha256": manifest_sha(self.bundle_dir),
                 "session": str(self.store.root), "time": time.time()}
        self.store.save_adapted(state)
        write_json_atomic(self.deploy.adapted_dir / ADAPTED_FILE, state)

    def run(self) -> SessionResult:
        """Run every missing rollout of the plan, then summarize and write the report."""
        from robot_meta.runtime.reset import make_reset, park
        from robot_meta.runtime.rollout import RolloutRunner

        done = {e["index"]: e for e in self.store.completed()}
        for p in self.plan:
            if p.index in done:
                if done[p.index]["kind"] != p.kind:
                    raise SessionError(f"{self.store.root}: rollout {p.index} is a "
                                       f"{done[p.index]['kind']} rollout in the journal but a {p.kind} "
                                       "one in the plan; the session files are inconsistent")
                self._replay(p, done[p.index])
        todo = [p for p in self.plan if p.index not in done]
        if done:
            self.status(f"resuming: {len(done)} rollout(s) done, {len(todo)} to go")
        if todo:
            robot = self.robot_factory() if self.robot_factory else self._open_robot()
            try:
                # The servos' own Current Limit and PWM Limit, written with torque off when the
                # robot connected, must still read back before torque goes on.
                limits = robot.verify_servo_limits()
                self.store.log("servo_limits", servos={str(i): v for i, v in limits.items()})
                robot.enable()
                runner = RolloutRunner(robot, self.bundle.manifest, self.spec.episode_steps or None)
                for p in todo:
                    for attempt in range(self.max_attempts):
                        self.store.log("rollout_start", index=p.index, kind=p.kind, attempt=attempt)
                        try:
                            if attempt:
                                time.sleep(1.0)
                                robot.enable()  # re-arm the watchdog, torque back on
                            reset = make_reset(robot, runner.start_pose()).run()
                            res = runner.run(self.adapter_for(p), p.mode, runner.sample_task(p.task_seed),
                                             learn=p.learn)
                            break
                        except TRANSIENT as e:
                            # A lost or corrupted packet beyond the bus retries, or a watchdog
                            # expiry after a stall: the Robot turned torque off. The rollout is
                            # discarded (its adapter was not updated) and run again from a reset.
                            self.store.log("rollout_failed", index=p.index, kind=p.kind,
                                           attempt=attempt, error=str(e))
                            self.status(f"rollout {p.index + 1} failed ({type(e).__name__}); "
                                        f"retrying from a reset ({attempt + 1}/{self.max_attempts})")
                            if attempt + 1 == self.max_attempts:
                                raise
                    summary = {**res.summary, "reset_s": reset.seconds, "task_seed": p.task_seed}
                    self.store.save_rollout(p.index, p.kind, res.arrays, summary)
                    done[p.index] = {"index": p.index, "kind": p.kind, **summary}
                    ad = self.adapter_for(p)
                    if p.learn:  # e.g. sysid refits on the saved rollout
                        ad.add_rollout(res.arrays)
                    if p.kind == "adapt":
                        self.save_adapted()
                    d = res.summary["deadlines"]
                    unc = res.summary["uncertainty"]
                    self.status(f"rollout {p.index + 1}/{len(self.plan)} {p.kind:13s} return "
                                f"{res.ret:7.2f}" + (f"  z-std {unc:.3f}" if unc is not None else "")
                                + f"  deadlines met {100 * d['fraction_met']:.2f} %")
                # Park: drive back to the start pose before torque goes off, so the robot is left
                # at rest and in range (dropped from the last rollout's pose, a loaded arm can
                # swing past a joint limit, and the next flash's torque-off check refuses it).
                # A passive pole is left to swing (upright, it would fall at torque off).
                try:
                    park(robot, runner.start_pose())
                except Exception as e:  # noqa: BLE001 -- the rollouts are saved; parking is best effort
                    self.store.log("park_failed", error=str(e))
                    self.status(f"could not park the robot at its start pose ({e}); torque goes off")
            except KeyboardInterrupt:
                robot.estop()
                self.store.log("interrupted")
                raise
            finally:
                robot.close()  # torque off
        if not any(e.get("event") == "adapted" for e in self.store.events()):
            self.save_adapted()
        return self.summarize(done)

    def _open_robot(self) -> Any:
        from robot_meta.runtime.connect import open_robot

        return open_robot(self.cfg, calibration=self.calibration, **self.robot_kwargs)

    # ---- results ---------------------------------------------------------------------------
    def summarize(self, done: dict[int, dict[str, Any]]) -> SessionResult:
        cols: dict[str, list[float]] = {}
        unc: list[float | None] = []
        total = DeadlineStats(self.bundle.manifest.control_dt)
        for p in self.plan:
            e = done[p.index]
            cols.setdefault(p.kind, []).append(float(e["return"]))
            if p.kind == "adapt":
                unc.append(e.get("uncertainty"))
            d = e.get("deadlines", {})
            total.cycles += int(d.get("cycles", 0))
            total.met += int(d.get("met", 0))
            total.skipped += int(d.get("skipped", 0))
            total.worst_work_s = max(total.worst_work_s, d.get("worst_work_ms", 0.0) / 1e3)
            total.worst_late_s = max(total.worst_late_s, d.get("worst_late_ms", 0.0) / 1e3)
        dl = total.as_dict()
        dl.pop("work_p99_ms")
        res = SessionResult(rollouts=cols.get("adapt", []), before=_mean(cols.get("before", [])),
                            after=_mean(cols.get("after", [])), oracle=_mean(cols.get("oracle", [])),
                            robust=_mean(cols.get("robust", [])), session=str(self.store.root),
                            method=self.method, uncertainty=unc, deadlines=dl, columns=cols)
        from robot_meta.runtime.report import write_report

        res.report = str(write_report(self, res))
        write_json_atomic(self.store.root / "result.json", {**res.public(), "method": res.method,
                                                            "uncertainty": unc, "deadlines": dl,
                                                            "columns": cols, "report": res.report})
        self.store.log("session_done", **res.public())
        return res

