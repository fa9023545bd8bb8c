import numpy as np
import pytest

from planner.data.maze2d import (
    WaypointController,
    generate_maze2d,
    grid_path,
    reference_scores,
)
from planner.tasks.maze2d import GOAL_RADIUS, MAZE_TASKS, wall_rectangles

BALL_RADIUS = 0.1


def test_generator_is_deterministic_for_a_seed(umaze, umaze_arrays):
    again = generate_maze2d(umaze, 20_000, seed=0)
    for key, value in umaze_arrays.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)
    other = generate_maze2d(umaze, 2_000, seed=1)
    assert not np.array_equal(other["observations"], umaze_arrays["observations"][:2_000])


def test_a_shorter_run_is_a_prefix_of_a_longer_one(umaze, umaze_arrays):
    short = generate_maze2d(umaze, 5_000, seed=0)
    for key, value in short.items():
        np.testing.assert_array_equal(value, umaze_arrays[key][:5_000], err_msg=key)


def test_layout_and_types(umaze_arrays):
    n = 20_000
    assert umaze_arrays["observations"].shape == (n, 4)
    assert umaze_arrays["actions"].shape == (n, 2)
    for key in ("infos/goal", "infos/qpos", "infos/qvel"):
        assert umaze_arrays[key].shape == (n, 2)
    assert umaze_arrays["observations"].dtype == np.float32
    assert umaze_arrays["terminals"].dtype == bool and not umaze_arrays["terminals"].any()


def test_actions_are_clipped_and_noisy(umaze_arrays):
    actions = umaze_arrays["actions"]
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    # N(0, 0.5^2) noise before the clip leaves a continuum of interior values
    assert np.mean(np.abs(actions) < 0.99) > 0.2


def test_segments_end_at_their_goals(umaze, umaze_arrays):
    ends = np.flatnonzero(umaze_arrays["timeouts"])
    lengths = np.diff(np.concatenate([[-1], ends]))
    solved = ends[lengths < umaze.max_episode_steps]
    assert len(solved) == len(ends)  # the U-Maze controller never needs 300 steps
    positions = umaze_arrays["observations"][solved, :2]
    target_cells = np.round(umaze_arrays["infos/goal"][solved])
    assert np.all(np.linalg.norm(positions - target_cells, axis=1) < 0.1)
    # a new goal is pursued right after each segment end
    changed = umaze_arrays["infos/goal"][ends[:-1] + 1] != umaze_arrays["infos/goal"][ends[:-1]]
    assert changed.any(axis=1).all()


def test_segment_statistics_match_the_reference_procedure(umaze_arrays):
    # D4RL-equivalent regenerations have a mean segment length of 75-80 steps (std ~55). With
    # ~250 segments the standard error of the mean is ~3.5 steps: allow 4 of them either side.
    n_segments = int(umaze_arrays["timeouts"].sum())
    mean_length = 20_000 / n_segments
    assert 61 <= mean_length <= 94


def test_positions_stay_in_free_space(umaze, umaze_arrays):
    positions = umaze_arrays["observations"][:, :2].astype(np.float64)
    margin = BALL_RADIUS - 0.02  # soft contacts let the ball sink in by a few millimetres
    for x_min, y_min, x_max, y_max in wall_rectangles(umaze):
        inside = (
            (positions[:, 0] > x_min - margin)
            & (positions[:, 0] < x_max + margin)
            & (positions[:, 1] > y_min - margin)
            & (positions[:, 1] < y_max + margin)
        )
        assert not inside.any()


def test_rewards_mark_the_evaluation_goal(umaze, umaze_arrays):
    distance = np.linalg.norm(umaze_arrays["observations"][:, :2] - umaze.eval_goal, axis=1)
    np.testing.assert_array_equal(
        umaze_arrays["rewards"], (distance <= GOAL_RADIUS).astype(np.float32)
    )


def test_grid_path_is_shortest_with_reference_tie_breaking(umaze):
    # from the far end of the U to the goal: along row 3, up column 3, along row 1
    assert grid_path(umaze, (3, 1), (1, 1)) == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    medium = MAZE_TASKS["maze2d-medium-v1"]
    # two shortest routes from (1, 1) to (2, 2): UP/DOWN come before LEFT/RIGHT, so DOWN first
    assert grid_path(medium, (1, 1), (2, 2)) == [(2, 1), (2, 2)]
    assert grid_path(umaze, (1, 1), (1, 1)) == []


def test_controller_reaches_goals_without_noise(umaze):
    from planner.tasks.maze2d import Maze2DEnv

    env = Maze2DEnv(umaze, multi_task=True)
    for episode in range(5):
        controller = WaypointController(umaze, np.random.default_rng(episode))
        observation, info = env.reset(seed=episode)
        for _ in range(umaze.max_episode_steps):
            action = controller.act(*observation.tolist(), tuple(info["goal"].tolist()))[:2]
            observation, *_ = env.step(np.array(action))
        assert np.linalg.norm(observation[:2] - np.round(info["goal"])) < 0.1


def test_reference_scores_order_policies(umaze):
    scores = reference_scores(umaze, episodes=6, seed=0)
    for policy in ("random", "controller", "oracle"):
        assert 0 <= scores[policy]["mean_return"] <= umaze.max_episode_steps
    assert scores["oracle"]["mean_return"] > scores["random"]["mean_return"]
    assert scores["ref_max"] == scores["controller"]["mean_return"]


@pytest.mark.parametrize("name", ["maze2d-medium-v1", "maze2d-large-v1"])
def test_other_mazes_generate(name):
    arrays = generate_maze2d(MAZE_TASKS[name], 3_000, seed=0)
    assert arrays["timeouts"].sum() > 0
