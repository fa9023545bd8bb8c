"""Composition scenarios: every shipped scenario loads and plans on tiny models, the runner
scores episodes in mazes with solid obstacles, and bad scenario files are refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from planner.config import ConfigError, load_config
from planner.eval.scenarios import (
    load_scenario,
    markdown_section,
    method_config,
    run_scenario,
    scoring_terms,
)
from planner.planning.build import build_planner
from planner.planning.maze import route_exists
from planner.planning.run import load_run
from planner.tasks.maze2d import find_maze_task
from planner.training import train
from planner.viz.scenarios import plot_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "configs" / "compose").glob("*.yaml"))
TINY = [
    "model.dim=8",
    "model.dim_mults=[1, 2]",
    "diffusion.n_diffusion_steps=4",
    "data.generate_steps=3000",
    "data.padding=true",
    "train.batch_size=4",
    "train.steps=2",
    "train.value_steps=2",
    "train.steps_per_dispatch=1",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.ema_start=0",
]


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory, shared_data_dir, tiny_runs):
    """A directory holding a tiny version of every run the shipped scenarios name, at the same
    relative paths: the session's tiny U-Maze runs, and tiny runs of the other configs (Medium,
    or a U-Maze with overrides such as an energy model) with their horizons, attributes and
    parameterization kept."""
    root = tmp_path_factory.mktemp("scenario-runs")
    specs = {spec for path in SCENARIOS for s in [load_scenario(path)]
             for spec in [*s.runs, *s.value_runs]}  # fmt: skip
    for spec in sorted(specs, key=lambda spec: (spec.kind, spec.dir)):
        (root / spec.dir).parent.mkdir(parents=True, exist_ok=True)
        if "umaze" in spec.config and not spec.overrides:
            (root / spec.dir).symlink_to(tiny_runs / spec.kind)
            continue
        overrides = [*TINY, f"data.data_dir={shared_data_dir}", *spec.overrides]
        config = load_config(REPO / spec.config, overrides)
        train(config, root / spec.dir, spec.kind, show_progress=False)
    return root


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_every_shipped_scenario_builds_every_setting_and_plans(path, tiny_world, monkeypatch):
    # every layout x method x choice builds its planner; the last (most composed) method of
    # each file plans (one compilation per scenario keeps this fast)
    scenario = load_scenario(path)
    monkeypatch.chdir(tiny_world)  # the scenario's run paths now name the tiny runs
    runs = {spec: load_run(spec.dir) for spec in scenario.runs}
    task = find_maze_task(runs[scenario.run].config.data.dataset)
    for layout in scenario.layouts:
        for method in scenario.methods:
            run = runs[method.run or scenario.run]
            for choice in method.choices:
                config = method_config(run, scenario, layout, method, choice, 2, 0)
                planner, _, _ = build_planner(run, config, task)
        # a layout named "blocked" leaves no route to the goal; every other one leaves one (a
        # box that stops short of a corridor's walls would leave a gap and fail this)
        terms, _ = scoring_terms(runs[scenario.run], scenario, layout, task)
        start = np.asarray(layout.start or scenario.start or task.eval_goal, float)
        routed = route_exists(task, start, task.eval_goal, terms, runs[scenario.run].layout)
        assert routed == (layout.name != "blocked"), layout.name
    layout = scenario.layouts[0]
    start = np.array([*(layout.start or scenario.start or task.eval_goal), 0, 0])
    goal = task.eval_goal[None] if config.plan.impose_goal else None
    plans = planner.plan(jax.random.key(0), start[None], goal, config.plan.n_candidates)
    assert plans.chosen.shape == (1, planner.steps, run.transition_dim)
    assert np.isfinite(plans.chosen).all()


def test_a_scenario_runs_end_to_end_with_physical_obstacles(tiny_world, monkeypatch, tmp_path):
    scenario = load_scenario(REPO / "configs" / "compose" / "1-obstacles-umaze.yaml")
    plain, guided = scenario.methods[0], scenario.methods[1]
    choices = ({"obstacle_guidance": {"weight": 10}}, {"obstacle_guidance": {"weight": 5}})
    scenario = dataclasses.replace(
        scenario, episodes=3, selection_episodes=2, batch_size=3, layouts=scenario.layouts[1:2],
        methods=(plain, dataclasses.replace(guided, choices=choices)),
    )  # fmt: skip
    monkeypatch.chdir(tiny_world)
    run = load_run(scenario.run.dir)
    run_levels = run.schedule.n_steps
    record = run_scenario(scenario, log=lambda *_: None)
    rollouts = record.pop("rollouts")
    assert [row["method"] for row in record["rows"]] == ["plain", "guidance"]
    guided_row = record["rows"][1]
    assert len(guided_row["selection"]) == 2 and guided_row["choice"] in choices
    for row in record["rows"]:
        assert row["episodes"] == 3 and 0 <= row["collision_rate"] <= 1
        assert row["network_evaluations_per_plan"] == run_levels
        result = rollouts[(row["layout"], row["method"])]
        assert row["collision_rate"] == pytest.approx(result.contacts.mean())
        assert np.all(np.abs(result.observations[:, 0, :2] - scenario.start) <= 0.1 + 1e-9)
    json.dumps(record)  # the record is JSON-ready once the rollouts are taken out
    text = markdown_section(record, "A note.")
    assert "| plain |" in text and "A note." in text
    task = find_maze_task(run.config.data.dataset)
    assert plot_scenario(tmp_path / "scenario.png", task, record, rollouts).is_file()
    held = {key: dataclasses.replace(result, feasible=np.zeros_like(result.feasible))
            for key, result in rollouts.items()}  # fmt: skip
    assert plot_scenario(tmp_path / "held.png", task, record, held).is_file()


def test_every_stored_scenario_renders_rows_as_wide_as_their_header():
    """Each table row of results/composition.md has one cell per header column."""
    record = json.loads((REPO / "results" / "composition.json").read_text())
    for section in record["scenarios"].values():
        header_cells = None
        for line in markdown_section(section).splitlines():
            if not line.startswith("|"):
                header_cells = None
            elif header_cells is None:
                header_cells = line.count("|")
            else:
                assert line.count("|") == header_cells, (section["name"], line)


def test_a_blocked_route_is_reported_infeasible_and_the_policy_holds(tiny_world, monkeypatch):
    scenario = load_scenario(REPO / "configs" / "compose" / "6-closed-loop-umaze.yaml")
    (blocked,) = [layout for layout in scenario.layouts if layout.name == "blocked"]
    (mpc,) = [method for method in scenario.methods if method.name == "guidance, MPC"]
    mpc = dataclasses.replace(mpc, eval={"policy": "mpc", "replan_every": 25}, choices=({},))
    scenario = dataclasses.replace(
        scenario, episodes=2, selection_episodes=1, batch_size=2, layouts=(blocked,),
        methods=(mpc,),
    )  # fmt: skip
    monkeypatch.chdir(tiny_world)
    record = run_scenario(scenario, log=lambda *_: None)
    (row,) = record["rows"]
    assert row["infeasible_episodes"] == 2 and row["replans_per_episode"] == 0
    assert row["episodes_touching"] == 0
    result = record["rollouts"][(blocked.name, mpc.name)]
    moved = np.linalg.norm(result.observations[:, -1, :2] - result.observations[:, 0, :2], axis=1)
    assert (moved < 0.2).all()  # held at the start


def test_attribute_conditioned_energy_models_compose_into_an_energy_mala_can_test(
    shared_data_dir, tmp_path
):
    energy = ["diffusion.parameterization=energy", "diffusion.predict_epsilon=true"]
    overrides = [*TINY, f"data.data_dir={shared_data_dir}", *energy]
    config = load_config(REPO / "configs" / "maze2d-medium-attributes.yaml", overrides)
    train(config, tmp_path / "run", "diffusion", show_progress=False)
    run = load_run(tmp_path / "run")
    x = jax.random.normal(jax.random.key(0), (3, config.data.horizon, run.transition_dim))
    t = jnp.array([0, 1, 3])
    energies = {}
    for name in (None, "north"):
        model = run.attribute_denoiser(name)
        # the attribute reaches the energy as well as the noise: the noise is its gradient
        gradient = jax.grad(lambda y, model=model: model.energy(y, t).sum())(x)
        np.testing.assert_allclose(model.noise(x, t), gradient, rtol=1e-4, atol=1e-6)
        energies[name] = np.asarray(model.energy(x, t))
    assert not np.allclose(energies[None], energies["north"])
    plan = ["plan.require=[north]", "plan.exclude=[west]", "plan.method=ddim", "plan.n_steps=3",
            "plan.corrector=mala", "plan.corrector_steps=1"]  # fmt: skip
    config = load_config(REPO / "configs" / "maze2d-medium-attributes.yaml", overrides + plan)
    task = find_maze_task(config.data.dataset)
    planner, _, _ = build_planner(run, config, task)  # MALA refuses a model without an energy
    start = np.array([*task.eval_goal, 0, 0])
    plans = planner.plan(jax.random.key(0), start[None], None, 1)
    assert np.isfinite(plans.chosen).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"episodez": 3}, "episodez is not a key here"),
        ({"methods": [{"name": "m", "obstacles": "avoid"}]}, "obstacles must be one of"),
        ({"selection": {"seed": 0}}, "selection.seed must differ"),
        ({"layouts": [{"name": "l", "obstacles": [{"type": "star"}]}]}, "circle or a box"),
        ({"run": {"dir": "runs/x"}}, "needs config, steps"),
    ],
)
def test_bad_scenario_files_are_refused(change, message, tmp_path):
    raw = yaml.safe_load((REPO / "configs/compose/1-obstacles-umaze.yaml").read_text())
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw | change))
    with pytest.raises(ConfigError, match=message):
        load_scenario(path)
