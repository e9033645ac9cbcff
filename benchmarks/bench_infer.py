"""``robot-meta bench infer BUNDLE``: single-sample control-step latency, onnxruntime vs torch.

One control step = the context encoder (RMA: the history module on the last H steps; PEARL:
none, z is fixed within a rollout) followed by the policy, or one step of the recurrent policy
(RL2: a GRU step and the action head), for one observation (batch 1). The
same networks run in onnxruntime (1 intra-op thread, the runtime's setting) and in torch eager
(1 thread, no_grad), loaded from the run directory recorded in the bundle's provenance (or
``--run``). Calls alternate in blocks so that load hits both alike; p50/p99/max over all calls.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.launch.bench_cli import bench_main


def _percentiles(x: list[float]) -> dict[str, float]:
    a = np.array(x) * 1e6
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "max_us": float(a.max())}


def run(bundle_dir: str, run_dir: str | None, calls: int, block: int) -> dict[str, Any]:
    import torch

    from robot_meta.learn.evaluate import load_run
    from robot_meta.runtime import load_bundle

    torch.set_num_threads(1)
    b = load_bundle(bundle_dir)
    m = b.manifest
    rd = run_dir or m.provenance.get("run_dir", "")
    if not rd or not Path(rd).exists():
        from robot_meta.errors import UserError

        raise UserError(f"{bundle_dir}: the run directory {rd!r} is not here; pass --run RUN_DIR "
                        "to compare with torch")
    _, algo = load_run(rd)
    mods = {k: v.eval() for k, v in algo.deployment_modules().items()}
    rng = np.random.default_rng(0)
    n_o, L, H = len(m.observation), m.latent_dim, m.history_length
    n_a = len(m.actuated_joints)
    obs = rng.normal(0, 1, (1, n_o)).astype(np.float32)
    hist = rng.normal(0, 1, (1, H, n_o + n_a)).astype(np.float32) if H else None
    z0 = np.zeros((1, L), dtype=np.float32)
    enc_is_history = b.encoder is not None and b.encoder.role == "history_encoder"
    if b.recurrent is not None:
        ort_step, torch_step = _recurrent_steps(b, mods["recurrent_policy"], obs, n_a)
        step = "recurrent policy (one GRU step)"
    else:
        ort_step, torch_step = _feedforward_steps(b, mods, obs, hist, z0, enc_is_history)
        step = "history encoder + policy" if enc_is_history else "policy (z fixed per rollout)"
    for fn in (ort_step, torch_step):  # warm up
        for _ in range(200):
            fn()
    times: dict[str, list[float]] = {"ort": [], "torch": []}
    pc = time.perf_counter
    while len(times["ort"]) < calls:
        for name, fn in (("ort", ort_step), ("torch", torch_step)):
            out = times[name]
            for _ in range(block):
                t0 = pc()
                fn()
                out.append(pc() - t0)
    o, t = _percentiles(times["ort"]), _percentiles(times["torch"])
    return {
        "bundle": str(bundle_dir), "method": m.method, "robot": m.robot,
        "step": step,
        "calls": len(times["ort"]),
        "ort_p50_us": o["p50_us"], "ort_p99_us": o["p99_us"], "ort_max_us": o["max_us"],
        "torch_p50_us": t["p50_us"], "torch_p99_us": t["p99_us"], "torch_max_us": t["max_us"],
        "speedup_p50": t["p50_us"] / o["p50_us"], "speedup_p99": t["p99_us"] / o["p99_us"],
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": date.today().isoformat(),
    }


def _feedforward_steps(b: Any, mods: dict[str, Any], obs: np.ndarray, hist: np.ndarray | None,
                       z0: np.ndarray, enc_is_history: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """(onnxruntime step, torch step): the context encoder (RMA) and the policy."""
    import torch

    assert b.policy is not None

    def ort_step() -> None:
        z = b.encoder.run(history=hist)[0] if enc_is_history else z0
        b.policy.run(obs=obs, z=z)

    t_obs, t_hist, t_z0 = torch.from_numpy(obs), None if hist is None else torch.from_numpy(hist), \
        torch.from_numpy(z0)

    def torch_step() -> None:
        with torch.no_grad():
            z = mods["encoder"](t_hist) if enc_is_history else t_z0
            mods["policy"](t_obs, z)

    return ort_step, torch_step


def _recurrent_steps(b: Any, module: Any, obs: np.ndarray, n_a: int
                     ) -> tuple[Callable[[], None], Callable[[], None]]:
    """(onnxruntime step, torch step): one RL2 step, the hidden state fed back."""
    import torch

    feed = {"obs": obs, "prev_action": np.zeros((1, n_a), np.float32),
            "prev_reward": np.zeros((1, 1), np.float32), "prev_done": np.zeros((1, 1), np.float32),
            "h": b.recurrent.initial_state(1)}
    t_feed = {k: torch.from_numpy(v) for k, v in feed.items()}

    def ort_step() -> None:
        feed["h"] = b.recurrent.run(**feed)[1]

    def torch_step() -> None:
        with torch.no_grad():
            t_feed["h"] = module(*t_feed.values())[1]

    return ort_step, torch_step


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="a bundle directory")
    p.add_argument("--run", help="the run directory (default: the bundle's provenance)")
    p.add_argument("--calls", type=int, default=20000, help="calls per runtime (default 20000)")
    p.add_argument("--block", type=int, default=500, help="calls per alternating block")


def _text(res: dict[str, Any]) -> None:
    for k, v in res.items():
        print(f"{k:16s} {v:.4g}" if isinstance(v, float) else f"{k:16s} {v}")


def main(argv: list[str] | None = None) -> int:
    return bench_main("infer", __doc__, argv, _options,
                      lambda a, p: run(a.bundle, a.run, a.calls, a.block), _text)


if __name__ == "__main__":
    sys.exit(main())
