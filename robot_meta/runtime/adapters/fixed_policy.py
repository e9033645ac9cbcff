"""The policy of a bundle without a latent (PPO, the robust baseline): nothing adapts."""

from __future__ import annotations

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.adapters.registry import register_adapter
from robot_meta.runtime.bundle import Bundle


@register_adapter
class FixedPolicy(Adapter):
    """A policy without a latent (PPO / the robust baseline): nothing adapts."""

    kind = "fixed"
    method = "fixed"
    bundle_methods = ("ppo",)
    selectable = False  # nothing to adapt: not an ``adapt --method``

    @classmethod
    def check_bundle(cls, bundle: Bundle) -> None:
        raise UserError(f"{bundle.path}: a {bundle.manifest.method} bundle has no latent to adapt; "
                        "use it as the robust --baseline of a pearl or rma session")
