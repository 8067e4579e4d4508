"""Checkers for masks: padding, additive 0/-inf masks, masks of any broadcast shape, prefix-LM
masks, fully masked rows and the alignment of a causal mask when query and key lengths differ.
"""

from __future__ import annotations

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.checkers._draw import qkv
from nnspec.oracles import magnitude as _magnitude
from nnspec.registry import Param, checker
from nnspec.tolerances import LOW_PRECISION


@checker("padding_invariance", requires=("attention",))
def padding_invariance(case: Case) -> None:
    """Outputs at real positions do not depend on what the padding holds or how long it is.

    A sequence of ``n`` real tokens is padded twice, to two drawn lengths with different pad
    contents, and attended with a key padding mask ``(B, 1, 1, S)``; the outputs at the ``n`` real
    positions must equal each other and attention over the unpadded sequence.
    """
    q, k, v = qkv(case, self_attention=True)
    real = q.shape[2]
    outputs = []
    for index in range(2):
        pad = case.size(f"pad_{index}", (0, 4))
        regime = case.regime(f"pad_values_{index}")

        def padded(x: np.ndarray, name: str, pad: int = pad, regime: str = regime, index: int = index) -> np.ndarray:
            filler = case.array(f"{name}_pad_{index}", (*x.shape[:2], pad, x.shape[3]), regime, scale=10.0)
            return np.concatenate([x, filler], axis=2)

        mask = np.zeros((q.shape[0], 1, 1, real + pad), dtype=bool)
        mask[..., :real] = True
        out = case.call("attention", padded(q, "q"), padded(k, "k"), padded(v, "v"), mask=mask)
        outputs.append(out[:, :, :real])
    unpadded = case.call("attention", q, k, v)
    case.close("outputs at real positions under two different paddings", outputs[1],
               outputs[0].astype(np.float64), magnitude=_magnitude(v))
    case.close("padded outputs at real positions against the unpadded sequence", outputs[0],
               unpadded.astype(np.float64), magnitude=_magnitude(v))


@checker("additive_mask_equals_boolean", requires=("attention", "attention_with_bias"))
def additive_mask_equals_boolean(case: Case) -> None:
    """An additive mask (0 where allowed, -inf or a huge negative elsewhere) equals the boolean mask."""
    q, k, v = qkv(case)
    kind, mask = case.mask(q.shape[0], q.shape[2], k.shape[2])
    if mask is None:
        mask = np.ones((q.shape[0], 1, q.shape[2], k.shape[2]), dtype=bool)
    fill = float(case.choice("fill", [-np.inf, -1e9]))
    bias = case.keep("bias", np.where(mask, 0.0, fill).astype(q.dtype))
    additive = case.call("attention_with_bias", q, k, v, bias)
    boolean = case.call("attention", q, k, v, mask=mask)
    case.close(f"attention with an additive 0/{fill:g} mask against the boolean mask (mask {kind})",
               additive, boolean.astype(np.float64), magnitude=_magnitude(v))


def _broadcast_mask(case: Case, batch: int, heads: int, q_len: int, k_len: int) -> tuple[str, np.ndarray]:
    """A random boolean mask in one of the shapes that broadcast to (B, H, L, S), every row non-empty."""
    layout = case.choice("layout", ["per_head", "per_batch", "shared_2d", "per_query_head"])
    shapes = {"per_head": (batch, heads, q_len, k_len), "per_batch": (batch, 1, q_len, k_len),
              "shared_2d": (q_len, k_len), "per_query_head": (1, heads, q_len, k_len)}
    shape = shapes[layout]
    mask = case.rng.random(shape) < case.choice("density", [0.2, 0.5, 0.8])
    keep = case.rng.integers(0, k_len, shape[:-1])
    np.put_along_axis(mask, keep[..., None], True, axis=-1)
    return layout, case.keep("mask", mask)


@checker("arbitrary_mask_matches_oracle", requires=("attention",))
def arbitrary_mask_matches_oracle(case: Case) -> None:
    """Any boolean mask broadcastable to (B, H, L, S), per head or per batch or shared, matches the oracle.

    Half the examples are square (L = S), deliberately: only there can a kernel read the mask's
    query and key axes the wrong way round without a shape error."""
    q, k, v = qkv(case, self_attention=case.flag("square"))
    layout, mask = _broadcast_mask(case, q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    out = case.call("attention", q, k, v, mask=mask)
    # float16/bfloat16 (the SDPA kernel variants' dtypes) are judged against the same-precision dense yardstick.
    baseline = oracles.attention_in_precision(q, k, v, case.dtype(), mask) if case.dtype() in LOW_PRECISION else None
    case.close(f"attention with a {layout} mask of shape {mask.shape}", out, oracles.attention(q, k, v, mask),
               magnitude=_magnitude(v), baseline=baseline)


def prefix_lm_mask(length: int, prefix: int) -> np.ndarray:
    """Prefix-LM mask: the first ``prefix`` positions see each other; later positions see the past."""
    rows, cols = np.arange(length)[:, None], np.arange(length)[None, :]
    return (cols <= rows) | ((rows < prefix) & (cols < prefix))


@checker("prefix_lm_mask", requires=("attention",))
def prefix_lm_mask_checker(case: Case) -> None:
    """Under a prefix-LM mask the prefix is encoded bidirectionally and the rest causally.

    The output matches the float64 oracle; changing any position after ``t >= prefix - 1`` leaves
    the outputs up to ``t`` unchanged; and the prefix's first position does see later prefix
    positions (when the prefix has two or more).
    """
    q, k, v = qkv(case, self_attention=True)
    length = q.shape[2]
    prefix = case.size("prefix", (1, length))
    prefix = min(prefix, length)
    mask = case.keep("mask", prefix_lm_mask(length, prefix))
    out = case.call("attention", q, k, v, mask=mask)
    case.close(f"attention with a prefix-LM mask (prefix {prefix} of {length})", out,
               oracles.attention(q, k, v, mask), magnitude=_magnitude(v))
    cut = min(max(case.size("cut", (0, length)), prefix - 1), length - 1)
    later = slice(cut + 1, None)
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    for name, array in (("q_later", q2), ("k_later", k2), ("v_later", v2)):
        array[:, :, later] = case.array(name, array[:, :, later].shape, case.regime("perturbation"), scale=10.0)
    changed = case.call("attention", q2, k2, v2, mask=mask)
    case.close(f"outputs at positions <= {cut} after changing later positions (prefix {prefix})",
               changed[:, :, : cut + 1], out[:, :, : cut + 1].astype(np.float64), magnitude=_magnitude(v))


@checker("fully_masked_rows_output_zero", requires=("attention",))
def fully_masked_rows_output_zero(case: Case) -> None:
    """A query row with no admissible key outputs exactly 0 (the reference's choice), and other rows are unharmed.

    The message says what the backend does instead: NaN, the mean of the values (uniform weights
    from a finite fill), or something else.
    """
    q, k, v = qkv(case)
    batch, q_len, k_len = q.shape[0], q.shape[2], k.shape[2]
    mask = case.rng.random((batch, 1, q_len, k_len)) < 0.6
    keep = case.rng.integers(0, k_len, (batch, 1, q_len))
    np.put_along_axis(mask, keep[..., None], True, axis=-1)
    empty = case.rng.random((batch, 1, q_len)) < 0.5
    empty.reshape(-1)[case.rng.integers(0, empty.size)] = True
    mask[empty] = False
    case.keep("mask", mask)
    out = case.call("attention", q, k, v, mask=mask).astype(np.float64)
    rows = np.broadcast_to(empty, out.shape[:3])
    masked_out, other_out = out[rows], out[~rows]
    if not np.all(np.isfinite(masked_out)):
        found = "NaN or inf"
    elif np.allclose(masked_out, 0.0, atol=0.0):
        found = "0"
    else:
        mean = np.broadcast_to(v.astype(np.float64).mean(axis=2, keepdims=True), out.shape)[rows]
        found = "mean(v) (uniform weights)" if np.allclose(masked_out, mean, rtol=1e-2, atol=1e-2) else "other values"
    worst = float(np.max(np.abs(np.nan_to_num(masked_out, nan=np.inf)), initial=0.0))
    case.note(f"a fully masked query row outputs {found}")
    case.require(found == "0", f"a fully masked query row outputs {found}, not 0 (largest |output| {worst:.3g})",
                 error=worst, tolerance=0.0)
    case.require(bool(np.all(np.isfinite(other_out))),
                 "rows that keep a key became non-finite when another row was fully masked")
    case.close("rows with admissible keys, beside fully masked rows", out[~rows],
               oracles.attention(q, k, v, mask)[~rows], magnitude=_magnitude(v))


def _alignment(weights: np.ndarray, q_len: int, k_len: int) -> str:
    """Name the causal alignment whose admissible set is exactly where ``weights`` are non-zero."""
    rows, cols = np.arange(q_len)[:, None], np.arange(k_len)[None, :]
    nonzero = np.all(weights != 0.0, axis=tuple(range(weights.ndim - 2)))
    top_left, bottom_right = cols <= rows, cols <= rows + (k_len - q_len)
    # Rows that a bottom-right mask leaves empty are implementation-defined: compare the others.
    judged = bottom_right.any(axis=-1) & top_left.any(axis=-1)
    for name, pattern in (("top-left", top_left), ("bottom-right", bottom_right)):
        if np.array_equal(nonzero[judged], pattern[judged]):
            return name
    return "neither top-left nor bottom-right"


@checker("causal_alignment", requires=("attention",), params={
    "accept": Param(list, default=["top-left"], choices=("top-left", "bottom-right"))})
def causal_alignment(case: Case) -> None:
    """With L != S, ``is_causal`` has one of the alignments in ``params.accept`` (top-left, key j
    visible to query i when j <= i, by default).

    The weights are read through the attention kernel itself: with values ``V = I_S`` the output
    is the weight matrix. So that q, k and v share one head width (some kernels require it), all
    three are zero-padded to ``max(D, S)`` columns and the scale is given as ``1 / sqrt(D)``: zero
    columns change no logit. The message names the alignment found otherwise (bottom-right:
    j <= i + S - L).
    """
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    q_len = case.size("q_len", (1, 8))
    k_len = case.size("k_len", (1, 8))
    if k_len == q_len:
        k_len = q_len + 1 if case.flag("longer_keys") or q_len == 1 else q_len - 1
    dim = case.size("dim", (1, 8))
    width = max(dim, k_len)
    q = np.zeros((batch, heads, q_len, width), dtype=case.dtype())
    k = np.zeros((batch, heads, k_len, width), dtype=case.dtype())
    q[..., :dim] = case.array("q", (batch, heads, q_len, dim), "uniform")
    k[..., :dim] = case.array("k", (batch, heads, k_len, dim), "uniform")
    identity = np.zeros((batch, heads, k_len, width), dtype=case.dtype())
    identity[..., :k_len] = np.eye(k_len)
    weights = case.call("attention", q, k, identity, is_causal=True, scale=1.0 / np.sqrt(dim))
    weights = weights.astype(np.float64)[..., :k_len]
    found = _alignment(weights, q_len, k_len)
    case.note(f"is_causal with L != S is {found} aligned")
    accepted = list(case.params.get("accept", ["top-left"]))
    case.require(found in accepted,
                 f"is_causal with L = {q_len} queries and S = {k_len} keys uses {found} alignment, "
                 f"expected {' or '.join(accepted)} "
                 f"(top-left: key j visible to query i when j <= i; bottom-right: when j <= i + S - L)")
