"""How XLA:CPU runs U-Net evaluations inside loops (jax-ml/jax#12868), for sampler design.

    python scripts/probe_cpu_loops.py

Times 64 U-Maze denoiser evaluations (batch 1, horizon 128), the work of one 64-step plan, done
three ways: a rolled ``lax.scan``, a fully unrolled scan, and a Python loop over a jitted step.
Prints compile and run times; no files are written.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from planner.config import load_config
from planner.models.denoiser import make_unet
from planner.models.unet import init_params

STEPS = 64


def timed(function, *args) -> tuple[float, float]:
    """(first call seconds, median of three later calls in seconds)."""
    began = time.perf_counter()
    jax.block_until_ready(function(*args))
    first = time.perf_counter() - began
    runs = []
    for _ in range(3):
        began = time.perf_counter()
        jax.block_until_ready(function(*args))
        runs.append(time.perf_counter() - began)
    return first, sorted(runs)[1]


def main() -> None:
    unet = make_unet(load_config("configs/maze2d-umaze.yaml"), transition_dim=6)
    x = jnp.zeros((1, 128, 6))
    params = init_params(unet, jax.random.key(0), x, jnp.zeros((1,), jnp.int32))

    def body(x, level):
        return 0.9 * x + 0.1 * unet.apply(params, x, level[None]), None

    levels = jnp.arange(STEPS - 1, -1, -1)
    rolled = jax.jit(lambda x: jax.lax.scan(body, x, levels)[0])
    unrolled = jax.jit(lambda x: jax.lax.scan(body, x, levels, unroll=True)[0])
    one_step = jax.jit(body)

    def python_loop(x):
        for level in levels:
            x, _ = one_step(x, level)
        return x

    for name, function in (
        ("rolled lax.scan", rolled),
        ("unrolled lax.scan", unrolled),
        ("python loop of jitted steps", python_loop),
    ):
        first, steady = timed(function, x)
        print(f"{name:>28}: first call {first:6.2f} s, then {steady * 1000:8.1f} ms per plan")


if __name__ == "__main__":
    main()
