"""The ``planner`` command. Thin: parse arguments, call the library, print what happened.

planner data generate maze2d-umaze-v1|hopper-medium-v2|pointmaze-medium-stitch-v0 [--steps N] ...
planner data generate GYM_ENV_ID --kind medium --stop-return R [--steps N] [--seed S] ...
planner data info PATH_OR_ID [--source ...] [--segmentation ...] [--plot FILE]
planner train --config FILE [--set section.key=value ...] [--run-dir DIR]
              [--with value bc invdyn] [--overfit-batch]
planner train-value --config FILE [--set ...] [--run-dir DIR]
planner train-bc --config FILE [--set ...] [--run-dir DIR]
planner train-invdyn --config FILE [--set ...] [--run-dir DIR]
planner train-goal-value --config FILE [--set ...] [--run-dir DIR]
planner plan --run RUN_DIR [--config FILE] [--set plan.key=value ...] [--start x,y] [--goal x,y]
planner eval --run RUN_DIR [--episodes N] [--seed S] [--multi-task] [--policy mpc] [--set ...]
planner config show --config FILE [--set section.key=value ...] [--out FILE]
planner config docs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from planner.config import describe_fields, load_config, save_config
from planner.data.episodes import summarize
from planner.errors import PlannerError
from planner.paths import RUN_SUFFIXES
from planner.runtime import enable_compilation_cache, initialize_distributed
from planner.tasks import generated_family, generated_names
from planner.tasks.locomotion import DATASET_KINDS
from planner.tasks.maze2d import MAZE_TASKS


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    enable_compilation_cache()
    try:
        initialize_distributed()
        return args.handler(args)
    except (PlannerError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planner", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="command")

    data = commands.add_parser("data", help="generate and inspect datasets")
    data_commands = data.add_subparsers(required=True, metavar="action")

    generate = data_commands.add_parser(
        "generate",
        help="regenerate a Maze2D dataset, a D4RL locomotion one with CrossQ behaviour "
        "policies or an OGBench pointmaze one, or make one the same way for any Gymnasium "
        "environment",
        description="Regenerate a Maze2D dataset, a D4RL locomotion one (CrossQ behaviour "
        "policies, D4RL's recipe) or an OGBench pointmaze one (OGBench's recipe), or make one "
        "the same way for any registered Gymnasium environment: e.g. `planner data generate "
        "InvertedPendulum-v5 --kind medium "
        "--stop-return 500 --steps 100000` writes InvertedPendulum-v5-medium-return500-"
        "100000steps-seed0.hdf5 (D4RL layout) to the data directory; train on it with data.env: "
        "InvertedPendulum-v5, data.source: generated, data.dataset: "
        "InvertedPendulum-v5-medium-return500, data.generate_steps: 100000.",
    )
    generate.add_argument(
        "name",
        metavar="name",
        help=f"a Maze2D id ({', '.join(MAZE_TASKS)}), <hopper|walker2d|halfcheetah>-"
        "<medium|medium-replay|expert|medium-expert>-v2, an OGBench pointmaze-<medium|large|"
        "giant|teleport>-<navigate|stitch>-v0 (OGBench's recipe, .npz), or a registered "
        "Gymnasium environment id (with --kind and --stop-return)",
    )
    generate.add_argument(
        "--kind",
        choices=DATASET_KINDS,
        default="medium",
        help="Gymnasium id only: medium = rollouts of a policy stopped at --stop-return, "
        "medium-replay = its replay buffer, expert = a policy trained --expert-train-steps "
        "steps, medium-expert = both (default: medium)",
    )
    generate.add_argument(
        "--stop-return",
        type=float,
        metavar="R",
        help="Gymnasium id only: the evaluation return (5 deterministic episodes, every 1,000 "
        "steps) at which the medium policy's training stops; needed by the medium kinds",
    )
    generate.add_argument(
        "--steps",
        type=_positive_int,
        help="default: 1M / 2M / 4M (Maze2D), 1M per policy (locomotion and Gymnasium ids; "
        "medium-replay: ignored)",
    )
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", type=Path, help="output .hdf5 file (default: in --data-dir)")
    generate.add_argument("--data-dir", help="default: $PLANNER_DATA_DIR or ~/.cache/planner")
    generate.add_argument(
        "--reference-episodes",
        type=int,
        default=100,
        help="episodes per reference policy (0 to skip the reference scores)",
    )
    generate.add_argument(
        "--expert-train-steps",
        type=_positive_int,
        help="training steps of the locomotion (or Gymnasium) expert policy (default: "
        "planner.data.locomotion.EXPERT_TRAIN_STEPS, 300,000)",
    )
    generate.add_argument("--minari", metavar="ID", help="also write a local Minari dataset")
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    generate.set_defaults(handler=_data_generate)

    info = data_commands.add_parser("info", help="summarize a dataset and plot its coverage")
    info.add_argument("dataset", help="a .hdf5 path, a Maze2D/D4RL name, or a Minari id")
    info.add_argument("--source", choices=("auto", "generated", "d4rl", "minari"), default="auto")
    info.add_argument("--segmentation", choices=("timeouts", "eval_goal"), default="timeouts")
    info.add_argument("--data-dir", help="where regenerated datasets are looked up")
    info.add_argument("--plot", type=Path, help="coverage PNG (default: next to the dataset)")
    info.add_argument("--json", action="store_true", help="print the summary as json")
    info.set_defaults(handler=_data_info)

    for name, kind, what in (
        ("train", "diffusion", "train the trajectory diffusion model"),
        ("train-value", "value", "train the value model (return-to-go of noisy windows)"),
        ("train-bc", "bc", "train the behaviour-cloning baseline (an MLP policy)"),
        ("train-invdyn", "invdyn", "train an inverse-dynamics model (plan.inverse_dynamics)"),
    ):
        trainer = commands.add_parser(name, help=what)
        trainer.add_argument("--config", required=True, type=Path)
        trainer.add_argument("--set", action="append", default=[], metavar="section.key=value")
        trainer.add_argument(
            "--run-dir",
            type=Path,
            help="default: <logging.run_root>/<config name>[-value|-bc|-invdyn]",
        )
        trainer.add_argument(
            "--overfit-batch", action="store_true", help="debug: train on one fixed batch"
        )
        if kind == "diffusion":
            trainer.add_argument(
                "--with", dest="also", nargs="+", choices=("value", "bc", "invdyn"), default=[],
                help="then train these models of the same config too, into <run dir>-value, "
                "-bc and -invdyn (where value objectives and plan.inverse_dynamics look)",
            )  # fmt: skip
        trainer.set_defaults(handler=_train, kind=kind, also=[])

    goal_value = commands.add_parser(
        "train-goal-value",
        help="train a goal-conditioned value, a learned temporal distance (eval.subgoal_value)",
    )
    goal_value.add_argument("--config", required=True, type=Path)
    goal_value.add_argument("--set", action="append", default=[], metavar="section.key=value")
    goal_value.add_argument(
        "--run-dir", type=Path, help="default: <logging.run_root>/<config name>-goalvalue"
    )
    goal_value.set_defaults(handler=_train_goal_value)

    plan = commands.add_parser("plan", help="plan with a trained run, goals and constraints")
    plan.add_argument("--run", required=True, type=Path, help="a `planner train` run directory")
    plan.add_argument("--config", type=Path, help="a YAML file whose plan: section is used")
    plan.add_argument("--set", action="append", default=[], metavar="plan.key=value")
    plan.add_argument("--start", type=_point, help="x,y start position (at rest)")
    plan.add_argument("--goal", type=_point, help="x,y goal position")
    plan.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    plan.add_argument("--out", type=Path, help="output directory (default: RUN/plans)")
    plan.set_defaults(handler=_plan)

    evaluate = commands.add_parser("eval", help="score a trained run in the simulator")
    evaluate.add_argument("--run", required=True, type=Path, help="a `planner train` run directory")
    evaluate.add_argument(
        "--config",
        type=Path,
        help="a YAML file whose plan: and eval: sections are used (default: the run's own)",
    )
    evaluate.add_argument(
        "--set", action="append", default=[], metavar="plan.key=value or eval.key=value"
    )
    evaluate.add_argument("--episodes", type=_positive_int, help="default: eval.episodes (100)")
    evaluate.add_argument("--seed", type=int, help="seed of starts and goals (default: eval.seed)")
    evaluate.add_argument(
        "--multi-task", action="store_true", help="Multi2D: a random goal per episode"
    )
    evaluate.add_argument(
        "--policy",
        choices=("open_loop", "mpc", "route", "straight"),
        help="open_loop: one tracked plan per episode (the D4RL protocol; default); "
        "mpc: receding-horizon replanning that holds the goal once reached; route: mpc "
        "following the shortest route over the known walls, no model (a map-assisted baseline); "
        "straight (OGBench): mpc along straight lines to the goal or subgoal, no model",
    )
    evaluate.add_argument("--replan-every", type=int, metavar="K", help="mpc: replan every K steps")
    evaluate.add_argument(
        "--warm-start-level", type=int, metavar="L", help="replans start from the previous plan"
    )
    evaluate.add_argument("--batch-size", type=_positive_int, help="episodes run together")
    evaluate.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    evaluate.add_argument(
        "--out", type=Path, help="default: RUN/eval/{single,multi2d,locomotion}-seedS"
    )
    evaluate.set_defaults(handler=_eval)

    config = commands.add_parser("config", help="inspect configs")
    config_commands = config.add_subparsers(required=True, metavar="action")
    show = config_commands.add_parser("show", help="print a fully resolved config")
    show.add_argument("--config", required=True, type=Path)
    show.add_argument("--set", action="append", default=[], metavar="section.key=value")
    show.add_argument("--out", type=Path, help="also save the resolved config here")
    show.set_defaults(handler=_config_show)
    docs = config_commands.add_parser("docs", help="print every config field with its meaning")
    docs.set_defaults(handler=_config_docs)
    return parser


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y such as 3,1; got {text!r}") from None
    return x, y


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


# --- planning --------------------------------------------------------------------------------


def _eval(args: argparse.Namespace) -> int:
    from planner.eval.scoring import run_eval

    flags = {
        "episodes": args.episodes,
        "seed": args.seed,
        "multi_task": args.multi_task or None,
        "policy": args.policy,
        "replan_every": args.replan_every,
        "warm_start_level": args.warm_start_level,
        "batch_size": args.batch_size,
    }
    overrides = args.set + [f"eval.{k}={v}" for k, v in flags.items() if v is not None]
    summary = run_eval(args.run, args.config, overrides, args.step, args.out)
    scores = summary["scores"]
    out = Path(summary["out_dir"])
    if "per_task" in scores:  # an OGBench maze: success per evaluation task
        tasks = ", ".join(
            f"{name} {rate['success']:.0f} %" for name, rate in scores["per_task"].items()
        )
        print(
            f"{summary['task']}, {scores['episodes']} episodes, checkpoint "
            f"{summary['checkpoint_step']}: success {scores['success']:.1f} ± "
            f"{scores['stderr']:.1f} % ({tasks}); {summary['decisions_per_second']} decisions/s, "
            f"{summary['seconds']} s"
        )
        print(f"wrote {out / 'scores.json'}, {out / 'rollouts.png'}, {out / 'rollouts.npz'}")
        return 0
    d4rl, ours = scores.get("normalized_d4rl"), scores.get("normalized_this_simulator")
    if "multi_task" in summary:
        mode = " Multi2D" if summary["multi_task"] else " single-task"
    else:
        mode = f" {summary['dataset']}, {summary['kind']} policy"
    if d4rl is not None:
        score = f"normalized score {d4rl['mean']:.1f} ± {d4rl['stderr']:.1f} (D4RL references)"
    else:
        ret = scores["return"]
        score = f"return {ret['mean']:.1f} ± {ret['stderr']:.1f} (no D4RL references)"
    if ours:
        score += f", {ours['mean']:.1f} ± {ours['stderr']:.1f} (this simulator's)"
    elif d4rl is None and "references_this_simulator" in scores:
        score += f"; random policy {scores['references_this_simulator']['ref_min']:.1f}"
    print(
        f"{summary['task']}{mode}, {scores['episodes']} episodes, "
        f"checkpoint {summary['checkpoint_step']}: {score}"
    )
    if "success_rate" in scores:
        outcome = f"success {100 * scores['success_rate']:.0f} %"
    else:
        outcome = (
            f"length {scores['length']['mean']:.0f}, {scores['terminated']} fell, "
            f"{scores['decisions_per_second']} decisions/s"
        )
    policy = "behaviour cloning" if summary.get("kind") == "bc" else summary["eval"]["policy"]
    print(
        f"  return {scores['return']['mean']:.1f}, {outcome}, policy {policy} "
        f"({scores['replans_per_episode']['mean']:.1f} replans per episode), "
        f"{summary['seconds']} s"
    )
    for held in summary.get("constraints", ()):
        worst = held["max_violation"]
        print(
            f"  {held['constraint']}: held on {held['episodes_held']}/{scores['episodes']} "
            f"executed episodes; largest violation {worst['mean']:.3f} ± {worst['stderr']:.3f} "
            "per episode"
        )
    print(f"wrote {out / 'scores.json'}, {out / 'rollouts.png'}, {out / 'rollouts.npz'}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from planner.planning.command import run_plan
    from planner.planning.maze import executability_text

    summary = run_plan(args.run, args.config, args.set, args.start, args.goal, args.out, args.step)
    where = (
        f"from {summary['start'][:2]} to {summary['goal']}"
        if "goal" in summary
        else "from the reset observation"
    )
    print(
        f"plan {where} ({summary['n_candidates']} candidates, "
        f"{summary['plan_seconds_including_compile']} s)"
    )
    for term in summary["terms"]:
        print(
            f"  {term['term']} ({term['type']}): energy {term['energy']:.4g}, "
            f"weight {term['weight']:g}"
        )
    for constraint in summary["constraints"]:
        state = "holds" if constraint["holds"] else f"VIOLATED by {constraint['violation']:.3f}"
        print(f"  {constraint['term']} ({constraint['type']}): {state}")
    if "goal" in summary:
        print(
            f"  ends {summary['final_distance_to_goal']:.2f} from the goal; "
            f"{summary['steps_inside_walls']} steps inside walls"
        )
        print(f"  {executability_text(summary['execution'])}")
    out = Path(summary["out_dir"])
    print(f"wrote {out / 'plan.png'}, {out / 'plan.json'}, {out / 'plan.npz'}")
    return 0


# --- data ------------------------------------------------------------------------------------


def _data_generate(args: argparse.Namespace) -> int:
    from planner.data.d4rl import load_d4rl
    from planner.data.sources import generate_dataset, generated_path, reference_path
    from planner.tasks.maze2d import get_maze_task

    if args.name not in generated_names():
        return _data_generate_gym(args)
    if generated_family(args.name) == "locomotion":
        return _data_generate_locomotion(args)
    if generated_family(args.name) == "ogbench":
        return _data_generate_ogbench(args)
    task = get_maze_task(args.name)
    steps = args.steps or task.dataset_steps
    out = args.out or generated_path(task, steps, args.seed, args.data_dir)
    if out.exists() and not args.force:
        print(f"{out} exists; pass --force to regenerate it")
        return 0
    record = generate_dataset(task, steps, args.seed, out, args.reference_episodes)
    print(
        f"wrote {out}: {steps:,} steps, {record['segments']:,} segments, "
        f"{record['steps_per_second']:,} steps/s"
    )
    if "reference" in record:
        print(f"reference scores: {reference_path(out)}")
        _print_references(record["reference"])
    if args.minari:
        from planner.data.minari import write_minari
        from planner.tasks.maze2d import gym_id

        description = f"{task.name} regenerated by planner ({steps} steps, seed {args.seed})"
        controller = "planner Maze2D waypoint controller"
        write_minari(load_d4rl(out), args.minari, gym_id(task), description, controller)
        print(f"wrote local Minari dataset {args.minari}")
    return 0


def _data_generate_locomotion(args: argparse.Namespace) -> int:
    from planner.data.locomotion import EXPERT_TRAIN_STEPS, LOCOMOTION_STEPS, generate_locomotion
    from planner.data.sources import generated_path

    if args.minari:
        print("error: --minari is only supported for Maze2D datasets", file=sys.stderr)
        return 2
    if args.stop_return is not None:
        print(f"error: {args.name} stops its medium policy at D4RL's return", file=sys.stderr)
        return 2
    steps = args.steps or LOCOMOTION_STEPS
    out = args.out or generated_path(args.name, steps, args.seed, args.data_dir)
    if out.exists() and not args.force:
        print(f"{out} exists; pass --force to regenerate it")
        return 0
    record = generate_locomotion(
        args.name,
        out,
        steps,
        args.seed,
        expert_train_steps=args.expert_train_steps or EXPERT_TRAIN_STEPS,
    )
    _print_generated(out, record)
    return 0


def _data_generate_ogbench(args: argparse.Namespace) -> int:
    from planner.data.sources import generate_ogbench, ogbench_episodes, ogbench_path
    from planner.tasks.ogbench import OGBENCH_TASKS

    if args.minari:
        print("error: --minari is only supported for Maze2D datasets", file=sys.stderr)
        return 2
    task = OGBENCH_TASKS[args.name]
    episodes = ogbench_episodes(task, args.steps)
    out = args.out or ogbench_path(task, episodes, args.seed, args.data_dir)
    if out.exists() and not args.force:
        print(f"{out} exists; pass --force to regenerate it")
        return 0
    record = generate_ogbench(task, episodes, args.seed, out)
    print(
        f"wrote {out} ({record['steps']:,} steps, {episodes:,} episodes of "
        f"{task.data_episode_steps}) and its -val file ({record['validation_steps']:,} steps) in "
        f"{record['generate_seconds']:.0f} s"
    )
    return 0


def _data_generate_gym(args: argparse.Namespace) -> int:
    from planner.data.locomotion import EXPERT_TRAIN_STEPS, LOCOMOTION_STEPS, generate_gym_dataset
    from planner.data.sources import generated_path
    from planner.tasks.gym import gym_dataset_name, gym_task

    try:
        gym_task(args.name)
    except ValueError as error:
        print(
            f"error: {args.name} is not a Maze2D id or a <body>-<kind>-v2 locomotion name, and "
            f"not a Gymnasium environment planner can use: {error}",
            file=sys.stderr,
        )
        return 2
    if args.minari:
        print("error: --minari is only supported for Maze2D datasets", file=sys.stderr)
        return 2
    if "medium" in args.kind and args.stop_return is None:
        print(
            f"error: --kind {args.kind} needs --stop-return R: the evaluation return at which "
            f"the medium behaviour policy's training stops",
            file=sys.stderr,
        )
        return 2
    stop_return = args.stop_return if "medium" in args.kind else None
    name = gym_dataset_name(args.name, args.kind, stop_return)
    steps = args.steps or LOCOMOTION_STEPS
    out = args.out or generated_path(name, steps, args.seed, args.data_dir)
    if out.exists() and not args.force:
        print(f"{out} exists; pass --force to regenerate it")
        return 0
    record = generate_gym_dataset(
        args.name,
        args.kind,
        out,
        stop_return,
        steps,
        args.seed,
        expert_train_steps=args.expert_train_steps or EXPERT_TRAIN_STEPS,
    )
    _print_generated(out, record)
    print(
        f"train on it with data.env: {args.name}, data.source: generated, data.dataset: "
        f"{name}, data.generate_steps: {steps} (or data.source: d4rl, data.dataset: {out})"
    )
    return 0


def _print_generated(out: Path, record: dict) -> None:
    normalized = record["normalized_mean"]
    print(
        f"wrote {out}: {record['steps']:,} steps, {record['episodes']:,} episodes, return "
        f"{record['return_mean']:.1f} ± {record['return_std']:.1f}"
        + (f" (normalized {normalized:.1f})" if normalized != "" else "")
        + f"; behaviour {record['behaviour_steps']:,} steps in "
        f"{record['behaviour_seconds']:.0f} s, generated in {record['generate_seconds']:.0f} s"
    )


def _print_references(reference: dict) -> None:
    for policy in ("random", "controller", "oracle"):
        row = reference[policy]
        print(
            f"  {policy:>10}: return {row['mean_return']:7.2f} ± {row['stderr_return']:5.2f}"
            f"   D4RL-normalized {row['d4rl_normalized']:6.1f}"
        )


def _data_info(args: argparse.Namespace) -> int:
    from planner.data.sources import resolve_dataset
    from planner.tasks.maze2d import find_maze_task
    from planner.viz.maze import plot_dataset

    episodes, location = resolve_dataset(args.dataset, args.source, args.data_dir)
    task = find_maze_task(args.dataset) or find_maze_task(episodes.name)
    if args.segmentation == "eval_goal":
        from planner.data.sources import segment_by_eval_goal

        episodes = segment_by_eval_goal(episodes, episodes.name)
    summary = summarize(episodes)
    plot_path = args.plot or _default_plot_path(location, args.segmentation)
    summary["plot"] = str(plot_dataset(episodes, plot_path, task))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def _default_plot_path(location: Path, segmentation: str) -> Path:
    return location.with_name(f"{location.stem}.{segmentation}.coverage.png")


def _print_summary(summary: dict) -> None:
    length, ret = summary["episode_length"], summary["episode_return"]
    print(f"{summary['name']}")
    print(f"  steps          {summary['steps']:,}")
    print(f"  episodes       {summary['episodes']:,}")
    print(
        f"  dims           observation {summary['observation_dim']}, action {summary['action_dim']}"
    )
    print(f"  flags          terminals {summary['terminals']:,}, timeouts {summary['timeouts']:,}")
    print(
        f"  episode length mean {length['mean']:.1f}, std {length['std']:.1f}, "
        f"min {length['min']:.0f}, median {length['median']:.0f}, max {length['max']:.0f}"
    )
    print(
        f"  episode return mean {ret['mean']:.2f}, std {ret['std']:.2f}, "
        f"min {ret['min']:.2f}, max {ret['max']:.2f}"
    )
    print(f"  actions in     [{summary['action_range'][0]:.3f}, {summary['action_range'][1]:.3f}]")
    print(f"  coverage plot  {summary['plot']}")


# --- training ------------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    """Train ``args.kind`` into its run directory, then each kind of ``args.also`` (only with
    ``planner train``) into the diffusion run's directory plus that kind's suffix."""
    from planner.training import train

    config = load_config(args.config, args.set)
    default = Path(config.logging.run_root) / f"{args.config.stem}{RUN_SUFFIXES[args.kind]}"
    first = args.run_dir or default
    runs = [(args.kind, first), *((k, Path(f"{first}{RUN_SUFFIXES[k]}")) for k in args.also)]
    for kind, run_dir in runs:
        summary = train(config, run_dir, kind, overfit_batch=args.overfit_batch)
        if summary["start_step"] == summary["final_step"]:
            print(f"{run_dir} is already trained to step {summary['final_step']:,}; nothing to do")
            continue
        print(
            f"trained {kind} model to step {summary['final_step']:,} in {run_dir} "
            f"(loss {summary.get('loss', float('nan')):.4f}, "
            f"{summary.get('steps_per_second', float('nan')):.1f} steps/s)"
        )
    return 0


def _train_goal_value(args: argparse.Namespace) -> int:
    from planner.gcvalue import train_goal_value_run

    config = load_config(args.config, args.set)
    default = Path(config.logging.run_root) / f"{args.config.stem}-goalvalue"
    run_dir = args.run_dir or default
    record = train_goal_value_run(config, run_dir)
    print(
        f"goal value of {record['steps']:,} steps in {run_dir} ({record['wall_minutes']} min, "
        f"last loss {record['loss_per_1000_steps'][-1]})"
    )
    return 0


# --- config ----------------------------------------------------------------------------------


def _config_show(args: argparse.Namespace) -> int:
    import yaml

    from planner.config import config_to_dict

    config = load_config(args.config, args.set)
    print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
    if args.out:
        save_config(config, args.out)
    return 0


def _config_docs(args: argparse.Namespace) -> int:
    print(describe_fields())
    return 0


if __name__ == "__main__":
    sys.exit(main())
