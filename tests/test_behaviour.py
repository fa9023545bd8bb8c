"""CrossQ behaviour policies and the regenerated locomotion datasets (tiny settings)."""

from __future__ import annotations

import json
import shutil

import h5py
import jax
import numpy as np
import pytest

from planner.cli import main
from planner.config import config_from_dict
from planner.data.behaviour import (
    CrossQConfig,
    evaluate,
    init_agent,
    load_policy,
    load_replay,
    make_act,
    save_policy,
    save_replay,
    train_behaviour,
)
from planner.data.d4rl import load_d4rl
from planner.data.locomotion import (
    collect,
    expert_returns,
    generate_locomotion,
    policy_path,
    replay_path,
)
from planner.data.sources import generated_path, load_generated, resolve_dataset
from planner.eval.scoring import locomotion_references
from planner.paths import data_dir as planner_data_dir
from planner.tasks.locomotion import EPISODE_STEPS, LOCOMOTION_TASKS, LocomotionTask

D4RL_KEYS = {"observations", "actions", "rewards", "terminals", "timeouts", "next_observations"}
TINY = CrossQConfig(actor_hidden=(64, 64), critic_hidden=(64, 64), batch_size=64, warmup_steps=300)
# InvertedPendulum: +1 per step while the pole stands; 100-step episodes, so 100 is balancing.
PENDULUM = LocomotionTask("inverted-pendulum", "InvertedPendulum-v5", 4, 1, 0.0, 100.0, 100.0, 100)
HOPPER = LOCOMOTION_TASKS["hopper"]
SMALL_STEPS = 3_000


def _tiny_run(task: LocomotionTask, seed: int, max_steps: int, **kwargs):
    return train_behaviour(task, seed, max_steps, config=TINY, show_progress=False, **kwargs)


def test_crossq_learns_to_balance_the_inverted_pendulum(tmp_path):
    untrained = init_agent(TINY, jax.random.key(0), 4, 1).actor
    act = make_act(TINY, 1)
    before = evaluate(PENDULUM, act, untrained, episodes=5, seed=0)[0].mean()
    run = _tiny_run(PENDULUM, seed=0, max_steps=4_000, stop_return=100.0, eval_every=500)
    # The pole falls within a few dozen steps without control; the stop return is the maximum.
    assert before < 50
    assert run.reached and run.final_return >= 100.0
    assert run.steps < 4_000 and run.steps % 500 == 0
    assert len(run.replay["rewards"]) == run.steps
    _, _, metadata = load_policy(save_policy(tmp_path / "pendulum.policy.npz", run))
    assert metadata["reached"] is True and metadata["history"][-1][1] == run.final_return


def test_training_is_deterministic_for_a_seed():
    first = _tiny_run(PENDULUM, seed=3, max_steps=600, eval_every=300)
    again = _tiny_run(PENDULUM, seed=3, max_steps=600, eval_every=300)
    other = _tiny_run(PENDULUM, seed=4, max_steps=600, eval_every=300)
    for name, value in first.replay.items():
        np.testing.assert_array_equal(again.replay[name], value, err_msg=name)
    leaves = zip(jax.tree.leaves(first.actor), jax.tree.leaves(again.actor), strict=True)
    for a, b in leaves:
        np.testing.assert_array_equal(a, b)
    assert first.history == again.history
    assert not np.array_equal(first.replay["observations"], other.replay["observations"])


@pytest.fixture(scope="module")
def hopper_run():
    """700 steps of a tiny CrossQ on Hopper (300 random, 400 learning)."""
    return _tiny_run(HOPPER, seed=0, max_steps=700, eval_every=350)


def test_replay_buffer_has_d4rl_episode_flags(hopper_run):
    run = hopper_run
    replay = run.replay
    ends = np.flatnonzero(replay["terminals"] | replay["timeouts"])
    assert ends[-1] == run.steps - 1  # the unfinished last episode is cut with a timeout
    assert not (replay["terminals"] & replay["timeouts"]).any()
    # Within an episode each next observation is the following observation.
    inside = np.setdiff1d(np.arange(run.steps - 1), ends)
    np.testing.assert_array_equal(
        replay["next_observations"][inside], replay["observations"][1:][inside]
    )
    assert np.abs(replay["actions"]).max() <= 1.0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, hopper_run):
    """A data directory holding tiny hopper behaviour policies (medium and expert are the same
    tiny run here) and the medium replay buffer, so generation never trains."""
    directory = tmp_path_factory.mktemp("locomotion")
    run = hopper_run
    save_policy(policy_path(directory, "hopper", "medium", 0), run)
    save_policy(policy_path(directory, "hopper", "expert", 0), run)
    save_replay(replay_path(directory, "hopper", 0), run.replay)
    return directory


@pytest.fixture(scope="module")
def generated(data_dir):
    """``{kind: (path, record)}`` of the small generated hopper datasets."""
    made = {}
    for kind in ("medium", "medium-replay", "expert", "medium-expert"):
        path = data_dir / f"hopper-{kind}-v2-small.hdf5"
        made[kind] = (
            path,
            generate_locomotion(
                f"hopper-{kind}-v2", path, SMALL_STEPS, seed=0, show_progress=False, n_envs=4
            ),
        )
    return made


def _arrays(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return {key: handle[key][()] for key in handle}


def test_policy_files_round_trip(data_dir):
    actor, config, metadata = load_policy(policy_path(data_dir, "hopper", "medium", 0))
    assert config == TINY and metadata["steps"] == 700 and metadata["task"] == "hopper"
    observations = np.zeros((2, 11), np.float32)
    actions = make_act(config, 3)(actor, observations, jax.random.key(0), True)
    assert actions.shape == (2, 3)
    replay = load_replay(replay_path(data_dir, "hopper", 0))
    assert set(replay) == D4RL_KEYS and len(replay["rewards"]) == 700


def test_generated_files_have_d4rl_layout_and_load(generated):
    for kind, (path, record) in generated.items():
        arrays = _arrays(path)
        assert set(arrays) == D4RL_KEYS, kind
        for key in ("observations", "actions", "rewards", "next_observations"):
            assert arrays[key].dtype == np.float32, (kind, key)
        episodes = load_d4rl(path, expected_dims=(11, 3))
        assert episodes.observations.shape == (record["steps"], 11)
        lengths = np.diff(episodes.boundaries)
        assert lengths.max() <= EPISODE_STEPS and record["episodes"] == len(lengths)
        assert arrays["terminals"][-1] or arrays["timeouts"][-1]
        # Within an episode each next observation is the following observation (collection
        # steps its simulators in place: every step must keep its own copy).
        inside = np.setdiff1d(np.arange(record["steps"] - 1), episodes.boundaries[1:] - 1)
        np.testing.assert_array_equal(
            arrays["next_observations"][inside], arrays["observations"][1:][inside], kind
        )


def test_dataset_sizes_and_structure(generated, data_dir):
    medium, replay = _arrays(generated["medium"][0]), _arrays(generated["medium-replay"][0])
    expert, both = _arrays(generated["expert"][0]), _arrays(generated["medium-expert"][0])
    assert len(medium["rewards"]) == len(expert["rewards"]) == SMALL_STEPS
    # medium-expert is medium followed by expert, each collected exactly as on its own.
    for key in D4RL_KEYS:
        np.testing.assert_array_equal(both[key], np.concatenate([medium[key], expert[key]]))
    # The two levels' rollouts use different seeds even with the same policy.
    assert not np.array_equal(medium["observations"], expert["observations"])
    # medium-replay is the saved replay buffer (hopper's actions are already in [-1, 1]).
    saved = load_replay(replay_path(data_dir, "hopper", 0))
    for key in D4RL_KEYS:
        np.testing.assert_array_equal(replay[key], saved[key], err_msg=key)
    assert generated["medium-replay"][1]["steps"] == 700


def test_collection_is_deterministic_for_a_seed(data_dir):
    actor, config, _ = load_policy(policy_path(data_dir, "hopper", "medium", 0))
    act = make_act(config, 3)
    first = collect(HOPPER, act, actor, 1_500, seed=7, n_envs=3)
    again = collect(HOPPER, act, actor, 1_500, seed=7, n_envs=3)
    other = collect(HOPPER, act, actor, 1_500, seed=8, n_envs=3)
    for key in D4RL_KEYS:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert not np.array_equal(first["actions"], other["actions"])


def test_cli_and_sources_find_generated_locomotion_files(data_dir, capsys):
    assert main(["data", "generate", "hopper-medium-v2", "--steps", "2000",
                 "--data-dir", str(data_dir)]) == 0  # fmt: skip
    path = generated_path("hopper-medium-v2", 2_000, 0, data_dir)
    assert path.name == "hopper-medium-v2-2000steps-seed0.hdf5" and path.is_file()
    assert "2,000 steps" in capsys.readouterr().out
    config = config_from_dict(
        {
            "data": {
                "dataset": "hopper-medium-v2",
                "source": "generated",
                "data_dir": str(data_dir),
                "generate_steps": 2_000,
            }
        }
    )
    episodes = load_generated(config.data, generate_if_missing=False)
    assert episodes.observations.shape == (2_000, 11)
    # The default-size file is what `resolve_dataset` looks for; none here yet.
    default = generated_path("hopper-medium-v2", 1_000_000, 0, data_dir)
    assert default.name == "hopper-medium-v2.hdf5"
    path.rename(default)
    episodes, found = resolve_dataset("hopper-medium-v2", "generated", data_dir)
    assert found == default and len(episodes.observations) == 2_000


def test_simulator_references_gain_the_expert_return_once_an_expert_policy_exists(data_dir):
    references = locomotion_references(HOPPER)  # no expert policy in the data directory yet
    assert references["ref_max"] is None and references["episodes"] == 100
    expert = policy_path(data_dir, "hopper", "expert", 0)
    shutil.copy(expert, policy_path(planner_data_dir(), "hopper", "expert", 0))
    updated = locomotion_references(HOPPER)
    assert updated["ref_min"] == references["ref_min"]  # measured once, kept
    returns, metadata = expert_returns(HOPPER, data_dir)
    assert updated["ref_max"] == pytest.approx(returns.mean()) and len(returns) == 100
    assert updated["expert"]["train_steps"] == metadata["steps"] == 700
    assert json.loads((planner_data_dir() / "hopper.reference.json").read_text()) == updated
