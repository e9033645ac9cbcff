"""``robot-meta demo``: the main job on the emulated robot, end to end.

Stages run in order; each later issue (train, export, emulate, flash, adapt) adds its stage.
Today it shows the reality gap the rest of the stack exists to close: a model-based controller
tuned on the nominal simulator, run in the batched MuJoCo env over the ``payload`` family, and
on the PyBullet twin whose hidden payload differs.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the whole pipeline on the emulated robot",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="arm2", choices=["arm2"], help="robot (default arm2)")
    p.add_argument("--hidden-payload", type=float, default=0.6,
                   help="the twin's hidden payload mass in kg (default 0.6, beyond training)")
    p.add_argument("--episodes", type=int, default=32, help="sim episodes per setting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result table as JSON")
    p.set_defaults(func=run)


def nominal_controller(obs: np.ndarray) -> np.ndarray:
    """Operational-space PD plus the nominal model's gravity compensation, for arm2 ``reach``.

    tau = J^T (Kp e - Kd v_tip) + g_nominal(q), mapped to normalized current a = tau / gear.
    It knows nothing of the payload, which is what makes the gap visible.
    """
    from robot_meta.sim.robots.arm2 import constants as C

    gear, g = 3.5652, 9.81
    c1, s1, c2, s2 = obs[:, 0], obs[:, 1], obs[:, 2], obs[:, 3]
    dq = obs[:, 4:6]
    err = obs[:, 10:12]
    # absolute link-2 angle q1 + q2
    s12, c12 = s1 * c2 + c1 * s2, c1 * c2 - s1 * s2
    l1, l2 = C.LINK1_LENGTH, C.LINK2_LENGTH
    # tip (x, z) = (l1 s1 + l2 s12, -l1 c1 - l2 c12); J = d tip / d q
    J = np.stack([np.stack([l1 * c1 + l2 * c12, l2 * c12], 1),
                  np.stack([l1 * s1 + l2 * s12, l2 * s12], 1)], 1)  # (B, 2, 2)
    v_tip = np.einsum("bij,bj->bi", J, dq)
    f = 20.0 * err - 2.0 * v_tip  # N per m of tip error, N per m/s of tip velocity
    tau = np.einsum("bji,bj->bi", J, f)
    # gravity torques of the nominal links (COMs at mid-link)
    m1, m2 = C.LINK1_MASS, C.LINK2_MASS
    tau[:, 0] += g * (m1 * l1 / 2 * s1 + m2 * (l1 * s1 + l2 / 2 * s12))
    tau[:, 1] += g * m2 * l2 / 2 * s12
    tau -= 0.1 * dq
    return np.asarray(np.clip(tau / gear, -1.0, 1.0))


def _mean_return(env: Any, episodes: int) -> tuple[float, float]:
    """Mean and 95 % CI half-width of episode returns under the nominal controller."""
    obs = env.reset()
    returns: list[float] = []
    while len(returns) < episodes:
        obs, _, _, _, info = env.step(nominal_controller(obs))
        if info["done"].any():
            returns.extend(info["episode_return"][info["done"]].tolist())
    r = np.array(returns[:episodes])
    return float(r.mean()), float(1.96 * r.std(ddof=1) / np.sqrt(len(r))) if len(r) > 1 else 0.0


def run(args: argparse.Namespace) -> int:
    from robot_meta.sim import make_twin_env, make_vec_env

    t0 = time.perf_counter()
    rows: dict[str, dict[str, float]] = {}
    sim = make_vec_env(args.robot, "payload", num_envs=min(args.episodes, 64), seed=args.seed,
                       task="reach", params=None)
    nominal = make_vec_env(args.robot, "payload", num_envs=min(args.episodes, 64), seed=args.seed,
                           task="reach", params=sim.params[:1] * 0 + _nominal(sim))
    for name, env in (("sim nominal", nominal), ("sim payload family (train)", sim)):
        m, ci = _mean_return(env, args.episodes)
        rows[name] = {"mean": m, "ci95": ci}
    twin = make_twin_env(args.robot, {"payload_mass": args.hidden_payload}, task="reach",
                         seed=args.seed)
    m, ci = _mean_return(twin, max(4, args.episodes // 8))
    rows[f"twin, hidden payload {args.hidden_payload:g} kg"] = {"mean": m, "ci95": ci}
    twin.close()
    result = {"robot": args.robot, "task": "reach", "controller": "nominal-model PD",
              "returns": rows, "episode_steps": sim.episode_steps,
              "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"robot_meta demo: {args.robot} reach, a controller tuned on the nominal model")
    print(f"{'setting':40s} {'return (of ' + str(sim.episode_steps) + ')':>16s}")
    for name, r in rows.items():
        print(f"{name:40s} {r['mean']:9.1f} ± {r['ci95']:4.1f}")
    print("The gap between the nominal sim and the twin is what meta-training and few-shot")
    print(f"adaptation close. ({result['seconds']} s)")
    return 0


def _nominal(env: Any) -> np.ndarray:
    from robot_meta.sim.randomize import nominal_params

    return nominal_params(env.robot)
