"""The ``bundles`` fixture: bundles exported from untrained-but-normalized models, one per
context method (fast; the export path is the same as for trained runs). Used by tests/export
and tests/runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

OBS, ACT, F, L, H = 12, 2, 15, 8, 50


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
