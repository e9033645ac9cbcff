"""The registry of adaptation rules: one :class:`Adapter` subclass per adaptation method.

A rule registers itself with :func:`register_adapter` (a class decorator) in its own file; its
class attributes say which bundle methods (the manifest's ``method``) it is the default for and
what an explicit ``--method`` needs. Every choice of a rule goes through here:

* :func:`resolve_method`: ``adapt --method`` (``auto``: the bundle's own rule);
* :func:`make_adapter`: the adapter of a resolved method;
* :func:`deployed_method`: what ``run`` and a session's robust baseline act with;
* :func:`oracle_adapter`: the oracle column of a session.

A rule outside the package registers the same way (import its module before the session).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.adapters.adapter import Adapter
from robot_meta.runtime.bundle import Bundle

_ADAPTERS: dict[str, type[Adapter]] = {}  # adaptation method -> rule
_BY_BUNDLE: dict[str, str] = {}  # bundle method -> its default adaptation method

A = TypeVar("A", bound=type[Adapter])


def register_adapter(cls: A) -> A:
    """Register an adaptation rule under ``cls.method``, as the default of each of
    ``cls.bundle_methods``. Refuses a name another rule already holds."""
    if not cls.method:
        raise ValueError(f"{cls.__name__}: an adapter needs a `method` name to be registered")
    held = _ADAPTERS.get(cls.method)
    if held is not None and held is not cls:
        raise ValueError(f"adaptation method {cls.method!r} is already registered by {held.__name__}")
    for bm in cls.bundle_methods:
        other = _BY_BUNDLE.get(bm)
        if other is not None and other != cls.method:
            raise ValueError(f"bundle method {bm!r} already defaults to adaptation {other!r}")
    _ADAPTERS[cls.method] = cls
    for bm in cls.bundle_methods:
        _BY_BUNDLE[bm] = cls.method
    return cls


def registered_methods() -> list[str]:
    """The adaptation methods ``adapt --method`` accepts besides ``auto``, in registration order."""
    return [m for m, c in _ADAPTERS.items() if c.selectable]


def bundle_methods() -> dict[str, str]:
    """Bundle method (manifest ``method``) -> the adaptation method ``auto`` picks for it."""
    return dict(_BY_BUNDLE)


def adapter_class(method: str) -> type[Adapter]:
    """The rule registered as ``method``; a clear error listing the registered ones."""
    cls = _ADAPTERS.get(method)
    if cls is None:
        raise UserError(f"unknown adaptation method {method!r}; registered: "
                        f"{', '.join(_ADAPTERS)}")
    return cls


def default_method(bundle: Bundle) -> str:
    """The adaptation method registered for the bundle's method (``--method auto``)."""
    bm = bundle.manifest.method
    if bm not in _BY_BUNDLE:
        raise UserError(f"{bundle.path}: unknown method {bm!r}; this runtime adapts bundles of "
                        f"method {', '.join(sorted(_BY_BUNDLE))}")
    return _BY_BUNDLE[bm]


def resolve_method(bundle: Bundle, method: str) -> str:
    """The adaptation method for ``--method`` (auto picks the bundle's own), checked against
    the bundle."""
    if method == "auto":
        method = default_method(bundle)
        adapter_class(method).check_bundle(bundle)
        return method
    cls = _ADAPTERS.get(method)
    if cls is None or not cls.selectable:
        raise UserError(f"unknown --method {method!r}; use auto, {', '.join(registered_methods())}")
    cls.check_bundle(bundle)
    return method


def make_adapter(bundle: Bundle, method: str, *, rollouts: int = 5, seed: int = 0) -> Adapter:
    """The adapter of a resolved method (``fixed`` for latent-free bundles); ``rollouts`` and
    ``seed`` configure the rules that use them (latent search, exploration)."""
    return adapter_class(method).create(bundle, rollouts=rollouts, seed=seed)


def deployed_method(bundle: Bundle, saved: str | None = None) -> str:
    """What a bundle acts with outside an adaptation session: the method of a saved adapted
    state, else ``fixed`` for a policy without a latent or a recurrent state (ppo, or an
    unadapted gradient bundle), else the bundle's own rule (zero-shot)."""
    if saved is not None:
        return saved
    if bundle.manifest.latent_dim == 0 and bundle.recurrent is None:
        return "fixed"
    return resolve_method(bundle, "auto")


def oracle_adapter(bundle: Bundle, method: str, oracle_z: np.ndarray | None, *,
                   rollouts: int, seed: int) -> Adapter:
    """The adapter of a session's oracle column.

    With a privileged encoder (``oracle_z`` = mu(e) of the true factors): the bundle's own
    rule acting with that z. Without one: the rule's state after the session's warm-up rollouts
    (PEARL's posterior, RL2's hidden state, theta' or z' of a gradient step), seeded apart from
    the session's adapter, for rules that can stand in that way (``warmup_oracle``).
    """
    if oracle_z is not None:
        ad = make_adapter(bundle, default_method(bundle), rollouts=rollouts)
        ad.oracle_z = oracle_z
        return ad
    for m in (method, default_method(bundle) if bundle.manifest.method in _BY_BUNDLE else method):
        cls = adapter_class(m)
        if cls.warmup_oracle:
            try:
                cls.check_bundle(bundle)
            except UserError:
                continue
            return cls.create(bundle, rollouts=rollouts, seed=seed + 1)
    raise UserError(f"--oracle-params: the {bundle.manifest.method} bundle has neither a "
                    "privileged encoder nor a posterior; there is no oracle for it")
