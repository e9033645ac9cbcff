"""Rollout collection on Ray actors, for ``robot-meta train --workers N``.

Only the trainer imports this module, and only with ``--workers``: without it nothing imports
Ray. Install it with ``pip install 'robot-meta[train,ray]'``.

Design
------
* One worker abstraction serves every algorithm. Each algorithm splits an iteration into
  ``collect_shard(env, phase)`` (act in the env, return plain numpy arrays) and
  ``learn(shards, phase)`` (merge, update); in-process training is the one-shard case of the
  same two calls. A :class:`~robot_meta.learn.rollout_worker.RolloutWorker` actor owns one
  shard of the batch: its own ``BatchedEnv`` of B_k envs, its own tasks and seed streams
  (derived from the run seed and the worker index), and a copy of the algorithm that only acts.
* Per iteration the learner puts the acting weights (networks and normalizer statistics) into
  the object store once (one ``ray.put``), every worker collects its shard with them, and the
  learner concatenates the shards in worker order and updates. The learner alone holds the
  optimizers and updates the normalizers.
* Where the inner loop of the meta-methods runs. MAML, FOMAML and Reptile split the meta-batch
  of M tasks over the workers (M_k tasks of R envs each). The inner-loop adaptation
  theta'_i = adapt(theta, pre-update rollouts of task i) runs on the worker that owns task i:
  its post-update rollouts must be collected with theta'_i, so adapting on the learner would
  cost a round trip of rollouts and params in the middle of every iteration, and the worker
  has the rollouts already. For the outer update, MAML and FOMAML recompute theta'_i(theta) on
  the learner from the returned pre-update rollouts, differentiably (the meta-gradient flows
  through the inner step, which needs the learner's parameters); in-process training does the
  same recomputation. Reptile's workers return theta'_i itself, which its update averages. PEARL's
  posterior inference and RL2's hidden state stay on the worker that owns the env, like the
  env; the learner receives the transitions and encoder training rows it needs.
* Faults. An actor that dies is restarted by Ray (``max_restarts``); the learner then starts a
  new segment on it at the current iteration and collects that worker's whole shard again.
  A shard is used only once it has arrived complete, so no partial batch is used and no step
  is counted twice. An exception inside a worker comes back as data and is raised as a
  :class:`~robot_meta.learn.rollout_worker.RolloutWorkerError` naming the worker and the task
  params of its envs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.learn.algorithms.base import Shard
from robot_meta.learn.config import TrainConfig
from robot_meta.learn.rollout_worker import (
    RolloutWorker,
    RolloutWorkerError,
    raise_worker_error,
    shard_nbytes,
)

INSTALL_HINT = "pip install 'robot-meta[train,ray]'"


def import_ray() -> Any:
    """The ray module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise UserError(f"--workers needs Ray, which is not installed: {INSTALL_HINT}") from e
    return ray


def check_address(address: str, timeout: float = 3.0, probe_timeout: float = 6.0) -> None:
    """Fail fast (within ``timeout + probe_timeout`` s) with a clear error when no Ray cluster
    answers at a HOST:PORT address: ``ray.init`` itself retries for 20 s or more, also when
    something that is not Ray (or a proxy) accepts the connection. A TCP connect catches a
    refused or unroutable address; then a throw-away driver joins in a subprocess, killed at
    ``probe_timeout``."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379, the "
                        "address `ray start --head` prints), ray://HOST:PORT, or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UserError(f"--ray-address {address}: no Ray cluster reachable there ({e.strerror or e}); "
                        "start one with `ray start --head` on that machine, check the address, or drop "
                        "--ray-address to start a local cluster") from e
    code = ("import logging, sys, ray; ray.init(address=sys.argv[1], logging_level=logging.ERROR, "
            "log_to_driver=False); ray.shutdown()")
    try:
        out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True,
                             timeout=probe_timeout)
    except subprocess.TimeoutExpired as e:
        raise UserError(f"--ray-address {address}: something accepts connections there, but no Ray "
                        f"cluster answered within {probe_timeout:g} s; check the host and port (the "
                        "address `ray start --head` printed, port 6379 by default)") from e
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
        raise UserError(f"--ray-address {address}: could not join a Ray cluster there: "
                        f"{lines[-1] if lines else 'exit code ' + str(out.returncode)}")


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address``, or start a local one with ``num_cpus`` (default: the
    machine's). Returns True when this call started Ray (and the caller should shut it down);
    an already initialized Ray (e.g. a test fixture) is reused as is."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        check_address(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except Exception as e:  # noqa: BLE001 -- every failure to join gets the same clear message
            raise UserError(f"--ray-address {address}: could not join the Ray cluster there: {e}") from e
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 logging_level=logging.WARNING)
    return True


class RolloutPool:
    """N Ray actors, each a :class:`RolloutWorker` owning one shard of the batch.

    ``collect(weights, phase, iteration)`` broadcasts the weights with one ``ray.put``, gathers
    every shard (recollecting the shard of an actor that died), and records timings in
    ``last``: ``broadcast_ms``, ``gather_ms`` (the round trip beyond the slowest worker's own
    collection time), ``bytes`` (weights + shards) and per-worker ``collect_s`` and ``steps``.
    ``on_submit(pool, iteration)``, if set, is called once an iteration's collection is in
    flight (tests inject faults there).
    """

    def __init__(self, cfg: TrainConfig, workers: int, address: str | None = None, *,
                 max_restarts: int = 3, num_cpus: int | None = None, start_timeout: float = 300.0,
                 restart_timeout: float = 120.0):
        ray = import_ray()
        from robot_meta.learn.algorithms.base import shard_configs

        shard_configs(cfg, workers)  # a clear error before any actor starts
        self.ray, self.workers, self.max_restarts = ray, workers, max_restarts
        self.restart_timeout = restart_timeout
        self.dead_grace = 5.0  # s of ActorDiedError after which an actor counts as gone for good
        self.started = connect(address, num_cpus)
        self.restarts = [0] * workers
        self.on_submit: Callable[[RolloutPool, int], None] | None = None
        self.last: dict[str, Any] = {}
        try:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            # CPUs per actor: an equal share of the cluster (fractional when workers > CPUs),
            # and that many physics threads in its env.
            per = cpus / workers
            env_threads = max(1, int(per))
            options = {"num_cpus": per if per < 1 else float(env_threads),
                       "max_restarts": max_restarts, "max_task_retries": 0}
            actor = ray.remote(RolloutWorker).options(**options)
            self.actors = [actor.remote(cfg, k, workers, env_threads) for k in range(workers)]
            for k, a in enumerate(self.actors):
                try:
                    ray.get(a.ready.remote(), timeout=start_timeout)
                except ray.exceptions.GetTimeoutError as e:
                    raise UserError(f"rollout worker {k} did not start within {start_timeout:.0f} s: "
                                    f"the cluster ({cpus:g} CPUs) may lack resources for {workers} "
                                    "workers") from e
                except ray.exceptions.RayError as e:
                    raise RolloutWorkerError(f"rollout worker {k} could not start: {e}") from e
        except BaseException:
            self.close()
            raise

    def start_segment(self, iteration: int) -> None:
        """Every worker resets its env and per-env state with seeds from (seed, iteration, k)."""
        refs = [a.start_segment.remote(iteration) for a in self.actors]
        for k, ref in enumerate(refs):
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayActorError:
                self._restarted(k, iteration)

    def _restarted(self, k: int, iteration: int) -> None:
        """Actor k died: count it, wait until Ray has restarted it (a fresh worker: its
        constructor ran again), and start a segment on it at ``iteration``."""
        ray = self.ray
        self.restarts[k] += 1
        if self.restarts[k] > self.max_restarts:
            raise RolloutWorkerError(f"rollout worker {k} died {self.restarts[k]} times (at iteration "
                                     f"{iteration}); giving up after max_restarts = {self.max_restarts}")
        deadline = time.monotonic() + self.restart_timeout
        dead_since: float | None = None
        delay = 0.05
        while True:
            try:
                ray.get(self.actors[k].ready.remote(), timeout=max(1.0, deadline - time.monotonic()))
                break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
                # Calls fail (ActorUnavailableError) while the actor restarts; retry until it is
                # back. ActorDiedError that persists means Ray will not restart it.
                now = time.monotonic()
                if isinstance(e, ray.exceptions.ActorDiedError):
                    dead_since = now if dead_since is None else dead_since
                else:
                    dead_since = None
                if now > deadline or (dead_since is not None and now - dead_since > self.dead_grace):
                    raise RolloutWorkerError(f"rollout worker {k} died at iteration {iteration} and was "
                                             f"not restarted: {e}") from e
                time.sleep(delay)
                delay = min(1.0, 2 * delay)
        ray.get(self.actors[k].start_segment.remote(iteration))

    def collect(self, weights: dict[str, np.ndarray], phase: str, iteration: int) -> list[Shard]:
        """Every worker's shard of this iteration, in worker order."""
        ray = self.ray
        t0 = time.perf_counter()
        ref = ray.put(weights)  # the one broadcast of the iteration
        t1 = time.perf_counter()
        pending = {a.collect.remote(ref, phase): k for k, a in enumerate(self.actors)}
        if self.on_submit is not None:
            self.on_submit(self, iteration)
        shards: list[Shard | None] = [None] * self.workers
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            try:
                shard = ray.get(ready[0])
            except ray.exceptions.RayActorError:
                # The actor died: Ray restarts it (a fresh env); start a segment on it at this
                # iteration and collect its whole shard again. Nothing of the lost call is used.
                self._restarted(k, iteration)
                pending[self.actors[k].collect.remote(ref, phase)] = k
                continue
            if "error" in shard:
                raise_worker_error(shard, iteration)
            shards[k] = shard
        t2 = time.perf_counter()
        done = [s for s in shards if s is not None]
        collect_s = [float(s["collect_s"]) for s in done]
        self.last = {"broadcast_ms": 1e3 * (t1 - t0),
                     "gather_ms": 1e3 * max(0.0, (t2 - t1) - max(collect_s)),
                     "bytes": shard_nbytes(weights) + sum(shard_nbytes(s) for s in done),
                     "collect_s": collect_s, "steps": [int(s["steps"]) for s in done]}
        return done

    def close(self) -> None:
        """Stop the actors, and Ray itself if this pool started it."""
        for a in getattr(self, "actors", []):
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(a, no_restart=True)
        self.actors = []
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
