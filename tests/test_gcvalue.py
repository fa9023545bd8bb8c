"""The learned temporal distance (planner.gcvalue) and the subgoals chosen with it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

from planner.control.subgoals import graph_subgoals, nearest_to_goal_within_reach, value_subgoals
from planner.data.episodes import make_episodes
from planner.gcvalue import GoalValue, relabelled_goals, steps_from_values, train_goal_value


def test_steps_invert_the_discounted_count_of_rewards():
    discount, stride = 0.99, 8
    transitions = np.array([0.0, 1.0, 10.0, 50.0])
    values = -(1 - discount**transitions) / (1 - discount)
    assert np.allclose(steps_from_values(values, discount, stride), stride * transitions)


def test_relabelled_goals_are_the_step_a_later_step_of_its_episode_or_anywhere():
    indices = jnp.array([0, 5, 9, 12])
    last = jnp.array([9, 9, 9, 19])
    key = jax.random.key(0)
    current = relabelled_goals(key, indices, last, 20, 2, 0.9, 1.0, 0.0)
    assert np.array_equal(current, indices)
    later = np.asarray(relabelled_goals(key, indices, last, 20, 2, 0.9, 0.0, 1.0))
    at_last = np.asarray(indices == last)
    assert np.all((later > np.asarray(indices)) | at_last) and np.all(later <= np.asarray(last))
    assert np.all(((later - np.asarray(indices)) % 2 == 0) | (later == np.asarray(last)))
    zeros = jnp.zeros(500, int)
    anywhere = np.asarray(relabelled_goals(key, zeros, zeros, 20, 2, 0.9, 0.0, 0.0))
    assert anywhere.min() >= 0 and anywhere.max() < 20 and len(np.unique(anywhere)) > 15


def test_the_chosen_waypoint_is_nearest_the_goal_among_those_within_reach():
    to_waypoints = np.array([[10.0, 50.0, 200.0], [300.0, 400.0, 250.0]])
    waypoints_to_goal = np.array([[90.0, 60.0, 0.0], [5.0, 1.0, 9.0]])
    chosen = nearest_to_goal_within_reach(to_waypoints, waypoints_to_goal, reach=100.0)
    # the first query reaches waypoints 0 and 1 (1 is nearer the goal); the second reaches none
    # and takes its nearest waypoint
    assert chosen.tolist() == [1, 2]


@pytest.fixture(scope="module")
def corridor_value() -> GoalValue:
    """A value trained on short walks along a line (x from 0 to 10, 0.1 per step, always
    forward), 1,500 steps of transitions 2 steps long at a discount of 0.9 (a horizon of about
    20 steps, which 1,500 steps of backups reach)."""
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 8, 200)
    steps = np.arange(21) * 0.1
    positions = np.stack([starts[:, None] + steps, np.zeros((200, 21))], axis=-1).reshape(-1, 2)
    arrays = {
        "observations": positions.astype(np.float32),
        "actions": np.zeros((len(positions), 2), np.float32),
        "rewards": np.zeros(len(positions), np.float32),
    }
    episodes = make_episodes("corridor", arrays, boundaries=np.arange(0, 201 * 21, 21))
    value, losses = train_goal_value(episodes, 1500, stride=2, discount=0.9, show_progress=False)
    assert np.isfinite(losses).all()
    return value


def test_the_value_orders_goals_by_their_distance_along_the_data(corridor_value):
    here = np.tile([[1.0, 0.0]], (10, 1))
    ahead = np.stack([np.linspace(1.1, 2.0, 10), np.zeros(10)], axis=-1)
    steps = corridor_value.steps_to_go(here, ahead)
    assert spearmanr(steps, ahead[:, 0]).correlation > 0.9
    # the walks never go back: a goal behind is farther than the same distance ahead
    behind = corridor_value.steps_to_go(ahead, here)
    assert np.all(behind[3:] > steps[3:])


class ForwardDistance:
    """A known temporal distance on a line: 10 steps per unit forward, never backward; the
    waypoints are the points 0, 0.5, ..., 10."""

    waypoints = np.stack([np.linspace(0, 10, 21), np.zeros(21)], axis=-1)

    def steps_to_go(self, observations, goals):
        ahead = goals[:, 0] - observations[:, 0]
        return np.where(ahead >= 0, 10 * ahead, 1e6)

    def pairwise_steps(self, observations, goals):
        q, m = len(observations), len(goals)
        pairs = self.steps_to_go(np.repeat(observations, m, axis=0), np.tile(goals, (q, 1)))
        return pairs.reshape(q, m)


def test_subgoals_are_the_goal_within_reach_and_the_farthest_waypoint_toward_it_beyond():
    targets = value_subgoals(ForwardDistance(), reach=20.0, position=(0, 1))
    here = np.array([[1.0, 0.0], [1.0, 0.0], [9.9, 0.0]])
    goals = np.array([[2.5, 0.0], [9.0, 0.0], [1.0, 0.0]])
    chosen = targets(here, goals, 0)
    assert np.allclose(chosen[0], goals[0])  # 15 steps away: within reach
    assert np.allclose(chosen[1], [3.0, 0.0])  # the waypoint 20 steps ahead
    assert np.allclose(chosen[2], [10.0, 0.0])  # nothing reaches the goal: the nearest waypoint


class StraightLineDistance:
    """A temporal distance that ignores a wall: 10 steps per unit of straight line. Its waypoints
    run 0.5 apart along a U (up x = 0, across y = 4, down x = 2); the wall between its arms
    makes the true way from (0, 0) to (2, 0) 100 steps, not 20."""

    waypoints = np.concatenate([
        [(0.0, y) for y in np.arange(0, 4, 0.5)],
        [(x, 4.0) for x in np.arange(0, 2, 0.5)],
        [(2.0, y) for y in np.arange(4, -0.5, -0.5)],
    ])  # fmt: skip

    def steps_to_go(self, observations, goals):
        return 10 * np.linalg.norm(goals - observations, axis=-1)

    def pairwise_steps(self, observations, goals):
        return 10 * np.linalg.norm(observations[:, None] - goals[None], axis=-1)


def test_graph_subgoals_follow_the_short_distances_around_a_wall_the_long_ones_cross():
    value = StraightLineDistance()
    here, goals = np.array([[0.0, 0.0], [1.5, 4.0]]), np.array([[2.0, 0.0], [2.0, 1.5]])
    greedy = value_subgoals(value, reach=31.0, position=(0, 1))(here, goals, 0)
    assert np.allclose(greedy[0], goals[0])  # 20 steps through the wall: "within reach"
    graph = graph_subgoals(value, edge=6.0, reach=31.0, position=(0, 1))(here, goals, 0)
    assert np.allclose(graph[0], [0.0, 3.0])  # up the left arm, as far as 31 steps of route go
    assert np.allclose(graph[1], goals[1])  # 30 steps of route to the goal: aim at it
