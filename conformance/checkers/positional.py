"""Checkers for positional information: sinusoidal encodings, rotary embeddings (RoPE) and ALiBi.

The float64 oracles here are written from the documents' formulas, not from ``backends/numpy.py``:
the sinusoidal table column by column, RoPE as a multiplication by ``exp(i * angle)`` in the
complex plane (the documents' own description), and ALiBi entry by entry.
"""

from __future__ import annotations

import numpy as np

from nnspec.case import Case
from nnspec.registry import Param, checker

# -- float64 oracles --------------------------------------------------------------------------------


def sinusoidal_oracle(length: int, d_model: int) -> np.ndarray:
    """``PE(pos, 2i) = sin(pos / 10000^(2i/d))`` and ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d))``."""
    table = np.zeros((length, d_model))
    for column in range(d_model):
        pair = column - column % 2  # the "2i" shared by columns 2i and 2i+1
        angle = np.arange(length) / 10000.0 ** (pair / d_model)
        table[:, column] = np.sin(angle) if column % 2 == 0 else np.cos(angle)
    return table


def rope_oracle(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Each pair ``(x[2i], x[2i+1])``, read as ``x[2i] + 1j x[2i+1]``, times ``exp(1j * pos * base^(-2i/D))``."""
    x = np.asarray(x, np.float64)
    dim = x.shape[-1]
    pairs = x[..., 0::2] + 1j * x[..., 1::2]
    frequencies = base ** (-np.arange(0, dim, 2) / dim)
    rotated = pairs * np.exp(1j * np.asarray(positions, np.float64)[:, None] * frequencies[None, :])
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = rotated.real, rotated.imag
    return out


def geometric_slopes(num_heads: int) -> np.ndarray:
    """The plain geometric slopes ``m_h = 2^(-8 (h+1) / H)``, for every head count."""
    return 2.0 ** (-8.0 * np.arange(1, num_heads + 1) / num_heads)


def interleaved_slopes(num_heads: int) -> np.ndarray:
    """The ALiBi authors' slopes: geometric for a power-of-two ``H``; otherwise the geometric
    slopes of the largest power of two ``P < H``, followed by every other slope of ``2P`` heads
    (the odd powers of ``2^(-4/P)``) until there are ``H``."""
    if num_heads & (num_heads - 1) == 0:
        return geometric_slopes(num_heads)
    below = 1 << (num_heads.bit_length() - 1)
    return np.concatenate([geometric_slopes(below), interleaved_slopes(2 * below)[0::2][: num_heads - below]])


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def alibi_oracle(num_heads: int, q_len: int, k_len: int, slopes: np.ndarray | None = None) -> np.ndarray:
    """``-m_h (i - j)`` for keys at or before the query, 0 after; ``m_h`` the geometric slopes by default."""
    slopes = geometric_slopes(num_heads) if slopes is None else slopes
    bias = np.zeros((num_heads, q_len, k_len))
    for head in range(num_heads):
        slope = float(slopes[head])
        for i in range(q_len):
            for j in range(min(i + 1, k_len)):
                bias[head, i, j] = -slope * (i - j)
    return bias


def _even(value: int) -> int:
    return value + value % 2


# -- sinusoidal encoding ---------------------------------------------------------------------------


def _table(case: Case, length: int | None = None, d_model: int | None = None) -> np.ndarray:
    length = case.size("length", (1, 48)) if length is None else length
    d_model = case.size("d_model", (1, 32)) if d_model is None else d_model
    return case.call("sinusoidal_encoding", length, d_model, dtype=case.dtype()).astype(np.float64)


@checker("sinusoidal_matches_formula", requires=("sinusoidal_encoding",))
def sinusoidal_matches_formula(case: Case) -> None:
    """The table equals ``sin`` on even columns and ``cos`` on odd ones, at ``pos / 10000^(2i/d)``."""
    table = _table(case)
    case.close("sinusoidal encoding", table, sinusoidal_oracle(*table.shape))


@checker("sinusoidal_bounded", requires=("sinusoidal_encoding",))
def sinusoidal_bounded(case: Case) -> None:
    """Every entry lies in ``[-1, 1]``: no rounding may carry a sine or cosine past 1."""
    table = _table(case)
    largest = float(np.max(np.abs(table), initial=0.0))
    case.require(largest <= 1.0, f"an encoding entry has magnitude {largest!r} > 1", error=largest, tolerance=1.0)


@checker("sinusoidal_pairs_on_unit_circle", requires=("sinusoidal_encoding",))
def sinusoidal_pairs_on_unit_circle(case: Case) -> None:
    """``PE(p, 2i)^2 + PE(p, 2i+1)^2 = 1``, so with even ``d`` every row has squared norm ``d / 2``."""
    table = _table(case, d_model=_even(case.size("d_model", (2, 32))))
    radii = table[:, 0::2] ** 2 + table[:, 1::2] ** 2
    case.close("sin^2 + cos^2 of each (2i, 2i+1) pair", radii, np.ones_like(radii))
    case.close("squared norm of each position's encoding", np.sum(table**2, axis=1),
               np.full(table.shape[0], table.shape[1] / 2.0), magnitude=table.shape[1] / 2.0)


@checker("sinusoidal_shift_is_rotation", requires=("sinusoidal_encoding",))
def sinusoidal_shift_is_rotation(case: Case) -> None:
    """``PE(p + k) = R_k PE(p)`` for every ``p``, where ``R_k`` is read off the backend's own row ``k``.

    Per pair, ``(s, c) = (PE(k, 2i), PE(k, 2i+1)) = (sin k w_i, cos k w_i)`` and the angle-addition
    identities give ``PE(p+k, 2i) = PE(p, 2i) c + PE(p, 2i+1) s`` and
    ``PE(p+k, 2i+1) = PE(p, 2i+1) c - PE(p, 2i) s``: a block-diagonal rotation that does not
    depend on ``p``.
    """
    length = case.size("length", (1, 32))
    shift = case.size("shift", (0, 32))
    d_model = _even(case.size("d_model", (2, 32)))
    table = _table(case, length + shift, d_model)
    sin_k, cos_k = table[shift, 0::2], table[shift, 1::2]
    sin_p, cos_p = table[:length, 0::2], table[:length, 1::2]
    expected = np.empty((length, d_model))
    expected[:, 0::2] = sin_p * cos_k + cos_p * sin_k
    expected[:, 1::2] = cos_p * cos_k - sin_p * sin_k
    case.close(f"PE(p + {shift}) against R_{shift} PE(p)", table[shift:], expected)


@checker("sinusoidal_breaks_permutation_equivariance", requires=("attention", "sinusoidal_encoding"))
def sinusoidal_breaks_permutation_equivariance(case: Case) -> None:
    """Self-attention over ``x + PE`` does not commute with reversing the tokens of ``x``.

    Without the encoding, ``Attention(Px) = P Attention(x)``; with it, the reversed tokens meet
    different encodings, so for inputs in general position the outputs differ by far more than
    rounding. A table that does not vary with position leaves the equivariance intact.
    """
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    length, d_model = case.size("q_len", (2, 12), minimum=2), case.size("d_model", (1, 16))
    x = case.array("x", (batch, heads, length, d_model), case.regime())
    encoding = case.call("sinusoidal_encoding", length, d_model, dtype=case.dtype())
    reverse = np.arange(length)[::-1]
    encoded = (x + encoding).astype(x.dtype)
    reversed_encoded = (x[:, :, reverse] + encoding).astype(x.dtype)
    out = case.call("attention", encoded, encoded, encoded).astype(np.float64)
    reversed_out = case.call("attention", reversed_encoded, reversed_encoded, reversed_encoded)
    gap = float(np.max(np.abs(reversed_out.astype(np.float64) - out[:, :, reverse])))
    floor = 1e3 * case.epsilon() * max(1.0, float(np.max(np.abs(encoded))))
    case.require(
        gap > floor,
        f"with sinusoidal encodings added, attention still commutes with reversing the tokens "
        f"(largest difference {gap:.3g} <= {floor:.3g}): the encoding carries no position",
        error=floor, tolerance=max(gap, 1e-300),
    )


# -- RoPE ------------------------------------------------------------------------------------------


def _rotary_inputs(case: Case, name: str, length_name: str) -> np.ndarray:
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    length = case.size(length_name, (1, 8))
    dim = _even(case.size("dim", (2, 16)))
    return case.array(name, (batch, heads, length, dim), case.regime())


def _positions(case: Case, name: str, count: int) -> np.ndarray:
    high = int(case.params.get("max_position", 64))
    return case.keep(name, case.rng.integers(0, high + 1, count))


@checker("rope_matches_formula", requires=("rope",), params={"max_position": Param(int, default=64, minimum=1)})
def rope_matches_formula(case: Case) -> None:
    """Pair ``(x[2i], x[2i+1])`` at position ``p`` rotates by the angle ``p * base^(-2i/D)``."""
    x = _rotary_inputs(case, "x", "q_len")
    positions = _positions(case, "positions", x.shape[2])
    actual = case.call("rope", x, positions)
    case.close("rotary embedding", actual, rope_oracle(x, positions),
               magnitude=float(np.max(np.abs(x.astype(np.float64)), initial=0.0)))


@checker("rope_preserves_norm", requires=("rope",), params={"max_position": Param(int, default=64, minimum=1)})
def rope_preserves_norm(case: Case) -> None:
    """A rotation keeps the length of every token's vector, whatever the pairing of coordinates."""
    x = _rotary_inputs(case, "x", "q_len")
    positions = _positions(case, "positions", x.shape[2])
    rotated = case.call("rope", x, positions).astype(np.float64)
    x64 = x.astype(np.float64)
    # The length of the whole vector: it is kept whichever coordinates a backend pairs up.
    before = np.linalg.norm(x64, axis=-1)
    after = np.linalg.norm(rotated, axis=-1)
    case.close("length of each rotated vector against the original", after, before,
               magnitude=float(np.max(before, initial=0.0)))


@checker("rope_relative_scores", requires=("rope",), params={"max_position": Param(int, default=64, minimum=1), "max_offset": Param(int, default=256, minimum=1)})
def rope_relative_scores(case: Case) -> None:
    """``<R_m q, R_n k>`` depends only on ``m - n``: shifting both positions by ``s`` leaves it unchanged."""
    q = _rotary_inputs(case, "q", "q_len")
    k = case.array("k", (*q.shape[:2], case.size("k_len", (1, 8)), q.shape[3]), case.regime())
    m, n = _positions(case, "q_positions", q.shape[2]), _positions(case, "k_positions", k.shape[2])
    offset = case.size("offset", (1, int(case.params.get("max_offset", 256))))

    def scores(q_positions: np.ndarray, k_positions: np.ndarray) -> np.ndarray:
        rotated_q = case.call("rope", q, q_positions).astype(np.float64)
        rotated_k = case.call("rope", k, k_positions).astype(np.float64)
        return np.einsum("bhld,bhsd->bhls", rotated_q, rotated_k)

    scale = np.einsum("bhld,bhsd->bhls", np.abs(q.astype(np.float64)), np.abs(k.astype(np.float64)))
    case.close(f"scores with both positions shifted by {offset} against unshifted", scores(m + offset, n + offset),
               scores(m, n), magnitude=float(np.max(scale, initial=0.0)))


# -- ALiBi -----------------------------------------------------------------------------------------


def _alibi(case: Case, heads: int, q_len: int, k_len: int) -> np.ndarray:
    return case.call("alibi_bias", heads, q_len, k_len, dtype=case.dtype()).astype(np.float64)


def _expected_slopes(case: Case, heads: int, bias: np.ndarray) -> np.ndarray:
    """The slopes the backend must use: geometric for a power-of-two ``H`` (both published recipes
    agree there); otherwise whichever of the two recipes its table is closer to (implementation-
    defined), recorded as a note."""
    if is_power_of_two(heads):
        return geometric_slopes(heads)
    recipes = {"plain geometric": geometric_slopes(heads), "interleaved (the ALiBi authors')": interleaved_slopes(heads)}
    if bias.shape[1] < 2:
        return recipes["plain geometric"]  # a one-query table is all zero whatever the slopes
    observed = -bias[:, 1, 0]
    name = min(recipes, key=lambda key: float(np.max(np.abs(recipes[key] - observed))))
    case.note(f"slopes for a head count that is not a power of two: {name}")
    return recipes[name]


@checker("alibi_matches_formula", requires=("alibi_bias",))
def alibi_matches_formula(case: Case) -> None:
    """``bias[h, i, j] = -m_h (i - j)`` for ``j <= i`` and 0 above the diagonal, ``m_h = 2^(-8 (h+1) / H)``
    for a power-of-two ``H``; for other ``H`` the slopes of either published recipe."""
    heads, q_len, k_len = case.size("heads", (1, 16)), case.size("q_len", (1, 16)), case.size("k_len", (1, 16))
    bias = _alibi(case, heads, q_len, k_len)
    slopes = _expected_slopes(case, heads, bias)
    case.close("ALiBi bias", bias, alibi_oracle(heads, q_len, k_len, slopes), magnitude=float(max(q_len, k_len)))


@checker("alibi_relative_distance_only", requires=("alibi_bias",))
def alibi_relative_distance_only(case: Case) -> None:
    """Every entry depends only on ``i - j``: equal along each diagonal and across table sizes."""
    heads = case.size("heads", (1, 8))
    shapes = [(case.size("q_len", (1, 12)), case.size("k_len", (1, 12))),
              (case.size("q_len_2", (1, 12)), case.size("k_len_2", (1, 12)))]
    tables = [_alibi(case, heads, q_len, k_len) for q_len, k_len in shapes]
    reference: dict[int, np.ndarray] = {}
    actual, expected = [], []
    for table in tables:
        q_len, k_len = table.shape[1:]
        for i in range(q_len):
            for j in range(k_len):
                value = reference.setdefault(i - j, table[:, i, j])
                actual.append(table[:, i, j])
                expected.append(value)
    case.close("bias against the first entry seen at the same distance i - j", np.array(actual), np.array(expected),
               magnitude=float(max(max(shape) for shape in shapes)))


@checker("alibi_geometric_slopes", requires=("alibi_bias",))
def alibi_geometric_slopes(case: Case) -> None:
    """Slopes read off the bias (``-bias[h, 1, 0]``) are ``r, r^2, ..., r^H`` with ``r = 2^(-8/H)``
    for a power-of-two ``H`` (for other ``H``: either published recipe), and below the diagonal
    the bias is that slope times the distance."""
    heads = case.size("heads", (1, 16))
    q_len, k_len = case.size("q_len", (2, 16), minimum=2), case.size("k_len", (1, 16))
    bias = _alibi(case, heads, q_len, k_len)
    slopes = -bias[:, 1, 0]
    case.close("per-head slopes against the published recipe", slopes, _expected_slopes(case, heads, bias))
    distance = np.arange(q_len)[:, None] - np.arange(k_len)[None, :]
    below = distance >= 0
    case.close("bias below the diagonal against slope * distance", bias[:, below],
               -slopes[:, None] * distance[below][None, :], magnitude=float(q_len))
