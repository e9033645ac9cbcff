"""Adaptation rules on the robot, one class per file, registered by adaptation method (no torch).

=================  ======================  ===============================================
``--method``       bundle methods (auto)   rule
=================  ======================  ===============================================
context            pearl                   :class:`PosteriorAdapter` (posterior_adapter.py)
rma                rma                     :class:`HistoryAdapter` (history_adapter.py)
gradient           maml, fomaml, reptile   GradientAdapter (gradient_adapter.py; torch)
context-step       cavia                   ContextStepAdapter (context_step_adapter.py)
rl2                rl2                     RecurrentAdapter (recurrent_adapter.py)
latent-search      (any with a latent z)   LatentSearch (latent_search.py)
sysid              (rma)                   SysidAdapter (sysid_adapter.py; mujoco)
fixed              ppo                     :class:`FixedPolicy` (fixed_policy.py)
=================  ======================  ===============================================

A new rule is one file here with an :class:`Adapter` subclass decorated with
:func:`register_adapter`, plus its import below. Importing a rule's module needs neither torch
nor mujoco; the rules that need them import them when they adapt.
"""

from robot_meta.runtime.adapters.adapter import MODES, Adapter, oracle_latent
from robot_meta.runtime.adapters.registry import (
    adapter_class,
    bundle_methods,
    default_method,
    deployed_method,
    make_adapter,
    oracle_adapter,
    register_adapter,
    registered_methods,
    resolve_method,
)

# The built-in rules (each registers itself on import), in the order ``--method`` lists them.
from robot_meta.runtime.adapters.posterior_adapter import PosteriorAdapter  # isort: skip
from robot_meta.runtime.adapters.history_adapter import HistoryAdapter  # isort: skip
from robot_meta.runtime.adapters.gradient_adapter import GradientAdapter  # isort: skip
from robot_meta.runtime.adapters.context_step_adapter import ContextStepAdapter  # isort: skip
from robot_meta.runtime.adapters.recurrent_adapter import RecurrentAdapter  # isort: skip
from robot_meta.runtime.adapters.latent_search import LatentSearch  # isort: skip
from robot_meta.runtime.adapters.sysid_adapter import SysidAdapter  # isort: skip
from robot_meta.runtime.adapters.fixed_policy import FixedPolicy  # isort: skip

__all__ = ["MODES", "Adapter", "ContextStepAdapter", "FixedPolicy", "GradientAdapter",
           "HistoryAdapter", "LatentSearch", "PosteriorAdapter", "RecurrentAdapter",
           "SysidAdapter", "adapter_class", "bundle_methods", "default_method", "deployed_method",
           "make_adapter", "oracle_adapter", "oracle_latent", "register_adapter",
           "registered_methods", "resolve_method"]
