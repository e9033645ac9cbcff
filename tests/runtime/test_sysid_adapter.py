"""adapt --method sysid: identified factors feed the privileged teacher mu(e)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from robot_meta.errors import UserError
from robot_meta.runtime.adapters import make_adapter, oracle_latent, resolve_method
from robot_meta.runtime.bundle import load_bundle
from robot_meta.sim.randomize import normalize_params, params_from_dict
from robot_meta.sim.robots.robot_def import get_robot
from tests.calibration.helpers import simulate


def test_sysid_adapter_acts_with_mu_of_the_identified_factors(bundles: dict[str, Any]) -> None:
    bundle = load_bundle(bundles["rma"][0], robot="arm2")
    assert resolve_method(bundle, "sysid") == "sysid"
    ad = make_adapter(bundle, "sysid")
    ad.begin("adapt")
    z0 = ad.z.copy()
    truth = {"payload_mass": 0.3}
    for i, j in enumerate(("shoulder", "elbow")):
        rec = simulate("arm2", truth, "chirp", j, seconds=2.0, seed=i)
        ad.add_rollout({"q": rec.q, "dq": rec.dq, "action": rec.action})
    assert ad.factors["payload_mass"] == pytest.approx(0.3, abs=0.03)  # the bundle's family
    rdef = get_robot("arm2")
    e = normalize_params(rdef, params_from_dict(rdef, ad.factors, "test"))
    assert np.allclose(ad.z, oracle_latent(bundle, e), atol=1e-6)
    assert not np.allclose(ad.z, z0)
    ad.begin("prior")
    assert np.allclose(ad.z, z0)  # zero-shot: mu(nominal)
    assert ad.state()["kind"] == "sysid" and "payload_mass" in ad.state()["factors"]


def test_sysid_needs_a_privileged_encoder(bundles: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="privileged encoder"):
        resolve_method(load_bundle(bundles["pearl"][0], robot="arm2"), "sysid")
