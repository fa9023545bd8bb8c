"""Samplers side by side on the first plan of each episode of a composition scenario: does the
plan keep clear of the new obstacles and the walls, at what compute, with what effective sample
size. No simulator and no policy: each method of the scenario plans once from each episode's
start (the scenario's reset distribution and plan keys), the goal imposed on the last row.

    python scripts/sampler_plans.py configs/compose/10-samplers-detours-medium.yaml
    python scripts/sampler_plans.py FILE --episodes 20 --layouts "upper route closed"

Writes ``results/sampler_plans.{md,json}`` (one section per scenario, replaced on a rerun).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from planner.diffusion.denoisers import window_starts
from planner.diffusion.samplers import network_evaluations
from planner.energies.base import SATISFIED
from planner.eval.rollouts import episode_seed
from planner.eval.scenarios import ObstacleLayout, Scenario, load_scenario, method_config
from planner.planning.build import build_planner
from planner.planning.planner import sampler_spec
from planner.planning.run import TrainedRun, load_run
from planner.provenance import git_revision
from planner.tasks.maze2d import Maze2DEnv, find_maze_task

RESULTS = Path("results")
BATCH = 25  # queries per planner call, as the scenarios' evaluation batches


def episode_starts(task, layout: ObstacleLayout, scenario: Scenario, episodes: int, seed: int):
    """``(observations [N, O], goals [N, P])`` of the scenario's first ``episodes`` resets."""
    env = Maze2DEnv(task, False, (), layout.start or scenario.start)
    resets = [env.reset(seed=episode_seed(seed, episode)) for episode in range(episodes)]
    return np.stack([obs for obs, _ in resets]), np.stack([info["goal"] for _, info in resets])


def windows_per_call(run: TrainedRun, config) -> int:
    """Network passes per denoiser call: one, or one per overlapping window."""
    plan = config.plan
    if plan.window_stride is None:
        return 1
    horizon = plan.horizon or config.data.horizon
    return len(window_starts(horizon, config.data.horizon, plan.window_stride))


def method_row(run: TrainedRun, config, task, starts, goals, seed: int) -> dict[str, Any]:
    """Plan from every start in batches of :data:`BATCH` (episode ``i``'s key as the policies
    fold it) and summarize the chosen plans."""
    planner, _, _ = build_planner(run, config, task)
    root = jax.random.key(seed)
    n_candidates = config.plan.n_candidates
    holds, ess, resamples, seconds = [], [], [], []
    for first in range(0, len(starts), BATCH):
        episodes = np.arange(first, min(first + BATCH, len(starts)))
        keys = jax.vmap(lambda e: jax.random.fold_in(jax.random.fold_in(root, e), 0))(episodes)
        began = time.perf_counter()
        plans = planner.plan(keys, starts[episodes], goals[episodes], n_candidates)
        seconds.append(time.perf_counter() - began)
        chosen = plans.violations[np.arange(len(episodes)), plans.best]  # [Q, C]
        holds.append(chosen <= SATISFIED)
        ess.append(plans.ess * n_candidates)
        resamples.append(plans.resamples)
    holds = np.concatenate(holds)  # [N, C]: every obstacle term, then the walls
    spec = sampler_spec(config.plan, config.diffusion.clip_denoised)
    calls = network_evaluations(spec, run.schedule.n_steps) * n_candidates
    return {
        "plans": len(holds),
        "clear_rate": float(holds.all(axis=1).mean()),
        "obstacles_clear_rate": float(holds[:, :-1].all(axis=1).mean()),
        "walls_clear_rate": float(holds[:, -1].mean()),
        "denoiser_calls_per_plan": calls,
        "network_passes_per_plan": calls * windows_per_call(run, config),
        "effective_sample_size": float(np.concatenate(ess).mean()),
        "resamples": float(np.concatenate(resamples).mean()),
        # the first batch compiles; with one batch only, its time is all there is
        "seconds_per_batch": float(np.median(seconds[1:] or seconds)),
        "batch": BATCH,
    }


def scenario_record(path: Path, episodes: int, layouts: list[str] | None) -> dict[str, Any]:
    scenario = load_scenario(path)
    run = load_run(scenario.run.dir)
    task = find_maze_task(run.config.data.dataset)
    rows = []
    began = time.perf_counter()
    for layout in scenario.layouts:
        if layouts and layout.name not in layouts:
            continue
        starts, goals = episode_starts(task, layout, scenario, episodes, scenario.seed)
        for method in scenario.methods:
            for choice in method.choices:
                config = method_config(
                    run, scenario, layout, method, choice, episodes, scenario.seed
                )
                row = method_row(run, config, task, starts, goals, scenario.seed)
                rows.append({"layout": layout.name, "method": method.name, "choice": choice, **row})
                print(f"{layout.name} / {method.name} {choice}: clear {row['clear_rate']:.2f}, "
                      f"ESS {row['effective_sample_size']:.1f}, "
                      f"{row['seconds_per_batch']:.1f} s per batch", flush=True)  # fmt: skip
    return {
        "scenario": scenario.name, "title": scenario.title, "config": str(path),
        "run": scenario.run.dir, "checkpoint_step": run.step, "episodes": episodes,
        "seed": scenario.seed, "rows": rows, "device": jax.devices()[0].platform,
        "machine": platform.platform(), "git": git_revision(),
        "wall_minutes": round((time.perf_counter() - began) / 60, 1),
        "command": f"python scripts/sampler_plans.py {path} --episodes {episodes}"
        + ("".join(f' --layouts "{name}"' for name in layouts) if layouts else ""),
    }  # fmt: skip


def choice_text(choice: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in choice.items()) or "—"


def markdown(records: list[dict[str, Any]]) -> str:
    lines = [
        "# Samplers on first plans",
        "",
        "Made by `scripts/sampler_plans.py` (command per section). Each method of a composition "
        "scenario plans once from each episode's start (the scenario's reset distribution, "
        "evaluation seed, plan keys as the policies fold them; the goal on the last row, no "
        "arrival search, no simulator). *clear*: the chosen plan holds every hard term (the "
        "layout's obstacles and the maze walls, on the interpolation between subgoals too); "
        "*denoiser calls / plan*: network evaluations of the sampler times the candidates; "
        "*network passes*: times the overlapping windows of a chained plan; *ESS*: SMC's "
        "effective sample size in particles, averaged over noise levels (the number of "
        "candidates where nothing is reweighted); *s / batch*: median wall time of one call "
        f"planning {BATCH} queries, after the first (compiling) call; with {BATCH} plans per "
        "row there is one call, and its time includes compilation.",
    ]
    for record in records:
        lines += [
            "",
            f"## {record['title']}",
            "",
            f"`{record['config']}`; run `{record['run']}` (step {record['checkpoint_step']:,}); "
            f"{record['episodes']} plans per row, seed {record['seed']}; device "
            f"{record['device']} ({record['machine']}); git {record['git']}; "
            f"{record['wall_minutes']} min; command `{record['command']}`.",
            "",
            "| layout | method | setting | clear | obstacles clear | walls clear | "
            "denoiser calls / plan | network passes / plan | ESS | resamples | s / batch |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in record["rows"]:
            lines.append(
                f"| {row['layout']} | {row['method']} | {choice_text(row['choice'])} | "
                f"{100 * row['clear_rate']:.0f} % | {100 * row['obstacles_clear_rate']:.0f} % | "
                f"{100 * row['walls_clear_rate']:.0f} % | {row['denoiser_calls_per_plan']} | "
                f"{row['network_passes_per_plan']} | {row['effective_sample_size']:.1f} | "
                f"{row['resamples']:.1f} | {row['seconds_per_batch']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", type=Path, nargs="?", help="a composition scenario file")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--layouts", nargs="+", action="extend", help="only these layouts (names)")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the markdown from the stored json"
    )
    args = parser.parse_args()
    json_path = RESULTS / "sampler_plans.json"
    records = json.loads(json_path.read_text()) if json_path.is_file() else []
    if not args.render_only:
        if args.scenario is None:
            parser.error("give a scenario file (or --render-only)")
        record = scenario_record(args.scenario, args.episodes, args.layouts)
        records = [r for r in records if r["scenario"] != record["scenario"]] + [record]
        json_path.write_text(json.dumps(records, indent=2) + "\n")
    (RESULTS / "sampler_plans.md").write_text(markdown(records))
    print(f"wrote {json_path} and results/sampler_plans.md", flush=True)


if __name__ == "__main__":
    main()
