"""How the hierarchical planner's subgoal plans are executed, measured on a selection seed:
results/hierarchy_settings.{md,json}.

    python scripts/hierarchy_settings.py --tasks umaze medium large
    python scripts/hierarchy_settings.py --tasks large --settings "tracking in time"
    python scripts/hierarchy_settings.py --render-only

For each maze the jumpy run of ``make reproduce-maze2d`` (``runs/maze2d-<task>-jumpy-cpu``,
trained here if missing) is evaluated under its config file's execution (``plan``: walls guide
the subgoals, the shortest of 4 candidates is kept; ``eval``: MPC every 50 steps, warm start,
the interpolated subgoals followed by path pursuit or tracked in time, goal latch, first plans
arriving as early as they can) and under each alternative below, single-task and Multi2D, on
the selection seed (1). The configs' settings were chosen from this table;
``results/maze2d.md`` reports them on seed 0. Mazes not named in ``--tasks`` keep their stored
rows (when stored with the same seed), and so do settings not named in ``--settings``; every
row names the revision it was measured at.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from closed_loop import cell, score
from reproduce import RESULTS, config_path, planning_cost, record_or_render, train_or_reuse

from planner.provenance import git_revision

STORED = RESULTS / "hierarchy_settings.json"

SETTINGS: dict[str, list[str]] = {  # name -> overrides of the config file's plan and eval
    "config file as shipped (MPC every 50, warm start 8, walls guide, shortest of 4)": [],
    "one candidate": ["plan.n_candidates=1", "plan.objectives=[]"],
    "shortest of 16": ["plan.n_candidates=16"],
    "walls select (not guiding)": ["plan.walls=select"],
    "path pursuit 0.2": ["eval.lookahead=0.2"],
    "tracking in time": ["eval.lookahead=null"],
    "first plan arrives on its last row (no arrival search)": ["eval.arrival_search=0"],
    "first plan arrives at the earliest of 8 times it can": ["eval.arrival_search=8"],
    "replan every 25": ["eval.replan_every=25"],
    "replans from noise": ["eval.warm_start_level=null"],
    "one plan + goal latch (no replanning)": ["eval.replan_every=0"],
    "open loop (D4RL protocol: no replanning, no latch)": [
        "eval.policy=open_loop",
        "eval.replan_every=0",
    ],
}


def measure(task: str, seed: int, episodes: int, names: list[str]) -> dict[str, Any]:
    """The rows of the settings ``names`` for ``task``'s jumpy run, each with the revision it
    was measured at."""
    run_dir, overrides = train_or_reuse(task, "cpu", "jumpy", Path("runs"))
    rows = []
    for name in names:
        settings, index = SETTINGS[name], list(SETTINGS).index(name)
        pair = [
            score(
                run_dir,
                settings,
                seed,
                episodes,
                multi,
                f"hierarchy{index}",
                config_path(task, "jumpy"),
            )
            for multi in (False, True)
        ]
        rows.append({
            "setting": name, "overrides": settings, "single": pair[0], "multi2d": pair[1],
            "git_revision": git_revision(),
        })  # fmt: skip
    return {
        "task": task,
        "run_dir": str(run_dir),
        "training_overrides": overrides,
        "git_revision": git_revision(),
        "rows": rows,
    }


def merged(stored: dict[str, Any] | None, measured: dict[str, Any]) -> dict[str, Any]:
    """``measured``'s rows with the rows of ``stored`` (the same maze and seed, measured
    before) whose settings were not measured again; current settings first, in table order."""
    names = {row["setting"] for row in measured["rows"]}
    kept = [row for row in (stored or {}).get("rows", []) if row["setting"] not in names]
    for row in kept:  # rows stored before rows carried their own revision
        row.setdefault("git_revision", stored.get("git_revision"))
    order = list(SETTINGS)
    rows = sorted(
        [*measured["rows"], *kept],
        key=lambda row: order.index(row["setting"]) if row["setting"] in order else len(order),
    )
    return {**measured, "rows": rows}


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# Executing hierarchical plans: settings (selection seed)",
        "",
        f"Made by `python scripts/hierarchy_settings.py --tasks {' '.join(record['tasks'])}` "
        "(`--settings NAME` for some rows); "
        f"git {record['git_revision']} (the last command that wrote this page; each row names "
        f"its own), {record['device']}, {record['machine']}. Seed "
        f"{record['seed']} (the selection seed; results/maze2d.md reports seed 0), "
        "normalized score (D4RL references) ± standard error; the jumpy run of each maze at the "
        "`cpu` budget. *s / plan*: policy wall time per plan, 25 episodes batched.",
    ]
    for maze in record["mazes"]:
        lines += [
            "",
            f"## {maze['task']} (`{maze['run_dir']}`, {maze['rows'][0]['single']['episodes']} "
            f"episodes per cell, git {maze.get('git_revision', record['git_revision'])})",
            "",
            "| execution | single-task | success | Multi2D | success | plans / episode | s / plan "
            "| git |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in maze["rows"]:
            single, multi = row["single"], row["multi2d"]
            lines.append(
                f"| {row['setting']} | {cell(single['score'])} | "
                f"{100 * single['success_rate']:.0f} % | {cell(multi['score'])} | "
                f"{100 * multi['success_rate']:.0f} % | {planning_cost(single)} | "
                f"{row.get('git_revision', maze.get('git_revision', record['git_revision']))} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=["umaze", "medium", "large"],
                        default=["umaze", "medium", "large"])  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        metavar="SETTING", help="rows to measure (default: all); the stored "
                        "rows of the other settings are kept")  # fmt: skip
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()

    def measure_all() -> dict[str, Any]:
        """The mazes asked for, measured now, and the stored mazes of the same seed kept."""
        stored = json.loads(STORED.read_text()) if STORED.exists() else {}
        kept = [maze for maze in stored.get("mazes", []) if stored.get("seed") == args.seed]
        mazes = {maze["task"]: maze for maze in kept}
        for task in args.tasks:
            mazes[task] = merged(
                mazes.get(task), measure(task, args.seed, args.episodes, args.settings)
            )
        ordered = [mazes[task] for task in ("umaze", "medium", "large") if task in mazes]
        return {"tasks": [maze["task"] for maze in ordered], "seed": args.seed, "mazes": ordered}

    record_or_render("hierarchy_settings", args.render_only, measure_all, markdown)


if __name__ == "__main__":
    main()
