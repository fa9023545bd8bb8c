"""`planner eval`: the tracking controller, batched episodes, score arithmetic."""

import dataclasses
import json

import numpy as np
import pytest

from planner.cli import main
from planner.config import ConfigError
from planner.control.policies import ReplanRule, receding_horizon_policy
from planner.control.tracking import tracking_actions
from planner.energies.terms import Layout
from planner.eval.evaluate import evaluate
from planner.eval.rollouts import Rollouts, run_episodes
from planner.eval.scores import score_summary
from planner.planning.build import plan_config
from planner.planning.run import load_run
from planner.tasks.base import normalized_score
from planner.tasks.maze2d import GOAL_RADIUS, Maze2DEnv, get_maze_task

MAZE_LAYOUT = Layout(action_dim=2, observation_dim=4)
SIMULATOR_STEP = 0.01  # seconds per environment step


def test_normalized_score_arithmetic(umaze):
    assert normalized_score(100.0, 20.0, 180.0) == pytest.approx(50.0)
    assert normalized_score(umaze.d4rl_ref_max, umaze.d4rl_ref_min, umaze.d4rl_ref_max) == 100
    rewards = np.zeros((2, 300))
    rewards[0, -10:] = 1  # return 10, first reward at step 291
    rewards[1, -30:] = 1  # return 30, first reward at step 271
    rollouts = Rollouts(
        np.arange(2),
        rewards,
        np.zeros((2, 301, 4)),
        np.full(2, 300),
        np.zeros(2, bool),
        np.zeros((2, 2)),
        None,
        np.zeros((2, 300), bool),
        np.zeros(2),
        np.array([0, 3]),
        np.array([True, False]),
    )
    summary = score_summary(rollouts, umaze, {"ref_min": 0.0, "ref_max": 40.0})
    assert summary["return"] == {"mean": 20.0, "stderr": pytest.approx(10.0)}  # std 14.14 / √2
    assert summary["normalized_this_simulator"]["mean"] == pytest.approx(50.0)
    assert summary["normalized_this_simulator"]["stderr"] == pytest.approx(25.0)
    d4rl = 100 * (20.0 - umaze.d4rl_ref_min) / (umaze.d4rl_ref_max - umaze.d4rl_ref_min)
    assert summary["normalized_d4rl"]["mean"] == pytest.approx(d4rl)
    assert summary["success_rate"] == 1.0
    assert summary["time_to_goal"]["mean"] == pytest.approx(281.0)
    assert summary["replans_per_episode"]["mean"] == pytest.approx(1.5)
    assert summary["infeasible_episodes"] == 1


def test_tracking_a_straight_line_plan_reaches_the_goal(umaze):
    """The bottom corridor of the U-Maze, (3, 1) to (3, 3), is open space."""
    env = Maze2DEnv(umaze)
    start, goal = np.array([3.0, 1.0]), np.array([3.0, 3.0])
    observation, _ = env.reset(options={"start": start, "velocity": [0, 0], "goal": goal})
    line = np.linspace(start, goal, 100)
    velocity = np.gradient(line, SIMULATOR_STEP, axis=0)  # consistent with the positions
    plan = np.concatenate([line, velocity], axis=1)[None]  # [1, H, 4]
    rewards = []
    for step in range(umaze.max_episode_steps):
        action = tracking_actions(plan, observation[None], step, MAZE_LAYOUT)[0]
        observation, reward, *_ = env.step(action)
        rewards.append(reward)
    assert np.linalg.norm(observation[:2] - goal) < GOAL_RADIUS / 2
    assert sum(rewards) > 150  # arrives early and stays


def test_tracking_aims_at_the_last_waypoint_at_rest_after_the_plan():
    plan = np.array([[[0.0, 0.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]]])
    observation = np.array([[0.5, 0.5, 0.1, 0.2]])
    during = tracking_actions(plan, observation, 0, MAZE_LAYOUT)
    np.testing.assert_allclose(during, [[0.5 + 2.9, 1.5 + 3.8]])
    after = tracking_actions(plan, observation, 5, MAZE_LAYOUT)
    np.testing.assert_allclose(after, [[0.5 - 0.1, 1.5 - 0.2]])


def eval_cli(tiny_runs, tmp_path, *extra):
    out = tmp_path / "eval"
    args = ["eval", "--run", str(tiny_runs / "diffusion"), "--out", str(out), *extra]
    return main(args), out


def test_eval_cli_writes_scores_in_range(tiny_runs, tmp_path):
    code, out = eval_cli(tiny_runs, tmp_path, "--episodes", "3", "--batch-size", "2")
    assert code == 0
    summary = json.loads((out / "scores.json").read_text())
    returns = np.array(summary["returns"])
    assert returns.shape == (3,) and ((returns >= 0) & (returns <= 300)).all()
    scores = summary["scores"]
    assert scores["normalized_d4rl"]["mean"] == pytest.approx(
        normalized_score(returns.mean(), 23.85, 161.86)
    )
    assert "normalized_this_simulator" in scores
    assert (out / "rollouts.png").stat().st_size > 10_000
    saved = np.load(out / "rollouts.npz")
    assert saved["observations"].shape == (3, 301, 4)
    np.testing.assert_allclose(saved["goals"], np.tile([1.0, 1.0], (3, 1)))


def test_multi2d_draws_a_goal_per_episode_and_mpc_replans(tiny_runs, tmp_path):
    code, out = eval_cli(
        tiny_runs, tmp_path, "--episodes", "3", "--multi-task", "--policy", "mpc",
        "--replan-every", "100", "--warm-start-level", "4", "--set", "eval.latch=false",
    )  # fmt: skip
    assert code == 0
    saved = np.load(out / "rollouts.npz")
    assert len({tuple(goal) for goal in saved["goals"].round(6)}) == 3
    assert saved["replans"].tolist() == [2, 2, 2]  # at steps 100 and 200
    summary = json.loads((out / "scores.json").read_text())
    assert summary["eval"]["policy"] == "mpc"


def test_replanning_needs_the_mpc_policy(tiny_runs, tmp_path, capsys):
    code, _ = eval_cli(tiny_runs, tmp_path, "--episodes", "1", "--replan-every", "10")
    assert code != 0
    assert "eval.policy: mpc" in capsys.readouterr().err


@pytest.mark.parametrize("policy", [[], ["eval.policy=mpc", "eval.replan_every=40"]])
def test_batched_evaluation_equals_sequential(tiny_runs, policy):
    run = load_run(tiny_runs / "diffusion")
    config = plan_config(run, None, ["eval.episodes=4", *policy], ("plan", "eval"))
    task = get_maze_task(config.data.dataset)

    def with_batch(size):
        return dataclasses.replace(config, eval=dataclasses.replace(config.eval, batch_size=size))

    batched = evaluate(run, with_batch(4), task, show_progress=False)
    one_by_one = evaluate(run, with_batch(1), task, show_progress=False)
    np.testing.assert_array_equal(batched.observations[:, 0], one_by_one.observations[:, 0])
    np.testing.assert_allclose(batched.first_plans, one_by_one.first_plans, atol=1e-4)
    # float32 convolutions over batches of 4 and 1 differ in the last bits; a rollout may
    # cross the goal radius one step earlier or later
    assert np.abs(batched.returns - one_by_one.returns).max() <= 1
    np.testing.assert_array_equal(batched.replans, one_by_one.replans)


def test_a_config_files_eval_section_reaches_a_trained_run(tiny_runs, tmp_path):
    """The run's record keeps the eval settings it was trained with; a config file edited
    since (as reproduce and eval pass it) brings its own, while `planner plan`, which allows
    only plan settings, keeps the run's."""
    run = load_run(tiny_runs / "diffusion")
    config_file = tmp_path / "edited.yaml"
    config_file.write_text("plan: {method: ddim}\neval: {policy: mpc, replan_every: 7}\n")
    assert run.config.eval.replan_every != 7
    edited = plan_config(run, config_file, [], ("plan", "eval"))
    assert (edited.eval.policy, edited.eval.replan_every) == ("mpc", 7)
    assert edited.plan.method == "ddim"
    assert plan_config(run, config_file, []).eval == run.config.eval
    config_file.write_text("plan: {}\neval: [1, 2]\n")
    with pytest.raises(ConfigError, match="`eval:` must be a mapping"):
        plan_config(run, config_file, [], ("plan", "eval"))


def test_episodes_follow_the_policy(umaze):
    """run_episodes hands the policy each batch's observations and goals and acts on what
    comes back; a plan that stays where it starts keeps the agent there."""
    calls = []

    def stay(episodes, replans, observations, goals, arrival, previous, step):
        calls.append((episodes.tolist(), previous is None, replans.tolist()))
        rows = np.concatenate([np.zeros((len(episodes), 2)), observations], axis=1)
        return np.repeat(rows[:, None], 8, axis=1)

    policy = receding_horizon_policy(stay, MAZE_LAYOUT, ReplanRule(every=150))
    envs = [umaze.make_env() for _ in range(2)]
    rollouts = run_episodes(envs, policy, [5, 6], seed=0, steps=umaze.max_episode_steps)
    assert calls == [([5, 6], True, [0, 0]), ([5, 6], False, [1, 1])]
    assert rollouts.replans.tolist() == [1, 1]
    positions = rollouts.observations[..., :2]
    assert (np.linalg.norm(positions[:, -1] - positions[:, 0], axis=1) < 0.2).all()


def test_mpc_replans_once_when_an_obstacle_appears(tiny_runs):
    run = load_run(tiny_runs / "diffusion")
    pillar = {"type": "circle", "center": [2.0, 3.0], "radius": 0.2, "appears_at": 5}
    overrides = [
        "eval.episodes=2", "eval.policy=mpc", "eval.latch=false",
        f"plan.constraints=[{json.dumps(pillar)}]",
    ]  # fmt: skip
    config = plan_config(run, None, overrides, ("plan", "eval"))
    rollouts = evaluate(run, config, get_maze_task(config.data.dataset), show_progress=False)
    assert rollouts.replans.tolist() == [1, 1]
    open_loop = dataclasses.replace(
        config, eval=dataclasses.replace(config.eval, policy="open_loop")
    )
    rollouts = evaluate(run, open_loop, get_maze_task(config.data.dataset), show_progress=False)
    assert rollouts.replans.tolist() == [0, 0]
