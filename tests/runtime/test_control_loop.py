"""The fixed-rate loop: deadlines counted, overruns skip releases instead of catching up."""

import time

import pytest

from robot_meta.runtime.control_loop import ControlLoop


def test_releases_stay_on_the_grid_and_overruns_skip() -> None:
    T = 0.01
    loop = ControlLoop(T)
    t0 = loop.start()
    starts = []
    for k in range(12):
        starts.append(time.perf_counter())
        if k == 4:
            time.sleep(2.6 * T)  # an overrun: the work takes 2.6 periods
        loop.wait()
    s = loop.stats
    assert s.cycles == 12
    assert s.missed >= 1 and s.skipped >= 2  # cycle 4 missed, 2 releases skipped, no burst
    # every cycle starts on the grid t0 + m T (never immediately after an overrun)
    for t in starts:
        m = round((t - t0) / T)
        assert t - (t0 + m * T) > -1e-4
    # the cycle after the overrun starts at a release at least 3 periods after cycle 4's
    assert starts[5] - starts[4] >= 2.9 * T
    assert 0.0 < s.fraction_met < 1.0
    assert s.as_dict()["skipped"] == s.skipped


def test_wait_before_start_and_bad_period() -> None:
    with pytest.raises(ValueError):
        ControlLoop(0.0)
    with pytest.raises(RuntimeError):
        ControlLoop(0.01).wait()
