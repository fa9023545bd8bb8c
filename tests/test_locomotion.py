"""Locomotion: tasks and scores, the action-executing policies, BC, and `planner eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.cli import main
from planner.config import load_config
from planner.control.policies import Policy, feedback_policy, plan_action_policy
from planner.data.d4rl import load_d4rl, write_hdf5
from planner.data.episodes import expected_dimensions
from planner.data.minari import write_minari
from planner.data.sources import load_episodes
from planner.eval.rollouts import run_episodes
from planner.paths import RUN_SUFFIXES
from planner.planning.run import load_run
from planner.tasks import get_task
from planner.tasks.locomotion import LOCOMOTION_TASKS, find_locomotion_task, parse_dataset_name
from planner.training import train

TINY_LOCOMOTION = [
    "model.dim=8",
    "model.dim_mults=[1, 2]",
    "data.horizon=8",
    "diffusion.n_diffusion_steps=5",
    "train.batch_size=8",
    "train.steps=20",
    "train.value_steps=20",
    "train.bc_steps=200",
    "train.invdyn_steps=200",
    "train.steps_per_dispatch=10",
    "train.log_every=10",
    "train.checkpoint_every=10",
    "train.ema_start=0",
]


@pytest.mark.parametrize("body", ["hopper", "walker2d", "halfcheetah"])
def test_simulator_observations_have_d4rl_dimensions(body):
    task = LOCOMOTION_TASKS[body]
    env = task.make_env()
    observation, _ = env.reset(seed=0)
    assert observation.shape == (task.observation_dim,)
    assert env.action_space.shape == (task.action_dim,)
    assert expected_dimensions(f"{body}-medium-v2") == (task.observation_dim, task.action_dim)
    assert env.spec.max_episode_steps == 1000


def test_making_a_halfcheetah_prints_no_settotalmass_notice(capfd):
    import mujoco

    LOCOMOTION_TASKS["halfcheetah"].make_env()
    assert "settotalmass" not in "".join(capfd.readouterr())
    assert mujoco.get_mju_user_warning() is None  # MuJoCo's own printing is restored


def test_normalized_scores_use_d4rl_references():
    hopper = LOCOMOTION_TASKS["hopper"]
    assert hopper.normalized(-20.272305) == pytest.approx(0.0)
    assert hopper.normalized(3234.3) == pytest.approx(100.0)
    # (1000 + 20.272305) / (3234.3 + 20.272305) = 31.348...
    assert hopper.normalized(1000.0) == pytest.approx(31.3487, abs=1e-3)
    cheetah = LOCOMOTION_TASKS["halfcheetah"]
    assert cheetah.normalized(5000.0) == pytest.approx(100 * 5280.178953 / 12415.178953)


def test_dataset_names_parse_and_bad_names_are_refused():
    task, kind = parse_dataset_name("walker2d-medium-replay-v2")
    assert (task.name, kind) == ("walker2d", "medium-replay")
    with pytest.raises(ValueError, match="body in hopper, walker2d, halfcheetah"):
        parse_dataset_name("ant-medium-v2")
    with pytest.raises(ValueError, match="kind in medium"):
        parse_dataset_name("hopper-random-v2")


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("hopper-medium-v2", "hopper"),
        ("/data/d4rl/walker2d-medium-replay-v2.hdf5", "walker2d"),
        ("mujoco/halfcheetah/medium-v0", "halfcheetah"),  # a Minari id
        ("/data/hopper/walker2d-expert-v2.hdf5", "walker2d"),  # the file's name decides
        ("maze2d-umaze-v1", None),
    ],
)
def test_the_body_a_dataset_name_refers_to(name, body):
    task = find_locomotion_task(name)
    assert (task.name if task else None) == body


def test_a_local_minari_locomotion_dataset_trains_as_its_body(tiny_hopper_file):
    """A Minari id such as mujoco/hopper/medium-v0 is evaluated in Hopper and loads with
    Hopper's dimensions (a tiny dataset written locally: nothing is downloaded)."""
    write_minari(
        load_d4rl(tiny_hopper_file), "mujoco/hopper/tiny-v0", "Hopper-v5", "test", "tiny policy"
    )
    config = load_config(
        "configs/hopper-medium.yaml", ["data.source=minari", "data.dataset=mujoco/hopper/tiny-v0"]
    )
    assert get_task(config.data.dataset, config.data.env) is LOCOMOTION_TASKS["hopper"]
    episodes = load_episodes(config.data)
    assert episodes.observations.shape[1:] == (11,) and episodes.actions.shape[1:] == (3,)
    assert episodes.n_steps == 3000


def _fake_plan_fn(calls):
    """Plans whose actions are ``[replan index, row, 0]`` for every query, recording calls."""

    def plan(episodes, replans, observations, goals, arrival, previous, step):
        calls.append((step, previous is not None))
        rows = np.arange(4)[None, :, None]
        actions = np.concatenate(
            [np.broadcast_to(replans[:, None, None], (len(episodes), 4, 1)),
             np.broadcast_to(rows, (len(episodes), 4, 1)), np.zeros((len(episodes), 4, 1))],
            axis=2,
        )  # fmt: skip
        return np.concatenate([actions, np.zeros((len(episodes), 4, 2))], axis=2)

    return plan


@pytest.mark.parametrize("every", [1, 3])
def test_plan_action_policy_executes_plan_actions_and_replans_every_k_steps(every):
    calls = []
    policy = plan_action_policy(_fake_plan_fn(calls), action_dim=3, every=every)
    state = policy.init(np.arange(2), np.zeros((2, 2)), np.zeros((2, 0)))
    executed = []
    for _ in range(6):
        actions, state, _ = policy.act(state, np.zeros((2, 2)))
        executed.append(actions[0, :2].tolist())
    expected = [[step // every, step % every] for step in range(6)]
    assert executed == expected
    assert [step for step, _ in calls] == [0, *range(every, 6, every)]
    assert all(warm for _, warm in calls[1:])  # replans see the previous plan


def test_plan_action_policy_with_inverse_dynamics_acts_toward_the_plans_next_observation():
    def plan(episodes, replans, observations, goals, arrival, previous, step):
        rows = np.broadcast_to(np.arange(4)[None, :, None], (len(episodes), 4, 1))
        plan_ids = np.broadcast_to(replans[:, None, None], (len(episodes), 4, 1))
        return np.concatenate([np.zeros((len(episodes), 4, 3)), rows, plan_ids], axis=2)

    def inverse_dynamics(observations, planned_next):  # [B, 2] each -> [B, 3]
        return np.concatenate([observations[:, :1], planned_next], axis=1)

    policy = plan_action_policy(plan, action_dim=3, every=2, inverse_dynamics=inverse_dynamics)
    state = policy.init(np.arange(2), np.zeros((2, 2)), np.zeros((2, 0)))
    executed = []
    for step in range(4):
        actions, state, _ = policy.act(state, np.full((2, 2), 7.0 + step))
        executed.append(actions[0].tolist())
    # [the observation passed, the plan row after the executed one, which plan]
    assert executed == [[7, 1, 0], [8, 2, 0], [9, 1, 1], [10, 2, 1]]


def test_feedback_policy_acts_from_observations():
    policy = feedback_policy(lambda observations: -observations[:, :3])
    state = policy.init(np.arange(2), np.ones((2, 11)), np.zeros((2, 0)))
    actions, state, _ = policy.act(state, np.full((2, 11), 0.5))
    np.testing.assert_array_equal(actions, -0.5)
    assert state.step.tolist() == [1, 1]


def hopper_episodes(policy, episodes):
    """``episodes`` of Hopper under ``policy``, batched, seed 0."""
    task = LOCOMOTION_TASKS["hopper"]
    envs = [task.make_env() for _ in episodes]
    return run_episodes(envs, policy, episodes, seed=0, steps=task.max_episode_steps)


def test_episodes_stop_when_the_body_falls():
    task = LOCOMOTION_TASKS["hopper"]
    policy = feedback_policy(lambda observations: np.ones((len(observations), 3)))
    rollouts = hopper_episodes(policy, [0, 1])
    assert rollouts.terminated.all()  # full torque on every joint topples the hopper
    assert (rollouts.lengths < task.max_episode_steps).all()
    for rewards, length in zip(rollouts.rewards, rollouts.lengths, strict=True):
        assert np.all(rewards[length:] == 0) and np.all(rewards[:length] != 0)
    again = hopper_episodes(policy, [1])
    np.testing.assert_array_equal(again.rewards[0], rollouts.rewards[1])  # batch-independent


def test_the_policy_stops_acting_for_episodes_that_ended():
    sizes = []

    def act(state, observations):  # full torque topples episode 0 early; 1 stands longer
        sizes.append(len(observations))
        actions = np.where(state.episodes[:, None] == 0, 1.0, 0.1 * observations[:, 2:5])
        return actions, state.replace(step=state.step + 1), {}

    policy = Policy(feedback_policy(lambda observations: observations).init, act)
    rollouts = hopper_episodes(policy, [0, 1])
    fell = rollouts.lengths[0]
    assert fell < rollouts.lengths[1]
    assert sizes == [2] * fell + [1] * (rollouts.lengths[1] - fell)  # narrowed once 0 ended
    alone = hopper_episodes(policy, [1])
    np.testing.assert_array_equal(alone.rewards[0], rollouts.rewards[1])


@pytest.fixture(scope="module")
def tiny_hopper_file(tmp_path_factory):
    """3,000 steps of Hopper episodes under a fixed noisy linear feedback, in D4RL's layout."""
    task, rng = LOCOMOTION_TASKS["hopper"], np.random.default_rng(0)
    gains = rng.standard_normal((3, 11)) / 3
    env = task.make_env()
    rows = []
    observation, _ = env.reset(seed=0)
    for step in range(3000):
        action = np.clip(np.tanh(gains @ observation) + 0.05 * rng.standard_normal(3), -1, 1)
        following, reward, ended, truncated, _ = env.step(action)
        rows.append((observation, action, reward, ended, truncated or step == 2999, following))
        observation = following if not (ended or truncated) else env.reset(seed=step)[0]
    keys = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
    columns = zip(*rows, strict=True)
    arrays = {key: np.asarray(column) for key, column in zip(keys, columns, strict=True)}
    return write_hdf5(tmp_path_factory.mktemp("hopper") / "hopper-tiny-v2.hdf5", arrays)


@pytest.fixture(scope="module")
def tiny_hopper_runs(tmp_path_factory, tiny_hopper_file):
    root = tmp_path_factory.mktemp("hopper-runs")
    overrides = [
        *TINY_LOCOMOTION,
        "data.source=d4rl",
        f"data.dataset={tiny_hopper_file}",
        "plan.objectives=[{type: value, run: '{run}-value'}]",
        "plan.n_candidates=2",
        "plan.average_best=2",
        "eval.episodes=2",
        "eval.batch_size=2",
    ]
    config = load_config("configs/hopper-medium.yaml", overrides)
    for kind, suffix in RUN_SUFFIXES.items():
        train(config, root / f"hopper{suffix}", kind, show_progress=False)
    return root


def test_hopper_config_loads_with_diffuser_settings():
    config = load_config("configs/hopper-medium.yaml")
    assert (config.data.horizon, config.diffusion.n_diffusion_steps) == (32, 20)
    assert config.model.dim_mults == (1, 2, 4, 8)
    assert config.diffusion.action_weight == 10 and config.data.normalizer == "gaussian"
    assert (config.data.discount, config.data.termination_penalty) == (0.997, -100)


@pytest.mark.parametrize("kind", ["bc", "invdyn"])
def test_action_models_fit_the_data(tiny_hopper_runs, kind):
    metrics = (tiny_hopper_runs / f"hopper-{kind}" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in metrics]
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    run = load_run(tiny_hopper_runs / f"hopper-{kind}")
    assert run.kind == kind and run.layout.action_dim == 3


def test_tiny_hopper_evaluates_acting_with_inverse_dynamics(tiny_hopper_runs, capsys):
    out = tiny_hopper_runs / "eval-invdyn"
    args = ["eval", "--run", str(tiny_hopper_runs / "hopper"), "--out", str(out)]
    assert main([*args, "--set", "plan.inverse_dynamics='{run}-invdyn'"]) == 0
    summary = json.loads((out / "scores.json").read_text())
    assert summary["inverse_dynamics_steps"] == 200 and summary["scores"]["episodes"] == 2
    assert main([*args, "--set", "plan.inverse_dynamics='{run}-bc'"]) == 2
    assert "holds a bc model, not an inverse-dynamics one" in capsys.readouterr().err


def test_planner_plan_plans_a_locomotion_run_from_its_reset_observation(tiny_hopper_runs, capsys):
    """``planner plan`` on a locomotion run: the plan starts at the simulator's reset
    observation (plan.seed), is ranked by the value run, and its PNG shows the traces; Maze2D
    positions are refused with what a locomotion plan takes instead."""
    out = tiny_hopper_runs / "plan"
    assert main(["plan", "--run", str(tiny_hopper_runs / "hopper"), "--out", str(out)]) == 0
    assert "plan from the reset observation (2 candidates" in capsys.readouterr().out
    summary = json.loads((out / "plan.json").read_text())
    observation, _ = LOCOMOTION_TASKS["hopper"].make_env().reset(seed=summary["plan"]["seed"])
    np.testing.assert_allclose(summary["start"], observation, rtol=1e-6)
    assert [term["type"] for term in summary["terms"]] == ["value"]
    assert "goal" not in summary and (out / "plan.png").is_file()
    saved = np.load(out / "plan.npz")
    np.testing.assert_allclose(
        saved["trajectories"][:, 0, 3:], np.tile(observation, (2, 1)), atol=1e-4
    )
    args = ["plan", "--run", str(tiny_hopper_runs / "hopper"), "--goal", "1,1"]
    assert main(args) == 2
    assert "a locomotion plan starts from the simulator's reset" in capsys.readouterr().err


def test_tiny_hopper_plans_and_evaluates(tiny_hopper_runs, tiny_hopper_file, capsys):
    episodes = load_d4rl(tiny_hopper_file)
    assert episodes.observations.shape[1] == 11
    for kind, run in (("diffusion", "hopper"), ("bc", "hopper-bc")):
        out = tiny_hopper_runs / f"eval-{kind}"
        assert main(["eval", "--run", str(tiny_hopper_runs / run), "--out", str(out)]) == 0
        summary = json.loads((out / "scores.json").read_text())
        scores = summary["scores"]
        assert scores["episodes"] == 2 and len(summary["returns"]) == 2
        assert scores["length"]["mean"] >= 1 and scores["decisions_per_second"] > 0
        assert (out / "rollouts.png").is_file()
        assert "this simulator" not in capsys.readouterr().out  # no expert reference yet
    diffusion = json.loads((tiny_hopper_runs / "eval-diffusion" / "scores.json").read_text())
    assert diffusion["value_steps"] == {"{run}-value": 20}  # the value run it ranked by
    lengths = np.asarray(diffusion["lengths"])
    assert diffusion["scores"]["replans_per_episode"]["mean"] == pytest.approx(lengths.mean() - 1)
