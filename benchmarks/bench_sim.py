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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from typing import Any

import numpy as np

from robot_meta.hardware.timing import steal_ms

os.environ.setdefault("MUJOCO_GL", "disable")


def _time_loop(fn: Any, seconds: float, steal: list[float]) -> tuple[int, float]:
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
        actuators: str = "servo") -> dict[str, Any]:
    """Measure (a), (b) and (c); return the JSON-able result. ``actuators``: ``servo`` (the
    servo's <dcmotor> envelope, armature and implicitfast) or ``ideal`` (the model before issue
    20: ideal effort sources, Euler)."""
    import dataclasses

    import mujoco
    from dm_control import suite
    from mujoco import rollout

    from robot_meta.sim import make_vec_env
    from robot_meta.sim.robots import get_robot

    rdef = dataclasses.replace(get_robot(robot), actuator_model=actuators)
    env = make_vec_env(rdef, "all", num_envs, seed=0, nthread=nthread)
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
    env.close()
    raw_phys = statistics.median(a)
    raw1_phys = statistics.median(a1)
    env_sps = statistics.median(b)
    dm_sps = statistics.median(c)
    env_phys = env_sps * be.nsub
    dm_dt = float(dm.control_timestep())
    return {
        "robot": robot,
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
    }


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="robot-meta bench sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="cartpole", help="cartpole or arm2 (default cartpole)")
    p.add_argument("--num-envs", type=int, default=64, help="batch size B (default 64)")
    p.add_argument("--nthread", type=int, default=2, help="rollout threads (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--compare-ideal", action="store_true",
                   help="also measure the ideal-actuator model of before issue 20, in alternating "
                        "rounds, and report servo / ideal ratios")
    args = p.parse_args(argv)
    if args.compare_ideal:
        res = compare(args.robot, args.num_envs, args.nthread, args.rounds, args.seconds)
    else:
        res = run(args.robot, args.num_envs, args.nthread, args.rounds, args.seconds)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            if isinstance(v, dict):
                v = ", ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}"
                              for a, b in v.items())
            print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
