"""One BLAS thread while a physics thread pool runs: the guard the batched env holds.

The batched env steps its simulations on every core (``nthread``, the caller's thread
included). Between two steps the caller runs the policy, and a policy's matrix products go to
numpy's BLAS (OpenBLAS, or MKL). For large enough products, e.g. a (512, 64) @ (64, 64) layer
at B = 512, OpenBLAS splits the work over its own threads, one per core, and those threads keep
spinning for a while after each call, waiting for the next one. They then share the cores with
MuJoCo's threads, which lose their time slices: measured on 2 cores (``robot-meta bench sim``
at B = 512 with its numpy MLP policy), the closed loop (policy + env step) ran at 60 % of its
speed with one BLAS thread, and the env reached 0.5 of raw ``mujoco.rollout`` instead of 0.8.
At B = 64 the products are too small to be split, which is why the loss appeared only at the
batch sizes training uses. (On 2 cores the split product is slower even alone: 1,982 against
123 us for the benchmark's MLP at B = 512 on the loaded machine.)

So while any env with a physics thread pool is open, the BLAS libraries loaded in the process
run on one thread (``threadpoolctl``); the limit is lifted when the last such env closes. torch
keeps its own pool, set by the trainer (``run.torch_threads``, default 1, for the same reason).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any


class BlasThreadLimit:
    """A process-wide, reference-counted limit of BLAS to ``threads`` threads.

    ``acquire()`` applies it (the first holder) and ``release()`` restores the libraries'
    previous thread counts (the last holder). Without ``threadpoolctl`` installed it warns once
    and does nothing: the env still works, only slower when a policy's BLAS calls are threaded.
    """

    def __init__(self, threads: int = 1):
        self.threads = threads
        self._lock = threading.Lock()
        self._holders = 0
        self._limiter: Any = None
        self._warned = False

    @property
    def holders(self) -> int:
        """How many envs hold the limit now."""
        return self._holders

    def acquire(self) -> None:
        """Hold the limit (apply it if nobody held it)."""
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                self._limiter = self._limit()

    def release(self) -> None:
        """Give up one hold (restore the previous limits when it was the last)."""
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None

    def _limit(self) -> Any:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            if not self._warned:
                self._warned = True
                warnings.warn("threadpoolctl is not installed, so numpy's BLAS threads may "
                              "compete with the physics threads (about 0.6x env throughput at "
                              "B = 512 with a numpy policy); install it with "
                              "`pip install threadpoolctl` (part of the `train` extra)",
                              RuntimeWarning, stacklevel=4)
            return None
        return threadpool_limits(limits=self.threads, user_api="blas")


#: The limit every batched MuJoCo env with a thread pool holds while open.
BLAS_LIMIT = BlasThreadLimit(threads=1)
