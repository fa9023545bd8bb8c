"""Summarize every regenerated locomotion dataset in the data directory into
results/data-locomotion.md (+ data-locomotion.json); the stored rows of datasets not in the
directory are kept.

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
import jax
import mujoco
import numpy as np

from planner.paths import data_dir
from planner.tasks.locomotion import locomotion_dataset_names

RESULTS = Path("results")
STORED = RESULTS / "data-locomotion.json"
COMMAND = "python scripts/data_stats.py"
MACHINE = f"{platform.platform()}, jax {jax.__version__}, mujoco {mujoco.__version__}"


def episode_shape(rewards: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray) -> dict:
    """Mean episode length, the share of episodes that end in a fall (a terminal) and the mean
    reward per step of a flat ``[N]`` dataset."""
    ends = np.flatnonzero(terminals | timeouts)
    lengths = np.diff(np.concatenate([[-1], ends]))
    return {
        "episode_length": float(lengths.mean()),
        "fall_share": float(terminals[ends].mean()),
        "reward_per_step": float(rewards.mean()),
    }


def dataset_shapes(name: str, handle: h5py.File) -> list[dict]:
    """:func:`episode_shape` of the file, or of its medium and expert halves for a medium-expert
    file (the two datasets concatenated, medium first)."""
    arrays = [handle[key][:] for key in ("rewards", "terminals", "timeouts")]
    if "medium-expert" not in name:
        return [episode_shape(*arrays)]
    half = len(arrays[0]) // 2
    return [episode_shape(*(a[:half] for a in arrays)), episode_shape(*(a[half:] for a in arrays))]


def dataset_records(directory: Path) -> list[dict]:
    """The hdf5 attributes of each ``<name>.hdf5`` (default size, seed 0) found in ``directory``,
    with its episodes' shape (:func:`dataset_shapes`) and the command that makes the file."""
    rows = []
    for name in locomotion_dataset_names():
        path = directory / f"{name}.hdf5"
        if not path.is_file():
            continue
        with h5py.File(path) as handle:
            attrs = {k: v.item() if hasattr(v, "item") else v for k, v in handle.attrs.items()}
            shapes = dataset_shapes(name, handle)
        command = f"planner data generate {name}"
        rows.append(
            {**attrs, "shapes": shapes, "file": str(path), "command": command, "machine": MACHINE}
        )
    return rows


def shape_cells(row: dict) -> str:
    """The episode-shape columns of a row (``a / b`` for a medium-expert row's halves; ``-``
    for stored rows measured before the columns existed)."""
    shapes = row.get("shapes")
    if not shapes:
        return "- | - | -"
    return " | ".join(
        " / ".join(fmt.format(shape[key]) for shape in shapes)
        for key, fmt in (
            ("episode_length", "{:.0f}"),
            ("fall_share", "{:.1%}"),
            ("reward_per_step", "{:.2f}"),
        )
    )


def merged_records(stored: list[dict], found: list[dict]) -> list[dict]:
    """``found`` with the ``stored`` rows of the datasets not found, in dataset order."""
    names = {row["dataset"] for row in found}
    rows = found + [row for row in stored if row["dataset"] not in names]
    order = locomotion_dataset_names()
    return sorted(rows, key=lambda row: order.index(row["dataset"]))


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
        f"Data directory: `{directory}`. Each row names the machine and the jax and MuJoCo",
        "versions that generated it (rows without one predate the column). The same command and",
        "seed make the same file on one machine, not across machines or versions: arithmetic",
        "differs, the behaviour policy's training diverges, and it stops at another step.",
        "",
        "| dataset | steps | episodes | return mean ± std | min / max | normalized | "
        "episode length | falls | reward / step | behaviour steps | behaviour time | behaviour eval return | collection steps/s | "
        "generation time | git | machine | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        speed = row.get("collect_steps_per_second")
        lines.append(
            f"| {row['dataset']} | {row['steps']:,} | {row['episodes']:,} | "
            f"{row['return_mean']:,.1f} ± {row['return_std']:,.1f} | "
            f"{row['return_min']:,.1f} / {row['return_max']:,.1f} | {row['normalized_mean']:.1f} | "
            f"{shape_cells(row)} | {row['behaviour_steps']:,} | {row['behaviour_seconds'] / 60:.1f} min | "
            f"{row['behaviour_eval_return']} | {f'{speed:,}' if speed else '-'} | "
            f"{row['generate_seconds'] / 60:.1f} min | {row['git_revision']} | "
            f"{row.get('machine', '-')} | `{row['command']}` |"
        )
    if not rows:
        lines.append("| (no regenerated locomotion dataset found) |" + " |" * 16)
    lines += [
        "",
        "Behaviour time is the policy's training wall time when it was trained (reused by the",
        "other kinds); generation time is the whole `planner data generate` call, training",
        "included when it happened there. Normalized: D4RL's formula with its reference returns.",
        "Episode length, falls (the share of episodes that end in a terminal rather than a",
        "timeout) and reward / step: medium-expert rows give the medium and the expert half.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="default: $PLANNER_DATA_DIR or ~/.cache/planner")
    args = parser.parse_args()
    directory = data_dir(args.data_dir)
    stored = json.loads(STORED.read_text())["datasets"] if STORED.is_file() else []
    rows = merged_records(stored, dataset_records(directory))
    RESULTS.mkdir(exist_ok=True)
    report = {"command": COMMAND, "data_dir": str(directory), "datasets": rows}
    STORED.write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "data-locomotion.md").write_text(markdown(rows, directory))
    print(f"wrote {RESULTS / 'data-locomotion.md'} ({len(rows)} datasets)")


if __name__ == "__main__":
    main()
