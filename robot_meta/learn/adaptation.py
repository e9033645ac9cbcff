"""The inner loop of the gradient meta-RL methods (MAML, first-order MAML, Reptile), callable on
its own: ``adapt(params, rollouts) -> adapted params``.

The same rule runs in meta-training, in ``robot-meta eval`` and on the robot (the adaptation
session calls it with real rollouts), so what meta-training optimizes is exactly what the robot
does: a few rollouts of the task, then k policy-gradient steps.

* The policy is the Gaussian actor of :class:`ActorCritic`,
  pi_theta(a | o) = N(mu_theta(norm(o)), diag(exp(2 log_std))); theta are the actor's weights and
  ``log_std``; the observation normalizer is frozen (it is not adapted).
* The inner loss of one task, over its rollouts' valid steps (t, i), is the clipped
  importance-weighted policy gradient surrogate
      L_in(theta) = -mean_{t,i} min(rho A, clip(rho, 1 - eps, 1 + eps) A),
      rho = pi_theta(a | o) / pi_b(a | o),
  where pi_b is the policy that collected the rollout. At theta = theta_b, rho = 1 and its
  gradient is the vanilla policy gradient -mean(grad log pi(a | o) A), with the curvature of the
  low-variance estimator (ProMP); the clip only matters for k > 1 steps on the same data.
* A is the return-to-go G_t = sum_{s >= t} gamma^{s-t} r_s minus a linear feature baseline
  b(o, t) = w . [o, o^2, t/T, (t/T)^2, (t/T)^3, 1] fitted to G by ridge least squares on the
  task's own rollouts (Duan et al. 2016), normalized to zero mean and unit variance. It needs no
  critic, so it runs on the robot from rewards alone.
* theta' = theta - alpha * grad L_in(theta), k times; alpha is a scalar, or one learned rate per
  parameter tensor (Meta-SGD, layer-wise). Unless ``adapt_std``, log_std's rate is 0: the step
  moves the mean action mu_theta only, the part of the policy the robot runs. ``adapt_params``
  can restrict the step further to the actor's output layer, or to its bias alone (see
  :func:`moved_names`); every other tensor keeps theta's value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch.func import functional_call

from robot_meta.learn.models.actor_critic import ActorCritic

Params = dict[str, torch.Tensor]


@dataclass
class Rollouts:
    """N rollouts of one task, padded to T steps.

    ``logp`` is log pi_b(a | o) of the policy that acted (None: the rollouts were collected by
    the params being adapted, on-policy). Actions are the sampled, unclipped ones.
    """

    obs: torch.Tensor  # (N, T, obs_dim), raw observations
    actions: torch.Tensor  # (N, T, act_dim)
    rewards: torch.Tensor  # (N, T)
    mask: torch.Tensor  # (N, T), 1 on valid steps
    logp: torch.Tensor | None = None  # (N, T)

    @property
    def steps(self) -> int:
        return int(self.mask.sum())


def policy_params(ac: ActorCritic) -> Params:
    """The adapted parameters theta of a policy: the actor's weights and ``log_std``, by name."""
    return {k: v for k, v in ac.named_parameters() if k.startswith("actor.") or k == "log_std"}


def moved_names(names: list[str], adapt_params: str = "all", adapt_std: bool = True) -> list[str]:
    """The parameters an inner step moves, of a policy's ``names`` (:func:`policy_params`).

    ``adapt_params``: "all" actor tensors, the "output" layer's weight and bias, or "output_bias" only.
    With an output bias b alone the adapted mean is mu'(o) = mu(o) - alpha grad_b L_in: the step
    is one action offset, estimated from act_dim numbers. log_std moves only with ``adapt_std``.
    """
    actor = [k for k in names if k.startswith("actor.")]
    if adapt_params == "all":
        keep = actor
    else:
        last = max(int(k.split(".")[1]) for k in actor)  # actor.<layer index>.<weight|bias>
        out = [k for k in actor if int(k.split(".")[1]) == last]
        keep = out if adapt_params == "output" else [k for k in out if k.endswith(".bias")]
        if not keep:
            raise ValueError(f"adapt_params = {adapt_params!r}: no such tensors among {', '.join(actor)}")
    return keep + (["log_std"] if adapt_std and "log_std" in names else [])


def action_mean(ac: ActorCritic, params: Mapping[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    """mu_theta(norm(o)) evaluated with ``params`` in place of the actor's weights
    (``torch.func.functional_call``, so the result is differentiable in params)."""
    actor = {k[len("actor.") :]: v for k, v in params.items() if k.startswith("actor.")}
    return functional_call(ac.actor, actor, (ac.obs_norm(obs),))


def log_prob(
    ac: ActorCritic, params: Mapping[str, torch.Tensor], obs: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """log pi_theta(a | o), summed over action dimensions: (...,)."""
    mean = action_mean(ac, params, obs)
    log_std = params["log_std"]
    # log N(a; mu, s^2) = -0.5 ((a - mu) / s)^2 - log s - 0.5 log(2 pi)
    z = (actions - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma G_{t+1} over valid steps, (..., T)."""
    G = torch.zeros_like(rewards)
    acc = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        acc = (rewards[..., t] + gamma * acc) * mask[..., t]
        G[..., t] = acc
    return G


def baseline_features(obs: torch.Tensor, T: int) -> torch.Tensor:
    """phi(o, t) = [o, o^2, t/T, (t/T)^2, (t/T)^3, 1] for every step, (..., T, 2 obs_dim + 4)."""
    steps = obs.shape[-2]
    o = obs.clamp(-10.0, 10.0)
    tt = (torch.arange(steps, dtype=obs.dtype, device=obs.device) / T)[:, None].expand(*obs.shape[:-1], 1)
    return torch.cat([o, o * o, tt, tt**2, tt**3, torch.ones_like(tt)], dim=-1)


@torch.no_grad()
def advantages(ro: Rollouts, gamma: float, reg: float = 1e-5) -> torch.Tensor:
    """Normalized A_t = G_t - b(o_t, t), the linear feature baseline fitted on these rollouts.

    Ridge regression over the valid steps (mask m): w = (X^T M X + reg tr(X^T M X)/d I)^-1 X^T M G,
    then A is normalized to zero mean and unit variance over the valid steps. Rollouts of one
    task are (N, T, ...); a batch of tasks (B, N, T, ...) gets one baseline per task.
    """
    batched = ro.obs.dim() == 4
    m = ro.mask if batched else ro.mask[None]
    obs = ro.obs if batched else ro.obs[None]
    G = returns_to_go(ro.rewards if batched else ro.rewards[None], m, gamma)
    B, N, T = m.shape
    X = baseline_features(obs, T).to(torch.float64).reshape(B, N * T, -1)
    w8 = m.reshape(B, N * T).to(torch.float64)
    g8 = G.reshape(B, N * T).to(torch.float64)
    XtX = torch.einsum("bnd,bn,bne->bde", X, w8, X)
    d = XtX.shape[-1]
    ridge = reg * XtX.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-8)
    XtX = XtX + ridge[:, None, None] * torch.eye(d, dtype=XtX.dtype, device=XtX.device)
    w = torch.linalg.solve(XtX, torch.einsum("bnd,bn,bn->bd", X, w8, g8))
    A = (g8 - torch.einsum("bnd,bd->bn", X, w)).to(G.dtype).reshape(B, N, T)
    n = m.sum((1, 2), keepdim=True).clamp_min(1.0)
    mean = (A * m).sum((1, 2), keepdim=True) / n
    std = (((A - mean) ** 2 * m).sum((1, 2), keepdim=True) / n).sqrt()
    out = (A - mean) / (std + 1e-8) * m
    return out if batched else out[0]


MAX_LOG_RATIO = 20.0  # rho <= e^20 in the inner surrogate (see inner_loss)


def inner_loss(
    ac: ActorCritic, params: Mapping[str, torch.Tensor], ro: Rollouts, adv: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    """L_in(theta) = -mean over valid steps of min(rho A, clip(rho, 1 -/+ eps) A), rho = pi_theta / pi_b."""
    logp = log_prob(ac, params, ro.obs, ro.actions)
    logp_b = logp.detach() if ro.logp is None else ro.logp
    # log rho is capped at MAX_LOG_RATIO: on the robot, earlier rollouts were sampled by earlier
    # theta', and a narrow sigma can make theta's log-ratio exceed 88, where exp overflows float32;
    # inf times a negative advantage (or times a padded step's 0 mask) makes every gradient NaN.
    rho = (logp - logp_b).clamp(max=MAX_LOG_RATIO).exp()
    surrogate = torch.min(rho * adv, rho.clamp(1.0 - clip, 1.0 + clip) * adv)
    surrogate = torch.where(ro.mask > 0, surrogate, torch.zeros_like(surrogate))  # padding adds 0
    return -surrogate.sum() / ro.mask.sum().clamp_min(1.0)


@dataclass
class GradientAdaptation:
    """The adaptation rule: ``adapt(params, rollouts)`` takes k gradient steps on L_in.

    ``lr`` is alpha: a float, or a mapping parameter name -> learned rate (Meta-SGD); the rates
    may be tensors that require grad, so that meta-training learns them through the inner step.
    With ``adapt_std`` false, log_std keeps theta's value (rate 0; the mapping may omit it), and
    so does every actor tensor that ``adapt_params`` leaves out (:func:`moved_names`).
    """

    ac: ActorCritic
    lr: float | Mapping[str, torch.Tensor]
    steps: int = 1
    gamma: float = 0.99
    clip: float = 0.2
    adapt_std: bool = True
    adapt_params: str = "all"

    def __post_init__(self) -> None:
        self.moved = frozenset(moved_names(list(policy_params(self.ac)), self.adapt_params, self.adapt_std))

    def rate(self, name: str) -> float | torch.Tensor:
        if name not in self.moved:
            return 0.0
        return self.lr if isinstance(self.lr, float | int) else self.lr[name]

    def adapt(
        self, params: Mapping[str, torch.Tensor], rollouts: Rollouts, *, create_graph: bool = False
    ) -> Params:
        """theta' after ``steps`` gradient steps on L_in over ``rollouts``.

        With ``create_graph`` the result stays differentiable in ``params`` through the inner
        gradients (second-order MAML: autograd.grad(create_graph=True)); without it, each step's
        gradient is a constant, so d theta'/d theta = I (first order), and with detached params
        this is the plain adaptation the robot runs.
        """
        adv = advantages(rollouts, self.gamma)
        # Leaves that do not require grad (plain tensors) become leaves that do; a differentiable
        # caller's tensors keep their graph.
        theta = {
            k: v if (create_graph and v.requires_grad) else v.detach().requires_grad_(True)
            for k, v in params.items()
        }
        names = [k for k in theta if k in self.moved]
        for _ in range(self.steps):
            loss = inner_loss(self.ac, theta, rollouts, adv, self.clip)
            grads = torch.autograd.grad(loss, [theta[k] for k in names], create_graph=create_graph)
            theta = {**theta, **{k: theta[k] - self.rate(k) * g for k, g in zip(names, grads, strict=True)}}
            if not create_graph:
                theta = {k: v.detach().requires_grad_(True) for k, v in theta.items()}
        if not create_graph:
            theta = {k: v.detach() for k, v in theta.items()}
        return theta


def adapt_tasks(rule: GradientAdaptation, params: Params, rollouts: Rollouts) -> Params:
    """``rule.adapt`` for a batch of tasks at once (first order, no graph): stacked params
    {name: (B, ...)} and rollouts (B, N, T, ...), with ``torch.func.vmap`` over the tasks.
    Equal to calling ``rule.adapt`` per task; much faster for evaluation over many tasks."""
    adv = advantages(rollouts, rule.gamma)
    logp_b = rollouts.logp
    if logp_b is None:
        raise ValueError("adapt_tasks needs the behavior log-probs of the rollouts")

    def loss(
        p: Params, obs: torch.Tensor, act: torch.Tensor, mask: torch.Tensor, lb: torch.Tensor, a: torch.Tensor
    ) -> torch.Tensor:
        return inner_loss(rule.ac, p, Rollouts(obs, act, mask, mask, lb), a, rule.clip)  # (rewards unused)

    grad = torch.func.vmap(torch.func.grad(loss))
    theta = {k: v.detach() for k, v in params.items()}
    for _ in range(rule.steps):
        g = grad(theta, rollouts.obs, rollouts.actions, rollouts.mask, logp_b, adv)
        theta = {k: (theta[k] - rule.rate(k) * g[k]).detach() for k in theta}
    return theta


def stack_params(params: list[Params]) -> Params:
    """[theta_1 .. theta_M] -> {name: (M, ...)} for a vmapped forward."""
    return {k: torch.stack([p[k] for p in params]) for k in params[0]}


def batched_action_mean(ac: ActorCritic, stacked: Params, obs: torch.Tensor) -> torch.Tensor:
    """mu_{theta_m}(o_{m, j}) for per-task params stacked (M, ...) and obs (M, J, obs_dim)."""
    return torch.func.vmap(lambda p, o: action_mean(ac, p, o))(stacked, obs)
