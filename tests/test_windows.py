import jax
import jax.numpy as jnp
import numpy as np
import pytest

from planner.data.episodes import DatasetError, make_episodes
from planner.data.normalize import fit_normalizer
from planner.data.windows import (
    discounted_returns,
    gather_windows,
    interpolate_rows,
    make_window_dataset,
    sample_windows,
    window_indices,
)


@pytest.fixture(scope="module")
def episodes(umaze_arrays):
    return make_episodes("maze2d-umaze-v1", umaze_arrays)


def steps_of(episodes):
    return np.concatenate([episodes.actions, episodes.observations], axis=1)


def test_window_counts_with_and_without_padding(episodes):
    horizon = 32
    starts, lasts = window_indices(episodes.boundaries, horizon, padding=False)
    expected = np.maximum(episodes.episode_lengths - horizon + 1, 0).sum()
    assert len(starts) == expected
    assert np.all(starts + horizon - 1 <= lasts)  # every window inside its episode
    padded_starts, _ = window_indices(episodes.boundaries, horizon, padding=True)
    assert len(padded_starts) == episodes.n_steps


def test_batches_have_the_right_shapes_and_conditions(episodes):
    dataset = make_window_dataset(episodes, horizon=32)
    batch = jax.jit(sample_windows, static_argnums=2)(dataset, jax.random.key(0), 16)
    assert batch.trajectories.shape == (16, 32, 6)
    assert batch.start.shape == batch.goal.shape == (16, 4)
    np.testing.assert_array_equal(batch.start, batch.trajectories[:, 0, 2:])
    np.testing.assert_array_equal(batch.goal, batch.trajectories[:, -1, 2:])
    assert batch.values.shape == (16,)


def test_windows_are_normalized_slices_of_the_data(episodes):
    dataset = make_window_dataset(episodes, horizon=32)
    ids = np.array([0, 7, dataset.n_windows - 1])
    batch = gather_windows(dataset, ids)
    steps = steps_of(episodes)
    for row, window in enumerate(ids):
        start = int(dataset.window_starts[window])
        expected = steps[start : start + 32]
        recovered = dataset.normalizer.unnormalize(np.asarray(batch.trajectories[row]))
        np.testing.assert_allclose(recovered, expected, atol=1e-5)


def test_padding_repeats_the_last_state_with_zero_action(episodes):
    dataset = make_window_dataset(episodes, horizon=64, padding=True)
    lengths = episodes.episode_lengths
    short = int(np.flatnonzero(lengths < 64)[0])  # an episode shorter than the horizon
    first, last = episodes.boundaries[short], episodes.boundaries[short + 1] - 1
    window = int(np.flatnonzero(np.asarray(dataset.window_starts) == first)[0])
    trajectory = dataset.normalizer.unnormalize(
        np.asarray(gather_windows(dataset, np.array([window])).trajectories[0])
    )
    n_real = last - first + 1
    np.testing.assert_allclose(trajectory[:n_real], steps_of(episodes)[first : last + 1], atol=1e-5)
    np.testing.assert_allclose(trajectory[n_real:, :2], 0.0, atol=1e-6)
    np.testing.assert_allclose(
        trajectory[n_real:, 2:],
        np.broadcast_to(episodes.observations[last], (64 - n_real, 4)),
        atol=1e-5,
    )


def test_no_window_fits_explains_what_to_change(episodes):
    with pytest.raises(DatasetError, match=r"no episode has 4096 steps .*data\.padding: true"):
        make_window_dataset(episodes, horizon=4096)


@pytest.mark.parametrize("kind", ["limits", "gaussian"])
def test_normalizer_round_trip(kind, episodes):
    steps = steps_of(episodes)
    normalizer = fit_normalizer(steps, kind)
    normalized = normalizer.normalize(steps)
    np.testing.assert_allclose(normalizer.unnormalize(normalized), steps, atol=1e-5)
    if kind == "limits":
        np.testing.assert_allclose(normalized.min(axis=0), -1.0, atol=1e-6)
        np.testing.assert_allclose(normalized.max(axis=0), 1.0, atol=1e-6)
    else:
        np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(normalized.std(axis=0), 1.0, atol=1e-4)


def test_normalizer_keeps_constant_dimensions_finite():
    data = np.stack([np.full(10, 3.0), np.arange(10.0)], axis=1)
    normalized = fit_normalizer(data, "limits").normalize(data)
    np.testing.assert_array_equal(normalized[:, 0], 0.0)


def test_discounted_returns_match_a_python_loop():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=200).astype(np.float32)
    ends = np.zeros(200, bool)
    ends[[49, 120, 199]] = True
    expected = np.zeros(200)
    future = 0.0
    for t in reversed(range(200)):
        future = rewards[t] + 0.9 * (0.0 if ends[t] else future)
        expected[t] = future
    np.testing.assert_allclose(
        discounted_returns(rewards, ends, 0.9), expected, rtol=1e-5, atol=1e-5
    )


def test_value_targets_include_the_termination_penalty():
    n = 10
    arrays = {
        "observations": np.zeros((n, 2), np.float32),
        "actions": np.zeros((n, 1), np.float32),
        "rewards": np.ones(n, np.float32),
        "terminals": np.r_[np.zeros(n - 1, bool), True],
    }
    dataset = make_window_dataset(
        make_episodes("toy", arrays), horizon=2, discount=0.5, termination_penalty=-100.0
    )
    # G[8] = 1 + 0.5 * (1 - 100) at the step before the terminal one
    assert float(dataset.returns_to_go[8]) == pytest.approx(1 + 0.5 * (1 - 100))


def test_sampling_traces_once(episodes):
    dataset = make_window_dataset(episodes, horizon=32)
    traces = []

    @jax.jit
    def sample(data, key):
        traces.append(1)
        return sample_windows(data, key, 8)

    for seed in range(3):
        sample(dataset, jax.random.key(seed))
    assert len(traces) == 1


def test_jumpy_windows_keep_every_kth_step_and_span_accordingly(episodes):
    horizon, jump = 8, 5
    dataset = make_window_dataset(episodes, horizon=horizon, jump=jump)
    span = (horizon - 1) * jump + 1
    assert dataset.span == span
    starts, lasts = np.asarray(dataset.window_starts), np.asarray(dataset.window_last)
    assert np.all(starts + span - 1 <= lasts)  # unpadded: the whole span inside the episode
    expected = np.maximum(episodes.episode_lengths - span + 1, 0).sum()
    assert len(starts) == expected
    ids = np.array([0, dataset.n_windows // 2, dataset.n_windows - 1])
    batch = gather_windows(dataset, ids)
    steps = steps_of(episodes)
    for row, window in enumerate(ids):
        start = int(starts[window])
        recovered = dataset.normalizer.unnormalize(np.asarray(batch.trajectories[row]))
        np.testing.assert_allclose(recovered, steps[start : start + span : jump], atol=1e-5)


def test_jumpy_padding_rests_past_the_end(episodes):
    horizon, jump = 8, 10
    dataset = make_window_dataset(episodes, horizon, padding=True, jump=jump, rest_dims=(2, 3))
    lengths = episodes.episode_lengths
    short = int(np.flatnonzero((lengths > 2 * jump) & (lengths < (horizon - 1) * jump))[0])
    first, last = episodes.boundaries[short], episodes.boundaries[short + 1] - 1
    window = int(np.flatnonzero(np.asarray(dataset.window_starts) == first)[0])
    rows = dataset.normalizer.unnormalize(
        np.asarray(gather_windows(dataset, np.array([window])).trajectories[0])
    )
    real = (last - first) // jump + 1  # rows on real steps
    np.testing.assert_allclose(rows[:real], steps_of(episodes)[first : last + 1 : jump], atol=1e-5)
    np.testing.assert_allclose(rows[real:, :2], 0.0, atol=1e-6)  # zero action
    np.testing.assert_allclose(
        rows[real:, 2:4], np.broadcast_to(episodes.observations[last, :2], (horizon - real, 2)),
        atol=1e-5,
    )  # fmt: skip
    np.testing.assert_allclose(rows[real:, 4:], 0.0, atol=1e-6)  # at rest


def test_interpolated_rows_pass_through_the_rows_linearly():
    rows = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 3)), jnp.float32)
    steps = interpolate_rows(rows, 4)
    assert steps.shape == (2, 17, 3)
    np.testing.assert_allclose(steps[:, ::4], rows, atol=1e-6)
    np.testing.assert_allclose(steps[:, 2], (rows[:, 0] + rows[:, 1]) / 2, atol=1e-6)
    assert interpolate_rows(rows, 1) is rows
