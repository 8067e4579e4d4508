"""Checkers for the inputs real kernels get and the earlier catalogue never drew.

Each draws one rare-but-important condition in *every* example (not by a coin flip): a mask
together with ``is_causal``, a value width different from the key width, an explicit scale of 0,
finite additive biases, non-finite values in masked positions, fully masked rows through every
path, multi-head masks with batch > 1, heads > 1 and L != S together, and the output dtype.
"""

from __future__ import annotations

import numpy as np

from nnspec import oracles
from nnspec.case import Case
from nnspec.oracles import magnitude as _magnitude
from nnspec.registry import Param, checker
from nnspec.tolerances import EPSILON, LOW_PRECISION


def _baseline(
    case: Case,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    allowed: np.ndarray | None,
    scale: float | None = None,
) -> np.ndarray | None:
    """In float16/bfloat16: the same-precision dense attention, the yardstick for the kernel's error."""
    if case.dtype() not in LOW_PRECISION:
        return None
    return oracles.attention_in_precision(q, k, v, case.dtype(), allowed, scale)


def _qkv(
    case: Case, q_len: int, k_len: int, dim_v: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batch, heads = case.size("batch", (1, 3)), case.size("heads", (1, 3))
    dim = case.size("dim", (1, 8))
    dim_v = case.size("dim_v", (1, 8)) if dim_v is None else dim_v
    regime = case.regime()
    return (
        case.array("q", (batch, heads, q_len, dim), regime),
        case.array("k", (batch, heads, k_len, dim), regime),
        case.array("v", (batch, heads, k_len, dim_v), regime),
    )


@checker("attention_mask_with_causal", requires=("attention",))
def attention_mask_with_causal(case: Case) -> None:
    """A boolean mask and ``is_causal`` together (decoder training with padding): a key is admissible
    only where both allow it. Square (L = S), so the causal alignment is not in question."""
    length = case.size("q_len", (1, 8))
    q, k, v = _qkv(case, length, length)
    kind, mask = case.mask(q.shape[0], length, length)
    if mask is None:
        raise AssertionError("this property needs a mask kind other than none in its domain")
    mask[..., 0] = True  # key 0 is causal-admissible for every query: no row is left empty
    case.keep("mask", mask)
    allowed = mask & oracles.causal(length, length)
    actual = case.call("attention", q, k, v, mask=mask, is_causal=True)
    case.close(
        f"attention with a {kind} mask and is_causal together",
        actual,
        oracles.attention(q, k, v, allowed),
        baseline=_baseline(case, q, k, v, allowed),
        magnitude=_magnitude(v),
    )


@checker("attention_value_width_differs", requires=("attention",))
def attention_value_width_differs(case: Case) -> None:
    """With ``Dv != D`` (every example), the default scale is ``1/sqrt(D)``, the key width, and the
    output has ``Dv`` columns."""
    dim = case.size("dim", (1, 8))
    dim_v = dim + case.size("dim_v", (1, 8))  # strictly wider or, below, strictly narrower
    if case.flag("narrower_values") and dim > 1:
        dim_v = int(case.rng.integers(1, dim))
    q, k, v = _qkv(case, case.size("q_len", (1, 8)), case.size("k_len", (1, 8)), dim_v)
    _, mask = case.mask(q.shape[0], q.shape[2], k.shape[2])
    actual = case.call("attention", q, k, v, mask=mask)
    case.require(
        actual.shape == q.shape[:-1] + (dim_v,),
        f"output shape {actual.shape}, expected {q.shape[:-1] + (dim_v,)} (D = {dim}, Dv = {dim_v})",
    )
    case.close(
        f"attention with D = {dim}, Dv = {dim_v}",
        actual,
        oracles.attention(q, k, v, mask),
        baseline=_baseline(case, q, k, v, mask),
        magnitude=_magnitude(v),
    )


@checker("attention_scale_zero", requires=("attention",))
def attention_scale_zero(case: Case) -> None:
    """``scale = 0.0`` (an explicit value, not "use the default") makes every admissible logit 0:
    each output row is the mean of the admissible value rows."""
    q, k, v = _qkv(case, case.size("q_len", (1, 8)), case.size("k_len", (1, 8)))
    _, mask = case.mask(q.shape[0], q.shape[2], k.shape[2])
    actual = case.call("attention", q, k, v, mask=mask, scale=0.0)
    allowed = np.ones((1, 1, q.shape[2], k.shape[2]), dtype=bool) if mask is None else mask
    weights = np.broadcast_to(allowed, q.shape[:2] + (q.shape[2], k.shape[2])).astype(np.float64)
    expected = (weights / weights.sum(axis=-1, keepdims=True)) @ v.astype(np.float64)
    case.close(
        "attention with scale=0.0 against the mean of the admissible values",
        actual,
        expected,
        baseline=_baseline(case, q, k, v, mask, 0.0),
        magnitude=_magnitude(v),
    )


@checker("attention_finite_bias", requires=("attention_with_bias",))
def attention_finite_bias(case: Case) -> None:
    """A finite additive bias of any size (a learned relative bias, ALiBi) is added to the scaled
    logits: ``softmax(scale q k^T + bias) v``, with the default or an explicit scale."""
    q, k, v = _qkv(case, case.size("q_len", (1, 8)), case.size("k_len", (1, 8)))
    spread = float(case.choice("bias_spread", [0.1, 1.0, 5.0, 30.0]))
    bias = case.array("bias", (q.shape[0], q.shape[1], q.shape[2], k.shape[2]), "normal", scale=spread)
    scale = None if case.flag("default_scale") else float(case.rng.uniform(0.05, 2.0))
    actual = case.call("attention_with_bias", q, k, v, bias, scale=scale)
    used = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = used * np.einsum("bhld,bhsd->bhls", q.astype(np.float64), k.astype(np.float64)) + bias
    expected = oracles.softmax(logits) @ v.astype(np.float64)
    case.close(
        f"attention with a finite bias (spread {spread}) against the formula",
        actual,
        expected,
        magnitude=_magnitude(v),
    )


@checker(
    "output_dtype_matches_input",
    requires=(),
    params={
        "primitive": Param(
            str,
            default="attention",
            choices=("attention", "attention_with_bias", "softmax", "layer_norm", "multi_head_attention"),
        )
    },
)
def output_dtype_matches_input(case: Case) -> None:
    """The output of a primitive has the dtype of its floating-point inputs (no silent up- or down-cast)."""
    primitive = str(case.params.get("primitive", "attention"))
    if not case.backend.supports(primitive):
        from hypothesis import reject

        reject()
    dtype = case.dtype()
    batch, length, width = (
        case.size("batch", (1, 2)),
        case.size("q_len", (1, 6)),
        2 * case.size("heads", (1, 2)),
    )
    if primitive in ("attention", "attention_with_bias"):
        q, k, v = _qkv(case, length, case.size("k_len", (1, 6)))
        extra = (
            [case.array("bias", (q.shape[0], q.shape[1], length, k.shape[2]))]
            if primitive != "attention"
            else []
        )
        out = case.call(primitive, q, k, v, *extra)
    elif primitive == "softmax":
        out = case.call("softmax", case.array("x", (batch, length, width)))
    elif primitive == "layer_norm":
        out = case.call(
            "layer_norm",
            case.array("x", (batch, length, width)),
            case.array("weight", (width,)),
            case.array("bias", (width,)),
        )
    else:
        x = case.array("x", (batch, length, width))
        params = {f"w_{n}": case.array(f"w_{n}", (width, width), "uniform") for n in "qkvo"}
        params.update({f"b_{n}": case.array(f"b_{n}", (width,), "uniform") for n in "qkvo"})
        out = case.call("multi_head_attention", x, x, params, 2)
    case.require(str(out.dtype) == dtype, f"{primitive} on {dtype} inputs returned {out.dtype}")


@checker(
    "masked_nonfinite_ignored",
    requires=("attention",),
    params={"path": Param(str, default="attention", choices=("attention", "multi_head"))},
)
def masked_nonfinite_ignored(case: Case) -> None:
    """Keys and values that every query masks out may hold NaN or inf: a masked key has weight
    exactly 0, so the output equals attention over the admissible keys alone. Through multi-head
    attention the poison sits in the padded rows of ``x_kv`` (a padding buffer), so its projected
    keys and values are NaN or inf too."""
    path = str(case.params.get("path", "attention"))
    if path == "multi_head" and not case.backend.supports("multi_head_attention"):
        from hypothesis import reject

        reject()
    batch, k_len = case.size("batch", (1, 3)), case.size("k_len", (2, 8), minimum=2)
    lengths = case.keep("lengths", np.asarray(case.rng.integers(1, k_len, batch)))
    mask = np.arange(k_len)[None, None, None, :] < lengths[:, None, None, None]
    poison = float(case.choice("poison", [np.nan, np.inf, -np.inf]))
    padded = ~mask[:, 0, 0, :]  # (B, S)
    if path == "multi_head":
        heads = case.size("heads", (1, 3))
        width = heads * case.size("dim", (1, 4))
        q_len = case.size("q_len", (1, 8))
        x_q = case.array("x_q", (batch, q_len, width), case.regime())
        x_kv = case.array("x_kv", (batch, k_len, width), case.regime())
        params = {
            f"w_{n}": case.array(f"w_{n}", (width, width), "uniform", scale=width**-0.5) for n in "qkvo"
        }
        params.update({f"b_{n}": case.array(f"b_{n}", (width,), "uniform") for n in "qkvo"})
        x_bad = case.keep("x_kv", np.where(padded[..., None], poison, x_kv).astype(x_kv.dtype))
        actual = case.call("multi_head_attention", x_q, x_bad, params, heads, mask=mask)
        clean = np.where(padded[..., None], 0.0, x_kv)
        case.close(
            f"multi-head attention with {poison} in the padded rows of x_kv against the admissible rows only",
            actual,
            oracles.multi_head_attention(x_q, clean, params, heads, mask),
        )
        return
    q, k, v = _qkv(case, case.size("q_len", (1, 8)), k_len)
    k_bad = case.keep("k", np.where(padded[:, None, :, None], poison, k).astype(k.dtype))
    v_bad = case.keep("v", np.where(padded[:, None, :, None], poison, v).astype(v.dtype))
    actual = case.call("attention", q, k_bad, v_bad, mask=mask)
    clean = np.where(mask[..., 0, :, None], v, 0.0)
    case.close(
        f"attention with {poison} in masked keys/values against the admissible keys only",
        actual,
        oracles.attention(q, np.where(mask[..., 0, :, None], k, 0.0), clean, mask),
        baseline=_baseline(case, q, k, clean, mask),
        magnitude=_magnitude(v),
    )


def _empty_rows(
    case: Case, batch: int, q_len: int, k_len: int
) -> tuple[int, int, np.ndarray, np.ndarray, bool, str]:
    """Inputs with at least one fully masked query row and at least one row that keeps a key.

    One of three layouts, drawn per example: ``random`` (a ``(B, 1, L, S)`` mask with empty rows),
    ``left_padding_causal`` (a left-padded ``(B, 1, 1, S)`` key mask with ``is_causal``, L = S: the
    padded queries of a decoder batch see no key, as in batched generation) and ``empty_sequence``
    (a ``(B, 1, 1, S)`` key mask with one sequence of length 0, B >= 2). Returns the batch and key
    length used, the admissible set ``(B, 1, L, S)``, the mask to pass, ``is_causal`` and the layout.
    """
    layout = str(case.choice("layout", ["random", "left_padding_causal", "empty_sequence"]))
    cols = np.arange(k_len)
    if layout == "left_padding_causal":
        k_len, cols = q_len, np.arange(q_len)
        real = case.rng.integers(0, k_len + 1, batch)
        real[0] = case.rng.integers(1, k_len)  # batch element 0 has padding and a real token
        mask = (cols[None, :] >= (k_len - real)[:, None])[:, None, None, :]
        allowed = mask & oracles.causal(q_len, k_len)
        return batch, k_len, allowed, case.keep("mask", mask), True, layout
    if layout == "empty_sequence":
        batch = max(batch, 2)
        lengths = case.rng.integers(1, k_len + 1, batch)
        lengths[int(case.rng.integers(0, batch))] = 0
        mask = (cols[None, :] < lengths[:, None])[:, None, None, :]
        allowed = np.broadcast_to(mask, (batch, 1, q_len, k_len))
        return batch, k_len, allowed, case.keep("mask", mask), False, layout
    mask = case.rng.random((batch, 1, q_len, k_len)) < 0.6
    np.put_along_axis(mask, case.rng.integers(0, k_len, (batch, 1, q_len))[..., None], True, axis=-1)
    empty = case.rng.random((batch, 1, q_len)) < 0.3
    rows = empty.reshape(-1)
    first, second = case.rng.choice(rows.size, 2, replace=False)  # q_len >= 2: two distinct rows
    rows[first], rows[second] = True, False
    mask[empty] = False
    return batch, k_len, mask, case.keep("mask", mask), False, layout


def _empty_rows_give(seen: np.ndarray) -> str:
    if seen.size and np.all(seen == 0):
        return "0"
    return "NaN" if seen.size and np.all(np.isnan(seen)) else "other values (a mean, say)"


@checker(
    "fully_masked_rows_isolated",
    requires=(),
    params={"path": Param(str, default="attention", choices=("boolean", "additive", "multi_head"))},
)
def fully_masked_rows_isolated(case: Case) -> None:
    """A fully masked query row (whatever it outputs: 0, NaN, a mean, implementation-defined) does
    not change any other row, through a boolean mask, an additive 0/-inf mask or multi-head
    attention, with random empty rows, left padding with ``is_causal``, or an empty sequence."""
    path = str(case.params.get("path", "attention"))
    primitive = {
        "boolean": "attention",
        "additive": "attention_with_bias",
        "multi_head": "multi_head_attention",
    }[path]
    if not case.backend.supports(primitive):
        from hypothesis import reject

        reject()
    q_len = case.size("q_len", (1, 6), minimum=2)
    batch, k_len, allowed, mask, causal, layout = _empty_rows(
        case, case.size("batch", (1, 3)), q_len, case.size("k_len", (1, 6))
    )
    baseline = None
    if path == "multi_head":
        heads = case.size("heads", (1, 3))
        width = heads * case.size("dim", (1, 3))
        x_q = case.array("x_q", (batch, q_len, width), case.regime())
        x_kv = case.array("x_kv", (batch, k_len, width), case.regime())
        params = {
            f"w_{n}": case.array(f"w_{n}", (width, width), "uniform", scale=width**-0.5) for n in "qkvo"
        }
        params.update({f"b_{n}": case.array(f"b_{n}", (width,), "uniform") for n in "qkvo"})
        actual = case.call(
            "multi_head_attention", x_q, x_kv, params, heads, mask=mask, is_causal=causal
        ).astype(np.float64)
        expected = oracles.multi_head_attention(x_q, x_kv, params, heads, allowed)
        rows = allowed[:, 0].any(axis=-1)  # (B, L)
        magnitude = 1.0
    else:
        heads, dim = case.size("heads", (1, 3)), case.size("dim", (1, 4))
        regime = case.regime()
        q = case.array("q", (batch, heads, q_len, dim), regime)
        k = case.array("k", (batch, heads, k_len, dim), regime)
        v = case.array("v", (batch, heads, k_len, case.size("dim_v", (1, 4))), regime)
        if path == "additive":
            bias = np.broadcast_to(np.where(allowed, 0.0, -np.inf), q.shape[:2] + (q_len, k_len)).astype(
                q.dtype
            )
            actual = case.call("attention_with_bias", q, k, v, case.keep("bias", bias)).astype(np.float64)
        else:
            actual = case.call("attention", q, k, v, mask=mask, is_causal=causal).astype(np.float64)
        expected = oracles.attention(q, k, v, allowed)
        rows = np.broadcast_to(allowed.any(axis=-1), q.shape[:3])  # (B, H, L)
        magnitude = _magnitude(v)
        if case.dtype() in LOW_PRECISION:
            baseline = oracles.attention_in_precision(q, k, v, case.dtype(), allowed)[rows]
    case.note(f"fully masked rows ({layout}) give {_empty_rows_give(actual[~rows])}")
    case.close(
        f"rows with an admissible key, next to fully masked rows ({path} path, {layout})",
        actual[rows],
        expected[rows],
        baseline=baseline,
        magnitude=magnitude,
    )


@checker("fully_masked_finite_fill", requires=("attention_with_bias",))
def fully_masked_finite_fill(case: Case) -> None:
    """An additive mask with a finite fill (-1e9, -1e4, -50; float16 takes -6e4 for -1e9) is an
    ordinary bias: a row whose every key carries the fill is a softmax of finite logits, so its
    output is a convex combination of the value rows (finite, inside their per-column range); rows
    that keep a key match the float64 formula; with the fill -50, whose rounding inside the logits is
    within the tolerance (|fill| eps / 2 <= 25 eps), every row matches the formula."""
    dtype = case.dtype()
    q_len = case.size("q_len", (1, 6), minimum=2)
    batch, k_len, allowed, _, _, layout = _empty_rows(
        case, case.size("batch", (1, 3)), q_len, case.size("k_len", (1, 6))
    )
    heads, dim = case.size("heads", (1, 3)), case.size("dim", (1, 4))
    regime = case.regime()
    q = case.array("q", (batch, heads, q_len, dim), regime)
    k = case.array("k", (batch, heads, k_len, dim), regime)
    v = case.array("v", (batch, heads, k_len, case.size("dim_v", (1, 4))), regime)
    fill = float(case.choice("fill", [-1e9, -1e4, -50.0]))
    if dtype == "float16" and fill < -6e4:
        fill = -6e4  # float16's largest finite magnitude is 65504: -1e9 would round to -inf
    bias = case.keep(
        "bias", np.broadcast_to(np.where(allowed, 0.0, fill), q.shape[:2] + (q_len, k_len)).astype(q.dtype)
    )
    actual = case.call("attention_with_bias", q, k, v, bias).astype(np.float64)
    logits = np.einsum("bhld,bhsd->bhls", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(dim)
    expected = oracles.softmax(logits + bias.astype(np.float64)) @ v.astype(np.float64)
    rows = np.broadcast_to(allowed.any(axis=-1), q.shape[:3])
    seen = actual[~rows]
    case.require(
        bool(np.all(np.isfinite(seen))),
        f"a row whose every key carries the finite fill {fill:g} ({layout}) gave NaN or inf: a softmax "
        f"of finite logits is a probability vector",
    )
    values = np.broadcast_to(v.astype(np.float64)[:, :, None], q.shape[:3] + v.shape[2:])[~rows]  # (n, S, Dv)
    slack = (k_len + 4) * EPSILON[dtype] * _magnitude(v)  # rounding of a convex combination of S rows
    outside = float(np.max(np.maximum(values.min(axis=1) - seen, seen - values.max(axis=1)), initial=0.0))
    case.require(
        outside <= slack,
        f"a row whose every key carries the finite fill {fill:g} ({layout}) left the "
        f"range of the value rows by {outside:.3g} (allowed {slack:.3g}): it is not a convex combination",
        error=outside,
        tolerance=slack,
    )
    judged = np.ones_like(rows) if abs(fill) <= 50 and dtype not in LOW_PRECISION else rows
    baseline = (
        oracles.attention_in_precision(q, k, v, dtype, allowed)[judged] if dtype in LOW_PRECISION else None
    )
    case.close(
        f"attention with an additive mask filled with {fill:g} against the formula ({layout})",
        actual[judged],
        expected[judged],
        baseline=baseline,
        magnitude=_magnitude(v),
    )


@checker("multi_head_masked_batched", requires=("multi_head_attention",))
def multi_head_masked_batched(case: Case) -> None:
    """Multi-head attention with a per-example mask, batch > 1, heads > 1 and L != S in every example:
    each batch element and head uses its own mask rows, against the float64 head-by-head oracle."""
    batch, heads = case.size("batch", (2, 4)), case.size("heads", (2, 4))
    width = heads * case.size("dim", (1, 4))
    q_len = case.size("q_len", (1, 6))
    k_len = case.size("k_len", (1, 6))
    if k_len == q_len:
        k_len += 1
    x_q = case.array("x_q", (batch, q_len, width), case.regime())
    x_kv = case.array("x_kv", (batch, k_len, width), case.regime())
    params = {f"w_{n}": case.array(f"w_{n}", (width, width), "uniform", scale=width**-0.5) for n in "qkvo"}
    params.update({f"b_{n}": case.array(f"b_{n}", (width,), "uniform") for n in "qkvo"})
    kind, mask = case.mask(batch, q_len, k_len)
    if kind == "padding" and mask is not None and case.flag("key_padding_shape"):
        mask = case.keep("mask", np.ascontiguousarray(mask[:, :, :1, :]))  # (B, 1, 1, S)
    actual = case.call("multi_head_attention", x_q, x_kv, params, heads, mask=mask)
    case.close(
        f"multi-head attention, B = {batch}, H = {heads}, L = {q_len}, S = {k_len}, {kind} mask",
        actual,
        oracles.multi_head_attention(x_q, x_kv, params, heads, mask),
    )
