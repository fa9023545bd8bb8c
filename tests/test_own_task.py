"""A user's own task: `data.env` names any registered Gymnasium environment, and a run trained
on that environment's data plans and evaluates there without new code (InvertedPendulum-v5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_locomotion import TINY_LOCOMOTION as TINY

from planner.cli import main
from planner.config import ConfigError, config_from_dict, load_config
from planner.data.d4rl import write_hdf5
from planner.data.sources import load_episodes
from planner.planning.run import load_run
from planner.tasks import get_task
from planner.tasks.gym import gym_dataset_name, gym_task, parse_gym_dataset_name
from planner.tasks.locomotion import LOCOMOTION_TASKS
from planner.training import train

PENDULUM = "InvertedPendulum-v5"
KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def _pendulum_arrays(steps: int, extra_dims: int = 0) -> dict[str, np.ndarray]:
    """``steps`` transitions of InvertedPendulum-v5 under a noisy fixed feedback, D4RL layout
    (``extra_dims`` zero columns appended to the observations: a dataset of another task)."""
    env, rng = gym_task(PENDULUM).make_env(), np.random.default_rng(0)
    rows = []
    observation, _ = env.reset(seed=0)
    for step in range(steps):
        action = np.clip(2 * observation[1] + 0.3 * rng.standard_normal(1), -3, 3)
        following, reward, ended, truncated, _ = env.step(action)
        last = truncated or step == steps - 1
        rows.append((observation, action, reward, ended, last and not ended, following))
        observation = following if not (ended or truncated) else env.reset(seed=step)[0]
    columns = zip(*rows, strict=True)
    arrays = {key: np.asarray(column) for key, column in zip(KEYS, columns, strict=True)}
    for key in ("observations", "next_observations"):
        arrays[key] = np.pad(arrays[key], ((0, 0), (0, extra_dims)))
    return arrays


def _data(**data) -> dict:
    return {"data": {"source": "d4rl", "dataset": "own.hdf5", **data}}


def test_unknown_env_id_is_a_config_error_naming_the_key():
    unknown = (
        r"my.yaml: data.env 'InvertedPendulm-v5' is not a registered Gymnasium environment id; "
        r"did you mean InvertedPendulum-v5"
    )
    with pytest.raises(ConfigError, match=unknown):
        config_from_dict(_data(env="InvertedPendulm-v5"), "my.yaml")
    with pytest.raises(ConfigError, match=r"data.env .* cannot import 'no_such_module'"):
        config_from_dict(_data(env="no_such_module:Thing-v0"), "my.yaml")
    assert config_from_dict(_data(env=PENDULUM)).data.env == PENDULUM


def test_dataset_dimensions_must_match_the_environment(tmp_path):
    path = write_hdf5(tmp_path / "other.hdf5", _pendulum_arrays(50, extra_dims=2))
    config = config_from_dict(_data(env=PENDULUM, dataset=str(path)))
    mismatch = r"has 6 observation and 1 action dimensions, but data.env InvertedPendulum-v5 has 4"
    with pytest.raises(ConfigError, match=mismatch):
        load_episodes(config.data)
    good = write_hdf5(tmp_path / "pendulum.hdf5", _pendulum_arrays(50))
    episodes = load_episodes(config_from_dict(_data(env=PENDULUM, dataset=str(good))).data)
    assert episodes.observations.shape == (50, 4) and episodes.actions.shape == (50, 1)


def test_the_task_a_config_evaluates_in():
    data = config_from_dict(_data(env=PENDULUM)).data
    task = get_task(data.dataset, data.env)
    assert (task.name, task.gym_id, task.observation_dim, task.action_dim) == (
        PENDULUM, PENDULUM, 4, 1
    )  # fmt: skip
    assert task.max_episode_steps == 1000  # the environment's own time limit
    assert not task.has_d4rl_references
    with pytest.raises(ValueError, match="no D4RL reference returns"):
        task.normalized(1.0)
    # data.env comes first; a D4RL body's simulator keeps D4RL's references
    hopper = config_from_dict(_data(env="Hopper-v5", dataset="anything.hdf5")).data
    assert get_task(hopper.dataset, hopper.env) is LOCOMOTION_TASKS["hopper"]
    assert get_task("walker2d-medium-v2") is LOCOMOTION_TASKS["walker2d"]
    assert get_task(config_from_dict({}).data.dataset).family == "maze2d"
    assert (task.family, LOCOMOTION_TASKS["hopper"].family) == ("gym", "locomotion")
    assert get_task("my-own-data.hdf5") is None


def test_generated_dataset_names_of_an_environment():
    assert gym_dataset_name(PENDULUM, "medium", 500.0) == "InvertedPendulum-v5-medium-return500"
    assert gym_dataset_name(PENDULUM, "expert", None) == "InvertedPendulum-v5-expert"
    for kind, stop in (("medium-replay", 12.5), ("expert", None)):
        assert parse_gym_dataset_name(gym_dataset_name(PENDULUM, kind, stop), PENDULUM) == (
            kind, stop
        )  # fmt: skip
    generated = {"source": "generated", "env": PENDULUM}
    config_from_dict({"data": {**generated, "dataset": "InvertedPendulum-v5-medium-return500"}})
    with pytest.raises(ConfigError, match="InvertedPendulum-v5-<kind>-return<R>"):
        config_from_dict({"data": {**generated, "dataset": "InvertedPendulum-v5-medium"}})


def test_example_config_loads():
    config = load_config("configs/inverted-pendulum.yaml")
    assert config.data.env == PENDULUM and config.data.source == "generated"
    assert parse_gym_dataset_name(config.data.dataset, PENDULUM)[0] == "medium"


@pytest.fixture(scope="module")
def pendulum_runs(tmp_path_factory):
    """Diffusion and BC runs of the example config, tiny, on a hand-made hdf5 file."""
    root = tmp_path_factory.mktemp("pendulum")
    path = write_hdf5(root / "pendulum.hdf5", _pendulum_arrays(1500))
    overrides = [
        *TINY,
        "data.source=d4rl",
        f"data.dataset={path}",
        "plan.n_candidates=2",
        "plan.objectives=[]",  # value-ranked planning is tested on Hopper (test_locomotion.py)
        "plan.select=energy",
        "eval.episodes=2",
        "eval.batch_size=2",
    ]
    config = load_config("configs/inverted-pendulum.yaml", overrides)
    for kind, suffix in (("diffusion", ""), ("bc", "-bc")):
        train(config, root / f"pendulum{suffix}", kind, show_progress=False)
    return root


@pytest.mark.parametrize("run", ["pendulum", "pendulum-bc"])
def test_a_run_on_own_data_evaluates_with_raw_returns(pendulum_runs, run, capsys):
    out = pendulum_runs / f"eval-{run}"
    assert main(["eval", "--run", str(pendulum_runs / run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "scores.json").read_text())
    scores = summary["scores"]
    assert (summary["task"], summary["env"]) == (PENDULUM, PENDULUM)
    assert scores["episodes"] == 2 and len(summary["returns"]) == 2
    assert scores["return"]["mean"] == pytest.approx(np.mean(summary["returns"]))
    # no D4RL references and no expert return on this simulator: raw returns only
    assert "normalized_d4rl" not in scores and "normalized_this_simulator" not in scores
    assert scores["references_this_simulator"]["ref_max"] is None
    assert "(no D4RL references); random policy" in printed
    assert f"return {scores['return']['mean']:.1f} ±" in printed
    assert (out / "rollouts.png").is_file()


def test_position_dims_outside_the_observation_are_refused_before_training(tmp_path):
    path = write_hdf5(tmp_path / "pendulum.hdf5", _pendulum_arrays(200))
    overrides = [*TINY, "data.source=d4rl", f"data.dataset={path}", "data.position_dims=[0, 4]"]
    config = load_config("configs/inverted-pendulum.yaml", overrides)
    message = r"data.position_dims / velocity_dims: position dimensions \[4\] are outside"
    with pytest.raises(ConfigError, match=message):
        train(config, tmp_path / "run", "diffusion", show_progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # not one step was taken


def test_constraints_act_on_the_declared_positions_and_are_checked_on_executed_episodes(
    pendulum_runs,
):
    """The example config declares the cart's position (observation 0) as the position: a
    bounds constraint takes one number per side, the planner is guided by it, and eval counts
    the episodes whose executed cart positions held it at every step."""
    layout = load_run(pendulum_runs / "pendulum").layout
    assert (layout.position, layout.velocity) == ((0,), (2,))
    held = {}
    for name, bounds in (("wide", "[-5.0], high: [5.0]"), ("none", "[0.5], high: [0.6]")):
        out = pendulum_runs / f"eval-bounds-{name}"
        constraint = f"plan.constraints=[{{type: bounds, low: {bounds}}}]"
        assert main(["eval", "--run", str(pendulum_runs / "pendulum"), "--set", constraint,
                     "--out", str(out)]) == 0  # fmt: skip
        [report] = json.loads((out / "scores.json").read_text())["constraints"]
        assert report["constraint"] == "plan.constraints[0] (bounds)"
        held[name] = (report["episodes_held"], report["max_violation"]["mean"])
    assert held["wide"] == (2, 0.0)  # the cart's rail is 2 m long
    assert held["none"][0] == 0 and held["none"][1] > 0.4  # episodes start near the centre
