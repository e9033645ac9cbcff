"""One rollout worker: a shard of the batch with its own env, tasks and seed streams.

The class is plain Python (no Ray import): :class:`~robot_meta.learn.rollout_pool.RolloutPool`
wraps it in a Ray actor, and tests may drive it directly.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import numpy as np
import torch

from robot_meta.learn.algorithms import algorithm_class
from robot_meta.learn.algorithms.base import Algorithm, Shard, shard_configs
from robot_meta.learn.config import TrainConfig

WORKER_KEY = 1000  # worker k's seeds derive from (run seed, ..., WORKER_KEY + k)


def worker_seed(seed: int, index: int, *keys: int) -> int:
    """Worker ``index``'s seed for ``keys``: SeedSequence([run seed, *keys, WORKER_KEY + index])."""
    from robot_meta.learn.trainer import derive_seed

    return derive_seed(seed, *keys, WORKER_KEY + index)


class RolloutWorkerError(RuntimeError):
    """A rollout worker raised: the message names the worker, its envs and their task params."""


class RolloutWorker:
    """Worker ``index`` of ``workers``: owns envs [first, first + B_k) of the batch.

    It holds a copy of the algorithm built for its shard (B_k envs; for MAML/FOMAML/Reptile
    M_k tasks of R envs each), used only to act: every ``collect`` first loads the learner's
    acting weights (networks and normalizers), then runs the algorithm's ``collect_shard``. Its
    optimizers are never stepped. Per-env state (observations, histories, PEARL task memory,
    RL2 hidden states) lives here for a segment, like the env.

    Seeds: the env is built with seed (run seed, 0, k'), and each segment starting at iteration
    i resets it and the generators with seeds (run seed, j, i, k') for j = 1, 2, 3, where
    k' = WORKER_KEY + k; a run is therefore reproducible for a given worker count.
    """

    def __init__(self, cfg: TrainConfig, index: int, workers: int, env_threads: int = 1):
        from robot_meta.learn.trainer import env_spec, make_env

        torch.set_num_threads(1)
        self.index, self.workers = index, workers
        self.full_cfg = cfg
        self.cfg = shard_configs(cfg, workers)[index]
        sizes = [c.run.num_envs for c in shard_configs(cfg, workers)]
        self.first_env = int(sum(sizes[:index]))
        self.algo: Algorithm = algorithm_class(cfg.run.algorithm)(self.cfg, env_spec(self.cfg),
                                                                 torch.device("cpu"))
        self.algo.total_envs = cfg.run.num_envs
        self.env = make_env(self.cfg, self.algo, seed=worker_seed(cfg.run.seed, index, 0),
                            nthread=env_threads)
        self.collections = 0

    def ready(self) -> int:
        """The worker's index, once it is built (the pool waits on this)."""
        return self.index

    def start_segment(self, iteration: int) -> None:
        """Reset the env and the per-env algorithm state with seeds from (run seed, iteration, k)."""
        s, k = self.cfg.run.seed, self.index
        obs = self.env.reset(seed=worker_seed(s, k, 1, iteration))
        rng = np.random.default_rng(worker_seed(s, k, 2, iteration))
        gen = torch.Generator().manual_seed(worker_seed(s, k, 3, iteration))
        self.algo.start_segment(self.env, obs, rng, gen)

    def collect(self, weights: dict[str, np.ndarray], phase: str) -> Shard:
        """Load the acting weights and collect this shard of the iteration. An exception comes
        back as a shard with ``error`` (message, traceback, task params) for the learner to raise."""
        t0 = time.perf_counter()
        try:
            self.algo.load_rollout_weights(weights)
            shard = self.algo.collect_shard(self.env, phase)
        except Exception as e:  # reported to the learner with the context a Ray traceback lacks
            return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(),
                    "worker": self.index, "first_env": self.first_env, "task_params": self.task_params()}
        self.collections += 1
        shard["worker"] = self.index
        shard["collect_s"] = time.perf_counter() - t0
        return shard

    def task_params(self) -> dict[str, list[float]]:
        """The task params of this worker's envs, factor name -> one value per env."""
        try:
            names = self.env.robot.factor_names
            return {n: [float(x) for x in self.env.params[:, i]] for i, n in enumerate(names)}
        except Exception:  # noqa: BLE001 -- a broken env must not hide the original error
            return {}

    def close(self) -> None:
        self.env.close()


def raise_worker_error(shard: Shard, iteration: int) -> None:
    """Raise :class:`RolloutWorkerError` for an ``error`` shard, with the worker index, its env
    range and the task params of its envs (the first few, each factor on a line)."""
    k, first = shard["worker"], shard["first_env"]
    params: dict[str, list[float]] = shard.get("task_params", {})
    n = len(next(iter(params.values()))) if params else 0
    shown = min(n, 4)
    lines = [f"  {name} = {[round(v, 4) for v in vals[:shown]]}" + (" ..." if n > shown else "")
             for name, vals in params.items()]
    raise RolloutWorkerError(
        f"rollout worker {k} (envs {first}..{first + n - 1}) failed at iteration {iteration}: "
        f"{shard['error']}\ntask params of its envs (first {shown} of {n}):\n" + "\n".join(lines)
        + f"\nworker traceback:\n{shard['traceback']}")


def shard_nbytes(x: Any) -> int:
    """Bytes of the numpy arrays in a (nested) shard or weight dict."""
    if isinstance(x, np.ndarray):
        return int(x.nbytes)
    if isinstance(x, dict):
        return sum(shard_nbytes(v) for v in x.values())
    if isinstance(x, list | tuple):
        return sum(shard_nbytes(v) for v in x)
    return 0
