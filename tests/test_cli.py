import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from planner.cli import main
from planner.config import load_config
from planner.data.sources import load_episodes


def test_generate_then_info(tmp_path, capsys):
    out = tmp_path / "umaze.hdf5"
    args = [
        "data",
        "generate",
        "maze2d-umaze-v1",
        "--steps",
        "3000",
        "--seed",
        "4",
        "--out",
        str(out),
    ]
    assert main([*args, "--reference-episodes", "2", "--minari", "planner/cli-umaze-v0"]) == 0
    printed = capsys.readouterr().out
    assert "3,000 steps" in printed and "reference scores" in printed
    assert "wrote local Minari dataset planner/cli-umaze-v0" in printed
    with h5py.File(out) as handle:
        assert handle.attrs["seed"] == 4 and handle["observations"].shape == (3000, 4)
    references = json.loads(out.with_suffix(".reference.json").read_text())
    assert references["episodes"] == 2 and "oracle" in references

    assert main(args) == 0  # an existing file is kept unless --force
    assert "exists; pass --force" in capsys.readouterr().out

    plot = tmp_path / "coverage.png"
    assert main(["data", "info", str(out), "--plot", str(plot), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 3000 and plot.stat().st_size > 10_000
    assert (
        main(["data", "info", "planner/cli-umaze-v0", "--source", "minari", "--plot", str(plot)])
        == 0
    )
    assert "episodes" in capsys.readouterr().out


def test_config_generates_the_dataset_when_missing(tmp_path, capsys):
    config = load_config(
        "configs/maze2d-umaze.yaml",
        [f"data.data_dir={tmp_path}", "data.generate_steps=2000", "data.generate_seed=1"],
    )
    episodes = load_episodes(config.data)  # eval_goal segmentation, as configured
    assert "is missing: generating 2000 steps" in capsys.readouterr().out
    assert (tmp_path / "maze2d-umaze-v1-2000steps-seed1.hdf5").is_file()
    assert episodes.n_steps == 2000


def test_errors_are_reported_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 3\n")
    assert main(["config", "show", "--config", str(bad)]) == 2
    assert (
        "bad.yaml: train.stepz is not a known key; did you mean train.steps?"
        in capsys.readouterr().err
    )
    assert main(["data", "info", str(tmp_path / "absent.hdf5")]) == 2
    assert "absent.hdf5: file not found" in capsys.readouterr().err
    assert main(["data", "info", "maze2d-large-v1", "--source", "generated"]) == 2
    assert "not generated yet" in capsys.readouterr().err
    assert main(["data", "info", "maze2d-medium-v1"]) == 2
    assert "run: planner data generate maze2d-medium-v1" in capsys.readouterr().err


def test_config_show_applies_overrides_and_saves(tmp_path, capsys):
    out = tmp_path / "resolved.yaml"
    assert (
        main(
            [
                "config",
                "show",
                "--config",
                "configs/maze2d-umaze.yaml",
                "--set",
                "train.steps=5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "steps: 5" in capsys.readouterr().out
    assert load_config(out).train.steps == 5


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "planner"
    result = subprocess.run(
        [str(script), "data", "generate", "--help"], capture_output=True, text=True, check=True
    )
    assert "--steps" in result.stdout


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_generate_rejects_nonpositive_steps(steps, capsys):
    with pytest.raises(SystemExit):
        main(["data", "generate", "maze2d-umaze-v1", "--steps", steps])
    assert "must be a positive integer" in capsys.readouterr().err


def test_only_planner_errors_are_turned_into_messages(monkeypatch, capsys):
    from planner import cli
    from planner.training import TrainingError

    def fails_with(error):
        def handler(args):
            raise error

        return handler

    monkeypatch.setattr(cli, "_config_docs", fails_with(TrainingError("loss became nan")))
    assert main(["config", "docs"]) == 2
    assert "error: loss became nan" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_config_docs", fails_with(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["config", "docs"])
