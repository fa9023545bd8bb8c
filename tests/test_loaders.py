import warnings

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from planner.data.d4rl import load_d4rl, read_hdf5, write_hdf5
from planner.data.episodes import DatasetError, boundaries_leaving_goal, make_episodes
from planner.data.minari import load_minari, write_minari


def locomotion_arrays(n: int = 300, obs_dim: int = 11, act_dim: int = 3) -> dict:
    rng = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    terminals = np.zeros(n, bool)
    timeouts[99] = True  # time limit
    terminals[149] = True  # true environment end
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
        "infos/action_log_probs": rng.normal(size=n).astype(np.float32),
        "infos/qpos": rng.normal(size=(n, 6)).astype(np.float32),
        "infos/qvel": rng.normal(size=(n, 6)).astype(np.float32),
        "metadata/algorithm": np.bytes_("SAC"),
        "metadata/policy/fc0/weight": np.zeros((4, 4), np.float32),
    }


def test_maze2d_file_round_trip(tmp_path, umaze_arrays):
    path = write_hdf5(tmp_path / "maze2d-umaze-v1.hdf5", umaze_arrays, attrs={"seed": 0})
    with h5py.File(path) as handle:
        assert handle["observations"].compression == "gzip"
        assert "goal" in handle["infos"]
    episodes = load_d4rl(path)
    np.testing.assert_array_equal(episodes.observations, umaze_arrays["observations"])
    np.testing.assert_array_equal(episodes.actions, umaze_arrays["actions"])
    np.testing.assert_array_equal(episodes.infos["goal"], umaze_arrays["infos/goal"])
    assert episodes.n_episodes == umaze_arrays["timeouts"].sum() + 1  # plus the unfinished tail
    np.testing.assert_array_equal(
        episodes.boundaries[1:-1], np.flatnonzero(umaze_arrays["timeouts"]) + 1
    )


def test_locomotion_file_by_name_from_the_d4rl_cache(tmp_path, monkeypatch):
    arrays = locomotion_arrays()
    write_hdf5(tmp_path / "d4rl" / "hopper_medium-v2.hdf5", arrays)
    episodes = load_d4rl("hopper-medium-v2")
    # episodes end after the timeout (step 99) and after the terminal (step 149)
    np.testing.assert_array_equal(episodes.boundaries, [0, 100, 150, 300])
    assert set(episodes.infos) == {"next_observations", "action_log_probs", "qpos", "qvel"}
    assert episodes.terminals.sum() == 1 and episodes.timeouts.sum() == 1


def test_antmaze_keys_and_recursive_infos(tmp_path):
    arrays = locomotion_arrays(obs_dim=29, act_dim=8)
    arrays["infos/goal"] = np.zeros((300, 2), np.float32)
    del arrays["timeouts"]  # older files have terminals only
    path = write_hdf5(tmp_path / "antmaze-umaze-v2.hdf5", arrays)
    assert "metadata/policy/fc0/weight" in read_hdf5(path)
    episodes = load_d4rl(path)
    assert episodes.observations.shape == (300, 29)
    np.testing.assert_array_equal(episodes.boundaries, [0, 150, 300])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("actions"), r"missing key 'actions'"),
        (lambda a: a.update(rewards=a["rewards"][:-1]), r"'rewards' has 299 steps but"),
        (lambda a: a["observations"].__setitem__((7, 2), np.nan), r"'observations' has 1 NaN"),
        (lambda a: a["actions"].__setitem__((3, 0), np.inf), r"'actions' has 1 NaN/inf .*step 3"),
        (lambda a: a.update(rewards=a["rewards"][:, None]), r"'rewards' must have 1 dimensions"),
        (lambda a: (a.pop("timeouts"), a.pop("terminals")), r"needs 'terminals' or 'timeouts'"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, change, message):
    arrays = locomotion_arrays()
    change(arrays)
    path = write_hdf5(tmp_path / "hopper-medium-v2.hdf5", arrays)
    with pytest.raises(DatasetError, match=r"hopper-medium-v2\.hdf5.*" + message):
        load_d4rl(path)


def test_wrong_dimensions_for_the_task(tmp_path):
    path = write_hdf5(tmp_path / "walker2d-medium-v2.hdf5", locomotion_arrays(obs_dim=11))
    with pytest.raises(DatasetError, match=r"11/3 dimensions; this task needs 17/6"):
        load_d4rl(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere\.hdf5: file not found"):
        load_d4rl(tmp_path / "nowhere.hdf5")
    with pytest.raises(DatasetError, match=r"no D4RL file for this name .*never downloads"):
        load_d4rl("halfcheetah-expert-v2")
    broken = tmp_path / "broken.hdf5"
    broken.write_text("not hdf5")
    with pytest.raises(DatasetError, match=r"broken\.hdf5: not a readable hdf5 file"):
        load_d4rl(broken)


def per_step(arrays: dict) -> dict:
    return {k: v for k, v in arrays.items() if not k.startswith("metadata/")}


def test_datasets_are_read_only_and_inputs_untouched():
    arrays = per_step(locomotion_arrays())
    original = arrays["observations"].copy()
    episodes = make_episodes("mem", arrays)
    with pytest.raises(ValueError, match="read-only"):
        episodes.observations[0, 0] = 1.0
    arrays["observations"][0, 0] = 123.0  # the caller's array is not the dataset's
    assert episodes.observations[0, 0] == original[0, 0]


def test_bad_boundaries():
    with pytest.raises(DatasetError, match="rise strictly from 0 to 300"):
        make_episodes("mem", per_step(locomotion_arrays()), np.array([0, 50, 50, 300]))


def test_leaving_the_goal_ends_an_episode():
    positions = np.array([[5, 5], [1, 1], [1, 1.2], [3, 3], [3, 3], [1, 1], [4, 4.0]])
    boundaries = boundaries_leaving_goal(positions, np.array([1.0, 1.0]), radius=0.5)
    np.testing.assert_array_equal(boundaries, [0, 3, 6, 7])


def test_minari_round_trip(umaze_arrays):
    episodes = make_episodes("maze2d-umaze-v1", {k: v[:3000] for k, v in umaze_arrays.items()})
    write_minari(
        episodes, "planner/umaze-test-v0", "planner/maze2d-umaze-v1", "test data", "waypoints"
    )
    loaded = load_minari("planner/umaze-test-v0", expected_dims=(4, 2))
    np.testing.assert_array_equal(loaded.observations, episodes.observations)
    np.testing.assert_array_equal(loaded.actions, episodes.actions)
    np.testing.assert_array_equal(loaded.rewards, episodes.rewards)
    np.testing.assert_array_equal(loaded.boundaries, episodes.boundaries)
    np.testing.assert_array_equal(loaded.timeouts, episodes.timeouts)


def test_minari_dict_observations_use_the_observation_key():
    space = gym.spaces.Dict(
        {
            "observation": gym.spaces.Box(-10, 10, (4,), np.float64),
            "desired_goal": gym.spaces.Box(-10, 10, (2,), np.float64),
        }
    )
    rng = np.random.default_rng(0)
    buffer = [
        EpisodeBuffer(
            observations={
                "observation": rng.normal(size=(t + 1, 4)),
                "desired_goal": rng.normal(size=(t + 1, 2)),
            },
            actions=rng.uniform(-1, 1, size=(t, 2)).astype(np.float32),
            rewards=np.zeros(t),
            terminations=np.zeros(t, bool),
            truncations=np.r_[np.zeros(t - 1, bool), True],
        )
        for t in (5, 8)
    ]
    with warnings.catch_warnings():  # Minari asks for metadata a throwaway dataset lacks
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            "planner/dict-test-v0",
            buffer,
            observation_space=space,
            action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
        )
    loaded = load_minari("planner/dict-test-v0")
    np.testing.assert_array_equal(loaded.boundaries, [0, 5, 13])
    np.testing.assert_allclose(loaded.observations[:5], buffer[0].observations["observation"][:5])
    assert loaded.infos["desired_goal"].shape == (13, 2)


def test_missing_minari_dataset_mentions_the_download_flag():
    with pytest.raises(
        DatasetError, match=r"planner/absent-v0: no local Minari dataset .*--download"
    ):
        load_minari("planner/absent-v0")
