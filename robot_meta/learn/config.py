"""The typed training configuration, loaded from a launch file (TOML) and validated on load.

A launch file has the sections ``[run]``, ``[ppo]``, ``[model]``, ``[rma]``, ``[pearl]``,
``[meta]`` (MAML, FOMAML, Reptile), ``[rl2]`` and ``[eval]``; every key is optional except
``[run].robot`` and ``[run].algorithm``. Unknown
sections or keys, wrong types and out-of-range values are errors that name the field.
Bundled launch files live in each robot's folder, ``<robot folder>/launch/<robot>-<family>-<algorithm>.toml``;
a launch name is looked up in every registered robot's folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_meta.errors import UserError
from robot_meta.toml_config import did_you_mean, from_dict, read_toml

# The bundled robots' folders; a robot's launch files are in <folder>/launch/ (launch_files()).
# The algorithms `robot-meta train` knows. The gradient and recurrent methods join here.
ALGORITHMS = ("ppo", "rma", "pearl", "maml", "fomaml", "reptile", "rl2", "cavia")
GRADIENT_METHODS = ("maml", "fomaml", "reptile")
# methods whose envs are [meta].meta_batch tasks x [meta].inner_rollouts episodes
META_BATCH_METHODS = (*GRADIENT_METHODS, "cavia")


class ConfigError(UserError, ValueError):
    """A launch file is invalid; the message names the file and the field."""


@dataclass
class RunConfig:
    """What to train, on what, for how long."""

    robot: str = ""  # a registered robot name, or a robot folder path (relative to the launch file)
    algorithm: str = ""  # one of ALGORITHMS
    family: str = "all"  # a bundled family name or a path to a family TOML (relative to the launch file)
    task: str = ""  # the robot's default task when empty
    name: str = ""  # defaults to the launch file's stem
    seed: int = 0
    num_envs: int = 512  # B, parallel simulated envs
    minutes: float = 5.0  # wall-clock budget (0: none)
    steps: int = 0  # env-step budget (0: none)
    device: str = "cpu"  # cpu, cuda or auto (cuda when present)
    checkpoint_every: int = 50  # iterations per segment; a checkpoint is written after each
    torch_threads: int = 1  # torch intra-op threads (1 avoids contention with the sim pool; 0: torch default)
    workers: int = 0  # rollout workers on Ray, each collecting a shard of the batch (0: in-process)

    def validate(self, where: str) -> None:
        from robot_meta.robot_registry import UnknownRobotError, robot_folder

        try:
            robot_folder(self.robot)
        except UnknownRobotError as e:
            raise ConfigError(f"{where}.robot: {e}") from e
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"{where}.algorithm: unknown algorithm {self.algorithm!r}; "
                              f"use one of {', '.join(ALGORITHMS)}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"{where}.device: use cpu, cuda or auto, got {self.device!r}")
        _positive(self.num_envs, f"{where}.num_envs")
        _positive(self.checkpoint_every, f"{where}.checkpoint_every")
        _nonneg(self.minutes, f"{where}.minutes")
        _nonneg(self.steps, f"{where}.steps")
        _nonneg(self.torch_threads, f"{where}.torch_threads")
        _nonneg(self.workers, f"{where}.workers")
        if self.minutes == 0 and self.steps == 0:
            raise ConfigError(f"{where}: give a budget, minutes > 0 or steps > 0")


@dataclass
class PPOConfig:
    """Proximal policy optimization."""

    horizon: int = 32  # T, steps per env per iteration
    epochs: int = 4
    minibatches: int = 4
    lr: float = 1e-3
    lr_schedule: str = "adaptive"  # adaptive (KL-driven) or fixed
    desired_kl: float = 0.01  # target KL for the adaptive schedule
    min_lr: float = 1e-5  # bounds of the adaptive learning rate
    max_lr: float = 1e-2
    max_kl: float = 0.05  # stop the epochs of an update early above this KL (0: never)
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    value_coef: float = 1.0
    entropy_coef: float = 0.0
    max_grad_norm: float = 1.0
    init_std: float = 0.5
    actor_init_gain: float = 0.01  # orthogonal-init gain of the actor's output layer

    def validate(self, where: str) -> None:
        _positive(self.actor_init_gain, f"{where}.actor_init_gain")
        for k in ("horizon", "epochs", "minibatches"):
            _positive(getattr(self, k), f"{where}.{k}")
        if not self.min_lr <= self.lr <= self.max_lr:
            raise ConfigError(f"{where}.lr: must lie in [min_lr, max_lr] = "
                              f"[{self.min_lr:g}, {self.max_lr:g}], got {self.lr:g}")
        for k in ("lr", "desired_kl", "clip", "init_std", "max_grad_norm", "min_lr"):
            _positive(getattr(self, k), f"{where}.{k}")
        for k in ("gamma", "lam"):
            _in_range(getattr(self, k), 0.0, 1.0, f"{where}.{k}")
        for k in ("value_coef", "entropy_coef", "max_kl"):
            _nonneg(getattr(self, k), f"{where}.{k}")
        if self.lr_schedule not in ("adaptive", "fixed"):
            raise ConfigError(f"{where}.lr_schedule: use adaptive or fixed, got {self.lr_schedule!r}")


@dataclass
class ModelConfig:
    """Network sizes."""

    hidden: list[int] = field(default_factory=lambda: [128, 128])  # actor and critic
    latent_dim: int = 8  # z
    encoder_hidden: list[int] = field(default_factory=lambda: [64, 64])  # mu(e), PEARL encoder

    def validate(self, where: str) -> None:
        for k in ("hidden", "encoder_hidden"):
            v = getattr(self, k)
            if not v or any(h <= 0 for h in v):
                raise ConfigError(f"{where}.{k}: give a non-empty list of positive layer widths")
        _positive(self.latent_dim, f"{where}.latent_dim")


@dataclass
class RMAConfig:
    """RMA phase 2: the adaptation module phi, trained by regression to mu(e) on its own rollouts."""

    phase2_fraction: float = 0.3  # share of the budget spent in phase 2
    history: int = 50  # H, steps of (o, a) seen by phi
    lr: float = 1e-3
    batches: int = 2  # regression minibatches per phase-2 iteration
    batch_size: int = 2048  # histories per minibatch, drawn from the iteration's rollout

    def validate(self, where: str) -> None:
        _in_range(self.phase2_fraction, 0.0, 0.95, f"{where}.phase2_fraction")
        if self.history < 13:
            raise ConfigError(f"{where}.history: must be >= 13 steps, got {self.history}")
        _positive(self.lr, f"{where}.lr")
        _positive(self.batches, f"{where}.batches")
        _positive(self.batch_size, f"{where}.batch_size")


@dataclass
class PEARLConfig:
    """PEARL-style posterior q(z | c) trained as a VAE over transitions of one task."""

    episodes_per_task: int = 4  # each env keeps its task this many episodes
    kl_weight: float = 0.05  # beta in  E_q[-log p(c' | z)] + beta KL(q(z | c) || N(0, I))
    lr: float = 1e-3
    context_size: int = 64  # transitions per task in a training context c
    target_size: int = 32  # other transitions of the same task, decoded
    task_memory: int = 256  # transitions kept per env for encoder training
    encoder_updates: int = 4  # encoder/decoder gradient steps per iteration

    def validate(self, where: str) -> None:
        if self.episodes_per_task < 2:
            raise ConfigError(f"{where}.episodes_per_task: must be >= 2, got {self.episodes_per_task}")
        _nonneg(self.kl_weight, f"{where}.kl_weight")
        for k in ("lr", "context_size", "target_size", "encoder_updates"):
            _positive(getattr(self, k), f"{where}.{k}")
        if self.task_memory < self.context_size + self.target_size:
            raise ConfigError(f"{where}.task_memory: must be >= context_size + target_size")


ADAPT_CHOICES = ("all", "output", "output_bias")  # [meta].adapt_params


@dataclass
class MetaConfig:
    """Gradient-based meta-RL (MAML, first-order MAML, Reptile, CAVIA): the inner loop adapts
    the policy (or, for cavia, its context z) to one task by gradient steps on a few rollouts of
    it, as on the robot."""

    meta_batch: int = 32  # tasks per meta-iteration; [run].num_envs must be meta_batch * inner_rollouts
    inner_rollouts: int = 3  # rollouts of a task the inner step learns from (the robot's few rollouts)
    inner_steps: int = 1  # k, policy-gradient steps of the inner loop
    inner_lr: float = 0.1  # alpha in theta' = theta - alpha grad L_in(theta) (cavia: its initial value)
    model_lr: float = 1e-3  # cavia: Adam step of the dynamics model, z0 and the learned rates
    model_epochs: int = 8  # cavia: epochs of the dynamics meta-objective per iteration
    action_history: int = 3  # cavia: the last H actions the dynamics model sees (latency)
    meta_sgd: bool = False  # learn one inner learning rate per parameter tensor (Meta-SGD), from inner_lr
    rate_lr: float = 0.01  # Adam step of the learned log inner rates (fixed; the policy's follows the KL)
    reptile_step: float = 0.5  # epsilon in theta <- theta + epsilon mean_i (theta'_i - theta)
    # the inner step also moves log sigma. Off (the default) it adapts the mean action only: a
    # step that narrows sigma raises the sampled return without changing what the robot runs
    # (the mean), and Meta-SGD learns exactly that (arm2: log-sigma rate 12.6 vs 0.01 for weights)
    adapt_std: bool = False
    # which actor tensors the inner step moves: "all" of them, the "output" layer (weight and
    # bias), or the "output_bias" alone (an action offset: act_dim numbers, so a few rollouts'
    # policy gradient has act_dim directions to estimate instead of every weight; a payload's
    # extra gravity torque is such an offset). The others stay theta's, as log_std does.
    adapt_params: str = "all"
    gamma: float = 0.99  # discount of the inner loss's returns-to-go

    def validate(self, where: str) -> None:
        for k in ("meta_batch", "inner_rollouts", "inner_steps", "inner_lr", "rate_lr", "model_lr",
                  "model_epochs", "action_history"):
            _positive(getattr(self, k), f"{where}.{k}")
        _in_range(self.reptile_step, 0.0, 1.0, f"{where}.reptile_step")
        _positive(self.reptile_step, f"{where}.reptile_step")
        _in_range(self.gamma, 0.0, 1.0, f"{where}.gamma")
        if self.adapt_params not in ADAPT_CHOICES:
            raise ConfigError(f"{where}.adapt_params: must be one of {', '.join(ADAPT_CHOICES)}, "
                              f"got {self.adapt_params!r}")


@dataclass
class RL2Config:
    """RL2: a GRU policy that adapts through its hidden state over the episodes of one task."""

    episodes_per_trial: int = 4  # K, episodes of one task that share the hidden state
    hidden_size: int = 128  # GRU state size
    bptt: int = 50  # steps per truncated back-propagation chunk in the recurrent PPO update

    def validate(self, where: str) -> None:
        if self.episodes_per_trial < 2:
            raise ConfigError(f"{where}.episodes_per_trial: must be >= 2, got {self.episodes_per_trial}")
        _positive(self.hidden_size, f"{where}.hidden_size")
        _positive(self.bptt, f"{where}.bptt")


@dataclass
class EvalConfig:
    """Defaults of ``robot-meta eval``."""

    tasks: int = 64  # held-out tasks per sim setting
    rollouts: list[int] = field(default_factory=lambda: [1, 3, 5])
    twin_trials: int = 2  # independent adaptation trials per twin parameter file
    oracle_rollouts: int = 10  # PEARL: the "oracle" posterior is built from this many rollouts

    def validate(self, where: str) -> None:
        _positive(self.tasks, f"{where}.tasks")
        _positive(self.twin_trials, f"{where}.twin_trials")
        _positive(self.oracle_rollouts, f"{where}.oracle_rollouts")
        if not self.rollouts or any(k <= 0 for k in self.rollouts):
            raise ConfigError(f"{where}.rollouts: give a list of positive rollout counts")


@dataclass
class TrainConfig:
    """The full, resolved configuration of a run."""

    run: RunConfig = field(default_factory=RunConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rma: RMAConfig = field(default_factory=RMAConfig)
    pearl: PEARLConfig = field(default_factory=PEARLConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    rl2: RL2Config = field(default_factory=RL2Config)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The resolved config as TOML (every field, defaults included)."""
        lines = ["# resolved robot_meta training config"]
        for sec, values in self.to_dict().items():
            lines.append(f"\n[{sec}]")
            for k, v in values.items():
                lines.append(f"{k} = {_toml_value(v)}")
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        """SHA-256 of the resolved TOML: identifies the config of a run."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Loading


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _positive(v: float, where: str) -> None:
    if not v > 0:
        raise ConfigError(f"{where}: must be > 0, got {v!r}")


def _nonneg(v: float, where: str) -> None:
    if not v >= 0:
        raise ConfigError(f"{where}: must be >= 0, got {v!r}")


def _in_range(v: float, lo: float, hi: float, where: str) -> None:
    if not lo <= v <= hi:
        raise ConfigError(f"{where}: must lie in [{lo:g}, {hi:g}], got {v!r}")


def config_from_dict(data: dict[str, Any], where: str = "config",
                     base_dir: Path | None = None) -> TrainConfig:
    """Build and validate a TrainConfig from parsed TOML. ``where`` prefixes error messages;
    a relative family path is resolved against ``base_dir``."""
    sections = {f.name: f for f in dataclasses.fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    for sec in data:
        if sec not in sections:
            raise ConfigError(f"{where}: unknown section [{sec}]{did_you_mean(sec, sections)}")
    run = data.get("run", {})
    if isinstance(run, dict) and isinstance(run.get("robot"), str) and base_dir is not None:
        from robot_meta.robot_registry import UnknownRobotError, looks_like_path, robot_ref

        if looks_like_path(run["robot"]) or (base_dir / run["robot"] / "robot.toml").is_file():
            try:  # a folder robot: recorded by absolute path, relative to the launch file
                data = {**data, "run": {**run, "robot": robot_ref(run["robot"], base=base_dir)}}
            except UnknownRobotError as e:
                raise ConfigError(f"{where}: [run].robot: {e}") from e
    cfg = TrainConfig(**{sec: from_dict(hints[sec], data.get(sec, {}), f"{where}: [{sec}]", ConfigError)
                         for sec in sections})
    if cfg.run.algorithm == "reptile" and cfg.meta.meta_sgd:
        raise ConfigError(f"{where}: [meta].meta_sgd: Reptile has no outer loss through the inner step "
                          f"to learn rates from; use algorithm = \"maml\" or \"fomaml\", or set "
                          f"meta_sgd = false")
    if cfg.run.algorithm == "reptile" and cfg.meta.adapt_params != "all":
        raise ConfigError(f"{where}: [meta].adapt_params: Reptile moves theta toward the adapted params, so "
                          f"with adapt_params = {cfg.meta.adapt_params!r} nothing else would ever train; use "
                          f"adapt_params = \"all\" or algorithm = \"maml\" or \"fomaml\"")
    if cfg.run.algorithm in META_BATCH_METHODS:
        need = cfg.meta.meta_batch * cfg.meta.inner_rollouts
        if cfg.run.num_envs != need:
            raise ConfigError(f"{where}: [run].num_envs: a {cfg.run.algorithm} run needs num_envs = "
                              f"[meta].meta_batch * [meta].inner_rollouts = {need}, got {cfg.run.num_envs}")
    fam = cfg.run.family
    if (fam.endswith(".toml") or ".toml:" in fam) and base_dir is not None:
        path, sep, rest = fam.partition(".toml")
        p = Path(path + ".toml")
        if not p.is_absolute():
            p = (base_dir / p).resolve()
        if not p.exists():
            raise ConfigError(f"{where}: [run].family: no such file {p}")
        cfg.run.family = str(p) + rest
    return cfg


def launch_files() -> dict[str, Path]:
    """The launch files of every registered robot (``<folder>/launch/*.toml``), by name."""
    from robot_meta.robot_registry import registered_robots

    found: dict[str, Path] = {}
    for folder in registered_robots().values():
        for p in sorted((folder / "launch").glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def launch_names() -> list[str]:
    """The bundled launch files' names, sorted."""
    return sorted(launch_files())


def resolve_launch(launch: str) -> Path:
    """A launch name (found in the registered robots' folders) or a path to a TOML file ->
    the file's path."""
    p = Path(launch)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise ConfigError(f"{launch}: no such launch file")
        return p
    bundled = launch_files().get(launch)
    if bundled is not None:
        return bundled
    raise ConfigError(f"unknown launch {launch!r}: not a file and not a bundled launch name; "
                      f"bundled: {', '.join(launch_names())} (robot-meta train --list)")


def load_config(launch: str | Path) -> TrainConfig:
    """Load and validate a launch file (a bundled name or a path)."""
    path = resolve_launch(str(launch))
    data = read_toml(path, ConfigError)
    cfg = config_from_dict(data, str(path), base_dir=path.parent)
    if not cfg.run.name:
        cfg.run.name = path.stem
    return cfg
