"""The deployment-time interface of a trained method: act, record, adapt."""

from __future__ import annotations

import numpy as np

MODES = ("prior", "adapt", "oracle")


class Agent:
    """A trained policy and its adaptation rule over N parallel tasks (numpy in, numpy out).

    The evaluator (and later the on-robot session) drives it as:

        agent.reset_task()                      # forget everything: back to the prior
        for each rollout:
            agent.begin_episode(mode)           # prior | adapt | oracle (| explore)
            loop: a = agent.act(obs, e); ...; agent.observe(obs, a, r, next_obs, mask)
            agent.end_episode()                 # fold the rollout into the adaptation state

    * ``prior``: no adaptation (zero-shot): the prior z, or the encoder with no data;
    * ``adapt``: the method's adaptation rule, using every earlier rollout since reset_task
      (and, for online encoders, the current rollout);
    * ``oracle``: the latent of the true factors e (RMA: mu(e)); methods without a privileged
      encoder set ``oracle_warmup`` > 0 and the evaluator first runs that many adaptation
      rollouts (the closest equivalent: the posterior given plenty of data);
    * ``explore`` (only when ``explore_mode`` says so): a data-collection rollout. Methods
      whose adaptation learns from rollouts of a fixed exploration policy (the MAML family:
      k rollouts of the pre-update policy theta, then a gradient step, as meta-training's inner
      loop does) collect their data in ``explore`` rollouts, and their ``adapt`` rollouts only
      score the adapted policy.

    ``e`` (the privileged factors) is only read in ``oracle`` mode.
    """

    oracle_warmup: int = 0
    explore_mode: str = "adapt"  # the mode of the rollouts the adaptation learns from

    def reset_task(self) -> None:
        raise NotImplementedError

    def begin_episode(self, mode: str) -> None:
        raise NotImplementedError

    def act(self, obs: np.ndarray, priv: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def seed_episode(self, seed: int) -> None:
        """Seed the agent's own randomness (e.g. sampled actions) for the next rollout, so that
        rollouts of different columns with the same seed share their random numbers."""

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                mask: np.ndarray) -> None:
        """Record the transitions of rows where mask is true."""

    def end_episode(self) -> None:
        """Update the adaptation state from the finished rollout."""

    def uncertainty(self) -> np.ndarray | None:
        """Mean posterior standard deviation of z per task (N,), when the method has one."""
        return None
