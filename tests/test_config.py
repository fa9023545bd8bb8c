from pathlib import Path

import pytest

from planner.config import (
    SECTIONS,
    Config,
    ConfigError,
    config_from_dict,
    describe_fields,
    load_config,
    save_config,
)

CONFIGS = sorted(Path(__file__).parents[1].glob("configs/*.yaml"))


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    if config.data.env is not None:  # a user's own environment: datasets are named after it
        assert config.data.dataset.startswith(config.data.env)
    else:
        name = config.data.dataset
        assert path.stem.startswith(
            name.removesuffix("-v0").removesuffix("-v1").removesuffix("-v2")
        )


def test_shipped_configs_have_reference_horizons():
    # the task configs (one per maze, Diffuser's settings); variants carry a suffix
    reference = {"maze2d-umaze": 128, "maze2d-medium": 256, "maze2d-large": 384}
    horizons = {p.stem: load_config(p).data.horizon for p in CONFIGS if p.stem in reference}
    assert horizons == reference


def test_unknown_key_names_file_and_suggests(tmp_path):
    path = write(tmp_path, "train:\n  stepz: 10\n")
    with pytest.raises(
        ConfigError, match=r"task\.yaml: train\.stepz .*did you mean train\.steps\?"
    ):
        load_config(path)


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"trian is not a known key; did you mean train\?"):
        load_config(write(tmp_path, "trian: {}\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  steps: many\n", r"train\.steps must be an integer; got 'many'"),
        ("train:\n  steps: 1.5\n", r"train\.steps must be an integer"),
        ("train:\n  steps: 0\n", r"train\.steps must be >= 1; got 0"),
        ("train:\n  ema_decay: 1.0\n", r"train\.ema_decay must be < 1"),
        ("data:\n  padding: 1\n", r"data\.padding must be true or false"),
        ("data:\n  normalizer: minmax\n", r"data\.normalizer must be one of limits, gaussian"),
        ("model:\n  dim_mults: 4\n", r"model\.dim_mults must be a list"),
        ("model:\n  dim_mults: [1, 0]\n", r"model\.dim_mults must be >= 1"),
        ("plan:\n  goal: [1, 2, 3]\n", r"plan\.goal must have 2 entries; got 3"),
        ("data:\n  horizon: 130\n", r"data\.horizon must be a multiple of 4"),
        ("model:\n  kernel_size: 4\n", r"model\.kernel_size must be odd"),
        ("data:\n  dataset: hopper-random-v2\n", r"data\.dataset must be a Maze2D id"),
        ("train: 5\n", r"section 'train' must be a mapping"),
        ("- 1\n", r"top level must be a mapping"),
        ("train: {steps: [\n", r"not valid YAML"),
    ],
)
def test_bad_values_name_file_key_and_allowed(tmp_path, text, message):
    with pytest.raises(ConfigError, match=r"task\.yaml: .*" + message):
        load_config(write(tmp_path, text))


def test_missing_file():
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config("nope.yaml")


def test_ints_are_accepted_for_floats_and_lists_become_tuples(tmp_path):
    config = load_config(write(tmp_path, "train:\n  learning_rate: 1\nplan:\n  goal: [1, 2]\n"))
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    # YAML 1.1 reads 1e-3 as a string; a float field still takes it
    assert (
        load_config(write(tmp_path, "train:\n  learning_rate: 1e-3\n")).train.learning_rate == 1e-3
    )
    assert config.plan.goal == (1.0, 2.0)


def test_overrides_apply_and_are_validated(tmp_path):
    path = write(tmp_path, "train:\n  steps: 10\n")
    config = load_config(path, ["train.steps=1000", "plan.goal=[3, 1]", "data.data_dir=null"])
    assert config.train.steps == 1000
    assert config.plan.goal == (3.0, 1.0)
    with pytest.raises(ConfigError, match=r"--set train\.stepz=1: train\.stepz .*train\.steps"):
        load_config(path, ["train.stepz=1"])
    with pytest.raises(ConfigError, match=r"--set steps=1: overrides look like section\.key=value"):
        load_config(path, ["steps=1"])
    with pytest.raises(ConfigError, match=r"--set train\.steps=-5: train\.steps must be >= 1"):
        load_config(path, ["train.steps=-5"])


def test_yaml_boolean_spellings_of_documented_words_are_those_words(tmp_path):
    """YAML 1.1 reads ``off`` (and on, yes, no) as a boolean; a choice that documents the word
    takes it, in files and in ``--set``."""
    path = write(tmp_path, "plan:\n  walls: off\n")
    assert load_config(path).plan.walls == "off"
    assert load_config(path, ["plan.walls=guide"]).plan.walls == "guide"
    plain = write(tmp_path, "train:\n  steps: 10\n")
    assert load_config(plain, ["plan.walls=off"]).plan.walls == "off"
    with pytest.raises(ConfigError, match=r"plan\.method must be one of ddpm, ddim; got True"):
        load_config(path, ["plan.method=yes"])


def test_config_is_frozen():
    config = Config()
    with pytest.raises(AttributeError):
        config.train.steps = 3  # type: ignore[misc]


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config(CONFIGS[0], ["train.steps=70", "plan.goal=[1, 2]"])
    assert load_config(save_config(config, tmp_path / "resolved.yaml")) == config


def test_every_field_is_documented():
    table = describe_fields()
    for section, cls in SECTIONS.items():
        for name in cls.__dataclass_fields__:
            assert f"`{section}.{name}`" in table
    assert "|  |" not in table


def test_config_from_dict_defaults():
    assert config_from_dict({}) == Config()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps=15", r"train\.steps must be a multiple of train\.steps_per_dispatch \(10\)"),
        ("diffusion.parameterization=energy", r"energy needs diffusion\.predict_epsilon: true"),
        ("plan.average_best=65", r"plan\.average_best \(65\) cannot exceed plan\.n_candidates"),
    ],
)
def test_cross_field_rules(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS[0], ["train.steps_per_dispatch=10", override])
