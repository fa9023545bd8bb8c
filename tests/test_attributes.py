"""Window attributes and their classifier-free composition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from planner.data.attributes import (
    Attribute,
    attributes_from_specs,
    composed_spec_holds,
    trajectory_labels,
    window_labels,
)
from planner.data.normalize import Normalizer
from planner.data.windows import WindowDataset, draw_attributes
from planner.diffusion.denoisers import Denoiser, composed_conditions

NORTH = {"name": "north", "type": "ends_in", "low": [0.0, 0.0], "high": [1.0, 3.0]}
CENTRE = {"name": "centre", "type": "passes", "low": [1.0, 1.0], "high": [2.0, 2.0]}
ATTRIBUTES = attributes_from_specs([NORTH, CENTRE])


def line(start, end, steps=5):
    return np.linspace(start, end, steps)


def test_labels_of_hand_made_trajectories():
    through_centre_to_north = line([3.0, 1.5], [0.5, 1.5])  # passes (1.5 .. 2.0, 1.5)
    around_to_north = np.array([[3.0, 0.5], [2.0, 0.5], [1.0, 0.5], [0.5, 0.5]])
    through_centre_to_south = line([0.5, 1.5], [3.0, 1.5])
    labels = trajectory_labels(
        np.stack([through_centre_to_north, around_to_north[[0, 1, 2, 3, 3]],
                  through_centre_to_south]),
        ATTRIBUTES,
    )  # fmt: skip
    np.testing.assert_array_equal(labels, [[True, True], [True, False], [False, True]])
    names = ["north", "centre"]
    holds = composed_spec_holds(labels, names, ["north"], ["centre"])
    np.testing.assert_array_equal(holds, [False, True, False])
    np.testing.assert_array_equal(composed_spec_holds(labels, names, ["north", "centre"], []),
                                  [True, False, False])  # fmt: skip


def test_window_labels_equal_the_labels_of_each_window():
    rng = np.random.default_rng(0)
    positions = rng.uniform(0.0, 3.0, size=(200, 2))
    horizon = 6
    starts = np.arange(0, 190, 3)
    lasts = np.full(len(starts), 199)
    lasts[-5:] = 190  # episodes ending early: the window's last real step is the episode's
    expected = [
        trajectory_labels(positions[s : min(s + horizon - 1, last) + 1][None], ATTRIBUTES)[0]
        for s, last in zip(starts, lasts, strict=True)
    ]
    np.testing.assert_array_equal(
        window_labels(positions, starts, lasts, horizon, ATTRIBUTES), expected
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**NORTH, "type": "ends_near"}, "type must be one of"),
        ({**NORTH, "low": [2.0, 0.0]}, "low must be below high"),
        ({"name": "x", "type": "passes", "low": [0, 0]}, "missing"),
    ],
)
def test_bad_attributes_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        Attribute.from_spec(spec)


def test_drawn_attributes_are_ones_the_window_has_or_none():
    labels = np.array([[True, False], [False, False], [True, True]] * 200)
    dataset = WindowDataset(
        transitions=jnp.zeros((1, 1)), window_starts=jnp.zeros(len(labels), jnp.int32),
        window_last=jnp.zeros(len(labels), jnp.int32), returns_to_go=jnp.zeros(1),
        padding_row=jnp.zeros(1), padding_rest=jnp.zeros(1, bool),
        normalizer=Normalizer(jnp.zeros(1), jnp.ones(1)),
        labels=jnp.asarray(labels), horizon=1, action_dim=0, unconditional_probability=0.25,
    )  # fmt: skip
    ids = jnp.arange(len(labels))
    drawn = np.asarray(draw_attributes(dataset, ids, jax.random.key(0)))
    none = labels.shape[1]
    has = np.concatenate([labels, np.ones((len(labels), 1), bool)], axis=1)
    assert has[np.arange(len(labels)), drawn].all()  # never an attribute the window lacks
    assert (drawn[1::3] == none).all()  # a window without attributes is shown unconditioned
    dropped = (drawn[0::3] == none).mean()
    assert abs(dropped - 0.25) < 0.1
    both = drawn[2::3][drawn[2::3] != none]
    assert 0.3 < (both == 0).mean() < 0.7  # uniform among the window's attributes
    assert (np.asarray(draw_attributes(dataset, ids, None)) == none).all()


def test_composed_conditions_weigh_each_condition_against_the_unconditional():
    def constant(value):
        return Denoiser(jnp.float32(value), lambda p, x, t: p * jnp.ones_like(x))

    x, t = jnp.zeros((1, 2, 1)), jnp.zeros(1, jnp.int32)
    free, first, second, avoided = constant(1.0), constant(3.0), constant(4.0), constant(7.0)
    # ε_∅ + w (ε_a - ε_∅) + w (ε_b - ε_∅) - w (ε_c - ε_∅) at w = 2: 1 + 4 + 6 - 12 = -1
    composed = composed_conditions(free, [first, second], [avoided], 2.0)
    np.testing.assert_allclose(composed.noise(x, t), -1.0)
    np.testing.assert_allclose(composed_conditions(free, [first], [], 0.0).noise(x, t), 1.0)
