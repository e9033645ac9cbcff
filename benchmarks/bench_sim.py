"""``robot-meta bench sim``: simulator throughput, measured side by side in one run.

(a) raw ``mujoco.rollout`` open loop: the env's own B randomized models and thread count, one
    long control sequence per call (the ceiling for this model, batch and pool);
(a') the same, called once per control period (the floor of any closed loop over rollout);
(b) our batched domain-randomized env, closed loop: a numpy MLP policy (obs -> 64 -> 64 -> act,
    tanh) picks every action from the previous observation; latency buffers, sensor noise,
    observations, named rewards and auto-reset all included;
(c) the dm_control suite ``cartpole/balance`` ``env.step`` loop (the usual single-env baseline).

The three are measured in interleaved rounds and the median of each is reported, so load from
other processes hits them alike. Units: ``*_sps`` are env transitions (control steps) per
second; ``raw_rollout_physics_sps`` and ``env_physics_sps`` are physics steps per second, and
``env_vs_raw`` compares those (both run the same physics); ``env_vs_raw_per_step`` compares
with (a'). ``env_vs_dm_control`` compares
transitions; ``env_vs_dm_control_simtime`` compares simulated seconds per wall second (our
transition spans 20 ms, dm_control's cartpole 10 ms).

``--num-envs 16,64,256,512,1024`` (or ``--sweep``, those five) measures every batch size in one
run and adds, per B, the env step's time split (``split_us``: microseconds per closed-loop step)
from a separate instrumented pass after the timed rounds (the wrappers cost about 1 us a call):

* ``physics``: the backend's step (MuJoCo, all substeps of all envs);
* ``obs_rewards``: the task's observations, reward terms and termination flags;
* ``resets_randomization``: auto-resets of finished envs, parameter draws and writes, per-step
  resampling (everything these call, their observations included);
* ``latency_noise_buffers``: the action ring buffer, clip, sensor-noise draws and the step's
  other bookkeeping (the step's own lines, outside the calls above);
* ``policy``: the benchmark's MLP on the observations.

A sweep then runs the closed loop of every B again in alternating slices of ``--seconds``, so
that all sizes see the same load (``env_sps_interleaved``; ``largest_b_sps_vs_smallest`` is the
largest B's over the smallest's): sizes measured one after another do not compare on a machine
whose load moves.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_meta.hardware.timing import steal_ms
from robot_meta.launch.bench_cli import bench_main

if TYPE_CHECKING:
    from robot_meta.sim.vec_env import VecEnv

os.environ.setdefault("MUJOCO_GL", "disable")


def _time_loop(fn: Callable[[], object], seconds: float, steal: list[float]) -> tuple[int, float]:
    """Call fn() until `seconds` elapse; return (calls, elapsed). Appends to steal the share
    of the two CPUs' time the hypervisor took meanwhile, in percent."""
    n, s0, t0 = 0, steal_ms(), time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            steal.append(100.0 * (steal_ms() - s0) / (1e3 * dt * (os.cpu_count() or 1)))
            return n, dt


SWEEP = (16, 64, 256, 512, 1024)
SPLIT = ("physics", "obs_rewards", "resets_randomization", "latency_noise_buffers", "policy")


class _Split:
    """Exclusive wall time per label of wrapped calls: a call's time, less that of the wrapped
    calls inside it, goes to its label; inside a reset everything goes to the reset's label."""

    def __init__(self) -> None:
        self.us: dict[str, float] = dict.fromkeys(SPLIT, 0.0)
        self._stack: list[list[Any]] = []  # [label, child seconds]

    def wrap(self, obj: Any, name: str, label: str) -> None:
        """Replace obj.name (a bound method or instance attribute) by a timed call."""
        fn: Callable[..., Any] = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            lab = label
            if any(f[0] == "resets_randomization" for f in self._stack):
                lab = "resets_randomization"
            frame: list[Any] = [lab, 0.0]
            self._stack.append(frame)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self._stack.pop()
                self.us[lab] += 1e6 * (dt - frame[1])
                if self._stack:
                    self._stack[-1][1] += dt

        setattr(obj, name, timed)


def time_split(env: VecEnv, policy: _MLP, obs: np.ndarray, steps: int) -> dict[str, float]:
    """Microseconds per closed-loop step in each part of SPLIT, over ``steps`` steps of env
    (instrumented in place: use it last)."""
    sp = _Split()
    sp.wrap(env, "step", "latency_noise_buffers")
    sp.wrap(env.backend, "step", "physics")
    for name in ("reward_matrix", "terminated"):
        sp.wrap(env.task, name, "obs_rewards")
    sp.wrap(env, "_observe", "obs_rewards")
    for name in ("_reset_envs", "_set_params", "_draw_params"):
        sp.wrap(env, name, "resets_randomization")
    sp.wrap(env._n_noise, "take", "latency_noise_buffers")
    sp.wrap(policy, "__call__", "policy")
    for _ in range(steps):
        obs = env.step(policy.__call__(obs))[0]
    return {k: round(v / steps, 1) for k, v in sp.us.items()}


class _MLP:
    """A numpy tanh MLP policy with random weights: the cost of a real small policy. float32,
    like the stack's trained policies (torch's default dtype, and the ONNX bundles'); the
    env's float64 observations are cast on the way in, as a policy wrapper does."""

    def __init__(self, nin: int, nout: int, rng: np.random.Generator, hidden: int = 64):
        self.w = [rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32) for a, b in
                  ((nin, hidden), (hidden, hidden), (hidden, nout))]
        self.b = [np.zeros(b, dtype=np.float32) for b in (hidden, hidden, nout)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        for w, b in zip(self.w[:-1], self.b[:-1], strict=True):
            x = np.tanh(x @ w + b)
        return np.asarray(np.tanh(x @ self.w[-1] + self.b[-1]))


def run(robot: str, num_envs: int, nthread: int, rounds: int, seconds: float,
        actuators: str = "servo", family: str | None = None,
        split_steps: int = 0) -> dict[str, Any]:
    """Measure (a), (b) and (c); return the JSON-able result. ``actuators``: ``servo`` (the
    servo's <dcmotor> envelope, armature and implicitfast) or ``ideal`` (the model before issue
    20: ideal effort sources, Euler). ``family``: the task family (default: the robot's
    headline family). ``split_steps`` > 0: also time the step's parts over that many steps."""
    import dataclasses

    import mujoco
    from dm_control import suite
    from mujoco import rollout

    from robot_meta.sim import make_vec_env
    from robot_meta.sim.randomize import headline_family
    from robot_meta.sim.robots import get_robot

    family = family or headline_family(robot)
    rdef = dataclasses.replace(get_robot(robot), actuator_model=actuators)
    env = make_vec_env(rdef, family, num_envs, seed=0, nthread=nthread)
    be = env.backend
    rng = np.random.default_rng(0)
    policy = _MLP(env.obs_dim, env.action_dim, rng)

    # (a) raw rollout: one call = 50 control periods of open-loop random controls, on the env's
    # B randomized models (copies taken once) and its thread count, one contiguous chunk of envs
    # per thread.
    models = be.models
    datas = [mujoco.MjData(be.base_model) for _ in range(max(1, be.nthread))]
    chunk_size = max(1, -(-num_envs // max(1, be.nthread)))
    nstate = mujoco.mj_stateSize(be.base_model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    nstep = 50 * be.nsub
    ctrl = rng.uniform(-1, 1, (num_envs, nstep, be.nu))
    out = np.zeros((num_envs, nstep, nstate))
    pool = rollout.Rollout(nthread=be.nthread)
    state0 = be.full_physics_state()

    def raw() -> None:
        pool.rollout(models, datas, state0, ctrl, skip_checks=True, nstep=nstep, state=out,
                     chunk_size=chunk_size)

    # (a') raw rollout called once per control period, open loop: the floor of any closed loop
    # over mujoco.rollout (the per-call thread dispatch included, no Python in between).
    ctrl1 = np.ascontiguousarray(ctrl[:, : be.nsub])
    out1 = np.zeros((num_envs, be.nsub, nstate))

    def raw_per_step() -> None:
        for _ in range(50):
            pool.rollout(models, datas, state0, ctrl1, skip_checks=True, nstep=be.nsub,
                         state=out1, chunk_size=chunk_size)

    # (b) closed loop through our env.
    obs = [env.reset(seed=0)]

    def closed() -> None:
        o, _, _, _, _ = env.step(policy(obs[0]))
        obs[0] = o

    # (c) dm_control.
    dm = suite.load("cartpole", "balance", task_kwargs={"random": 0})
    dm.reset()
    zero = np.zeros(dm.action_spec().shape)

    def dm_step() -> None:
        if dm.step(zero).last():
            dm.reset()

    for warm_up in (raw, raw_per_step, closed, dm_step):
        warm_up()
    a, a1, b, c = [], [], [], []
    steal_a: list[float] = []
    steal_b: list[float] = []
    for _ in range(rounds):
        n, dt = _time_loop(raw, seconds, steal_a)
        a.append(n * num_envs * nstep / dt)
        n, dt = _time_loop(raw_per_step, seconds, [])
        a1.append(n * num_envs * nstep / dt)
        n, dt = _time_loop(closed, seconds, steal_b)
        b.append(n * num_envs / dt)
        n, dt = _time_loop(dm_step, seconds, [])
        c.append(n / dt)
    pool.close()
    split = time_split(env, policy, obs[0], split_steps) if split_steps > 0 else None
    env.close()
    raw_phys = statistics.median(a)
    raw1_phys = statistics.median(a1)
    env_sps = statistics.median(b)
    dm_sps = statistics.median(c)
    env_phys = env_sps * be.nsub
    dm_dt = float(dm.control_timestep())
    res = {
        "robot": robot,
        "family": family,
        "actuators": actuators,
        "integrator": str(mujoco.mjtIntegrator(be.base_model.opt.integrator).name),
        "num_envs": num_envs,
        "nthread": nthread,
        "substeps": be.nsub,
        "physics_dt": float(be.base_model.opt.timestep),
        "control_dt": env.control_dt,
        "raw_rollout_sps": raw_phys / be.nsub,
        "raw_rollout_physics_sps": raw_phys,
        "raw_rollout_per_step_physics_sps": raw1_phys,
        "env_sps": env_sps,
        "env_physics_sps": env_phys,
        "dm_control_sps": dm_sps,
        "env_vs_raw": env_phys / raw_phys,
        "env_vs_raw_per_step": env_phys / raw1_phys,
        "env_vs_dm_control": env_sps / dm_sps,
        "env_vs_dm_control_simtime": (env_sps * env.control_dt) / (dm_sps * dm_dt),
        # Per round, the ratio of that round's (b) to its (a), and the hypervisor's steal (%
        # of both CPUs) during each: a loaded host slows the closed loop more than the open one.
        "raw_rollout_physics_sps_rounds": [round(x) for x in a],
        "env_physics_sps_rounds": [round(x * be.nsub) for x in b],
        "env_vs_raw_rounds": [round(x * be.nsub / y, 3) for x, y in zip(b, a, strict=True)],
        "steal_pct_raw_rounds": [round(x, 2) for x in steal_a],
        "steal_pct_env_rounds": [round(x, 2) for x in steal_b],
        "rounds": rounds,
        "seconds_per_measure": seconds,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "date": date.today().isoformat(),
        "load_average": list(os.getloadavg()),  # other processes' load: record it with the figures
    }
    if split is not None:
        res["split_us"] = split
        res["split_us_per_env"] = {k: round(v / num_envs, 3) for k, v in split.items()}
    return res


def interleaved_sps(robot: str, sizes: list[int], nthread: int, rounds: int, seconds: float,
                    family: str | None = None) -> dict[int, float]:
    """Closed-loop env steps/s (env + MLP policy) of every batch size, measured in alternating
    slices of ``seconds`` in one process, ``rounds`` times, medians: the sizes see the same
    load, so their throughputs compare (``run`` measures one size after another)."""
    from robot_meta.sim import make_vec_env
    from robot_meta.sim.randomize import headline_family

    family = family or headline_family(robot)
    envs = {b: make_vec_env(robot, family, b, seed=0, nthread=nthread) for b in sizes}
    rng = np.random.default_rng(0)
    policies = {b: _MLP(e.obs_dim, e.action_dim, rng) for b, e in envs.items()}
    obs = {b: e.reset(seed=0) for b, e in envs.items()}
    sps: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(rounds):
        for b, env in envs.items():
            n, t0 = 0, time.perf_counter()
            while (dt := time.perf_counter() - t0) < seconds:
                obs[b] = env.step(policies[b](obs[b]))[0]
                n += 1
            sps[b].append(n * b / dt)
    for env in envs.values():
        env.close()
    return {b: statistics.median(v) for b, v in sps.items()}


def sweep(robot: str, sizes: list[int], nthread: int, rounds: int, seconds: float,
          family: str | None = None, split_steps: int = 250) -> dict[str, Any]:
    """``run`` at every batch size in ``sizes``, in one process; per B the ratios, the
    throughputs and the step's time split. Then the env's steps/s of all sizes in alternating
    slices (``interleaved_sps``), and whether that at the largest B is no lower than at the
    smallest (``largest_b_sps_vs_smallest`` >= 1)."""
    per_b = [run(robot, b, nthread, rounds, seconds, family=family, split_steps=split_steps)
             for b in sizes]
    inter = interleaved_sps(robot, sizes, nthread, rounds, seconds, family)
    keep = ("num_envs", "env_vs_raw", "env_vs_raw_per_step", "env_vs_dm_control", "env_sps",
            "raw_rollout_physics_sps", "dm_control_sps", "split_us", "split_us_per_env",
            "env_vs_raw_rounds", "steal_pct_env_rounds")
    rows = [{**{k: r[k] for k in keep}, "env_sps_interleaved": inter[r["num_envs"]]}
            for r in per_b]
    lo, hi = min(sizes), max(sizes)
    return {
        "robot": robot, "family": per_b[0]["family"], "actuators": per_b[0]["actuators"],
        "integrator": per_b[0]["integrator"], "nthread": nthread, "rounds": rounds,
        "seconds_per_measure": seconds, "sweep": rows,
        "largest_b_sps_vs_smallest": inter[hi] / inter[lo],
        "machine": per_b[0]["machine"], "date": per_b[0]["date"],
        "load_average": list(os.getloadavg()),
    }


def _print_sweep(res: dict[str, Any]) -> None:
    print(f"{res['robot']} ({res['family']}, {res['actuators']}, {res['integrator']}), "
          f"nthread {res['nthread']}, {res['rounds']} rounds of {res['seconds_per_measure']} s, "
          f"{res['machine']}, {res['date']}, load {res['load_average'][0]:.2f}")
    head = ["B", "env_vs_raw", "vs_dm_control", "env steps/s", "interleaved"] + [
        f"{k} us" for k in SPLIT]
    print(" | ".join(head))
    for r in res["sweep"]:
        cells = [str(r["num_envs"]), f"{r['env_vs_raw']:.3f}", f"{r['env_vs_dm_control']:.2f}",
                 f"{r['env_sps']:,.0f}", f"{r['env_sps_interleaved']:,.0f}"] + [
                     f"{r['split_us'][k]:.0f}" for k in SPLIT]
        print(" | ".join(cells))
    print(f"env steps/s at the largest B / at the smallest (interleaved): "
          f"{res['largest_b_sps_vs_smallest']:.2f}")


def _sizes(text: str) -> list[int]:
    """``64`` or ``16,64,256``: batch sizes, each >= 1."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--num-envs takes a batch size or a comma-separated list of them (>= 1), got {text!r}")
    return sizes


def compare(robot: str, num_envs: int, nthread: int, rounds: int, seconds: float) -> dict[str, Any]:
    """The servo and ideal models side by side: ``rounds`` alternating one-round runs of each,
    medians per model, and the ratios servo / ideal of env_vs_raw and env_vs_dm_control."""
    keys = ("env_vs_raw", "env_vs_dm_control", "env_sps", "raw_rollout_physics_sps")
    runs: dict[str, list[dict[str, Any]]] = {"ideal": [], "servo": []}
    for _ in range(rounds):
        for name in ("ideal", "servo"):
            runs[name].append(run(robot, num_envs, nthread, 1, seconds, actuators=name))
    med = {name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    return {
        "robot": robot, "num_envs": num_envs, "rounds": rounds, **{n: m for n, m in med.items()},
        "servo_vs_ideal": {k: med["servo"][k] / med["ideal"][k] for k in keys},
        "integrators": {n: rs[0]["integrator"] for n, rs in runs.items()},
        "machine": runs["servo"][0]["machine"], "date": runs["servo"][0]["date"],
    }


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="cartpole", help="cartpole or arm2 (default cartpole)")
    p.add_argument("--num-envs", type=_sizes, default=[64],
                   help="batch size B (default 64), or a comma-separated list to sweep in one run")
    p.add_argument("--sweep", action="store_true",
                   help="sweep B = " + ",".join(map(str, SWEEP)) + " (same as --num-envs with them)")
    p.add_argument("--family", default=None,
                   help="task family (default: the robot's headline family)")
    p.add_argument("--split-steps", type=int, default=250,
                   help="closed-loop steps of the instrumented time-split pass (0: none)")
    p.add_argument("--nthread", type=int, default=2, help="rollout threads (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    p.add_argument("--compare-ideal", action="store_true",
                   help="also measure the ideal-actuator model of before issue 20, in alternating "
                        "rounds, and report servo / ideal ratios")


def _measure(args: argparse.Namespace, p: argparse.ArgumentParser) -> dict[str, Any]:
    sizes = list(SWEEP) if args.sweep else args.num_envs
    if args.compare_ideal and len(sizes) > 1:
        p.error("--compare-ideal takes one batch size")
    if args.compare_ideal:
        return compare(args.robot, sizes[0], args.nthread, args.rounds, args.seconds)
    if len(sizes) > 1:
        return sweep(args.robot, sizes, args.nthread, args.rounds, args.seconds, args.family,
                     args.split_steps)
    return run(args.robot, sizes[0], args.nthread, args.rounds, args.seconds,
               family=args.family, split_steps=args.split_steps)


def _text(res: dict[str, Any]) -> None:
    if "sweep" in res:
        _print_sweep(res)
        return
    for k, v in res.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}"
                          for a, b in v.items())
        print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")


def main(argv: list[str] | None = None) -> int:
    return bench_main("sim", __doc__, argv, _options, _measure, _text)


if __name__ == "__main__":
    sys.exit(main())
