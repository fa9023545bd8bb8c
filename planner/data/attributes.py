"""Yes/no attributes of trajectory windows, the labels of attribute-conditioned models.

An attribute is a property of a window's positions, written in config (``data.attributes``)::

    {name: right, type: passes, low: [0.5, 2.5], high: [2.5, 3.3]}   # some position in the box
    {name: top, type: ends_in, low: [0.3, 1.5], high: [1.3, 3.3]}    # the last position in it

A model trained with attributes sees, per window, one of the attributes the window has (or none,
the unconditional case) and learns ``ε(x, t, a)``. At plan time attributes compose by classifier-
free guidance: conjunctions add ``w (ε_a - ε_∅)`` terms and negations subtract them, so plans can
ask for combinations the model was never conditioned on together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ATTRIBUTE_TYPES = ("passes", "ends_in")


@dataclass(frozen=True)
class Attribute:
    """``kind``: ``passes`` (some position in the box ``low``–``high``) or ``ends_in`` (the
    last position in it); positions in environment units."""

    name: str
    kind: str
    low: tuple[float, ...]
    high: tuple[float, ...]

    @staticmethod
    def from_spec(spec: Mapping[str, Any], where: str = "attribute") -> Attribute:
        """From ``{name, type, low, high}``; ``ValueError`` naming ``where`` for bad input."""
        allowed = ("name", "type", "low", "high")
        unknown = [key for key in spec if key not in allowed]
        missing = [key for key in allowed if key not in spec]
        if unknown or missing:
            raise ValueError(
                f"{where}: an attribute has exactly the keys {', '.join(allowed)}; "
                + (f"unknown {unknown}" if unknown else f"missing {missing}")
            )
        if spec["type"] not in ATTRIBUTE_TYPES:
            raise ValueError(f"{where}.type must be one of {', '.join(ATTRIBUTE_TYPES)}")
        low = tuple(float(v) for v in spec["low"])
        high = tuple(float(v) for v in spec["high"])
        if len(low) != len(high) or any(lo >= hi for lo, hi in zip(low, high, strict=True)):
            raise ValueError(f"{where}: low must be below high in every dimension")
        return Attribute(str(spec["name"]), str(spec["type"]), low, high)


def attributes_from_specs(specs: Sequence[Mapping[str, Any]]) -> tuple[Attribute, ...]:
    attributes = tuple(
        Attribute.from_spec(spec, f"data.attributes[{i}]") for i, spec in enumerate(specs)
    )
    names = [attribute.name for attribute in attributes]
    if len(set(names)) != len(names):
        raise ValueError(f"data.attributes: names must be unique; got {names}")
    return attributes


def inside(positions: np.ndarray, attribute: Attribute) -> np.ndarray:
    """``[...]`` bool: positions ``[..., P]`` inside the attribute's box."""
    return np.all((positions >= attribute.low) & (positions <= attribute.high), axis=-1)


def trajectory_labels(positions: np.ndarray, attributes: Sequence[Attribute]) -> np.ndarray:
    """``[..., K]`` bool: the attributes of trajectories with positions ``[..., H, P]``."""
    columns = []
    for attribute in attributes:
        within = inside(positions, attribute)
        columns.append(within.any(axis=-1) if attribute.kind == "passes" else within[..., -1])
    return np.stack(columns, axis=-1) if columns else np.zeros((*positions.shape[:-2], 0), bool)


def window_labels(
    positions: np.ndarray, starts: np.ndarray, lasts: np.ndarray, horizon: int,
    attributes: Sequence[Attribute],
) -> np.ndarray:  # fmt: skip
    """``[M, K]`` bool: the attributes of the windows of ``horizon`` steps that begin at flat
    step ``starts`` [M] (episodes end at ``lasts`` [M]; a padded window repeats its last step),
    over the flat positions ``[N, P]``; running sums keep it linear in ``N``."""
    stop = np.minimum(starts + horizon - 1, lasts)  # the window's last real step
    labels = np.zeros((len(starts), len(attributes)), bool)
    for column, attribute in enumerate(attributes):
        within = inside(positions, attribute)
        if attribute.kind == "ends_in":
            labels[:, column] = within[stop]
        else:
            counts = np.concatenate([[0], np.cumsum(within)])
            labels[:, column] = counts[stop + 1] > counts[starts]
    return labels


def composed_spec_holds(
    labels: np.ndarray, names: Sequence[str], require: Sequence[str], exclude: Sequence[str]
) -> np.ndarray:
    """``[...]`` bool: trajectories whose ``labels`` [..., K] (columns named ``names``) have
    every ``require`` attribute and no ``exclude`` one."""
    holds = np.ones(labels.shape[:-1], bool)
    for name in require:
        holds &= labels[..., names.index(name)]
    for name in exclude:
        holds &= ~labels[..., names.index(name)]
    return holds
