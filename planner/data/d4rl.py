"""Read and write D4RL-layout hdf5 files with h5py (the legacy ``d4rl`` package is not needed).

A D4RL file holds flat per-step datasets at the top level (``observations``, ``actions``,
``rewards``, ``terminals``, ``timeouts``, sometimes ``next_observations``) and nested groups such
as ``infos/*`` and ``metadata/*``. :func:`read_hdf5` flattens every dataset to a ``group/key``
name; :func:`load_d4rl` turns a file into validated :class:`Episodes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from planner.data.episodes import (
    DatasetError,
    Episodes,
    expected_dimensions,
    make_episodes,
)
from planner.paths import d4rl_dir


def read_hdf5(path: str | Path) -> dict[str, np.ndarray]:
    """Every dataset in the file as ``{"group/key": array}`` (recursively); scalars included."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as handle:

            def visit(name: str, item: Any) -> None:
                if isinstance(item, h5py.Dataset):
                    arrays[name] = item[()]

            handle.visititems(visit)
    except OSError as error:
        raise DatasetError(f"{path}: not a readable hdf5 file ({error})") from None
    return arrays


def write_hdf5(
    path: str | Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None
) -> Path:
    """Write ``{"group/key": array}`` as a gzip-compressed hdf5 file, atomically (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    with h5py.File(partial, "w") as handle:
        for key, value in arrays.items():
            value = np.asarray(value)
            compression = "gzip" if value.ndim else None
            handle.create_dataset(key, data=value, compression=compression)
        handle.attrs.update(dict(attrs or {}))
    partial.replace(path)
    return path


def find_d4rl_file(name_or_path: str | Path) -> Path:
    """The hdf5 file for a path, or for a D4RL dataset name in the D4RL cache directory.

    Names are matched the way D4RL stored them (``maze2d-umaze-v1`` is saved as
    ``maze2d-umaze-sparse-v1.hdf5``, ``hopper-medium-v2`` as ``hopper_medium-v2.hdf5``).
    """
    path = Path(name_or_path).expanduser()
    if path.suffix in (".hdf5", ".h5"):
        if not path.is_file():
            raise DatasetError(f"{path}: file not found")
        return path
    name = str(name_or_path)
    directory = d4rl_dir()
    wanted = _canonical(name)
    matches = sorted(p for p in directory.glob("*.hdf5") if _canonical(p.stem) == wanted)
    if not matches:
        raise DatasetError(
            f"{name}: no D4RL file for this name in {directory} (set $D4RL_DATASET_DIR, or pass "
            f"the .hdf5 path). This project never downloads D4RL files."
        )
    return matches[0]


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace("-sparse", "").replace("-dense", "")


def load_d4rl(name_or_path: str | Path, expected_dims: tuple[int, int] | None = None) -> Episodes:
    """Read a D4RL hdf5 file into :class:`Episodes`, one episode per ``timeouts``/``terminals``
    flag. ``expected_dims`` (obs, act) defaults to the known D4RL task the name refers to."""
    path = find_d4rl_file(name_or_path)
    arrays = read_hdf5(path)
    if "timeouts" not in arrays and "terminals" not in arrays:
        raise DatasetError(f"{path}: needs 'terminals' or 'timeouts' to find episode ends")
    per_step = {k: v for k, v in arrays.items() if not k.startswith("metadata/") and np.ndim(v)}
    dims = expected_dims or expected_dimensions(str(name_or_path)) or expected_dimensions(path.name)
    return make_episodes(str(path), per_step, expected_dims=dims)
