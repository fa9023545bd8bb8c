"""`planner plan` and the Python planning API on a tiny trained U-Maze model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from planner.cli import main
from planner.data.normalize import Normalizer
from planner.energies.terms import CONSTRAINT_TYPES, Layout, terms_from_specs
from planner.planning.maze import (
    blocked_positions,
    executability,
    executability_text,
    inside_walls,
    routes_to,
    within_limits,
)
from planner.planning.planner import Planner, Plans, inpainting, ranked_candidates, shift_plan
from planner.planning.run import load_run
from planner.runtime import compile_events

MAZE_LAYOUT = Layout(action_dim=2, observation_dim=4)


@pytest.fixture
def runs(tiny_runs):
    return tiny_runs


def write_plan(tmp_path, **plan):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"plan": plan}))
    return path


def plan_cli(runs, tmp_path, *extra):
    return main(["plan", "--run", str(runs / "diffusion"), "--out", str(tmp_path / "out"), *extra])


def test_plan_writes_npz_json_and_png_with_constraint_report(runs, tmp_path):
    config = write_plan(
        tmp_path,
        start=[3, 1],
        goal=[1, 1],
        n_candidates=4,
        constraints=[{"type": "circle", "center": [1.0, 2.0], "radius": 0.3, "weight": 10}],
    )
    assert plan_cli(runs, tmp_path, "--config", str(config)) == 0
    summary = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert [c["term"] for c in summary["constraints"]] == ["plan.constraints[0]", "plan.walls"]
    assert all(isinstance(c["holds"], bool) for c in summary["constraints"])
    assert isinstance(summary["execution"]["executable"], bool)
    saved = np.load(tmp_path / "out" / "plan.npz")
    assert saved["trajectories"].shape == (4, 16, 6)
    best = saved["trajectories"][int(saved["best"])]
    np.testing.assert_allclose(best[-1, 2:], [1, 1, 0, 0], atol=1e-5)  # goal inpainted exactly
    np.testing.assert_allclose(best[0, 2:4], [3, 1], atol=1e-5)
    assert (tmp_path / "out" / "plan.png").stat().st_size > 10_000


def test_a_second_plan_call_loads_the_sampler_from_the_persistent_cache(runs, tmp_path):
    env = {
        **os.environ,
        "PLANNER_COMPILATION_CACHE": str(tmp_path / "cache"),
        "JAX_LOG_COMPILES": "1",
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    command = [sys.executable, "-m", "planner.cli", "plan", "--run", str(runs / "diffusion")]
    logs = []
    for call in range(2):
        out = ["--out", str(tmp_path / f"out{call}")]
        result = subprocess.run([*command, *out], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        logs.append(result.stderr)
    hit = "Persistent compilation cache hit for 'jit_sample_in_one_scan'"  # the sampler
    assert hit not in logs[0] and hit in logs[1]
    assert any((tmp_path / "cache").iterdir())


def test_compilation_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    from planner.runtime import compilation_cache_dir

    monkeypatch.setenv("PLANNER_COMPILATION_CACHE", "off")
    assert compilation_cache_dir() is None
    monkeypatch.setenv("PLANNER_COMPILATION_CACHE", str(tmp_path / "jit"))
    assert compilation_cache_dir() == tmp_path / "jit"
    monkeypatch.delenv("PLANNER_COMPILATION_CACHE")
    assert compilation_cache_dir() == tmp_path / "planner-data" / "jax-cache"


@pytest.mark.parametrize(
    "config",
    sorted((Path(__file__).parents[1] / "configs" / "plans").glob("*.yaml")),
    ids=lambda path: path.name,
)
def test_every_shipped_plan_config_plans(runs, tmp_path, config):
    assert plan_cli(runs, tmp_path, "--config", str(config)) == 0
    summary = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert summary["final_distance_to_goal"] < 1e-3  # the goal is inpainted


def test_a_multi_host_environment_missing_a_variable_is_refused(monkeypatch):
    from planner.runtime import DistributedSetupError, initialize_distributed

    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
    with pytest.raises(DistributedSetupError, match="JAX_PROCESS_ID is not"):
        initialize_distributed()


def test_a_start_and_goal_conditioned_model_plans_longer_than_trained_in_windows(runs, tmp_path):
    # The tiny run saw 16-step windows with clean first and last observations; three windows 4
    # steps apart make a 24-step plan whose interior windows get estimated clean boundaries.
    extra = ["--set", "plan.horizon=24", "--set", "plan.window_stride=4"]
    assert plan_cli(runs, tmp_path, "--start", "3,1", "--goal", "1,1", *extra) == 0
    saved = np.load(tmp_path / "out" / "plan.npz")
    best = saved["trajectories"][int(saved["best"])]
    assert best.shape == (24, 6) and np.isfinite(saved["trajectories"]).all()
    np.testing.assert_allclose(best[0, 2:4], [3, 1], atol=1e-5)
    np.testing.assert_allclose(best[-1, 2:4], [1, 1], atol=1e-5)


def test_start_and_goal_from_the_command_line_override_the_config(runs, tmp_path):
    assert plan_cli(runs, tmp_path, "--start", "1,3", "--goal", "3,3") == 0
    summary = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert summary["start"][:2] == [1.0, 3.0] and summary["goal"] == [3.0, 3.0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--goal", "2,1"], "inside the wall cell [2, 1]"),
        (["--goal", "9,9"], "outside the maze-umaze"),
        (["--set", "plan.constraints=[{type: circle, center: [1, 1], radius: 0.4}]"], "goal"),
        (
            ["--set", "plan.constraints=[{type: circel, center: [1, 1]}]"],
            "plan.constraints[0].type",
        ),
        (["--set", "plan.constraints=[{type: circle, center: [1, 1]}]"], "needs radius"),
        (["--set", "plan.constraints=[{type: circle, center: [1], radius: 1}]"], "2 numbers"),
        (["--set", "plan.corrector=mala", "--set", "plan.corrector_steps=2"], "energy-param"),
        (["--set", "train.steps=3"], "only plan.* settings"),
        (["--set", "plan.horizon=24", "--set", "plan.window_stride=5"], "16-step windows 5"),
        (["--set", "plan.window_stride=16"], "window stride must be in 1..15"),
        (["--set", "plan.require=[north]"], "unknown attribute 'north'"),
    ],
)
def test_bad_requests_get_clear_errors(runs, tmp_path, capsys, arguments, message):
    assert plan_cli(runs, tmp_path, "--set", "plan.goal=[1, 1]", *arguments) == 2
    error = capsys.readouterr().err
    assert message.replace("maze-umaze", "maze2d-umaze-v1 maze") in error or message in error


def test_obstacles_that_block_every_route_are_warned_about(runs, tmp_path):
    wall = "plan.constraints=[{type: box, low: [2.3, 1.8], high: [3.3, 2.2]}]"
    with pytest.warns(UserWarning, match="no free route"):
        assert plan_cli(runs, tmp_path, "--start", "3,1", "--goal", "1,1", "--set", wall) == 0
    summary = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert "all_constraints_hold" in summary


def test_value_guided_plan_selects_the_highest_value(runs, tmp_path):
    config = write_plan(
        tmp_path,
        n_candidates=3,
        select="value",
        objectives=[{"type": "value", "run": str(runs / "value"), "scale": 0.1}],
    )
    assert plan_cli(runs, tmp_path, "--config", str(config)) == 0
    saved = np.load(tmp_path / "out" / "plan.npz")
    value_column = list(saved["term_names"]).index("value")
    assert int(saved["best"]) == int(np.argmin(saved["energies"][:, value_column]))


def test_smc_plan_reports_its_effective_sample_size(runs, tmp_path):
    config = write_plan(
        tmp_path,
        start=[3, 1],
        goal=[1, 1],
        n_candidates=4,
        smc=True,
        constraints=[{"type": "circle", "center": [2.0, 2.0], "radius": 0.4, "weight": 10}],
    )
    assert plan_cli(runs, tmp_path, "--config", str(config)) == 0
    summary = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert 1.0 <= summary["effective_sample_size"] <= 4.0
    assert summary["smc_resamples"] >= 0 and summary["plan"]["smc"] is True


def test_importance_resampling_draws_candidates_by_their_energy(runs):
    run = load_run(runs / "diffusion")
    spec = [{"type": "circle", "center": [2.0, 2.0], "radius": 0.5, "weight": 50}]
    terms = terms_from_specs(spec, run.layout, CONSTRAINT_TYPES, "x")

    def planner(select):
        return Planner(
            run.denoiser, run.schedule, run.normalizer, run.layout, 16, terms=terms, select=select
        )

    starts = np.tile(np.array([[3, 1, 0, 0]], np.float32), (16, 1))
    goals = np.tile(np.array([[1, 1]], np.float32), (16, 1))
    lowest = planner("energy").plan(jax.random.key(3), starts, goals, n_candidates=4)
    drawn = planner("resample").plan(jax.random.key(3), starts, goals, n_candidates=4)
    np.testing.assert_allclose(drawn.total, lowest.total)  # the same candidates
    assert np.all(lowest.best == np.argmin(lowest.total, axis=1))
    assert np.any(drawn.best != lowest.best)  # a draw, not always the lowest energy
    chosen = drawn.total[np.arange(16), drawn.best]
    assert chosen.mean() <= drawn.total.mean()  # ... but biased toward low energies


def test_python_api_plans_many_queries_in_one_call(runs):
    run = load_run(runs / "diffusion")
    obstacle = terms_from_specs(
        [{"type": "circle", "center": [1.0, 2.0], "radius": 0.3}], run.layout, CONSTRAINT_TYPES, "x"
    )
    planner = Planner(run.denoiser, run.schedule, run.normalizer, run.layout, 16, terms=obstacle)
    starts = np.array([[3, 1, 0, 0], [1, 3, 0, 0], [3, 3, 0, 0]], np.float32)
    goals = np.array([[1, 1], [3, 1], [1, 1]], np.float32)
    plans = planner.plan(jax.random.key(0), starts, goals, n_candidates=2)
    assert plans.trajectories.shape == (3, 2, 16, 6)
    assert plans.energies.shape == (3, 2, 1) and plans.violations.shape == (3, 2, 1)
    np.testing.assert_allclose(plans.chosen[:, -1, 2:4], goals, atol=1e-5)
    assert np.all(plans.best == np.argmin(plans.total, axis=1))


def test_new_starts_goals_and_obstacle_positions_compile_nothing(runs):
    run = load_run(runs / "diffusion")

    def plan(center, start, goal, seed):
        spec = [{"type": "circle", "center": center, "radius": 0.3}]
        terms = terms_from_specs(spec, run.layout, CONSTRAINT_TYPES, "x")
        planner = Planner(run.denoiser, run.schedule, run.normalizer, run.layout, 16, terms=terms)
        return planner.plan(jax.random.key(seed), np.array([start]), np.array([goal]))

    plan([1.0, 2.0], [3, 1, 0, 0], [1, 1], 0)  # compiles inpainting, sampler and scoring
    with compile_events() as events:
        plan([2.0, 2.5], [1, 3, 0.1, 0], [3, 3], 1)
        plan([1.5, 1.0], [3, 3, 0, 0], [1, 2], 2)
    assert not [event for event, _ in events if event.endswith("backend_compile_duration")]


def test_shift_plan_advances_and_pads_with_the_last_row():
    plan = np.arange(5, dtype=np.float32)[:, None].repeat(2, axis=1)
    np.testing.assert_array_equal(shift_plan(plan, 2)[:, 0], [2, 3, 4, 4, 4])


def test_a_diverged_candidate_is_never_chosen_over_one_that_did_not_diverge():
    trajectories = np.zeros((3, 3, 4, 2), np.float32)
    trajectories[0, 0, 2, 1] = np.nan  # query 0: the lowest-ranked candidate diverged
    trajectories[2] = np.inf  # query 2: every candidate diverged
    ranking = np.array([[0.0, 2.0, 1.0], [np.nan, 3.0, 4.0], [1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(ranked_candidates(ranking, trajectories)[:, 0], [2, 1, 0])


def test_mean_of_best_averages_the_best_ranked_candidates_and_skips_diverged_ones():
    trajectories = np.arange(2 * 4, dtype=np.float32).reshape(2, 4, 1, 1).repeat(3, axis=2)
    trajectories[1, 2] = np.nan  # query 1: its second-best candidate diverged
    ranking = np.array([[3.0, 0.0, 1.0, 2.0], [0.0, 3.0, 1.0, 2.0]])
    plans = Plans(
        trajectories, np.zeros((2, 4, 0)), ranking, np.zeros((2, 4, 0)),
        ranked_candidates(ranking, trajectories), np.ones((2, 4)), (), (),
    )  # fmt: skip
    np.testing.assert_array_equal(plans.mean_of_best(1), plans.chosen)
    # query 0: candidates 1 and 2 (values 1, 2); query 1: 4 and 7 (6, the diverged one, last)
    np.testing.assert_allclose(plans.mean_of_best(2)[:, 0, 0], [1.5, 5.5])
    with pytest.raises(ValueError, match=r"count must be in 1\.\.4"):
        plans.mean_of_best(5)


def test_pass_through_violation_is_zero_only_when_the_region_is_visited_in_time():
    (region,) = terms_from_specs(
        [{"type": "pass_through", "center": [2.0, 2.0], "radius": 0.2, "first": 2, "last": 3}],
        MAZE_LAYOUT,
        CONSTRAINT_TYPES,
        "plan.constraints",
    )
    path = np.zeros((6, 6), np.float32)
    path[:, 2:4] = np.linspace([0, 0], [4, 4], 6)  # passes (1.6, 1.6), (2.4, 2.4) at steps 2, 3
    assert float(region.violation_of(path)) == pytest.approx(np.hypot(0.4, 0.4) - 0.2, abs=1e-4)
    path[3, 2:4] = [2.05, 2.0]
    assert float(region.violation_of(path)) == 0.0
    path[3, 2:4], path[5, 2:4] = [9, 9], [2.0, 2.0]  # visited, but after step 3
    assert float(region.violation_of(path)) > 0


def test_inpainting_fixes_the_start_the_goal_at_rest_and_waypoints():
    normalizer = Normalizer(jnp.full(6, 1.0), jnp.full(6, 2.0))
    start, goal = np.array([[3.0, 1.0, 0.5, -0.5]]), np.array([[1.0, 1.0]])
    mask, values = inpainting(MAZE_LAYOUT, 8, normalizer, start, goal, [(4, [3.0, 3.0])])
    fixed = {(0, c) for c in range(2, 6)} | {(7, c) for c in range(2, 6)} | {(4, 2), (4, 3)}
    assert {tuple(index) for index in np.argwhere(np.asarray(mask[0]))} == fixed
    rows = np.asarray(normalizer.unnormalize(values))[0]
    np.testing.assert_allclose(rows[0, 2:], start[0])
    np.testing.assert_allclose(rows[7, 2:], [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(rows[4, 2:4], [3.0, 3.0])
    with pytest.raises(ValueError, match="outside the plan's 8 steps"):
        inpainting(MAZE_LAYOUT, 8, normalizer, start, goal, [(8, [3.0, 3.0])])


def test_executability_flags_jumps_and_steps_through_walls_and_obstacles(umaze):
    corridor = np.linspace([3.0, 1.0], [3.0, 3.0], 60)  # 0.034 m per step, open space
    report = executability(umaze, corridor, np.array([3.0, 3.0]))
    assert report["executable"] and report["reaches_goal_by_motion"]
    # the demo's bad plan: a 2.3 m first step across the middle wall, then inpainted goal
    jumping = np.array([[3.0, 1.0], [1.66, 2.87], [1.8, 2.8], [1.0, 1.0]])
    report = executability(umaze, jumping, np.array([1.0, 1.0]))
    assert not report["executable"] and not report["reaches_goal_by_motion"]
    assert report["jumps"][0] == {"step": 0, "from": [3.0, 1.0], "to": [1.66, 2.87], "length": 2.3}
    assert report["steps_through_walls"] >= 1
    assert "NOT EXECUTABLE: 3 jump(s), the largest 2.3 m at step 0" in executability_text(report)
    # a box whose corners the knots skip: only the segment between them crosses it
    (box,) = terms_from_specs(
        [{"type": "box", "low": [2.9, 1.95], "high": [3.1, 2.05]}],
        MAZE_LAYOUT,
        CONSTRAINT_TYPES,
        "c",
    )
    knots = np.array([[3.0, 1.9], [3.0, 2.1]])
    assert not blocked_positions([box], knots, MAZE_LAYOUT).any()
    report = executability(umaze, knots, np.array([3.0, 3.0]), [box], MAZE_LAYOUT)
    assert report["steps_through_obstacles"] == 1 and not report["executable"]


def test_pursued_plans_are_checked_along_their_path_not_their_timing(umaze):
    """A jumpy plan's interpolation may take long steps where the path is clear: tracked in
    time they are jumps; pursued along the path (eval.lookahead) they are followed, and only a
    step through a wall makes the plan unexecutable. Positions print to two decimals."""
    hurried = np.linspace([3.0, 1.0], [3.0, 3.0], 12).astype(np.float32)  # 0.18 m per step
    hurried[:, 0] += np.float32(0.02)  # float32 values such as 3.0199999809
    tracked = executability(umaze, hurried, np.array([3.0, 3.0]))
    assert not tracked["executable"] and tracked["jumps"][0]["from"] == [3.02, 1.0]
    assert "from [3.02, 1.0] to [3.02, 1.18]" in executability_text(tracked)
    pursued = executability(umaze, hurried, np.array([3.0, 3.0]), pursued=True)
    assert pursued["executable"] and pursued["fast_steps"] == 11 and not pursued["jumps"]
    assert executability_text(pursued).startswith("executable by path pursuit")
    across = np.array([[3.0, 1.0], [1.66, 2.87], [1.0, 1.0]])  # through the middle wall
    assert not executability(umaze, across, np.array([1.0, 1.0]), pursued=True)["executable"]


def test_within_limits_accepts_paths_the_point_mass_can_follow_step_by_step(umaze):
    corridor = np.linspace([3.0, 1.0], [3.0, 3.0], 60)  # 0.034 m per step
    hurried = np.linspace([3.0, 1.0], [3.0, 3.0], 30)  # 0.069 m per step: above 5 m/s
    across = np.linspace([3.0, 1.0], [1.0, 1.0], 60)  # through the middle wall
    (box,) = terms_from_specs(
        [{"type": "box", "low": [2.9, 1.95], "high": [3.1, 2.05]}], MAZE_LAYOUT,
        CONSTRAINT_TYPES, "c",
    )  # fmt: skip
    paths = np.stack([corridor, np.resize(hurried, corridor.shape), across])
    np.testing.assert_array_equal(within_limits(umaze, paths, [], MAZE_LAYOUT), [1, 0, 0])
    np.testing.assert_array_equal(within_limits(umaze, paths[:1], [box], MAZE_LAYOUT), [0])


def test_routes_go_around_obstacles_and_targets_lie_along_them(umaze):
    start, goal = np.array([3.0, 1.0]), np.array([1.0, 1.0])
    pillar, wall_to_wall = terms_from_specs(
        [
            {"type": "circle", "center": [1.9, 3.0], "radius": 0.2},
            {"type": "box", "low": [1.5, 2.2], "high": [2.1, 3.4]},
        ],
        MAZE_LAYOUT,
        CONSTRAINT_TYPES,
        "c",
    )
    path = routes_to(umaze, goal, [pillar], MAZE_LAYOUT).path(start)
    np.testing.assert_allclose(path[[0, -1]], [start, goal], atol=0.03)
    assert not blocked_positions([pillar], path, MAZE_LAYOUT).any()
    assert not inside_walls(umaze, path, 0.1).any()  # the point mass's radius from the walls
    assert np.linalg.norm(np.diff(path, axis=0), axis=1).max() <= 0.08  # grid neighbours
    length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    assert 4.0 < length < 6.0  # along the U, not across the middle wall
    routes = routes_to(umaze, goal, [pillar], MAZE_LAYOUT)
    target = routes.target(start, goal, 1.5)
    assert np.isclose(np.linalg.norm(target - start), 1.5, atol=0.1)  # the bottom corridor
    np.testing.assert_array_equal(routes.target(start, goal, 10.0), goal)  # within reach
    np.testing.assert_array_equal(routes.target(goal, goal, 1.5), goal)  # already there
    blocked = routes_to(umaze, goal, [wall_to_wall], MAZE_LAYOUT)
    assert len(blocked.path(start)) == 0
    np.testing.assert_array_equal(blocked.target(start, goal, 1.5), goal)


@pytest.mark.parametrize("inches, points", [(5.5, 9), (3.3, 8), (6.6, 12), (16.5, 12)])
def test_fitted_titles_stay_inside_their_figure(inches, points):
    """The demo's plan title (about 200 characters) and scenario titles, wrapped by
    ``fit_text``, are drawn within the figure's width."""
    import matplotlib.pyplot as plt

    from planner.viz.figures import fit_text

    title = (
        "maze2d-umaze-v1, 4 candidates; all constraints hold; end 0.04 m from goal; "
        "NOT EXECUTABLE: 10 jump(s), the largest 0.18 m at step 120 from [0.62, 2.94] to "
        "[0.72, 2.8]; 2 step(s) through walls; 1 step(s) through obstacles"
    )
    figure, ax = plt.subplots(figsize=(inches, inches))
    text = ax.set_title(fit_text(title, inches, points), fontsize=points)
    figure.tight_layout()
    box = text.get_window_extent(figure.canvas.get_renderer())
    width = figure.bbox.width
    plt.close(figure)
    assert box.x0 >= 0 and box.x1 <= width


def test_a_plan_of_one_window_with_a_window_stride_is_the_model_itself(runs, tmp_path):
    # plan.horizon equal to the trained window: one window, nothing to compose (it used to fail)
    extra = ["--set", "plan.horizon=16", "--set", "plan.window_stride=4"]
    assert plan_cli(runs, tmp_path, "--start", "3,1", "--goal", "1,1", *extra) == 0
    saved = np.load(tmp_path / "out" / "plan.npz")
    assert saved["trajectories"][int(saved["best"])].shape == (16, 6)
