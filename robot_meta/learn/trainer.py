"""The training loop: budgets, segments, progress, logging, checkpoints and resume."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_meta.errors import UserError
from robot_meta.learn.algorithms import algorithm_class
from robot_meta.learn.algorithms.base import Algorithm, EnvSpec
from robot_meta.learn.checkpoint import FILENAME, load_checkpoint, save_checkpoint
from robot_meta.learn.config import TrainConfig
from robot_meta.learn.logger import RunLogger

if TYPE_CHECKING:
    from robot_meta.learn.rollout_pool import RolloutPool
    from robot_meta.sim.vec_env import VecEnv

CONFIG_NAME = "config.toml"


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from the run seed and keys (numpy SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    """cpu, cuda, or auto (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("[run].device = \"cuda\" but CUDA is not available; use \"cpu\" or \"auto\"")
    return torch.device(name)


def make_env(cfg: TrainConfig, algo: Algorithm | None = None, *, num_envs: int | None = None,
             seed: int = 0, split: str = "train", **kwargs: Any) -> VecEnv:
    """The training env of a config (the algorithm may add ``make_vec_env`` arguments)."""
    from robot_meta.sim import make_vec_env

    extra = algo.env_kwargs() if algo is not None else {}
    extra.update(kwargs)
    return make_vec_env(cfg.run.robot, cfg.run.family, num_envs or cfg.run.num_envs, seed,
                        task=cfg.run.task or None, split=split, **extra)


def env_spec(cfg: TrainConfig) -> EnvSpec:
    """Shapes of the config's env, read from a 1-env instance."""
    env = make_env(cfg, num_envs=1, nthread=0)
    spec = EnvSpec(cfg.run.robot, env.obs_dim, env.action_dim, env.factor_dim, env.episode_steps)
    env.close()
    return spec


def build_algorithm(cfg: TrainConfig, device: torch.device | None = None) -> Algorithm:
    """Instantiate the configured algorithm, with networks initialized from the run seed."""
    device = device or resolve_device(cfg.run.device)
    algo: Algorithm = algorithm_class(cfg.run.algorithm)(cfg, env_spec(cfg), device)
    return algo


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Trainer:
    """Runs an algorithm within its budget and keeps the run directory up to date.

    The run is cut into segments of ``checkpoint_every`` iterations. Each segment starts by
    resetting the env and the per-env algorithm state with seeds derived from (run seed,
    iteration), and ends with an atomic checkpoint. Resuming from a segment checkpoint therefore
    reproduces the uninterrupted run exactly (for a step budget; a wall-clock budget depends on
    the machine). Ctrl-C saves a checkpoint before exiting; resuming from it starts a new
    segment at that iteration.

    With ``workers`` (``--workers N``, ``[run].workers``) the envs live on Ray rollout workers
    (:mod:`robot_meta.learn.rollout_pool`): at a segment start each worker resets its shard with
    seeds from (run seed, iteration, worker index), and each iteration is ``collect`` on the
    workers then ``learn`` here. The checkpoint holds only the learner's state, so a run can
    resume with any worker count, or none.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
                 progress: bool = True, tensorboard: bool = True, stop_at: int | None = None,
                 init_from: str | Path | None = None, workers: int | None = None,
                 ray_address: str | None = None, on_pool: Callable[[RolloutPool], None] | None = None):
        self.cfg, self.run_dir, self.resume = cfg, Path(run_dir), resume
        # a run whose final weights start this one (fine-tuning, e.g. on a family narrowed
        # by robot-meta sysid); its step counters are not carried over
        self.init_from = Path(init_from) if init_from else None
        # rollout workers on Ray (0: in-process); the launch file's [run].workers by default
        self.workers = cfg.run.workers if workers is None else workers
        if self.workers < 0:
            raise UserError(f"--workers must be >= 0, got {self.workers}")
        self.ray_address = ray_address
        self.on_pool = on_pool  # called with the RolloutPool once it is up (tests inject faults)
        self.pool: RolloutPool | None = None
        self.stop_at = stop_at  # stop (and checkpoint) at this iteration, as an interruption would
        self.progress, self.tensorboard = progress, tensorboard
        if cfg.run.torch_threads:
            torch.set_num_threads(cfg.run.torch_threads)
        self.device = resolve_device(cfg.run.device)
        self.ckpt_path = self.run_dir / FILENAME
        self.iteration = 0
        self.steps = 0
        self.elapsed = 0.0
        self.last_return = float("nan")

    # ---- run directory -------------------------------------------------------------------------
    def prepare_dir(self) -> None:
        if self.resume:
            if not self.ckpt_path.exists():
                raise UserError(f"{self.run_dir}: nothing to resume (no {FILENAME}); drop --resume")
        else:
            if self.run_dir.exists() and any(self.run_dir.iterdir()):
                raise UserError(f"{self.run_dir} already holds a run; continue it with --resume, "
                                "or pick another --out")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            meta = {"robot": self.cfg.run.robot, "algorithm": self.cfg.run.algorithm,
                    "name": self.cfg.run.name, "seed": self.cfg.run.seed, "git": git_revision(),
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "config_sha256": self.cfg.digest(),
                    "init_from": str(self.init_from) if self.init_from else None}
            (self.run_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
        tmp = self.run_dir / (CONFIG_NAME + ".tmp")
        tmp.write_text(self.cfg.to_toml())
        tmp.replace(self.run_dir / CONFIG_NAME)

    def save(self, algo: Algorithm, final: bool = False) -> None:
        save_checkpoint(self.ckpt_path, {
            "algorithm": self.cfg.run.algorithm, "robot": self.cfg.run.robot,
            "config_toml": self.cfg.to_toml(), "iteration": self.iteration, "steps": self.steps,
            "elapsed": self.elapsed, "final": final, "state": algo.state_dict(),
        })

    def worker_record(self) -> dict[str, float]:
        """Per-worker collection time and steps/s of the last iteration, and the broadcast and
        gather costs (logged with the iteration's other scalars)."""
        assert self.pool is not None, "worker_record needs the rollout pool"
        last = self.pool.last
        out: dict[str, float] = {"workers/broadcast_ms": last["broadcast_ms"],
                                 "workers/gather_ms": last["gather_ms"],
                                 "workers/bytes": float(last["bytes"])}
        for k, (t, n) in enumerate(zip(last["collect_s"], last["steps"], strict=True)):
            out[f"workers/{k}/collect_s"] = t
            out[f"workers/{k}/sps"] = n / max(t, 1e-9)
        return out

    # ---- budget --------------------------------------------------------------------------------
    def progress_fraction(self) -> float:
        r = self.cfg.run
        p = 0.0
        if r.steps > 0:
            p = max(p, self.steps / r.steps)
        if r.minutes > 0:
            p = max(p, self.elapsed / (60.0 * r.minutes))
        return p

    # ---- loop ----------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train until the budget is spent. Returns a summary."""
        if self.workers:
            from robot_meta.learn.algorithms.base import shard_configs
            from robot_meta.learn.rollout_pool import check_address, import_ray

            import_ray()  # fail before the run dir is written: no Ray, a bad address, a bad split
            if self.ray_address:
                check_address(self.ray_address)
            shard_configs(self.cfg, self.workers)
        self.prepare_dir()
        cfg = self.cfg
        algo = build_algorithm(cfg, self.device)
        if self.resume:
            ck = load_checkpoint(self.ckpt_path, algorithm=cfg.run.algorithm, robot=cfg.run.robot)
            algo.load_state_dict(ck["state"])
            self.iteration, self.steps = int(ck["iteration"]), int(ck["steps"])
            self.elapsed = float(ck["elapsed"])
        elif self.init_from is not None:
            ck = load_checkpoint(self.init_from / FILENAME, algorithm=cfg.run.algorithm,
                                 robot=cfg.run.robot)
            algo.load_state_dict(ck["state"])
        env: VecEnv | None = None
        if self.workers:
            from robot_meta.learn.rollout_pool import RolloutPool

            self.pool = RolloutPool(cfg, self.workers, self.ray_address)
            if self.on_pool is not None:
                self.on_pool(self.pool)
        else:
            env = make_env(cfg, algo, seed=derive_seed(cfg.run.seed, 0))
        try:
            return self._loop(algo, env)
        finally:
            if env is not None:
                env.close()
            if self.pool is not None:
                self.pool.close()

    def _loop(self, algo: Algorithm, env: VecEnv | None) -> dict[str, Any]:
        cfg = self.cfg
        logger = RunLogger(self.run_dir, tensorboard=self.tensorboard)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=1000, desc=cfg.run.name, unit="‰", dynamic_ncols=True,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
            bar.update(min(1000, int(1000 * self.progress_fraction())))
        fresh_segment = True
        t_start = time.perf_counter() - self.elapsed
        try:
            while self.progress_fraction() < 1.0:
                if self.stop_at is not None and self.iteration >= self.stop_at:
                    break
                if fresh_segment or self.iteration % cfg.run.checkpoint_every == 0:
                    rng = np.random.default_rng(derive_seed(cfg.run.seed, 2, self.iteration))
                    gen = torch.Generator().manual_seed(derive_seed(cfg.run.seed, 3, self.iteration))
                    if self.pool is not None:
                        self.pool.start_segment(self.iteration)
                        algo.start_learner(rng, gen)
                    else:
                        assert env is not None  # in-process: the trainer made the env
                        obs = env.reset(seed=derive_seed(cfg.run.seed, 1, self.iteration))
                        algo.start_segment(env, obs, rng, gen)
                    fresh_segment = False
                phase = algo.phase_at(self.progress_fraction())
                t0 = time.perf_counter()
                if self.pool is not None:
                    algo.prepare_iteration(phase)
                    shards = self.pool.collect(algo.rollout_weights(), phase, self.iteration)
                    m = algo.learn(shards, phase)
                else:
                    assert env is not None
                    m = algo.iterate(env, phase)
                dt = time.perf_counter() - t0
                self.iteration += 1
                it_steps = int(m.pop("steps"))
                self.steps += it_steps
                self.elapsed = time.perf_counter() - t_start
                sps = it_steps / dt
                if "episode_return" in m:
                    self.last_return = m["episode_return"]
                record: dict[str, Any] = {"iteration": self.iteration, "steps": self.steps,
                                          "time": round(self.elapsed, 3), "phase": phase,
                                          "phase_index": algo.phases.index(phase), "sps": sps, **m}
                workers = ""
                if self.pool is not None:
                    record.update(self.worker_record())
                    workers = " [" + " ".join(f"w{k}={record[f'workers/{k}/sps'] / 1e3:.1f}k"
                                              for k in range(self.workers)) + "]"
                logger.log(self.steps, record)
                if bar is not None:
                    bar.set_postfix_str(f"phase={phase} steps={self.steps / 1e6:.2f}M sps={sps / 1e3:.1f}k"
                                        f"{workers} return={self.last_return:.1f}", refresh=False)
                    bar.update(min(1000, int(1000 * self.progress_fraction())) - bar.n)
                if self.iteration % cfg.run.checkpoint_every == 0:
                    self.save(algo)
        except KeyboardInterrupt:
            self.elapsed = time.perf_counter() - t_start
            self.save(algo)
            if bar is not None:
                bar.close()
            print(f"\ninterrupted: checkpoint saved at iteration {self.iteration} to {self.ckpt_path}; "
                  f"continue with --resume")
            logger.close()
            raise
        except BaseException as e:
            if type(e).__name__ == "RolloutWorkerError":
                # Raised while collecting, before the update: the learner's state is that of a
                # finished iteration. Keep it, as Ctrl-C does.
                self.elapsed = time.perf_counter() - t_start
                self.save(algo)
                e.add_note(f"checkpoint saved at iteration {self.iteration} to {self.ckpt_path}; continue "
                           "with --resume (with or without --workers)")
            if bar is not None:
                bar.close()
            logger.close()
            raise
        self.save(algo, final=self.progress_fraction() >= 1.0)
        if bar is not None:
            bar.close()
        logger.close()
        self.algo = algo
        return {"run_dir": str(self.run_dir), "iterations": self.iteration, "steps": self.steps,
                "minutes": round(self.elapsed / 60.0, 3), "last_episode_return": self.last_return,
                "steps_per_second": self.steps / max(self.elapsed, 1e-9), "workers": self.workers}
