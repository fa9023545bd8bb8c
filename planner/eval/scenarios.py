"""Test-time composition scenarios: trained models, energies added at plan time, simulator scores.

A scenario file (``configs/compose/*.yaml``) names a trained run and a grid of obstacle layouts ×
planning methods, each method evaluated on the same episodes::

    name: obstacles-umaze
    title: New obstacles at test time (U-Maze)
    run: {dir: runs/maze2d-umaze-cpu, config: configs/maze2d-umaze.yaml, steps: 7000}
    episodes: 100                     # reported episodes, evaluation and plan seed `seed`
    seed: 0
    selection: {seed: 1, episodes: 50}  # where each method's `choices` are decided
    start: [3, 1]                     # optional: every start near this point (± 0.1)
    plan: {n_candidates: 1}           # plan settings shared by every method
    score: {constraints: [], objectives: []}  # extra terms every method's plans are scored by
    layouts:
      - name: corner
        obstacles: [{type: circle, center: [2.9, 2.1], radius: 0.35}]
    methods:
      - name: guidance
        obstacles: guide              # ignore | guide | select: how the plan uses the obstacles
        plan: {}                      # this method's plan settings (constraints, sampler, ...)
        eval: {}                      # this method's policy (policy: mpc, replan_every, ...)
        obstacle_guidance: {}         # weight, scale, n_guide_steps... of the obstacle terms
        choices: [{}, {...}]          # alternative plan settings (and obstacle_guidance,
                                      # eval); the best on the selection seed is reported
        run: {...}                    # optional: another trained run for this method
    value_runs: [{dir: ..., config: ..., steps: ...}]  # value models the plans name (trained
                                      # by the reproduce script if missing)

Obstacles are solid in the simulator whatever the method (:class:`Maze2DEnv`), so collisions are
physical: ``collision_rate`` is the fraction of executed steps in contact with one. Each method's
plans are scored by every obstacle, the walls and the scenario's ``score`` terms, on the plan
(``plan_*``) and on the executed path (``path_*``). A choice is decided by the clean success rate
(the goal reached without touching an obstacle), then the score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from planner.config import Config, ConfigError, config_from_dict, config_to_dict
from planner.data.attributes import attributes_from_specs, composed_spec_holds, trajectory_labels
from planner.diffusion.samplers import network_evaluations
from planner.energies.base import SATISFIED, hard_terms, term_energies, violations
from planner.energies.terms import Layout
from planner.eval.evaluate import evaluate, map_assisted
from planner.eval.rollouts import Rollouts
from planner.eval.scores import mean_and_stderr
from planner.planning.build import build_planner
from planner.planning.planner import sampler_spec
from planner.planning.run import TrainedRun, load_run
from planner.tasks.maze2d import (
    POINT_RADIUS,
    MazeTask,
    Obstacle,
    find_maze_task,
)

OBSTACLE_USES = ("ignore", "guide", "select")
ATTRIBUTE_USES = ("none", "composed", "first")  # the layout's specification, its first part


@dataclass(frozen=True)
class RunSpec:
    """A trained run: its directory, and the config, steps and kind (``diffusion`` or
    ``value``) that train it if it is missing."""

    dir: str
    config: str
    steps: int
    overrides: tuple[str, ...] = ()
    kind: Literal["diffusion", "value"] = "diffusion"


@dataclass(frozen=True)
class ObstacleLayout:
    """A test condition: obstacles, a start (overriding the scenario's) and, for
    attribute-conditioned models, the composed specification plans should satisfy."""

    name: str
    obstacles: tuple[dict, ...] = ()
    note: str = ""
    start: tuple[float, ...] | None = None
    require: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def has_specification(self) -> bool:
        return bool(self.require or self.exclude)


@dataclass(frozen=True)
class Method:
    name: str
    obstacles: Literal["ignore", "guide", "select"] = "guide"
    attributes: Literal["none", "composed", "first"] = "none"
    plan: dict = field(default_factory=dict)
    obstacle_guidance: dict = field(default_factory=dict)
    choices: tuple[dict, ...] = ({},)
    run: RunSpec | None = None
    eval: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: RunSpec
    layouts: tuple[ObstacleLayout, ...]
    methods: tuple[Method, ...]
    episodes: int = 100
    seed: int = 0
    selection_seed: int = 1
    selection_episodes: int = 50
    start: tuple[float, float] | None = None
    plan: dict = field(default_factory=dict)
    score: dict = field(default_factory=dict)
    batch_size: int = 25
    value_runs: tuple[RunSpec, ...] = ()
    source: str = ""

    @property
    def runs(self) -> list[RunSpec]:
        """Every diffusion run the scenario plans with, the scenario's own first."""
        extra = [m.run for m in self.methods if m.run is not None and m.run != self.run]
        return [self.run, *dict.fromkeys(extra)]


# --- loading ------------------------------------------------------------------------------------


def _keys(raw: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str], where: str):
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping; got {raw!r}")
    unknown = [key for key in raw if key not in allowed]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a key here; known: {', '.join(allowed)}")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ConfigError(f"{where}: needs {', '.join(missing)}")


def _run_spec(raw: Mapping[str, Any], where: str) -> RunSpec:
    _keys(raw, ("dir", "config", "steps", "overrides", "kind"), ("dir", "config", "steps"), where)
    kind = raw.get("kind", "diffusion")
    if kind not in ("diffusion", "value"):
        raise ConfigError(f"{where}.kind must be diffusion or value; got {kind!r}")
    overrides = tuple(str(o) for o in raw.get("overrides", ()))
    return RunSpec(str(raw["dir"]), str(raw["config"]), int(raw["steps"]), overrides, kind)


def _layout(raw: Mapping[str, Any], where: str) -> ObstacleLayout:
    _keys(raw, ("name", "obstacles", "note", "start", "require", "exclude"), ("name",), where)
    obstacles = tuple(dict(spec) for spec in raw.get("obstacles") or ())
    for index, spec in enumerate(obstacles):
        try:
            Obstacle.from_spec(spec)
        except (KeyError, ValueError) as error:
            raise ConfigError(f"{where}.obstacles[{index}]: {error}") from None
    start = None if raw.get("start") is None else tuple(float(v) for v in raw["start"])
    require = tuple(str(name) for name in raw.get("require") or ())
    exclude = tuple(str(name) for name in raw.get("exclude") or ())
    return ObstacleLayout(
        str(raw["name"]), obstacles, str(raw.get("note", "")), start, require, exclude
    )


def _method(raw: Mapping[str, Any], where: str) -> Method:
    allowed = (
        "name", "obstacles", "attributes", "plan", "obstacle_guidance", "choices", "run", "eval",
    )  # fmt: skip
    _keys(raw, allowed, ("name",), where)
    use = raw.get("obstacles", "guide")
    if use not in OBSTACLE_USES:
        raise ConfigError(f"{where}.obstacles must be one of {', '.join(OBSTACLE_USES)}")
    attributes = raw.get("attributes", "none")
    if attributes not in ATTRIBUTE_USES:
        raise ConfigError(f"{where}.attributes must be one of {', '.join(ATTRIBUTE_USES)}")
    choices = tuple(dict(choice or {}) for choice in raw.get("choices") or ({},))
    run = _run_spec(raw["run"], f"{where}.run") if "run" in raw else None
    guidance = dict(raw.get("obstacle_guidance") or {})
    plan = dict(raw.get("plan") or {})
    evaluation = dict(raw.get("eval") or {})
    return Method(str(raw["name"]), use, attributes, plan, guidance, choices, run, evaluation)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: scenario file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    where = str(path)
    allowed = ("name", "title", "run", "episodes", "seed", "selection", "start", "plan", "score",
               "layouts", "methods", "batch_size", "value_runs")  # fmt: skip
    _keys(raw, allowed, ("name", "title", "run", "layouts", "methods"), where)
    selection = raw.get("selection") or {}
    _keys(selection, ("seed", "episodes"), (), f"{where}: selection")
    score = dict(raw.get("score") or {})
    _keys(score, ("constraints", "objectives"), (), f"{where}: score")
    scenario = Scenario(
        name=str(raw["name"]),
        title=str(raw["title"]),
        run=_run_spec(raw["run"], f"{where}: run"),
        layouts=tuple(_layout(r, f"{where}: layouts[{i}]") for i, r in enumerate(raw["layouts"])),
        methods=tuple(_method(r, f"{where}: methods[{i}]") for i, r in enumerate(raw["methods"])),
        episodes=int(raw.get("episodes", 100)),
        seed=int(raw.get("seed", 0)),
        selection_seed=int(selection.get("seed", 1)),
        selection_episodes=int(selection.get("episodes", 50)),
        start=None if raw.get("start") is None else tuple(float(v) for v in raw["start"]),
        plan=dict(raw.get("plan") or {}),
        score=score,
        batch_size=int(raw.get("batch_size", 25)),
        value_runs=tuple(
            _run_spec({"kind": "value", **spec}, f"{where}: value_runs[{index}]")
            for index, spec in enumerate(raw.get("value_runs") or ())
        ),
        source=where,
    )
    if scenario.seed == scenario.selection_seed:
        raise ConfigError(f"{where}: selection.seed must differ from the reported seed")
    return scenario


# --- one method on one layout -------------------------------------------------------------------


def method_config(
    run: TrainedRun, scenario: Scenario, layout: ObstacleLayout, method: Method, choice: dict,
    episodes: int, seed: int,
) -> Config:  # fmt: skip
    """The run's config with the scenario's, the method's and the choice's plan settings, the
    layout's obstacles used as the method says, and the evaluation episodes and seed."""
    sections = config_to_dict(run.config)
    choice = dict(choice)
    guidance = {**method.obstacle_guidance, **choice.pop("obstacle_guidance", {})}
    evaluation = {**method.eval, **choice.pop("eval", {})}
    plan = {**scenario.plan, **method.plan, **choice}
    obstacles = {
        "ignore": [],
        "guide": [{**spec, **guidance} for spec in layout.obstacles],
        "select": [{**spec, "n_guide_steps": 0} for spec in layout.obstacles],
    }[method.obstacles]
    plan["constraints"] = [*plan.get("constraints", ()), *obstacles]
    plan["seed"] = seed
    if method.attributes == "composed":
        plan |= {"require": list(layout.require), "exclude": list(layout.exclude)}
    elif method.attributes == "first":
        plan |= {"require": list(layout.require[:1]), "exclude": []}
    sections["plan"] = plan
    sections["eval"] = {
        **sections["eval"], **evaluation, "episodes": episodes, "seed": seed,
        "multi_task": False, "batch_size": min(scenario.batch_size, episodes),
    }  # fmt: skip
    return config_from_dict(sections, f"{scenario.source}: {layout.name} / {method.name}")


def observation_rows(observations: np.ndarray, layout: Layout) -> np.ndarray:
    """``[..., T, D]`` trajectory rows (zero actions) of executed ``observations`` [..., T, O]."""
    shape = (*observations.shape[:-1], layout.action_dim + layout.observation_dim)
    rows = np.zeros(shape, np.float32)
    rows[..., layout.action_dim :] = observations
    return rows


def path_lengths(rollouts: Rollouts) -> np.ndarray:
    """``[N]`` metres travelled until the goal was first reached (NaN where never reached)."""
    steps = np.linalg.norm(np.diff(rollouts.observations[..., :2], axis=1), axis=-1)
    travelled = np.cumsum(steps, axis=1)
    first = np.nan_to_num(rollouts.time_to_goal, nan=1).astype(int) - 1
    return np.where(rollouts.success, travelled[np.arange(len(first)), first], np.nan)


def episode_metrics(
    rollouts: Rollouts, task: MazeTask, obstacles: Sequence[Obstacle], layout: Layout
) -> dict[str, Any]:
    """Success, clean success (no obstacle touched), collision rate, normalized score, path
    length, and whether each chosen plan keeps the point mass clear of every obstacle."""
    touched = rollouts.contacts.any(axis=1)
    plans = rollouts.first_plans[..., list(layout.position_columns)]
    lengths = path_lengths(rollouts)[rollouts.success]
    through = _plans_touching(plans, obstacles).mean() if obstacles else 0.0
    paths = rollouts.observations[..., list(layout.position)]
    return {
        "episodes": len(rollouts.returns),
        "success_rate": float(rollouts.success.mean()),
        "clean_success_rate": float((rollouts.success & ~touched).mean()),
        "collision_rate": float(rollouts.contacts.mean()),
        "episodes_touching": float(touched.mean()),
        "score": mean_and_stderr(
            task.normalized(rollouts.returns)
        ),
        "path_length": mean_and_stderr(lengths) if len(lengths) else None,
        "plans_through_obstacles": float(through),
        "clearance_plan_median": _median_clearance(plans, obstacles),
        "clearance_path_median": _median_clearance(paths, obstacles),
        "plan_seconds_median": float(np.median(rollouts.policy_seconds)),
        "replans_per_episode": float(rollouts.replans.mean()),
        "infeasible_episodes": int((~rollouts.feasible).sum()),
    }  # fmt: skip


def _median_clearance(positions: np.ndarray, obstacles: Sequence[Obstacle]) -> float | None:
    """The median over episodes of the smallest distance from the point mass's centre to an
    obstacle's edge along ``positions`` [N, T, 2] (contact below ``POINT_RADIUS``)."""
    if not obstacles:
        return None
    depth = np.max([o.depth(positions) for o in obstacles], axis=0)  # [N, T]
    return float(np.median(-depth.max(axis=-1)))


def _plans_touching(positions: np.ndarray, obstacles: Sequence[Obstacle]) -> np.ndarray:
    """``[N]`` bool: plans (positions ``[N, H, 2]``) that bring the point mass into contact
    with an obstacle."""
    depth = np.max([o.depth(positions) for o in obstacles], axis=0)
    return (depth > -POINT_RADIUS).any(axis=-1)


def term_report(terms, labels, plans: np.ndarray, paths: np.ndarray) -> list[dict[str, Any]]:
    """Per term: mean energy of the chosen plans; for hard terms the fraction of plans and of
    executed paths (``paths`` as trajectory rows) on which it holds."""
    energies = np.asarray(term_energies(terms, jnp.asarray(plans)))
    hard = {id(term): index for index, term in enumerate(hard_terms(terms))}
    plan_violations = np.asarray(violations(terms, jnp.asarray(plans)))
    path_violations = np.asarray(violations(terms, jnp.asarray(paths)))
    report = []
    for index, (term, label) in enumerate(zip(terms, labels, strict=True)):
        row = {
            "term": term.name,
            "label": label,
            "plan_energy": mean_and_stderr(energies[:, index]),
        }
        if id(term) in hard:
            column = hard[id(term)]
            row["plan_holds"] = float((plan_violations[:, column] <= SATISFIED).mean())
            row["path_holds"] = float((path_violations[:, column] <= SATISFIED).mean())
        report.append(row)
    return report


def scoring_terms(run: TrainedRun, scenario: Scenario, layout: ObstacleLayout, task: MazeTask):
    """``(terms, labels)`` every method's plans are scored by: the layout's obstacles (those
    that appear later included), the scenario's ``score`` terms and the walls."""
    sections = config_to_dict(run.config)
    sections["plan"] = {
        "constraints": [*layout.obstacles, *scenario.score.get("constraints", ())],
        "objectives": list(scenario.score.get("objectives", ())),
    }
    config = config_from_dict(sections, f"{scenario.source}: score")
    _, terms, labels = build_planner(run, config, task, step=task.max_episode_steps)
    names = [f"obstacle {i}" for i in range(len(layout.obstacles))]
    names += [f"score.constraints[{i}]" for i in range(len(scenario.score.get("constraints", ())))]
    names += [f"score.objectives[{i}]" for i in range(len(scenario.score.get("objectives", ())))]
    return terms, [*names, *labels[len(names) :]]


def specification_metrics(
    rollouts: Rollouts, run: TrainedRun, layout: ObstacleLayout
) -> dict[str, Any]:
    """How often the chosen plans, and the paths executed over the plans' steps, have every
    attribute the layout requires and none it excludes; and how often each attribute holds."""
    attributes = attributes_from_specs(run.config.data.attributes)
    names = [attribute.name for attribute in attributes]
    plans = rollouts.first_plans[..., list(run.layout.position_columns)]
    executed = rollouts.observations[:, : plans.shape[1], list(run.layout.position)]
    labels = {"plan": trajectory_labels(plans, attributes),
              "path": trajectory_labels(executed, attributes)}  # fmt: skip
    return {
        f"specification_{kind}_rate": float(
            composed_spec_holds(label, names, layout.require, layout.exclude).mean()
        )
        for kind, label in labels.items()
    } | {
        "attribute_rates": {
            name: {kind: float(label[:, i].mean()) for kind, label in labels.items()}
            for i, name in enumerate(names)
        }
    }


def evaluate_method(
    run: TrainedRun, config: Config, task: MazeTask, scenario: Scenario, layout: ObstacleLayout
) -> tuple[Rollouts, dict[str, Any]]:
    """Episodes of one method on one layout and their metrics (wall time and network
    evaluations per plan included)."""
    obstacles = [Obstacle.from_spec(spec) for spec in layout.obstacles]
    spec = sampler_spec(config.plan, config.diffusion.clip_denoised)
    began = time.perf_counter()
    rollouts = evaluate(run, config, task, False, obstacles, layout.start or scenario.start)
    seconds = time.perf_counter() - began
    evaluations = network_evaluations(spec, run.schedule.n_steps)
    metrics = episode_metrics(rollouts, task, obstacles, run.layout) | {
        "wall_seconds": round(seconds, 1),
        "network_evaluations_per_plan": evaluations * config.plan.n_candidates,
    }
    if layout.has_specification:
        metrics |= specification_metrics(rollouts, run, layout)
    return rollouts, metrics


def _ranking(metrics: Mapping[str, Any]) -> tuple[float, float]:
    """What a choice is decided by: the specification on executed paths, then on plans, for
    attribute layouts; the clean success rate, then the score, otherwise."""
    if "specification_path_rate" in metrics:
        return metrics["specification_path_rate"], metrics["specification_plan_rate"]
    return metrics["clean_success_rate"], metrics["score"]["mean"]


def run_scenario(scenario: Scenario, log=print) -> dict[str, Any]:
    """Every layout × method: choose among the method's choices on the selection seed, then
    evaluate the chosen settings on the reported seed. Returns the JSON-ready record; the
    rollouts of the reported evaluations are under ``"rollouts"`` (not JSON)."""
    runs = {spec: load_run(spec.dir) for spec in scenario.runs}
    task = find_maze_task(runs[scenario.run].config.data.dataset)
    if task is None:
        raise ConfigError(f"{scenario.source}: composition scenarios run on Maze2D tasks")
    rows, rollouts = [], {}
    for layout in scenario.layouts:
        terms, labels = scoring_terms(runs[scenario.run], scenario, layout, task)
        for method in scenario.methods:
            run = runs[method.run or scenario.run]
            tried = []
            for choice in method.choices if len(method.choices) > 1 else ():
                config = method_config(
                    run, scenario, layout, method, choice, scenario.selection_episodes,
                    scenario.selection_seed,
                )  # fmt: skip
                _, metrics = evaluate_method(run, config, task, scenario, layout)
                tried.append({"choice": choice, **metrics})
                log(f"  [selection] {layout.name} / {method.name} {choice}: "
                    f"{_ranking(metrics)}")  # fmt: skip
            best = max(tried, key=_ranking)["choice"] if tried else method.choices[0]
            config = method_config(
                run, scenario, layout, method, best, scenario.episodes, scenario.seed
            )
            result, metrics = evaluate_method(run, config, task, scenario, layout)
            paths = observation_rows(result.observations, run.layout)
            rows.append({
                "layout": layout.name, "method": method.name, "obstacles": method.obstacles,
                "map_assisted": map_assisted(config.eval), "run": run.run_dir.as_posix(),
                "checkpoint_step": run.step, "choice": best,
                "plan": config_to_dict(config)["plan"], "selection": tried, **metrics,
                "terms": term_report(terms, labels, result.first_plans, paths),
            })  # fmt: skip
            rollouts[(layout.name, method.name)] = result
            log(f"{scenario.name}: {layout.name} / {method.name}: success "
                f"{metrics['success_rate']:.2f}, clean {metrics['clean_success_rate']:.2f}, "
                f"collisions {metrics['collision_rate']:.3f}, score "
                f"{metrics['score']['mean']:.1f}, ranked by {_ranking(metrics)}")  # fmt: skip
    return {
        "name": scenario.name, "title": scenario.title, "config": scenario.source,
        "task": task.name,
        "attributes": list(runs[scenario.run].config.data.attributes),
        "episodes": scenario.episodes, "seed": scenario.seed,
        "selection": {"seed": scenario.selection_seed, "episodes": scenario.selection_episodes},
        "start": scenario.start, "device": jax.devices()[0].platform, "rows": rows,
        "layouts": [{"name": layout.name, "note": layout.note, "start": layout.start,
                     "obstacles": list(layout.obstacles), "require": list(layout.require),
                     "exclude": list(layout.exclude)} for layout in scenario.layouts],
        "rollouts": rollouts,
    }  # fmt: skip


# --- reporting ----------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{100 * value:.0f} %"


def _rate_and_error(rate: float, episodes: int) -> str:
    """A rate over episodes with its binomial standard error, ``"64 ± 5 %"``."""
    error = math.sqrt(rate * (1 - rate) / episodes)
    return f"{100 * rate:.0f} ± {100 * error:.0f} %"


def method_text(row: Mapping[str, Any]) -> str:
    """A row's method name, marked ``(map-assisted)`` where a search over the known map chose
    its route (:func:`map_assisted`): that row is not composition alone."""
    return f"{row['method']} (map-assisted)" if row.get("map_assisted") else row["method"]


def _choice_text(choice: Mapping[str, Any]) -> str:
    """``key=value, ...`` of a choice, the keys of its ``eval`` and ``obstacle_guidance``
    sections as ``section.key=value``."""
    items = []
    for key, value in choice.items():
        if key in ("eval", "obstacle_guidance"):
            items += [(f"{key}.{inner}", setting) for inner, setting in value.items()]
        else:
            items.append((key, value))
    return ", ".join(f"{key}={value}" for key, value in items) or "—"


def markdown_section(record: Mapping[str, Any], notes: str = "") -> str:
    """A scenario's part of results/composition.md: per layout, a table of every method."""
    selection = record["selection"]
    runs = dict.fromkeys(
        f"`{row['run']}` (step {row['checkpoint_step']:,})" for row in record["rows"]
    )
    chosen = any(row["selection"] for row in record["rows"])
    choices = (
        f"choices decided on seed {selection['seed']} with {selection['episodes']} episodes; "
        if chosen
        else ""
    )
    lines = [
        f"## {record['title']}",
        "",
        f"`{record['config']}`; {record['episodes']} episodes per row (evaluation and plan seed "
        f"{record['seed']}); {choices}device {record['device']}; runs {', '.join(runs)}. "
        f"Start {record['start'] or 'a random free cell'} ± 0.1 unless a layout names its own.",
        "",
    ]
    for layout in record["layouts"]:
        rows = [row for row in record["rows"] if row["layout"] == layout["name"]]
        own_start = f" (start {layout['start']} ± 0.1)" if layout.get("start") else ""
        lines += [f"**{layout['name']}**{own_start}: {layout['note']}".rstrip(": "), ""]
        specified = layout.get("require") or layout.get("exclude")
        table = _specification_table(rows) if specified else _obstacle_table(rows)
        lines += [*table, ""]
    lines += [f"![{record['name']}](figures/compose-{record['name']}.png)", ""]
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def _obstacle_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| method | success | clean success | collision rate | episodes touching | plans "
        "touching | clearance plan / path (m) | score | path length (m) | network evals / "
        "plan | plan time | replans / episode | infeasible | chosen |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        length = row["path_length"]
        lines.append(
            f"| {method_text(row)} | {_rate_and_error(row['success_rate'], row['episodes'])} | "
            f"{_rate_and_error(row['clean_success_rate'], row['episodes'])} | "
            f"{100 * row['collision_rate']:.1f} % | "
            f"{_rate(row['episodes_touching'])} | {_rate(row['plans_through_obstacles'])} | "
            f"{_optional(row.get('clearance_plan_median'), '.2f')} / "
            f"{_optional(row.get('clearance_path_median'), '.2f')} | "
            f"{row['score']['mean']:.1f} ± {row['score']['stderr']:.1f} | "
            + (f"{length['mean']:.2f} ± {length['stderr']:.2f}" if length else "—")
            + f" | {row['network_evaluations_per_plan']} | "
            f"{1000 * row['plan_seconds_median']:.0f} ms | "
            f"{_optional(row.get('replans_per_episode'), '.1f')} | "
            f"{_optional(row.get('infeasible_episodes'), 'd')} | {_choice_text(row['choice'])} |"
        )
    return lines


def _optional(value: float | None, spec: str) -> str:
    """A value measured since the control layer (older records lack it): ``—`` if absent."""
    return "—" if value is None else format(value, spec)


def _specification_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    names = list(rows[0]["attribute_rates"])
    lines = [
        "| method | specification holds: plans | executed paths | "
        + " | ".join(f"{name} (plans / paths)" for name in names)
        + " | network evals / plan | plan time | replans / episode | infeasible | chosen |",
        "|---|---|---|" + "---|" * len(names) + "---|---|---|---|---|",
    ]
    for row in rows:
        rates = row["attribute_rates"]
        lines.append(
            f"| {method_text(row)} | "
            f"{_rate_and_error(row['specification_plan_rate'], row['episodes'])} | "
            f"{_rate_and_error(row['specification_path_rate'], row['episodes'])} | "
            + " | ".join(
                f"{_rate(rates[name]['plan'])} / {_rate(rates[name]['path'])}" for name in names
            )
            + f" | {row['network_evaluations_per_plan']} | "
            f"{1000 * row['plan_seconds_median']:.0f} ms | "
            f"{_optional(row.get('replans_per_episode'), '.1f')} | "
            f"{_optional(row.get('infeasible_episodes'), 'd')} | {_choice_text(row['choice'])} |"
        )
    return lines


def term_table(record: Mapping[str, Any]) -> str:
    """Per method, the mean energy of each term on the chosen plans and how often each hard
    term holds on the plan and on the executed path."""
    lines = [
        "| layout | method | term | plan energy | holds on plan | holds on executed path |",
        "|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        for term in row["terms"]:
            holds = (
                (_rate(term["plan_holds"]), _rate(term["path_holds"]))
                if "plan_holds" in term
                else ("—", "—")
            )
            energy = term["plan_energy"]
            lines.append(
                f"| {row['layout']} | {method_text(row)} | {term['label']} ({term['term']}) | "
                f"{energy['mean']:.3g} ± {energy['stderr']:.2g} | {holds[0]} | {holds[1]} |"
            )
    return "\n".join(lines) + "\n"
