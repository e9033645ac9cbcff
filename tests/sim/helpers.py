"""Helpers shared by the sim tests: open-loop trajectories from a given state."""

import numpy as np

from robot_meta.sim.batched_env import BatchedEnv


def open_loop(env: BatchedEnv, q0: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Joint positions (T, B, nq) after each of the T actions (T, nu), applied to every env
    from the same state (q0, 0), bypassing the env core (no latency or noise)."""
    B = env.num_envs
    env.backend.set_state(np.arange(B), np.tile(q0, (B, 1)), np.zeros((B, len(q0))))
    out = []
    for a in actions:
        env.backend.step(np.tile(a, (B, 1)))
        out.append(env.backend.qpos.copy())
    return np.array(out)


def sine_actions(steps: int, nu: int, amp: float, dt: float = 0.02) -> np.ndarray:
    """Smooth open-loop actions: a_k(t) = amp sin(2 pi (0.7 + 0.3 k) t)."""
    t = np.arange(steps) * dt
    return np.stack([amp * np.sin(2 * np.pi * (0.7 + 0.3 * k) * t) for k in range(nu)], axis=1)
