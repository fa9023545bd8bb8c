"""Summarize every regenerated locomotion dataset in the data directory into
results/data-locomotion.md (+ data-locomotion.json).

    python scripts/data_stats.py [--data-dir DIR]

Every number comes from the files' own records: ``planner data generate <body>-<kind>-v2``
stores its steps, episodes, returns, behaviour-policy training steps and seconds, collection
speed and git revision in the hdf5 attributes. (``results/data.md`` is the Maze2D report of
``scripts/data_report.py``.)
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import h5py

from planner.envs.locomotion import locomotion_dataset_names
from planner.paths import data_dir

RESULTS = Path("results")
COMMAND = "python scripts/data_stats.py"


def dataset_records(directory: Path) -> list[dict]:
    """The hdf5 attributes of each ``<name>.hdf5`` (default size, seed 0) found in ``directory``,
    with the command that makes the file."""
    rows = []
    for name in locomotion_dataset_names():
        path = directory / f"{name}.hdf5"
        if not path.is_file():
            continue
        with h5py.File(path) as handle:
            attrs = {k: v.item() if hasattr(v, "item") else v for k, v in handle.attrs.items()}
        rows.append({**attrs, "file": str(path), "command": f"planner data generate {name}"})
    return rows


def markdown(rows: list[dict], directory: Path) -> str:
    lines = [
        "# Regenerated D4RL locomotion datasets",
        "",
        f"Made by `{COMMAND}` after `planner data generate <body>-<kind>-v2` (the command of each",
        "row; default size, seed 0). Behaviour policies: CrossQ (256-wide critic), trained on",
        "one simulator until the deterministic evaluation return (5 episodes every 1,000 steps)",
        "reached one third of D4RL's expert return (*medium*), or for a step budget (*expert*,",
        "evaluated every 5,000 steps);",
        "data are rollouts of the stochastic policy, 32 simulators stepped together.",
        f"Data directory: `{directory}`. Machine: {platform.platform()}.",
        "",
        "| dataset | steps | episodes | return mean ± std | min / max | normalized | "
        "behaviour steps | behaviour time | behaviour eval return | collection steps/s | "
        "generation time | git | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        speed = row.get("collect_steps_per_second")
        lines.append(
            f"| {row['dataset']} | {row['steps']:,} | {row['episodes']:,} | "
            f"{row['return_mean']:,.1f} ± {row['return_std']:,.1f} | "
            f"{row['return_min']:,.1f} / {row['return_max']:,.1f} | {row['normalized_mean']:.1f} | "
            f"{row['behaviour_steps']:,} | {row['behaviour_seconds'] / 60:.1f} min | "
            f"{row['behaviour_eval_return']} | {f'{speed:,}' if speed else '-'} | "
            f"{row['generate_seconds'] / 60:.1f} min | {row['git_revision']} | "
            f"`{row['command']}` |"
        )
    if not rows:
        lines.append("| (no regenerated locomotion dataset found) |" + " |" * 12)
    lines += [
        "",
        "Behaviour time is the policy's training wall time when it was trained (reused by the",
        "other kinds); generation time is the whole `planner data generate` call, training",
        "included when it happened there. Normalized: D4RL's formula with its reference returns.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="default: $PLANNER_DATA_DIR or ~/.cache/planner")
    args = parser.parse_args()
    directory = data_dir(args.data_dir)
    rows = dataset_records(directory)
    RESULTS.mkdir(exist_ok=True)
    report = {"command": COMMAND, "data_dir": str(directory), "datasets": rows}
    (RESULTS / "data-locomotion.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "data-locomotion.md").write_text(markdown(rows, directory))
    print(f"wrote {RESULTS / 'data-locomotion.md'} ({len(rows)} datasets)")


if __name__ == "__main__":
    main()
