"""The control layer: policy state, replan schedules, pinned arrival, the goal latch."""

import numpy as np
import pytest

from planner.config import ConfigError
from planner.control.policies import (
    ReplanRule,
    bucket,
    earliest_arrival,
    planned_arrival,
    planner_plan_fn,
    receding_horizon_policy,
    toward_targets,
)
from planner.control.tracking import hold_actions, pursuit_actions, tracking_actions
from planner.data.normalize import Normalizer
from planner.energies.terms import Layout
from planner.eval.evaluate import make_policy
from planner.planning.build import build_planner, plan_config
from planner.planning.maze import routes_to
from planner.planning.planner import inpainting
from planner.planning.run import load_run
from planner.runtime import compile_events
from planner.tasks.maze2d import get_maze_task

LAYOUT = Layout(action_dim=2, observation_dim=4)
HORIZON = 16


def straight_line_planner(calls: list):
    """A :class:`PlanFn` drawing straight lines to the goal that arrive at the requested row
    (the last one by default) and stay; it records what it was asked."""

    def plan(episodes, replans, observations, goals, arrival, previous, step):
        calls.append(
            {
                "episodes": episodes.tolist(),
                "replans": replans.tolist(),
                "arrival": None if arrival is None else arrival.tolist(),
                "warm": previous is not None,
                "step": step,
            }
        )
        arrive = np.full(len(episodes), HORIZON - 1) if arrival is None else arrival
        fraction = np.minimum(np.arange(HORIZON)[None] / arrive[:, None], 1.0)[..., None]
        start = observations[:, None, :2]
        positions = start + fraction * (goals[:, None] - start)
        rest = np.zeros((len(episodes), HORIZON, 2))
        return np.concatenate([rest, positions, rest], axis=-1)

    return plan


def observation(x, y):
    return np.array([x, y, 0.0, 0.0])


def test_open_loop_plans_once_and_tracks_the_plan():
    calls = []
    policy = receding_horizon_policy(straight_line_planner(calls), LAYOUT, ReplanRule())
    state = policy.init(np.array([0, 1]), np.stack([observation(0, 0)] * 2), np.ones((2, 2)))
    for _ in range(HORIZON + 5):
        actions, state, info = policy.act(state, np.stack([observation(0, 0)] * 2))
        assert not info["replanned"].any() and not info["reached"].any()
    assert len(calls) == 1 and state.replans.tolist() == [0, 0]
    np.testing.assert_allclose(actions, [[1.0, 1.0]] * 2)  # the plan's end at rest


def test_the_arrival_step_stays_fixed_across_replans():
    calls = []
    rule = ReplanRule(every=4)
    policy = receding_horizon_policy(straight_line_planner(calls), LAYOUT, rule)
    start, goal = observation(0, 0)[None], np.array([[3.0, 0.0]])
    state = policy.init(np.array([0]), start, goal)
    assert state.arrival.tolist() == [HORIZON - 1]
    for _ in range(13):
        _, state, _ = policy.act(state, start)  # the agent never moves
        assert state.arrival.tolist() == [HORIZON - 1]
    # replans at steps 4, 8 and 12 pin the goal at the remaining rows 11, 7 and 3
    assert [call["arrival"] for call in calls] == [None, [11], [7], [3]]
    assert [call["step"] for call in calls] == [0, 4, 8, 12]
    assert [call["replans"] for call in calls] == [[0], [1], [2], [3]]
    assert all(call["warm"] for call in calls[1:])


def test_without_pinning_the_arrival_recedes():
    calls = []
    rule = ReplanRule(every=4, pin_arrival=False)
    policy = receding_horizon_policy(straight_line_planner(calls), LAYOUT, rule)
    start = observation(0, 0)[None]
    state = policy.init(np.array([0]), start, np.array([[3.0, 0.0]]))
    for _ in range(5):
        _, state, _ = policy.act(state, start)
    assert calls[1]["arrival"] is None and state.arrival.tolist() == [4 + HORIZON - 1]


def test_the_latch_holds_the_goal_and_releases_when_pushed_out():
    calls = []
    rule = ReplanRule(every=1, latch_radius=0.5)
    policy = receding_horizon_policy(straight_line_planner(calls), LAYOUT, rule)
    goal = np.array([[3.0, 0.0]])
    state = policy.init(np.array([0]), observation(0, 0)[None], goal)
    near = np.array([[2.7, 0.1, 0.5, 0.0]])
    for _ in range(3):
        actions, state, info = policy.act(state, near)
        assert info["reached"].all() and not info["replanned"].any()
        np.testing.assert_allclose(actions, hold_actions(goal, near, LAYOUT))
    _, state, info = policy.act(state, np.array([[2.2, 0.0, 0.0, 0.0]]))  # within 2 × radius
    assert info["reached"].all()
    _, state, info = policy.act(state, np.array([[1.0, 0.0, 0.0, 0.0]]))  # pushed out
    assert not info["reached"].any() and info["replanned"].all()
    assert len(calls) == 2


def test_every_planning_episode_replans_when_the_world_changes():
    calls = []
    rule = ReplanRule(at_steps=(3,), latch_radius=0.5)
    policy = receding_horizon_policy(straight_line_planner(calls), LAYOUT, rule)
    goals = np.array([[3.0, 0.0], [3.0, 3.0]])
    state = policy.init(np.arange(2), np.stack([observation(0, 0), observation(3, 2.8)]), goals)
    for _ in range(6):
        _, state, _ = policy.act(state, np.stack([observation(0, 0), observation(3, 2.8)]))
    # episode 1 sits at its goal (latched): only episode 0 replans, once, at step 3
    assert [(call["episodes"], call["step"]) for call in calls] == [([0, 1], 0), ([0], 3)]


def test_an_episode_without_a_route_holds_its_start_and_never_replans():
    calls = []
    rule = ReplanRule(every=1, latch_radius=0.5)

    def routes(observations, goals):
        return np.array([True, False])

    policy = receding_horizon_policy(straight_line_planner(calls), LAYOUT, rule, routes)
    starts = np.stack([observation(0, 0), observation(1, 1)])
    state = policy.init(np.arange(2), starts, np.array([[3.0, 0.0], [3.0, 3.0]]))
    moved = np.array([[0.1, 0.0, 1.0, 0.0], [1.2, 1.0, 1.0, 0.0]])
    for _ in range(3):
        actions, state, _ = policy.act(state, moved)
    assert state.replans.tolist() == [2, 0] and state.feasible.tolist() == [True, False]
    np.testing.assert_allclose(actions[1], [1.0 - 1.2 - 1.0, 1.0 - 1.0 - 0.0])  # back to start


def run_policy(rule, episodes, paths, goals):
    """Actions and final state of ``episodes`` whose observations follow ``paths`` [B, T, 4]."""
    policy = receding_horizon_policy(straight_line_planner([]), LAYOUT, rule)
    state = policy.init(np.asarray(episodes), paths[:, 0], goals)
    actions = []
    for step in range(paths.shape[1]):
        action, state, _ = policy.act(state, paths[:, step])
        actions.append(action)
    return np.stack(actions, axis=1), state


def test_episodes_on_different_schedules_equal_running_them_alone():
    # episode 0 drifts off its plan and replans on deviation; 1 follows its plan; 2 drifts later
    steps = 12
    goals = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 3.0]])
    t = np.arange(steps) / (HORIZON - 1)
    follow = np.stack([np.zeros(steps), 3.0 * t], axis=1)
    drift = np.stack([3.0 * t, 0.2 * np.arange(steps)], axis=1)
    late = np.stack([3.0 * t, np.where(np.arange(steps) > 6, 3.0 * t + 0.5, 3.0 * t)], axis=1)
    paths = np.concatenate([np.stack([drift, follow, late]), np.zeros((3, steps, 2))], axis=-1)
    rule = ReplanRule(deviation=0.3)
    batched_actions, batched = run_policy(rule, [0, 1, 2], paths, goals)
    assert batched.replans.tolist()[1] == 0 and batched.replans[0] > batched.replans[2] > 0
    for index in range(3):
        alone_actions, alone = run_policy(rule, [index], paths[index : index + 1], goals[[index]])
        np.testing.assert_array_equal(batched_actions[index], alone_actions[0])
        np.testing.assert_array_equal(batched.plans[index], alone.plans[0])
        assert batched.replans[index] == alone.replans[0]


def corner_plan(speed: float = 2.0, head_start: float = 0.5) -> np.ndarray:
    """``[1, H, 4]`` a plan (observations only) along an L, 1 m along x then 1 m along y at
    ``speed``, whose second row is already ``head_start`` along it (plans of trained models jump
    like this after the imposed start): an agent following it lags from the first step."""
    travelled = np.concatenate([[0.0], np.arange(head_start, 2.0 + 1e-9, speed * 0.01)])
    along_x = travelled[:, None] <= 1
    positions = np.where(
        along_x,
        np.stack([travelled, 0 * travelled], 1),
        np.stack([1 + 0 * travelled, travelled - 1], 1),
    )
    velocities = np.where(along_x, [[speed, 0.0]], [[0.0, speed]])
    velocities[0] = 0.0
    return np.concatenate([positions, velocities], axis=1)[None]


def follow(controller, steps: int = 250) -> np.ndarray:
    """``[steps + 1, 2]`` positions of a point mass (PointMaze's 0.01 s step, about 24 m/s^2 per
    unit of action, actions clipped to [-1, 1]) driven by ``controller(observations, step)``."""
    observations = np.zeros((1, 4))
    positions = [observations[0, :2].copy()]
    for step in range(steps):
        actions = np.clip(controller(observations, step), -1.0, 1.0)
        observations[:, 2:] += 0.24 * actions
        observations[:, :2] += 0.01 * observations[:, 2:]
        positions.append(observations[0, :2].copy())
    return np.array(positions)


def test_pursuit_keeps_to_the_path_where_tracking_in_time_cuts_the_corner():
    states, progress = corner_plan(), np.zeros(1, int)

    def pursue(observations, step):
        nonlocal progress
        actions, progress = pursuit_actions(states, observations, progress, LAYOUT, 0.2)
        return actions

    tracked = follow(
        lambda observations, step: tracking_actions(states, observations, step, LAYOUT)
    )
    pursued = follow(pursue)

    def off_path(positions):  # distance from the L: the x axis up to 1, then the line x = 1
        along_x = np.hypot(np.maximum(positions[:, 0] - 1, 0), positions[:, 1])
        along_y = np.hypot(positions[:, 0] - 1, np.maximum(-positions[:, 1], 0))
        return np.minimum(along_x, along_y)

    assert off_path(tracked).max() > 0.25  # the tracker lags, then heads straight for the plan
    assert off_path(pursued).max() < 0.1
    assert np.linalg.norm(pursued[-1] - [1.0, 1.0]) < 0.1  # and it ends at rest at the end


def test_pursuit_progress_never_goes_back():
    plan = corner_plan()
    progress = np.array([30])
    at_start = np.zeros((1, 4))  # nearest to row 0, behind the progress
    _, moved = pursuit_actions(plan, at_start, progress, LAYOUT, 0.2)
    assert moved[0] == 30


def test_planned_arrival_and_buckets():
    plans = np.zeros((2, 6, 6))
    plans[0, :, 2] = [0.0, 1.0, 2.0, 2.95, 3.0, 3.0]
    plans[1, :, 2] = [0.0, 1.0, 2.0, 2.5, 2.8, 3.0]
    np.testing.assert_array_equal(
        planned_arrival(plans, np.array([[3.0, 0.0]] * 2), LAYOUT, 0.1), [3, 5]
    )
    assert bucket(np.array([4]), 8).tolist() == [4]
    assert bucket(np.array([1, 5, 6]), 8).tolist() == [1, 5, 6, 1]
    assert len(bucket(np.arange(5), 6)) == 6


def test_goal_from_imposes_the_goal_position_on_every_later_row():
    normalizer = Normalizer(np.zeros(6, np.float32), np.ones(6, np.float32))
    start = np.array([[0.0, 0.0, 0.1, 0.1], [1.0, 1.0, 0.0, 0.0]])
    goal = np.array([[2.0, 3.0], [4.0, 5.0]])
    mask, values = inpainting(LAYOUT, 8, normalizer, start, goal, goal_from=np.array([5, 7]))
    assert mask.shape == (2, 8, 6)
    np.testing.assert_array_equal(np.asarray(mask)[0, :, 2], [1, 0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(mask)[1, :, 2], [1, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(np.asarray(values)[0, 5:7, 2:4], [[2.0, 3.0]] * 2)
    assert not np.asarray(mask)[0, 5, 4] and np.asarray(mask)[0, 7, 4]  # velocity: last row only


@pytest.mark.parametrize("n_candidates", [1, 2])
def test_mpc_with_the_trained_planner_compiles_once_per_replan_size(tiny_runs, n_candidates):
    run = load_run(tiny_runs / "diffusion")
    config = plan_config(run, None, ["plan.method=ddim", "plan.n_steps=2"], ("plan", "eval"))
    planner, _, _ = build_planner(run, config, get_maze_task(config.data.dataset))
    plan_fn = planner_plan_fn({0: planner}, 1, 0, n_candidates)
    policy = receding_horizon_policy(plan_fn, run.layout, ReplanRule(every=2))
    starts = np.array([[3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0]])
    state = policy.init(np.arange(3), starts, np.tile([[1.0, 3.0]], (3, 1)))
    for _ in range(3):  # compiles the replan of all three episodes (a batch of 3)
        _, state, _ = policy.act(state, starts)
    with compile_events() as events:
        for _ in range(4):
            _, state, _ = policy.act(state, starts)
    assert not [event for event, _ in events if event.endswith("backend_compile_duration")]
    assert state.replans.tolist() == [3, 3, 3]


def test_toward_targets_plans_to_the_targets_and_unpins_the_intermediate_ones():
    calls, asked = [], []

    def targets(observations, goals, step):
        asked.append(step)
        return np.where(observations[:, :1] < 1.0, [[1.0, 0.0]], goals)  # far: go to (1, 0)

    policy = receding_horizon_policy(
        toward_targets(straight_line_planner(calls), targets), LAYOUT, ReplanRule(every=4)
    )
    goals = np.array([[3.0, 0.0], [3.0, 0.0]])
    state = policy.init(np.array([0, 1]), np.stack([observation(0, 0), observation(2, 0)]), goals)
    positions = state.plans[:, -1, 2:4]
    np.testing.assert_allclose(positions, [[1.0, 0.0], [3.0, 0.0]])  # episode 0 aims at (1, 0)
    np.testing.assert_allclose(state.goals, goals)  # the goals themselves are kept
    arrival = int(state.arrival[1])
    for _ in range(5):  # the replan at step 4
        _, state, _ = policy.act(state, np.stack([observation(0, 0), observation(2, 0)]))
    # at the replan, the intermediate target goes on the last row; the goal stays pinned
    assert calls[1]["arrival"] == [HORIZON - 1, arrival - 4] and asked == [0, 4]


def test_earliest_arrival_keeps_the_earliest_plan_the_agent_can_follow():
    calls = []

    def slow_enough(plans, step):  # steps of at most 0.3
        return (np.linalg.norm(np.diff(plans[..., 2:4], axis=1), axis=-1) <= 0.3).all(axis=1)

    plan_fn = earliest_arrival(straight_line_planner(calls), [4, 8, 12], slow_enough)
    policy = receding_horizon_policy(plan_fn, LAYOUT, ReplanRule(every=3))
    starts = np.stack([observation(0, 0)] * 3)
    goals = np.array([[0.5, 0.0], [3.0, 0.0], [6.0, 0.0]])  # reachable by steps 4, 12, never
    state = policy.init(np.arange(3), starts, goals)
    # 0.5 m arrives at row 4; 3 m needs 10 rows (12 tried); 6 m keeps the unpinned plan
    assert state.arrival.tolist() == [4, 12, HORIZON - 1]
    # earliest first; the unpinned plan only for the query that accepted none
    assert [call["arrival"] for call in calls] == [[4] * 3, [8] * 3, [12] * 3, None]
    for _ in range(4):  # replans pin the arrival: no search
        _, state, _ = policy.act(state, starts)
    assert len(calls) == 5 and calls[-1]["arrival"] == [1, 9, HORIZON - 4]


def test_route_reach_plans_toward_the_point_that_far_along_the_route(tiny_runs):
    run = load_run(tiny_runs / "diffusion")
    overrides = ["plan.method=ddim", "plan.n_steps=2", "eval.policy=mpc", "eval.replan_every=2"]
    config = plan_config(run, None, [*overrides, "eval.route_reach=1.5"], ("plan", "eval"))
    task = get_maze_task(config.data.dataset)
    start, goal = np.array([[3.0, 1.0, 0.0, 0.0]]), task.eval_goal[None]
    state = make_policy(run, config, task).init(np.arange(1), start, goal)
    target = routes_to(task, goal[0], [], run.layout).target(start[0, :2], goal[0], 1.5)
    np.testing.assert_allclose(state.plans[0, -1, 2:4], target, atol=1e-4)  # imposed
    assert np.linalg.norm(target - goal[0]) > 1.0  # ... and not the goal
    open_loop = plan_config(run, None, ["eval.route_reach=1.5"], ("eval",))
    with pytest.raises(ConfigError, match=r"eval\.policy: mpc"):
        make_policy(run, open_loop, task)
    both = [*overrides, "eval.route_reach=1.5", "eval.arrival_search=4"]
    both = plan_config(run, None, both, ("plan", "eval"))
    with pytest.raises(ConfigError, match="use one of them"):
        make_policy(run, both, task)
