"""Summarize a finished training run into results/: a markdown page and its loss curve.

    planner train --config configs/maze2d-umaze.yaml --set train.steps=7000 \\
        --set train.checkpoint_every=1000 --run-dir runs/maze2d-umaze-cpu
    python scripts/training_report.py runs/maze2d-umaze-cpu --name training-umaze-cpu
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import jax
import yaml

from planner.checkpoints import checkpoint_manager, read_record

RESULTS = Path("results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True, help="results/<name>.md")
    parser.add_argument("--command", default="", help="the training command, for the page")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines()]
    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    figure = RESULTS / "figures" / f"{args.name}-curve.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.run_dir / "training_curve.png", figure)
    manager = checkpoint_manager(args.run_dir)
    checkpoints = sorted(manager.all_steps())
    revision = read_record(manager, checkpoints[-1])["git_revision"]
    marks = [row for row in rows if row["step"] in {1000, 2000, 4000, rows[-1]["step"]}]
    lines = [
        f"# Training run: {args.run_dir.name}",
        "",
        "Made by:",
        "",
        "```bash",
        args.command or f"planner train --config <config> --run-dir {args.run_dir}",
        f"python scripts/training_report.py {args.run_dir} --name {args.name}",
        "```",
        "",
        f"Dataset `{config['data']['dataset']}` (regenerated, seed {config['data']['generate_seed']}, "
        f"`{config['data']['segmentation']}` segmentation), horizon {config['data']['horizon']}, "
        f"{config['diffusion']['n_diffusion_steps']} diffusion steps, batch {config['train']['batch_size']}, "
        f"lr {config['train']['learning_rate']}, training seed {config['train']['seed']}. "
        f"Device: {jax.devices()[0].device_kind} ({platform.platform()}), one step per dispatch, "
        f"git {revision}. "
        f"Checkpoints kept: steps {', '.join(map(str, checkpoints))}.",
        "",
        "| step | loss | first-action loss | wall time | steps/s so far (after compile) |",
        "|---|---|---|---|---|",
        *[
            f"| {row['step']:,} | {row['loss']:.4f} | {row['first_action_loss']:.4f} | "
            f"{row['wall_seconds'] / 60:.1f} min | {row['steps_per_second']:.2f} |"
            for row in marks
        ],
        "",
        f"First dispatch (trace + compile + one step): {rows[0]['compile_seconds']:.1f} s.",
        "No score yet: sampling and simulator evaluation arrive with the planning and evaluation",
        "issues, which will report time-to-score from runs like this one.",
        "",
        f"![loss curve](figures/{figure.name})",
        "",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / args.name}.md")


if __name__ == "__main__":
    main()
