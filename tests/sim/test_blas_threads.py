"""The BLAS thread limit the batched env holds while its physics pool is open."""

import numpy as np
import pytest

from robot_meta.sim import make_vec_env
from robot_meta.sim.blas_threads import BLAS_LIMIT, BlasThreadLimit


def _blas_threads() -> list[int]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_an_env_with_a_thread_pool_holds_blas_to_one_thread_until_closed() -> None:
    before = _blas_threads()
    if not before:
        pytest.skip("numpy has no BLAS that threadpoolctl can see")
    env = make_vec_env("cartpole", "all", 8, nthread=2)
    env2 = make_vec_env("arm2", "servo", 8, nthread=2)
    try:
        assert BLAS_LIMIT.holders >= 2
        assert _blas_threads() == [1] * len(before)
        env.close()
        assert _blas_threads() == [1] * len(before)  # the second env still holds it
    finally:
        env.close()  # a second close gives up nothing more
        env2.close()
    assert _blas_threads() == before


def test_an_env_stepped_on_the_calling_thread_leaves_blas_alone() -> None:
    holders = BLAS_LIMIT.holders
    env = make_vec_env("cartpole", "all", 4, nthread=0)
    assert BLAS_LIMIT.holders == holders
    env.close()


def test_release_without_acquire_is_a_no_op() -> None:
    lim = BlasThreadLimit()
    lim.release()
    assert lim.holders == 0
    lim.acquire()
    lim.acquire()
    lim.release()
    assert lim.holders == 1
    lim.release()
    assert lim.holders == 0
    np.ones(3) @ np.ones(3)  # numpy still works after the limits are restored
