"""Closed-loop control against open loop on U-Maze: results/control.{md,json}.

    python scripts/closed_loop.py                      # train if missing, select, report
    python scripts/closed_loop.py --render-only        # rewrite control.md from control.json

The run ``runs/maze2d-umaze-padded-cpu`` (``configs/maze2d-umaze-padded.yaml``, 7,000 steps) is
trained if missing. Each MPC setting in ``CANDIDATES`` is scored on the selection seed
(``--select-seed``, ``--select-episodes``); the best one (mean D4RL score over single-task and
Multi2D) is then reported on the evaluation seed beside open loop (tracking the plan in time,
and pursuing its path), the same setting without each of its parts (pinned arrival, goal latch)
and with the other low-level controller, and naive replanning, all on the same model and
episodes.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import jax
from reproduce import NAIVE_REPLANNING, read_metrics, train_unless_done, training_record

from planner.eval.scoring import run_eval
from planner.provenance import git_revision

RESULTS = Path("results")
CONFIG = Path("configs/maze2d-umaze-padded.yaml")
TRAINING = ["train.steps=7000", "train.checkpoint_every=1000", "train.keep_checkpoints=null"]
MPC = ["eval.policy=mpc"]
PURSUIT = "eval.lookahead=0.2"  # follow the plan's path, not its timing
CANDIDATES: dict[str, list[str]] = {  # name -> eval overrides, scored on the selection seed
    # (replanning from noise, every 10 steps and on deviation lost to these on commit 999fe4a:
    # results/logs/closed-loop-999fe4a.log)
    "every 50, warm start 16": [*MPC, "eval.replan_every=50", "eval.warm_start_level=16"],
    "every 25, warm start 16": [*MPC, "eval.replan_every=25", "eval.warm_start_level=16"],
    "every 50, warm start 16, pursuit": [
        *MPC,
        "eval.replan_every=50",
        "eval.warm_start_level=16",
        PURSUIT,
    ],
    "every 25, warm start 16, pursuit": [
        *MPC,
        "eval.replan_every=25",
        "eval.warm_start_level=16",
        PURSUIT,
    ],
}


def score(
    run_dir: Path,
    overrides: list[str],
    seed: int,
    episodes: int,
    multi: bool,
    tag: str,
    config_file: Path | None = None,
):
    """One evaluation's summary row (plan settings from ``config_file`` if given, else the
    run's)."""
    summary = run_eval(
        run_dir,
        config_file,
        overrides=[*overrides, f"eval.seed={seed}", f"eval.episodes={episodes}",
                   f"eval.multi_task={multi}"],
        out_dir=run_dir / "eval" / f"control-{tag}-{'multi2d' if multi else 'single'}-seed{seed}",
        show_progress=False,
    )  # fmt: skip
    scores = summary["scores"]
    row = {
        "overrides": overrides,
        "multi_task": multi,
        "seed": seed,
        "episodes": episodes,
        "score": scores["normalized_d4rl"],
        "success_rate": scores["success_rate"],
        "time_to_goal": scores["time_to_goal"],
        "replans_per_episode": scores["replans_per_episode"],
        "policy_seconds_per_episode": scores["policy_seconds_per_episode"],
        "eval_seconds": summary["seconds"],
    }
    mode = "Multi2D" if multi else "single"
    print(
        f"  {tag} {mode} seed {seed}: {row['score']['mean']:.1f} ± {row['score']['stderr']:.1f}, "
        f"{row['replans_per_episode']['mean']:.1f} replans, {summary['seconds']} s",
        flush=True,
    )
    return row


def select(run_dir: Path, seed: int, episodes: int) -> tuple[str, list[dict[str, Any]]]:
    """The candidate with the best mean score over single-task and Multi2D on ``seed``."""
    rows = []
    for index, (name, overrides) in enumerate(CANDIDATES.items()):
        pair = [
            score(run_dir, overrides, seed, episodes, multi, f"select{index}")
            for multi in (False, True)
        ]
        rows.append({"setting": name, "single": pair[0], "multi2d": pair[1]})
    best = max(
        rows, key=lambda row: row["single"]["score"]["mean"] + row["multi2d"]["score"]["mean"]
    )
    return best["setting"], rows


def report_settings(chosen: str) -> dict[str, list[str]]:
    """The reported rows: open loop (and with the goal latch alone), the chosen MPC setting and
    its ablations, naive replanning."""
    overrides = CANDIDATES[chosen]
    every = [o for o in overrides if o.startswith(("eval.replan_every", "eval.replan_deviation"))]
    warm = [o for o in overrides if o.startswith("eval.warm_start_level")]
    pursuing = PURSUIT in overrides
    controller = [o for o in overrides if o != PURSUIT] if pursuing else [*overrides, PURSUIT]
    return {
        "open loop (D4RL protocol)": ["eval.policy=open_loop"],
        "open loop, path pursuit": ["eval.policy=open_loop", PURSUIT],
        "open loop + goal latch (no replanning)": [*MPC],
        f"MPC: {chosen}": overrides,
        f"MPC: {chosen}, {'tracking in time' if pursuing else 'path pursuit'}": controller,
        f"MPC: {chosen}, no goal latch": [*overrides, "eval.latch=false"],
        f"MPC: {chosen}, arrival not pinned": [*overrides, "eval.pin_arrival=false"],
        "naive replanning (same schedule, neither)": [*NAIVE_REPLANNING, *every, *warm],
    }


def cell(value: dict[str, float] | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value['mean']:.{digits}f} ± {value['stderr']:.{digits}f}"


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "# Closed-loop control (U-Maze)",
        "",
        f"Made by `{record['command']}`; git {record['git_revision']}, "
        f"{record['device']}, {record['machine']}.",
        "",
        f"Model: `{record['run_dir']}`, `{record['config']}` `--set "
        + "` `--set ".join(record["training_overrides"])
        + f"` ({record['training']['steps']:,} steps, {record['training']['wall_minutes']} min "
        "of training on this CPU). Padded windows: plans may arrive before their last row and "
        "stay, which pinned-arrival replans ask for.",
        "",
        "Normalized score (D4RL references) ± standard error over episodes. *Open loop*: one "
        "plan per episode, tracked (the D4RL protocol). *MPC*: receding-horizon replanning "
        "(`planner eval --policy mpc`) with the goal pinned at the previous plan's arrival step, "
        "the previous plan shifted by the executed steps as the warm start, and a latch that "
        "holds the goal at rest once the agent is within 0.5 of it; *open loop + goal latch* is "
        "that latch on one open-loop plan. *Path pursuit* (`eval.lookahead=0.2`) steers "
        "toward the point 0.2 further along the plan's path instead of tracking the plan's "
        "next state in time. *Naive replanning* is what `eval.replan_every` did before the "
        "control layer: a fresh full-horizon plan "
        "whose goal sits on its last row, and no latch. Policy seconds are each episode's "
        "share of its batch's planning and acting wall time (batches of 25).",
        "",
        f"Settings chosen on seed {record['select_seed']} ({record['select_episodes']} episodes "
        f"per mode; best mean of single-task and Multi2D), reported on seed "
        f"{record['eval_seed']} ({record['episodes']} episodes).",
        "",
        "| policy | mode | score | success | time to goal (steps) | replans / episode | "
        "policy s / episode | eval wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        for mode in ("single", "multi2d"):
            r = row[mode]
            lines.append(
                f"| {row['setting']} | {'Multi2D' if mode == 'multi2d' else 'single-task'} | "
                f"{cell(r['score'])} | {100 * r['success_rate']:.0f} % | "
                f"{cell(r['time_to_goal'])} | {cell(r['replans_per_episode'])} | "
                f"{cell(r['policy_seconds_per_episode'], 2)} | {r['eval_seconds']} s |"
            )
    lines += [
        "",
        f"## Selection (seed {record['select_seed']}, {record['select_episodes']} episodes)",
        "",
        "| MPC setting | overrides | single-task | Multi2D | replans / episode (single) |",
        "|---|---|---|---|---|",
    ]
    for row in record["selection"]:
        lines.append(
            f"| {row['setting']} | `{' '.join(row['single']['overrides'])}` | "
            f"{cell(row['single']['score'])} | {cell(row['multi2d']['score'])} | "
            f"{cell(row['single']['replans_per_episode'])} |"
        )
    notes = RESULTS / "control_notes.md"
    if notes.is_file():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/maze2d-umaze-padded-cpu"))
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--select-episodes", type=int, default=50)
    parser.add_argument("--select-seed", type=int, default=1)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    json_path, md_path = RESULTS / "control.json", RESULTS / "control.md"
    if args.render_only:
        md_path.write_text(markdown(json.loads(json_path.read_text())))
        return
    began, revision = time.perf_counter(), git_revision()  # the code that runs
    train_unless_done(CONFIG, TRAINING, args.run_dir)
    chosen, selection = select(args.run_dir, args.select_seed, args.select_episodes)
    print(f"chosen: {chosen}", flush=True)
    rows = []
    for index, (name, overrides) in enumerate(report_settings(chosen).items()):
        pair = [
            score(args.run_dir, overrides, 0, args.episodes, multi, f"report{index}")
            for multi in (False, True)
        ]
        rows.append({"setting": name, "single": pair[0], "multi2d": pair[1]})
    record = {
        "command": "python scripts/closed_loop.py",
        "git_revision": revision,
        "device": jax.devices()[0].platform,
        "machine": platform.platform(),
        "run_dir": str(args.run_dir),
        "config": str(CONFIG),
        "training_overrides": TRAINING,
        "training": training_record(read_metrics(args.run_dir)),
        "select_seed": args.select_seed,
        "select_episodes": args.select_episodes,
        "eval_seed": 0,
        "episodes": args.episodes,
        "chosen": chosen,
        "selection": selection,
        "rows": rows,
        "minutes": round((time.perf_counter() - began) / 60, 1),
    }
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    md_path.write_text(markdown(record))
    print(f"wrote {md_path} ({record['minutes']} min)")


if __name__ == "__main__":
    main()
