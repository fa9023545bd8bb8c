"""Process-wide JAX setup for the ``planner`` command: the persistent compilation cache,
multi-host initialization, and the device mesh that training and planning shard over.

**Compilation cache** (on by default). On a CPU, compiling a sampler or a training step takes
seconds to tens of seconds, often more than the work a CLI call does; with the cache a second call
with the same shapes loads the compiled programs instead. ``$PLANNER_COMPILATION_CACHE``: unset →
``<data dir>/jax-cache`` (``~/.cache/planner/jax-cache``); ``0`` / ``off`` → no persistent cache;
anything else → that directory. A directory given to JAX itself (``$JAX_COMPILATION_CACHE_DIR``)
wins over all of these.

**Multi-host.** With ``$JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
``$JAX_NUM_PROCESSES`` and ``$JAX_PROCESS_ID`` set, or ``$PLANNER_DISTRIBUTED=1`` on a cluster JAX
detects by itself (Slurm, Open MPI, Cloud TPU), ``jax.distributed.initialize`` runs before any
computation and the mesh spans every process's devices.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import jax
from jax.sharding import Mesh

from planner.errors import PlannerError
from planner.paths import data_dir

CACHE_ENV = "PLANNER_COMPILATION_CACHE"
DISABLED = ("0", "off", "false", "no", "none")
MIN_COMPILE_SECONDS = 0.2  # cache programs that took at least this long to compile
COMPILE_EVENTS = (  # JAX's monitoring events for the stages of compiling one program
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class DistributedSetupError(PlannerError, ValueError):
    """The multi-host environment variables are incomplete."""


def compilation_cache_dir() -> Path | None:
    """The directory ``$PLANNER_COMPILATION_CACHE`` asks for; None when it is switched off."""
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in DISABLED:
        return None
    return Path(setting).expanduser() if setting else data_dir() / "jax-cache"


def enable_compilation_cache() -> str | None:
    """Turn on the persistent cache (see the module docstring); returns the directory in use."""
    if jax.config.jax_compilation_cache_dir:  # the user configured JAX directly
        return jax.config.jax_compilation_cache_dir
    directory = compilation_cache_dir()
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return str(directory)


def initialize_distributed() -> bool:
    """``jax.distributed.initialize`` when the environment asks for several processes (see the
    module docstring); returns whether it ran."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        missing = [
            name for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if name not in os.environ
        ]
        if missing:
            raise DistributedSetupError(
                f"JAX_COORDINATOR_ADDRESS is set but {' and '.join(missing)} is not"
            )
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
        return True
    if os.environ.get("PLANNER_DISTRIBUTED", "").lower() in ("1", "true", "yes"):
        jax.distributed.initialize()
        return True
    return False


def data_mesh(devices=None) -> Mesh:
    """A one-axis mesh (``data``) over ``devices`` (default: every device of every process)."""
    return Mesh(jax.devices() if devices is None else list(devices), ("data",))


@contextlib.contextmanager
def compile_events() -> Iterator[list[tuple[str, float]]]:
    """Collects ``(event, seconds)`` for every compilation stage (``COMPILE_EVENTS``) that runs
    inside the ``with`` block: ``backend_compile_duration`` entries count XLA compilations."""
    events: list[tuple[str, float]] = []

    def record(event: str, seconds: float, **_) -> None:
        if event in COMPILE_EVENTS:
            events.append((event, seconds))

    jax.monitoring.register_event_duration_secs_listener(record)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(record)
