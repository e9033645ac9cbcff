"""The adaptation-rule registry: method choice by the bundle's method, clear errors, and a new
rule added with one class and one registration."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pytest

from robot_meta.errors import UserError
from robot_meta.runtime.adapters import (
    Adapter,
    FixedPolicy,
    HistoryAdapter,
    adapter_class,
    deployed_method,
    make_adapter,
    oracle_adapter,
    register_adapter,
    registered_methods,
    resolve_method,
)
from robot_meta.runtime.adapters import registry as reg
from robot_meta.runtime.bundle import load_bundle


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reg, "_ADAPTERS", dict(reg._ADAPTERS))
    monkeypatch.setattr(reg, "_BY_BUNDLE", dict(reg._BY_BUNDLE))


def test_unknown_methods_list_the_registered_ones(bundles: dict[str, Any]) -> None:
    rma = load_bundle(bundles["rma"][0])
    with pytest.raises(UserError, match="unknown --method 'magic'; use auto, context, rma, gradient, "
                                        "context-step, rl2, latent-search, sysid"):
        resolve_method(rma, "magic")
    with pytest.raises(UserError, match="unknown adaptation method 'magic'; registered: .*fixed"):
        make_adapter(rma, "magic")
    with pytest.raises(UserError, match="unknown --method 'fixed'"):  # not an adaptation
        resolve_method(rma, "fixed")
    rma.manifest.method = "dreamer"
    with pytest.raises(UserError, match="unknown method 'dreamer'; this runtime adapts bundles of "
                                        "method cavia, fomaml, maml, pearl, ppo, reptile, rl2, rma"):
        resolve_method(rma, "auto")


def test_run_and_baselines_pick_method_and_mode_from_the_registry(bundles: dict[str, Any]) -> None:
    rma, ppo, pearl = (load_bundle(bundles[m][0]) for m in ("rma", "ppo", "pearl"))
    assert deployed_method(ppo) == "fixed" and isinstance(make_adapter(ppo, "fixed"), FixedPolicy)
    assert deployed_method(rma) == "rma" and adapter_class("rma").online  # run adapts online
    assert deployed_method(pearl) == "context" and not adapter_class("context").online
    assert deployed_method(pearl, "latent-search") == "latent-search"  # a saved state's method
    assert adapter_class("latent-search").same_task and not adapter_class("context").same_task
    # an rma bundle's oracle: its own rule acting with z = mu(e), whatever the session's method
    z = np.ones(rma.manifest.latent_dim, np.float32)
    for method in ("rma", "latent-search"):
        ad = oracle_adapter(rma, method, z, rollouts=5, seed=0)
        assert isinstance(ad, HistoryAdapter) and ad.oracle_z is z
    assert oracle_adapter(pearl, "latent-search", None, rollouts=5, seed=0).kind == "posterior"
    with pytest.raises(UserError, match="no oracle for it"):
        oracle_adapter(ppo, "fixed", None, rollouts=5, seed=0)


def test_a_new_rule_is_one_class_and_one_registration(bundles: dict[str, Any],
                                                      clean_registry: None) -> None:
    @register_adapter
    class ConstantLatent(Adapter):
        """Acts with z = 1: a rule registered from outside the package."""

        kind = method = "constant"
        bundle_methods = ("dreamer",)
        needs = "a dreamer bundle"

        def begin(self, mode: str) -> None:
            super().begin(mode)
            self.z = np.ones(self.latent_dim, np.float32)

    pearl = load_bundle(bundles["pearl"][0])
    with pytest.raises(UserError, match="--method constant needs a dreamer bundle; this one is pearl"):
        resolve_method(pearl, "constant")
    pearl.manifest.method = "dreamer"
    assert resolve_method(pearl, "auto") == "constant" == resolve_method(pearl, "constant")
    assert "constant" in registered_methods()
    ad = make_adapter(pearl, "constant")
    ad.begin("adapt")
    assert ad.act(np.zeros(len(pearl.manifest.observation))).shape == (2,)
    assert ad.state()["z"] == [1.0] * pearl.manifest.latent_dim

    class Impostor(Adapter):
        method = "rma"

    with pytest.raises(ValueError, match="'rma' is already registered by HistoryAdapter"):
        register_adapter(Impostor)


def test_adapt_offers_exactly_the_registered_methods() -> None:
    from robot_meta.launch import cmd_adapt

    parser = argparse.ArgumentParser()
    cmd_adapt.register(parser.add_subparsers())
    action = next(a for a in parser._subparsers._group_actions[0].choices["adapt"]._actions  # type: ignore[union-attr]
                  if a.dest == "method")
    assert list(action.choices) == ["auto", *registered_methods()]
