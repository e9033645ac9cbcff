"""``adapt --method sysid``: identify the robot, then act with the privileged teacher.

RMA's comparison baseline: instead of inferring z from a history of (o, a), the adaptation
rollouts are used for system identification (:class:`robot_meta.calibration.sysid.
SystemIdentifier`, mujoco.sysid, fitting the bundle's training family), and the policy then
acts with z = mu(e) of the identified factors e, the path RMA's teacher was trained on. Factors
the data cannot identify stay nominal. Before the first adaptation rollout (and in ``prior``
mode) z = mu(e_nominal).

The fit needs mujoco (the workstation stack); it is imported only when a rollout is folded in,
so ``robot_meta.runtime`` still imports without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter, oracle_latent
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle


@register_adapter
class SysidAdapter(Adapter):
    """z = mu(identified factors), refitted after every adaptation rollout."""

    kind = "sysid"
    method = "sysid"

    @classmethod
    def check_bundle(cls, bundle: Bundle) -> None:
        if bundle.privileged_encoder is None:
            raise UserError(f"--method sysid needs a bundle with a privileged encoder mu(e) (rma); "
                            f"this one is {bundle.manifest.method}")

    def __init__(self, bundle: Bundle, max_iters: int = 15):
        super().__init__(bundle)
        if bundle.privileged_encoder is None or not self.latent_dim:
            raise UserError(f"{bundle.path}: --method sysid feeds identified factors to the "
                            "privileged encoder mu(e) of an rma bundle; this "
                            f"{bundle.manifest.method} bundle has none")
        from robot_meta.sim.randomize import nominal_params, normalize_params
        from robot_meta.sim.robots.robot_def import get_robot

        self.robot = get_robot(bundle.manifest.robot)
        self.max_iters = max_iters
        self.z_prior = oracle_latent(bundle, normalize_params(self.robot,
                                                              nominal_params(self.robot)))
        self.z = self.z_prior.copy()
        self._z_adapted: np.ndarray | None = None  # mu(identified factors), after a fit
        self.recordings: list[Any] = []
        self.factors: dict[str, float] = {}
        self.unidentified: dict[str, str] = {}

    def begin(self, mode: str) -> None:
        super().begin(mode)
        if mode == "prior":
            self.z = self.z_prior
        elif mode == "oracle":
            assert self.oracle_z is not None
            self.z = self.oracle_z
        elif mode == "adapt":
            self.z = self._z_adapted if self._z_adapted is not None else self.z_prior

    def add_rollout(self, arrays: dict[str, np.ndarray]) -> None:
        """Fold one adaptation rollout (its joint readings and the actions sent) in and refit."""
        from robot_meta.calibration.sysid import Recording

        hw = [j.joint for j in self.robot.hardware_map.joints]
        order = [hw.index(j) for j in self.robot.joints]
        self.recordings.append(Recording(
            np.asarray(arrays["q"])[:, order], np.asarray(arrays["dq"])[:, order],
            np.asarray(arrays["action"]), self.bundle.manifest.control_dt,
            f"adapt-{len(self.recordings)}"))
        self._identify()

    def _identify(self) -> None:
        from robot_meta.calibration.sysid import SysidConfig, SystemIdentifier
        from robot_meta.sim.randomize import SpecError, normalize_params

        fam = self.bundle.manifest.family
        try:
            sid = SystemIdentifier(self.robot, fam, SysidConfig(max_iters=self.max_iters))
        except SpecError:  # a family file that is not on this computer: the headline family
            sid = SystemIdentifier(self.robot, None, SysidConfig(max_iters=self.max_iters))
        res, _ = sid.fit(self.recordings)
        self.factors = res.identified()
        self.unidentified = {k: e.reason for k, e in res.estimates.items() if e.value is None}
        e = normalize_params(self.robot, res.params_vector(self.robot))
        self._z_adapted = oracle_latent(self.bundle, e)
        if self.mode == "adapt":
            self.z = self._z_adapted

    def replay(self, arrays: dict[str, np.ndarray], ret: float) -> None:
        self.add_rollout(arrays)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "z": self.z.tolist(), "factors": self.factors,
                "unidentified": self.unidentified}
