"""The ``bundles`` fixture: bundles exported from untrained-but-normalized models, one per
context method (fast; the export path is the same as for trained runs). Used by tests/export
and tests/runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

OBS, ACT, F, L, H = 12, 2, 16, 8, 50


def _models(method: str) -> dict[str, Any]:
    import torch

    from robot_meta.export.exporter import record_sim
    from robot_meta.learn.models.actor_critic import ActorCritic
    from robot_meta.learn.models.history_encoder import HistoryEncoder
    from robot_meta.learn.models.posterior_encoder import PosteriorEncoder
    from robot_meta.learn.models.privileged_encoder import PrivilegedEncoder

    g = torch.Generator().manual_seed(0)
    rec = record_sim("arm2", "payload", "reach", steps=60, num_envs=8)
    obs = torch.as_tensor(rec.obs.reshape(-1, OBS), dtype=torch.float32)
    ac = ActorCritic(OBS, ACT, 0 if method == "ppo" else L, F, (64, 64), generator=g)
    ac.obs_norm.update(obs)  # non-trivial statistics, so that "baked in" can be checked
    mods: dict[str, Any] = {"policy": ac}
    if method == "rma":
        phi = HistoryEncoder(OBS, ACT, H, L, generator=g)
        phi.obs_norm.load_state_dict(ac.obs_norm.state_dict())
        mods |= {"encoder": phi, "privileged_encoder": PrivilegedEncoder(F, L, generator=g)}
    if method == "pearl":
        pe = PosteriorEncoder(OBS, ACT, L, generator=g)
        c = torch.cat([obs[:-1], torch.zeros(len(obs) - 1, ACT + 1), obs[1:]], -1)
        pe.update_normalizers(c)
        mods["encoder"] = pe
    return mods


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    from robot_meta.export.exporter import ExportInfo, export_bundle

    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for method in ("ppo", "rma", "pearl"):
        mods = _models(method)
        info = ExportInfo("arm2", method, "reach", "payload", 0 if method == "ppo" else L,
                          H if method == "rma" else 0, seed=0, config_text=f"algorithm = '{method}'")
        export_bundle(mods, info, root / method)
        out[method] = (root / method, mods)
    return out


RL2_HIDDEN = 16


@pytest.fixture(scope="session")
def rl2_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """An arm2 RL2 bundle (a GRU policy, hidden size 16) and its torch module."""
    import torch

    from robot_meta.export.exporter import ExportInfo, export_bundle, record_sim
    from robot_meta.learn.models.recurrent_actor_critic import RecurrentActorCritic

    rec = record_sim("arm2", "payload", "reach", steps=60, num_envs=8)
    ac = RecurrentActorCritic(OBS, ACT, F, RL2_HIDDEN, (32, 32), actor_gain=1.0,
                              generator=torch.Generator().manual_seed(0))
    ac.obs_norm.update(torch.as_tensor(rec.obs.reshape(-1, OBS), dtype=torch.float32))
    info = ExportInfo("arm2", "rl2", "reach", "payload", 0, 0, seed=0, config_text="algorithm = 'rl2'",
                      extra={"hidden_size": RL2_HIDDEN, "episodes_per_trial": 4})
    path = tmp_path_factory.mktemp("bundles") / "rl2"
    export_bundle({"recurrent_policy": ac}, info, path, record=rec)
    return path, ac


@pytest.fixture(scope="session")
def maml_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """An arm2 MAML bundle (untrained meta-policy with a real normalizer and its adaptation rule)
    and the algorithm it was exported from."""
    return export_maml_bundle(tmp_path_factory.mktemp("bundles") / "maml")


def export_maml_bundle(path: Path, adapt_params: str = "all") -> tuple[Path, Any]:
    """Export an untrained arm2 MAML meta-policy (with a real normalizer) to ``path``; returns the
    path and the algorithm."""
    import torch

    from robot_meta.export.exporter import ExportInfo, export_bundle, record_sim
    from robot_meta.learn.trainer import build_algorithm
    from tests.run_fixtures import tiny_config

    cfg = tiny_config("maml", robot="arm2")
    cfg.meta.inner_lr = 0.05
    cfg.meta.adapt_params = adapt_params
    algo = build_algorithm(cfg)
    rec = record_sim("arm2", "payload", "reach", steps=60, num_envs=8)
    algo.ac.obs_norm.update(torch.as_tensor(rec.obs.reshape(-1, OBS), dtype=torch.float32))
    info = ExportInfo("arm2", "maml", "reach", "payload", 0, 0, seed=0, config_text="algorithm = 'maml'",
                      extra=algo.export_fields()["extra"])
    export_bundle(algo.deployment_modules(), info, path, record=rec)
    return path, algo


@pytest.fixture(scope="session")
def cavia_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """An arm2 cavia bundle (untrained policy and dynamics model with real normalizers, and its
    context step) and the algorithm it was exported from."""
    import torch

    from robot_meta.export.exporter import ExportInfo, export_bundle, record_sim
    from robot_meta.learn.trainer import build_algorithm
    from tests.run_fixtures import tiny_config

    cfg = tiny_config("cavia")
    cfg.run.robot, cfg.run.family, cfg.run.task = "arm2", "servo", "reach"
    cfg.meta.inner_lr = 0.05
    algo = build_algorithm(cfg)
    rec = record_sim("arm2", "servo", "reach", steps=60, num_envs=8)
    algo.ac.obs_norm.update(torch.as_tensor(rec.obs.reshape(-1, OBS), dtype=torch.float32))
    delta = (rec.next_obs - rec.obs).reshape(-1, OBS)
    algo.dyn.delta_norm.update(torch.as_tensor(delta, dtype=torch.float32))
    fields = algo.export_fields()
    info = ExportInfo("arm2", "cavia", "reach", "servo", fields["latent_dim"], 0, seed=0,
                      config_text="algorithm = 'cavia'", extra=fields["extra"])
    path = tmp_path_factory.mktemp("bundles") / "cavia"
    export_bundle(algo.deployment_modules(), info, path, record=rec)
    return path, algo
