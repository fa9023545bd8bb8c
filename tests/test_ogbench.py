"""OGBench pointmaze: the task family, the regenerated datasets, the evaluation protocol, GCBC."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.control.policies import ReplanRule, receding_horizon_policy
from planner.control.tracking import displacement_actions, pursuit_targets
from planner.energies.terms import Layout
from planner.tasks import generated_family, generated_names, get_task
from planner.tasks.ogbench import OGBENCH_TASKS, cells_of, find_ogbench_task, inside_walls

pytest.importorskip("ogbench")

from planner.data import ogbench as data
from planner.eval import ogbench as protocol

MEDIUM_STITCH = OGBENCH_TASKS["pointmaze-medium-stitch-v0"]
POINT = Layout(action_dim=2, observation_dim=2, position=(0, 1), velocity=())
CORRIDOR_MAP = np.array([
    [1, 1, 1, 1, 1],
    [1, 0, 0, 0, 1],
    [1, 1, 1, 0, 1],
    [1, 1, 1, 0, 1],
    [1, 1, 1, 1, 1],
])  # fmt: skip


def test_ogbench_names_map_to_their_task_and_generator():
    assert get_task("pointmaze-giant-stitch-v0") is OGBENCH_TASKS["pointmaze-giant-stitch-v0"]
    assert find_ogbench_task("/data/pointmaze-large-navigate-v0.npz").maze == "large"
    assert generated_family("pointmaze-medium-stitch-v0") == "ogbench"
    assert "pointmaze-teleport-navigate-v0" in generated_names()
    assert get_task("pointmaze-medium-stitch-v0").family == "ogbench"
    giant = OGBENCH_TASKS["pointmaze-giant-navigate-v0"]
    assert (giant.data_episodes, giant.data_episode_steps) == (500, 2001)
    assert (MEDIUM_STITCH.data_episodes, MEDIUM_STITCH.data_episode_steps) == (5000, 201)


def test_cell_distances_and_vertex_cells_of_a_corridor():
    distances = data.cell_distances(CORRIDOR_MAP, (1, 1))
    assert distances[3, 3] == 4 and distances[0, 0] == -1
    # (1, 2) is a horizontal corridor cell and (2, 3) a vertical one; the corner (1, 3) is not
    assert data.vertex_cells(CORRIDOR_MAP) == [(1, 1), (1, 3), (3, 3)]
    assert data.next_cell(data.cell_distances(CORRIDOR_MAP, (3, 3)), (1, 2), CORRIDOR_MAP) == (1, 3)


def test_oracle_direction_is_ogbenchs_oracle_subgoal():
    env = MEDIUM_STITCH.make_env()
    maze = env.unwrapped
    oracle = data._Oracle(maze)
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 200:
        here, goal = rng.uniform(-5.9, 25.9, (2, 2))
        if maze.maze_map[maze.xy_to_ij(here)] or maze.maze_map[maze.xy_to_ij(goal)]:
            continue
        subgoal, _ = maze.get_oracle_subgoal(here, goal)
        expected = (subgoal - here) / (np.linalg.norm(subgoal - here) + 1e-6)
        np.testing.assert_allclose(oracle.direction(here, goal), expected)
        checked += 1


def test_generated_stitch_data_is_seeded_and_in_ogbenchs_layout(tmp_path):
    arrays = data.generate_pointmaze(MEDIUM_STITCH, episodes=3, seed=4)
    again = data.generate_pointmaze(MEDIUM_STITCH, episodes=3, seed=4)
    other = data.generate_pointmaze(MEDIUM_STITCH, episodes=3, seed=5)
    assert set(arrays) == {"observations", "actions", "terminals", "qpos", "qvel"}
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], again[key])
    assert not np.array_equal(arrays["observations"], other["observations"])
    assert arrays["observations"].shape == (3 * 201, 2)
    assert np.flatnonzero(arrays["terminals"]).tolist() == [200, 401, 602]
    assert np.all(np.abs(arrays["actions"]) <= 1.0)
    # the noisy controller heads for a goal 4 cells away: each episode moves several cells
    starts, ends = arrays["observations"][[0, 201, 402]], arrays["observations"][[200, 401, 602]]
    assert np.all(np.linalg.norm(ends - starts, axis=1) > 4.0)


def test_written_dataset_loads_as_one_episode_per_terminal(tmp_path):
    path = tmp_path / "pointmaze-medium-stitch-v0.npz"
    steps = data.write_pointmaze(MEDIUM_STITCH, path, seed=0, episodes=10)
    assert steps == {"train": 10 * 201, "validation": 201}
    assert data.validation_path(path).is_file()
    episodes = data.load_pointmaze(path)
    assert episodes.n_episodes == 10
    assert set(episodes.episode_lengths) == {201}
    assert not episodes.terminals.any() and episodes.timeouts.sum() == 10
    assert "qpos" in episodes.infos
    statistics = data.dataset_statistics(MEDIUM_STITCH, episodes)
    assert statistics["episodes"] == 10 and statistics["episode_steps"] == 201
    assert statistics["recipe_steps"] == 5000 * 201
    assert statistics["mean_episode_route_cells"] == 4.0  # stitch goals are 4 cells away
    assert 0.1 < statistics["mean_step_length"] <= 0.2 + 1e-6


def test_planner_data_generate_writes_an_ogbench_file(tmp_path, capsys):
    from planner.cli import main

    assert main(["data", "generate", "pointmaze-medium-stitch-v0", "--steps", "1000",
                 "--data-dir", str(tmp_path)]) == 0  # fmt: skip
    path = tmp_path / "pointmaze-medium-stitch-v0-5episodes-seed0.npz"
    assert path.is_file() and data.validation_path(path).is_file()
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["episodes"] == 5 and record["steps"] == 1005
    assert "5 episodes of 201" in capsys.readouterr().out


def test_evaluation_task_resets_to_the_same_start_and_goal_for_a_seed():
    first = MEDIUM_STITCH.make_env(task_id=2).reset(seed=7)
    second = MEDIUM_STITCH.make_env(task_id=2).reset(seed=7)
    other = MEDIUM_STITCH.make_env(task_id=2).reset(seed=8)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1]["goal"], second[1]["goal"])
    assert not np.array_equal(first[0], other[0])
    # task 2 of medium starts in cell (6, 1), whose centre is (0, 20), within the noise
    assert np.all(np.abs(first[0] - np.array([0.0, 20.0])) <= 1.0 + 0.1 + 1e-6)
    with pytest.raises(ValueError, match="tasks 1 to 5"):
        MEDIUM_STITCH.make_env(task_id=6)


def test_displacement_actions_reach_what_one_step_reaches_and_clip_beyond():
    observations = np.array([[0.0, 0.0], [1.0, 1.0]])
    points = np.array([[0.1, -0.04], [5.0, 1.0]])
    np.testing.assert_allclose(
        displacement_actions(points, observations, POINT, 0.2), [[0.5, -0.2], [1.0, 0.0]]
    )


def test_pursuit_targets_look_ahead_along_the_path_and_never_go_back():
    path = np.stack([np.linspace(0, 10, 11), np.zeros(11)], axis=1)[None]
    target, ending, progress = pursuit_targets(path, np.array([[3.2, 0.5]]), np.array([5]), 2.0)
    assert progress.tolist() == [5] and target.tolist() == [6] and not ending[0]
    target, ending, _ = pursuit_targets(path, np.array([[9.5, 0.0]]), np.array([9]), 2.0)
    assert ending[0] and target.tolist() == [10]


def test_a_position_controlled_policy_needs_a_lookahead():
    with pytest.raises(ValueError, match="lookahead"):
        receding_horizon_policy(lambda *args: None, POINT, ReplanRule(), step_size=0.2)


def test_the_protocol_spreads_episodes_over_the_five_tasks_and_scores_success():
    assert [protocol.task_of(i, 10) for i in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]

    maze = MEDIUM_STITCH.make_env().unwrapped
    oracle = data._Oracle(maze)

    def toward(here, goal):  # the data's controller without its noise, then to the goal itself
        same_cell = maze.xy_to_ij(here) == maze.xy_to_ij(goal)
        return (goal - here) / 0.2 if same_cell else oracle.direction(here, goal)

    def oracle_policy(observations, goals):
        return np.stack([toward(o, g) for o, g in zip(observations, goals, strict=True)])

    policy = protocol.gcbc_policy(oracle_policy)
    rollouts, task_ids = protocol.evaluate(policy, MEDIUM_STITCH, 5, 0, 5, show_progress=False)
    assert task_ids.tolist() == [1, 2, 3, 4, 5]
    summary = protocol.success_summary(rollouts, task_ids)
    assert summary["success"] == 100.0 and summary["episodes"] == 5
    assert np.all(rollouts.lengths < 1000)  # the episode ends at the goal
    for path, length in zip(rollouts.observations, rollouts.lengths, strict=True):
        assert (path[length:] == path[length]).all()  # the last observation repeated after it
    standing = protocol.gcbc_policy(lambda observations, goals: np.zeros_like(observations))
    rollouts, task_ids = protocol.evaluate(standing, MEDIUM_STITCH, 5, 0, 5, show_progress=False)
    assert protocol.success_summary(rollouts, task_ids)["per_task"]["task1"]["success"] == 0.0
    assert np.all(rollouts.lengths == 1000)
    with pytest.raises(Exception, match="multiple of 5"):
        protocol.evaluate(policy, MEDIUM_STITCH, 7, 0, 5, show_progress=False)


def test_plan_steps_in_walls_are_counted_by_ogbenchs_cells():
    # medium: cell (row 1, column 1) at (0, 0) is free, (1, 3) at (8, 0) is a wall
    points = np.array([[0.0, 0.0], [1.9, 0.0], [8.0, 0.0], [-3.0, 0.0]])
    assert inside_walls("medium", points).tolist() == [False, False, True, True]
    assert cells_of(np.array([[0.0, 0.0], [8.0, 4.0]])).tolist() == [[1, 1], [2, 3]]  # (row, col)
    free, through = np.zeros((4, 2)), np.array([[0.0, 0.0], [4.0, 0.0], [8.0, 0.0], [9.0, 0.0]])
    summary = protocol.steps_in_walls_summary(
        MEDIUM_STITCH, np.stack([free, through]), np.array([1, 2])
    )
    assert summary["per_task"] == {"task1": 0.0, "task2": 50.0} and summary["percent"] == 25.0


def test_gcbc_goals_are_later_steps_of_the_same_episode():
    import jax
    import jax.numpy as jnp

    from planner.gcbc import future_goal_indices

    indices = jnp.array([0, 5, 9, 9])
    last = jnp.array([9, 9, 9, 19])
    goals = np.stack([
        np.asarray(future_goal_indices(jax.random.key(k), indices, last)) for k in range(200)
    ])  # fmt: skip
    assert np.all(goals >= np.minimum(np.asarray(indices) + 1, np.asarray(last)))
    assert np.all(goals <= np.asarray(last))
    assert set(goals[:, 0].tolist()) == set(range(1, 10))  # uniform over the rest
    assert set(goals[:, 2].tolist()) == {9}  # the last step's goal is itself


def test_gcbc_learns_and_round_trips(tmp_path):
    from planner.gcbc import GCBC, train_gcbc

    path = tmp_path / "tiny.npz"
    data.write_pointmaze(MEDIUM_STITCH, path, seed=0, episodes=4)
    policy, losses = train_gcbc(
        data.load_pointmaze(path), steps=60, batch_size=64, show_progress=False
    )
    assert len(losses) == 1 and np.isfinite(losses[0])
    policy.save(tmp_path / "gcbc.npz")
    loaded = GCBC.load(tmp_path / "gcbc.npz")
    observations, goals = np.zeros((3, 2)), np.ones((3, 2)) * 8
    np.testing.assert_allclose(loaded.act(observations, goals), policy.act(observations, goals))
    assert np.all(np.abs(policy.act(observations, goals)) <= 1.0)


def test_planner_train_goal_value_writes_a_value_the_subgoal_option_loads(tmp_path, capsys):
    from planner.cli import main
    from planner.errors import PlannerError
    from planner.gcvalue import load_goal_value

    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data: {dataset: pointmaze-medium-stitch-v0, source: generated, generate_steps: 1000, "
        f"data_dir: '{tmp_path}', horizon: 8, jump: 8}}\n"
        "train: {goal_value_steps: 50}\n"
    )
    with pytest.raises(PlannerError, match="train-goal-value"):
        load_goal_value(tmp_path / "value")
    assert (
        main(["train-goal-value", "--config", str(config), "--run-dir", str(tmp_path / "value")])
        == 0
    )
    assert "goal value of 50 steps" in capsys.readouterr().out
    value = load_goal_value(tmp_path / "value")
    assert value.stride == 8 and value.waypoints.shape == (1005, 2)  # fewer steps than 1,024
    record = json.loads((tmp_path / "value" / "training.json").read_text())
    assert record["steps"] == 50 and record["stride"] == 8
    here, goals = np.zeros((3, 2)), np.full((3, 2), 8.0)
    assert value.steps_to_go(here, goals).shape == (3,)
    assert value.pairwise_steps(here, value.waypoints[:4]).shape == (3, 4)


def test_straight_plans_run_from_the_position_to_the_target_and_only_ogbench_takes_them():
    from planner.config import ConfigError, config_from_dict
    from planner.control.policies import straight_plan_fn

    plans = straight_plan_fn(POINT, 5)(
        np.zeros(2), np.zeros(2), np.array([[0.0, 0.0], [1.0, 1.0]]),
        np.array([[4.0, 0.0], [1.0, 3.0]]), None, None, 0,
    )  # fmt: skip
    assert plans.shape == (2, 5, 4)
    assert np.allclose(plans[0, :, 2], [0, 1, 2, 3, 4]) and np.allclose(
        plans[1, :, 3], [1, 1.5, 2, 2.5, 3]
    )
    assert np.all(plans[..., :2] == 0)  # no actions
    with pytest.raises(ConfigError, match="straight is a baseline for OGBench"):
        config_from_dict({"data": {"dataset": "maze2d-umaze-v1"}, "eval": {"policy": "straight"}})
