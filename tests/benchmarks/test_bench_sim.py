"""`robot-meta bench sim`: the batch-size sweep and the step's time split."""

import json

import numpy as np
import pytest

from robot_meta.launch.cli import main


def test_sweep_reports_ratios_and_a_time_split_per_batch_size(capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    assert main(["bench", "sim", "--robot", "arm2", "--num-envs", "2,4", "--rounds", "1",
                 "--seconds", "0.05", "--split-steps", "210", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["family"] == "servo"  # the robot's headline family
    assert [r["num_envs"] for r in res["sweep"]] == [2, 4]
    for r in res["sweep"]:
        assert r["env_vs_raw"] > 0 and r["env_vs_dm_control"] > 0
        split = r["split_us"]
        assert set(split) == {"physics", "obs_rewards", "resets_randomization",
                              "latency_noise_buffers", "policy"}
        assert all(v > 0 for v in split.values())  # 210 steps: every env resets once (at 200)
        assert r["split_us_per_env"]["physics"] == pytest.approx(split["physics"] / r["num_envs"],
                                                                 abs=1e-3)
        assert r["env_sps_interleaved"] > 0
    inter = [r["env_sps_interleaved"] for r in res["sweep"]]
    assert res["largest_b_sps_vs_smallest"] == pytest.approx(inter[1] / inter[0])


def test_one_batch_size_keeps_the_keys_of_before(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sim", "--num-envs", "3", "--rounds", "1", "--seconds", "0.05",
                 "--split-steps", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for k in ("env_vs_raw", "env_vs_raw_per_step", "env_vs_dm_control", "env_sps",
              "raw_rollout_physics_sps", "dm_control_sps", "env_vs_raw_rounds", "num_envs"):
        assert k in res
    assert res["num_envs"] == 3 and "split_us" not in res
    assert np.isfinite(res["env_vs_dm_control_simtime"])


@pytest.mark.parametrize("bad", ["0", "a,b", "", "4,-1"])
def test_bad_batch_sizes_are_refused_with_the_reason(bad: str, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", "sim", "--num-envs", bad])
    assert e.value.code == 2
    assert "--num-envs takes a batch size" in capsys.readouterr().err
