"""Temporal U-Net over trajectories ``[B, H, transition_dim]`` (Diffuser's architecture, in Linen).

Linen, not NNX: a Linen module is a pure ``apply(params, x, t)`` whose parameters are a plain
pytree, which is exactly what crosses our ``jit`` boundaries, gets sharded, averaged (EMA) and
checkpointed by Orbax, with no mutable module state to thread through.

Layout: channels last. Each residual temporal block is Conv1d(k) → GroupNorm(8) → Mish, twice,
with the time embedding added after the first; a 1×1 convolution matches channels on the skip.
The down path halves the horizon with stride-2 convolutions after every level but the last, the
middle has two blocks, and the up path doubles it back with transposed convolutions, taking
skip connections from the down path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

GROUPS = 8


def mish(x: jax.Array) -> jax.Array:
    return x * jnp.tanh(jax.nn.softplus(x))


def sinusoidal_embedding(t: jax.Array, dim: int) -> jax.Array:
    """``[B]`` (float or int) noise levels → ``[B, dim]`` sin/cos features (``dim`` even)."""
    half = dim // 2
    frequencies = jnp.exp(-math.log(10_000) * jnp.arange(half) / (half - 1))
    angles = t.astype(jnp.float32)[:, None] * frequencies[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class TimeEmbedding(nn.Module):
    """``[B]`` noise levels → ``[B, dim]``: sinusoids → Linear(4·dim) → Mish → Linear(dim)."""

    dim: int

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        h = nn.Dense(self.dim * 4)(sinusoidal_embedding(t, self.dim))
        return nn.Dense(self.dim)(mish(h))


def temporal_conv(lhs: jax.Array, rhs: jax.Array, window_strides, padding, **options) -> jax.Array:
    """``lax.conv_general_dilated`` for channels-last 1-D convolutions, ``lhs [B, L, C_in]``,
    ``rhs [K, C_in, C_out]``, ``padding [(low, high)]``.

    XLA:CPU runs a convolution whose output is shorter than its kernel about 20x slower than the
    same arithmetic as one matmul (in a four-level U-Net over horizon 32 the deepest level has
    length 4 and kernel 5: 73 ms instead of 3.6 ms at batch 64). Those convolutions are computed
    here from explicit taps, the ``K`` shifted copies of the padded input side by side times the
    kernel reshaped to ``[K · C_in, C_out]``; every other one goes to ``lax``.
    """
    kernel_size, _, features = rhs.shape
    ((low, high),) = padding
    out_length = lhs.shape[1] + low + high - kernel_size + 1
    if tuple(window_strides) != (1,) or out_length >= kernel_size:
        return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, **options)
    padded = jnp.pad(lhs, ((0, 0), (low, high), (0, 0)))
    taps = jnp.concatenate([padded[:, k : k + out_length] for k in range(kernel_size)], axis=-1)
    return taps @ rhs.reshape(-1, features)


class ConvBlock(nn.Module):
    """``[B, H, C_in]`` → ``[B, H, features]``: Conv1d(kernel) → GroupNorm(8) → Mish.

    (Narrower layers than 8 channels, only in tiny test models, use gcd(8, features) groups.)
    """

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(
            self.features,
            (self.kernel_size,),
            padding=self.kernel_size // 2,
            conv_general_dilated=temporal_conv,
        )(x)
        return mish(nn.GroupNorm(num_groups=math.gcd(GROUPS, self.features))(x))


class ResidualTemporalBlock(nn.Module):
    """``x [B, H, C_in]``, ``time [B, E]`` → ``[B, H, features]``."""

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, x: jax.Array, time: jax.Array) -> jax.Array:
        h = ConvBlock(self.features, self.kernel_size)(x)
        h = h + nn.Dense(self.features)(mish(time))[:, None, :]
        h = ConvBlock(self.features, self.kernel_size)(h)
        skip = x if x.shape[-1] == self.features else nn.Conv(self.features, (1,))(x)
        return h + skip


class Upsample(nn.Module):
    """``[B, L, C_in]`` → ``[B, 2L, features]``, a transposed convolution (kernel 4, stride 2).

    Each output phase of that transposed convolution is a 2-tap convolution of the input: even
    outputs ``y[2i] = x[i-1]·w3 + x[i]·w1``, odd outputs ``y[2i+1] = x[i]·w2 + x[i+1]·w0``. We run
    both as one ordinary kernel-3 convolution (kernel assembled from the same 4 taps, zeros
    elsewhere) and interleave the phases: the same function and parameters as
    ``ConvTranspose(k=4, s=2)``, but without its lhs-dilated gradient, which XLA:CPU runs
    ~40x slower.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        taps = self.param("kernel", nn.initializers.lecun_normal(), (4, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        zero = jnp.zeros_like(taps[0])
        even = jnp.stack([taps[3], taps[1], zero])  # offsets -1, 0, +1
        odd = jnp.stack([zero, taps[2], taps[0]])
        kernel = jnp.concatenate([even, odd], axis=-1)  # [3, C_in, 2 * features]
        y = jax.lax.conv_general_dilated(
            x, kernel, (1,), [(1, 1)], dimension_numbers=("NWC", "WIO", "NWC")
        )
        batch, length, _ = y.shape
        return y.reshape(batch, length * 2, self.features) + bias


class LinearAttention(nn.Module):
    """Residual, pre-normalized linear attention over the horizon: ``[B, H, C]`` → ``[B, H, C]``."""

    heads: int = 4
    head_dim: int = 32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, horizon, channels = x.shape
        h = nn.LayerNorm()(x)
        qkv = nn.Conv(3 * self.heads * self.head_dim, (1,), use_bias=False)(h)
        q, k, v = jnp.split(qkv.reshape(batch, horizon, 3, self.heads, self.head_dim), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]  # [B, H, heads, head_dim]
        q = jax.nn.softmax(q, axis=-1) * self.head_dim**-0.5
        k = jax.nn.softmax(k, axis=1)
        context = jnp.einsum("bnhd,bnhe->bhde", k, v)
        out = jnp.einsum("bhde,bnhd->bnhe", context, q).reshape(batch, horizon, -1)
        return x + nn.Conv(channels, (1,))(out)


class DownPath(nn.Module):
    """The encoder shared by the U-Net and the value model.

    ``x [B, H, D]``, ``time [B, E]`` → ``(h [B, H / 2^(L-1), dim · dim_mults[-1]], skips)``.
    """

    dim: int
    dim_mults: Sequence[int]
    kernel_size: int
    attention: bool

    @nn.compact
    def __call__(self, x: jax.Array, time: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        skips = []
        for level, mult in enumerate(self.dim_mults):
            features = self.dim * mult
            x = ResidualTemporalBlock(features, self.kernel_size)(x, time)
            x = ResidualTemporalBlock(features, self.kernel_size)(x, time)
            if self.attention:
                x = LinearAttention()(x)
            skips.append(x)
            if level < len(self.dim_mults) - 1:
                x = nn.Conv(features, (3,), strides=(2,), padding=1)(x)
        return x, skips


def init_params(module: nn.Module, key: jax.Array, *example_inputs: jax.Array) -> dict:
    """``module.init`` compiled at XLA optimization level 0.

    Initialization runs once, and compiling the random initializers of a U-Net with full
    optimization takes XLA:CPU 15 s even for a tiny model; level 0 takes a third of that.
    """
    lowered = jax.jit(module.init).lower(key, *example_inputs)
    return lowered.compile(compiler_options={"xla_backend_optimization_level": 0})(
        key, *example_inputs
    )


class TemporalUnet(nn.Module):
    """Denoiser ``(x [B, H, D], t [B]) -> [B, H, D]``, ``H`` a multiple of ``2^(levels - 1)``.

    With ``n_attributes = K > 0`` it also takes ``attribute`` [B] int in ``[0, K]`` (``K``, or
    None: no attribute), embedded and added to the noise-level embedding.
    """

    transition_dim: int
    dim: int = 32
    dim_mults: Sequence[int] = (1, 4, 8)
    kernel_size: int = 5
    attention: bool = False
    n_attributes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, attribute: jax.Array | None = None) -> jax.Array:
        time = TimeEmbedding(self.dim)(t)
        if self.n_attributes:
            if attribute is None:
                attribute = jnp.full(t.shape, self.n_attributes, jnp.int32)
            time = time + nn.Embed(self.n_attributes + 1, self.dim)(attribute)
        time = time.astype(x.dtype)  # keeps bfloat16 inputs in bfloat16
        x, skips = DownPath(self.dim, self.dim_mults, self.kernel_size, self.attention)(x, time)
        middle = self.dim * self.dim_mults[-1]
        x = ResidualTemporalBlock(middle, self.kernel_size)(x, time)
        if self.attention:
            x = LinearAttention()(x)
        x = ResidualTemporalBlock(middle, self.kernel_size)(x, time)
        # up path: one level per down level except the deepest, whose output is ``x`` itself
        for level in reversed(range(len(self.dim_mults) - 1)):
            features = self.dim * self.dim_mults[level]
            x = jnp.concatenate([x, skips[level + 1]], axis=-1)
            x = ResidualTemporalBlock(features, self.kernel_size)(x, time)
            x = ResidualTemporalBlock(features, self.kernel_size)(x, time)
            if self.attention:
                x = LinearAttention()(x)
            x = Upsample(features)(x)
        x = ConvBlock(self.dim, self.kernel_size)(x)
        return nn.Conv(self.transition_dim, (1,))(x)
