import subprocess
import sys

import numpy as np
import pytest

from planner.tasks.base import normalized_score
from planner.tasks.maze2d import (
    GOAL_RADIUS,
    MAZE_TASKS,
    POINT_RADIUS,
    Maze2DEnv,
    Obstacle,
    PointMassSim,
    d4rl_to_gym_position,
    d4rl_to_gym_vector,
    gym_to_d4rl_position,
    gym_to_d4rl_vector,
    make_pointmaze,
    sample_cell_position,
    wall_rectangles,
)


def test_frame_mapping_matches_the_spec_example(umaze):
    # the umaze goal (1, 1) in D4RL coordinates is (-0.8, 0.8) in Gymnasium's
    np.testing.assert_allclose(d4rl_to_gym_position(np.array([1.0, 1.0]), umaze), [-0.8, 0.8])
    np.testing.assert_allclose(d4rl_to_gym_vector(np.array([1.0, 2.0])), [2.0, -1.0])


@pytest.mark.parametrize("name", MAZE_TASKS)
def test_frame_mapping_round_trips(name):
    task = MAZE_TASKS[name]
    points = np.random.default_rng(0).normal(size=(50, 2)) * 3
    np.testing.assert_allclose(
        gym_to_d4rl_position(d4rl_to_gym_position(points, task), task), points
    )
    np.testing.assert_allclose(gym_to_d4rl_vector(d4rl_to_gym_vector(points)), points)


@pytest.mark.parametrize("name", MAZE_TASKS)
def test_cell_centres_map_to_pointmaze_cell_centres(name):
    task = MAZE_TASKS[name]
    pointmaze = make_pointmaze(task)
    for row, col in task.free_cells:
        expected = pointmaze.maze.cell_rowcol_to_xy(np.array([row, col]))
        np.testing.assert_allclose(
            d4rl_to_gym_position(np.array([row - 0.2, col - 0.2]), task), expected, atol=1e-12
        )


@pytest.mark.parametrize("name", MAZE_TASKS)
def test_direct_stepping_equals_pointmaze_step(name):
    """Our fast stepper and PointMaze's own env.step agree exactly, walls included."""
    task = MAZE_TASKS[name]
    raw = make_pointmaze(task)
    raw.reset(seed=0)
    sim = PointMassSim(task)
    rng = np.random.default_rng(1)
    start, velocity = sample_cell_position(task, rng), rng.normal(0, 3, size=2)
    sim.set_state(start, velocity)
    raw.point_env.set_state(d4rl_to_gym_position(start, task), d4rl_to_gym_vector(velocity))
    for _ in range(1500):
        action = rng.uniform(-1.5, 1.5, size=2)  # out-of-range actions exercise the clip
        sim.step(*action)
        observation = raw.step(d4rl_to_gym_vector(action))[0]["observation"]
        np.testing.assert_array_equal(sim.data.qpos, observation[:2])
        np.testing.assert_array_equal(sim.data.qvel, observation[2:])
        mine = np.array(sim.observe())
        np.testing.assert_allclose(
            mine[:2], gym_to_d4rl_position(observation[:2], task), atol=1e-12
        )
        np.testing.assert_allclose(mine[2:], gym_to_d4rl_vector(observation[2:]), atol=1e-12)


def test_reset_follows_the_start_distribution(umaze):
    env = Maze2DEnv(umaze)
    starts = np.array([env.reset(seed=None if i else 3)[0] for i in range(200)])
    offsets = starts[:, :2] - np.round(starts[:, :2])
    assert np.all(np.abs(offsets) <= 0.1)
    cells = {tuple(c) for c in np.round(starts[:, :2]).astype(int)}
    assert cells == {tuple(c) for c in umaze.free_cells}
    assert abs(starts[:, 2:].std() - 0.1) < 0.02  # 400 draws of N(0, 0.1^2): s.e. of std ~0.0035


def test_episode_is_truncated_at_the_protocol_length_and_rewards_are_sparse(umaze):
    env = Maze2DEnv(umaze)
    env.reset(seed=0, options={"start": [1.0, 1.2], "velocity": [0.0, 0.0]})
    rewards, truncated, steps = [], False, 0
    while not truncated:
        observation, reward, terminated, truncated, info = env.step(np.zeros(2))
        assert not terminated
        inside = np.linalg.norm(observation[:2] - umaze.eval_goal) <= GOAL_RADIUS
        assert reward == float(inside) == float(info["success"])
        rewards.append(reward)
        steps += 1
    assert steps == 300
    assert sum(rewards) == 300  # starting 0.2 from the goal and not moving


def test_seeded_resets_are_reproducible_and_multi_task_draws_goals(umaze):
    first = Maze2DEnv(umaze, multi_task=True)
    second = Maze2DEnv(umaze, multi_task=True)
    goals_a = [first.reset(seed=5 if i == 0 else None)[1]["goal"] for i in range(20)]
    goals_b = [second.reset(seed=5 if i == 0 else None)[1]["goal"] for i in range(20)]
    np.testing.assert_array_equal(goals_a, goals_b)
    assert len({tuple(np.round(g).astype(int)) for g in goals_a}) > 3
    assert np.array_equal(Maze2DEnv(umaze).reset(seed=5)[1]["goal"], umaze.eval_goal)


def test_wall_rectangles_are_the_layout_walls(umaze):
    rectangles = wall_rectangles(umaze)
    assert len(rectangles) == int(umaze.walls.sum())
    np.testing.assert_allclose(rectangles[:, 2:] - rectangles[:, :2], 1.0)


def test_normalized_score_arithmetic(umaze):
    assert normalized_score(umaze.d4rl_ref_min, umaze.d4rl_ref_min, umaze.d4rl_ref_max) == 0
    assert normalized_score(umaze.d4rl_ref_max, umaze.d4rl_ref_min, umaze.d4rl_ref_max) == 100
    assert normalized_score(92.855, 23.85, 161.86) == pytest.approx(50.0)


@pytest.mark.parametrize(
    "obstacle",
    [
        {"type": "circle", "center": [3.0, 2.0], "radius": 0.3},
        {"type": "box", "low": [2.6, 1.8], "high": [3.2, 2.2]},
    ],
)
def test_an_added_obstacle_stops_a_rollout_physically(umaze, obstacle):
    # pushed along the bottom corridor (+y) from [3, 1], the point mass passes y = 2 in the plain
    # maze but stops at the obstacle's face, one point-mass radius short, touching it
    added = Obstacle.from_spec(obstacle)
    plain, blocked = Maze2DEnv(umaze), Maze2DEnv(umaze, obstacles=[added])
    contacts = []
    for env in (plain, blocked):
        env.reset(seed=0, options={"start": [3.0, 1.0], "velocity": [0.0, 0.0]})
        for _ in range(150):
            observation, *_, info = env.step(np.array([0.0, 0.5]))
            contacts.append(info["contact"])
        env.final = observation
    assert plain.final[1] > 2.5 and not any(contacts[:150])
    face = 2.0 - (obstacle.get("radius") or 0.2)  # the obstacle's edge on the line x = 3
    assert blocked.final[1] == pytest.approx(face - POINT_RADIUS, abs=0.02)
    assert contacts[-1]
    assert added.depth(blocked.final[:2]) < 0  # the centre never enters


def test_an_obstacle_that_appears_later_is_solid_only_from_its_step(umaze):
    # the same push as above; a pillar at y = 2 that appears at step 150 is passed through before
    # and stops the point mass after (it is back behind the pillar by then, moving away)
    late = Obstacle.from_spec({"type": "circle", "center": [3.0, 2.0], "radius": 0.3,
                               "appears_at": 150})  # fmt: skip
    env = Maze2DEnv(umaze, obstacles=[late])
    env.reset(seed=0, options={"start": [3.0, 1.0], "velocity": [0.0, 0.0]})
    path, contacts = [], []
    for step in range(300):
        observation, *_, info = env.step(np.array([0.0, 0.5 if step < 150 else -0.5]))
        path.append(observation[1])
        contacts.append(info["contact"])
    assert max(path[:150]) > 2.5 and not any(contacts[:150])  # through where it will stand
    assert min(path[150:]) > 2.0 + 0.3  # after step 150 it blocks the way back
    assert any(contacts[150:])
    with pytest.raises(ValueError, match="appears_at"):
        Obstacle.from_spec({"type": "circle", "center": [3, 2], "radius": 0.3, "appears_at": -1})


def test_random_starts_avoid_added_obstacles(umaze):
    pillar = Obstacle("circle", center=(1.0, 1.0), radius=0.4)  # covers the whole goal cell
    env = Maze2DEnv(umaze, multi_task=True, obstacles=[pillar])
    for seed in range(40):
        observation, info = env.reset(seed=seed)
        assert pillar.depth(observation[:2]) < -POINT_RADIUS
        assert pillar.depth(info["goal"]) < -POINT_RADIUS


def test_a_start_point_draws_starts_around_it(umaze):
    env = Maze2DEnv(umaze, start=[3.0, 3.0])
    starts = np.array([env.reset(seed=seed)[0][:2] for seed in range(20)])
    assert np.all(np.abs(starts - [3.0, 3.0]) <= 0.1) and starts.std() > 0.01


def test_importing_the_maze_module_prints_no_adroit_notice():
    imported = subprocess.run(
        [sys.executable, "-c", "import planner.tasks.maze2d"], capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    assert "AdroitHand" not in imported.stderr
