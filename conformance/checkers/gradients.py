"""The gradient family: a backend's ``vjp`` against a float64 reference gradient.

In the spirit of ``torch.autograd.gradcheck`` and ``jax.test_util.check_grads``: for one
differentiable primitive (the property's ``params.primitive``) the checker draws its inputs, a
random cotangent and, where the primitive takes them, masks, ``is_causal``, an explicit scale and
a RoPE base; pulls the cotangent back through the backend's own ``vjp``; and compares every input's
cotangent with the reference gradient ``<cotangent, d f / d input>`` computed in float64 by
fourth-order central differences through the numpy reference backend:

    g_i = [8 (f(x + h e_i) - f(x - h e_i)) - (f(x + 2h e_i) - f(x - 2h e_i))] / (12 h)

with ``h = 1e-4 max(1, |x_i|)``. Its truncation error is ``O(h^4)`` (about 1e-16 times the fifth
derivative) and its rounding error about ``eps64 |<c, f>| / h`` (about 1e-12 for unit-sized
outputs), both far below the float64 tolerance. Differentiating with respect to *every* input
(queries, keys and values, h and c, weights and biases) is what catches a backward that drops
one path while the forward is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import assume

from nnspec import oracles
from nnspec.case import Case
from nnspec.registry import Param, checker
from nnspec.strategies import cast
from nnspec.tolerances import LOW_PRECISION

Build = Callable[..., Any]


def _dot(out: Any, cotangent: Any) -> float:
    if isinstance(out, (tuple, list)):
        return sum(_dot(o, c) for o, c in zip(out, cotangent, strict=True))
    return float(np.sum(np.asarray(out, np.float64) * np.asarray(cotangent, np.float64)))


def _own_forward(case: Case, build: Build) -> Build:
    """``build`` evaluated through the backend itself in float64, its outputs back as NumPy."""
    backend = case.backend

    def evaluate(_: Any, *xs: np.ndarray) -> Any:
        out = build(backend, *[backend.asarray(x, "float64") for x in xs])
        if isinstance(out, (tuple, list)):
            return tuple(np.asarray(backend.to_numpy(o), np.float64) for o in out)
        return np.asarray(backend.to_numpy(out), np.float64)

    return evaluate


def reference_gradient(case: Case, build: Build, primals: list[np.ndarray], cotangent: Any) -> list[np.ndarray]:
    """``<cotangent, d build(reference, *primals) / d primal>`` for every primal, by central differences.

    With ``params.reference: own_forward`` (for a primitive whose convention is implementation-
    defined, such as RoPE's pairing) the differences go through the backend's own forward pass in
    float64 instead, so the backward is checked against the function the backend computes."""
    base = [np.asarray(p, np.float64) for p in primals]
    own = case.params.get("reference") == "own_forward" and case.backend.supports_dtype("float64")
    forward = _own_forward(case, build) if own else build

    def pulled(index: int, position: int, step: float) -> float:
        moved = [p.copy() for p in base]
        moved[index].reshape(-1)[position] += step
        return _dot(forward(case.reference, *moved), cotangent)

    grads = []
    for index, primal in enumerate(base):
        grad = np.zeros_like(primal)
        for position in range(primal.size):
            h = 1e-4 * max(1.0, abs(float(primal.reshape(-1)[position])))
            near = pulled(index, position, h) - pulled(index, position, -h)
            far = pulled(index, position, 2 * h) - pulled(index, position, -2 * h)
            grad.reshape(-1)[position] = (8 * near - far) / (12 * h)
        grads.append(grad)
    return grads


def _constant(case: Case, backend: Any, value: Any) -> Any:
    """A non-differentiated input (a mask, positions) as the given backend takes it."""
    if value is None or backend is case.reference:
        return value
    return case.convert(value)


# -- one drawing function per primitive: (build, names, primals, what was drawn) ------------------


def _attention_mask(case: Case, batch: int, q_len: int, k_len: int, causal: bool) -> np.ndarray | None:
    _, mask = case.mask(batch, q_len, k_len)
    if mask is not None and causal:
        mask[..., 0] = True  # with is_causal too, key 0 keeps every row admissible
        case.keep("mask", mask)
    return mask


SCALE_KINDS = ("default", "explicit", "zero")


def _scale(case: Case, dim: int) -> float | None:
    kind = case.choice("scale_kind", list(case.params.get("scales", None) or SCALE_KINDS))
    if kind == "default":
        return None
    return 0.0 if kind == "zero" else float(case.rng.uniform(0.1, 2.0) / np.sqrt(dim))


def _draw_softmax(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    shape = (case.size("batch", (1, 2)), case.size("q_len", (1, 6)), case.size("k_len", (1, 6)))
    x = case.array("x", shape, case.regime())
    return (lambda backend, x: backend.softmax(x, axis=-1)), ["x"], [x]


def _draw_attention(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    q_len, dim = case.size("q_len", (1, 5)), case.size("dim", (1, 4))
    # A property about one input on purpose (params is_causal, same_value_width) fixes it in every example.
    dim_v = dim if case.params.get("same_value_width", False) else case.size("dim_v", (1, 4))
    fixed_causal = case.params.get("is_causal", None)
    causal = case.flag("is_causal") if fixed_causal is None else bool(fixed_causal)
    # With is_causal the alignment for L != S is implementation-defined: causal examples are square.
    k_len = q_len if causal else case.size("k_len", (1, 5))
    regime = case.regime()
    q = case.array("q", (batch, heads, q_len, dim), regime)
    k = case.array("k", (batch, heads, k_len, dim), regime)
    v = case.array("v", (batch, heads, k_len, dim_v), regime)
    mask = _attention_mask(case, batch, q_len, k_len, causal)
    scale = _scale(case, dim)

    def build(backend: Any, q: Any, k: Any, v: Any) -> Any:
        return backend.attention(q, k, v, mask=_constant(case, backend, mask), is_causal=causal, scale=scale)

    allowed = oracles.causal(q_len, k_len) if causal else None
    if mask is not None:
        allowed = mask if allowed is None else mask & allowed
    # For float16/bfloat16: the same-precision dense backward is the yardstick (see gradient_matches_reference).
    build.half_precision_yardstick = lambda cotangent: oracles.attention_backward_in_precision(  # type: ignore[attr-defined]
        q, k, v, cotangent, case.dtype(), allowed, scale)
    return build, ["q", "k", "v"], [q, k, v]


def _draw_attention_with_bias(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    q_len, k_len, dim = case.size("q_len", (1, 5)), case.size("k_len", (1, 5)), case.size("dim", (1, 4))
    regime = case.regime()
    q = case.array("q", (batch, heads, q_len, dim), regime)
    k = case.array("k", (batch, heads, k_len, dim), regime)
    v = case.array("v", (batch, heads, k_len, case.size("dim_v", (1, 4))), regime)
    bias = case.array("bias", (batch, heads, q_len, k_len), "normal", scale=3.0)
    scale = _scale(case, dim)

    def build(backend: Any, q: Any, k: Any, v: Any, bias: Any) -> Any:
        return backend.attention_with_bias(q, k, v, bias, scale=scale)

    return build, ["q", "k", "v", "bias"], [q, k, v, bias]


def _draw_multi_head(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    batch, heads = case.size("batch", (1, 3)), case.size("heads", (1, 2))
    width = heads * case.size("dim", (1, 3))
    causal = case.flag("is_causal")
    q_len = case.size("q_len", (1, 4))
    k_len = q_len if causal else case.size("k_len", (1, 4))
    x_q = case.array("x_q", (batch, q_len, width), case.regime())
    x_kv = case.array("x_kv", (batch, k_len, width), case.regime())
    names = ["w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o"]
    params = [case.array(name, (width, width) if name.startswith("w") else (width,), "uniform",
                         scale=1.0 / np.sqrt(width)) for name in names]
    mask = _attention_mask(case, batch, q_len, k_len, causal)

    def build(backend: Any, x_q: Any, x_kv: Any, *weights: Any) -> Any:
        return backend.multi_head_attention(x_q, x_kv, dict(zip(names, weights, strict=True)), heads,
                                            mask=_constant(case, backend, mask), is_causal=causal)

    return build, ["x_q", "x_kv", *names], [x_q, x_kv, *params]


def _draw_layer_norm(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    rows, width = case.size("batch", (1, 3)), case.size("d_model", (2, 8))
    x = case.array("x", (rows, width), case.regime())
    weight = case.array("weight", (width,), "normal")
    bias = case.array("bias", (width,), "normal")
    return (lambda backend, x, w, b: backend.layer_norm(x, w, b)), ["x", "weight", "bias"], [x, weight, bias]


def _draw_feed_forward(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    batch, length = case.size("batch", (1, 2)), case.size("q_len", (1, 3))
    width, hidden = case.size("d_model", (1, 4)), case.size("hidden", (1, 6))
    x = case.array("x", (batch, length, width), case.regime())
    w_1 = case.array("w_1", (hidden, width), "uniform", scale=1.0 / np.sqrt(width))
    b_1 = case.array("b_1", (hidden,), "uniform")
    w_2 = case.array("w_2", (width, hidden), "uniform", scale=1.0 / np.sqrt(hidden))
    b_2 = case.array("b_2", (width,), "uniform")
    # relu has a kink at 0: central differences across it are not a derivative, so such draws
    # (about 1 in 100 at these sizes) are discarded rather than judged.
    pre = x.astype(np.float64) @ w_1.astype(np.float64).T + b_1
    assume(float(np.min(np.abs(pre))) > 1e-3)
    names = ["w_1", "b_1", "w_2", "b_2"]

    def build(backend: Any, x: Any, *weights: Any) -> Any:
        return backend.feed_forward(x, dict(zip(names, weights, strict=True)))

    return build, ["x", *names], [x, w_1, b_1, w_2, b_2]


def _draw_rope(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    batch, heads = case.size("batch", (1, 2)), case.size("heads", (1, 2))
    length, dim = case.size("q_len", (1, 5)), 2 * ((case.size("dim", (2, 8)) + 1) // 2)
    x = case.array("x", (batch, heads, length, dim), case.regime())
    positions = case.keep("positions", case.rng.integers(0, 64, length))
    base = float(case.choice("base", [10000.0, 500000.0, 100.0]))

    def build(backend: Any, x: Any) -> Any:
        return backend.rope(x, _constant(case, backend, positions), base=base)

    return build, ["x"], [x]


def _recurrent(case: Case, gates: int) -> tuple[np.ndarray, np.ndarray, int]:
    batch, inputs, hidden = case.size("batch", (1, 2)), case.size("input_size", (1, 3)), case.size("hidden", (1, 3))
    x = case.array("x", (batch, inputs), case.regime())
    h = case.array("h", (batch, hidden), case.regime())
    return x, h, hidden


def _weights(case: Case, names_shapes: list[tuple[str, tuple[int, ...]]], hidden: int) -> list[np.ndarray]:
    return [case.array(name, shape, "uniform", scale=1.0 / np.sqrt(hidden)) for name, shape in names_shapes]


def _draw_rnn_cell(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    x, h, hidden = _recurrent(case, 1)
    shapes = [("w_ih", (hidden, x.shape[1])), ("w_hh", (hidden, hidden)), ("b", (hidden,))]
    names = [name for name, _ in shapes]

    def build(backend: Any, x: Any, h: Any, *weights: Any) -> Any:
        return backend.rnn_cell(x, h, dict(zip(names, weights, strict=True)))

    return build, ["x", "h", *names], [x, h, *_weights(case, shapes, hidden)]


def _draw_lstm_cell(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    x, h, hidden = _recurrent(case, 4)
    c = case.array("c", h.shape, case.regime())
    shapes = [("w_ih", (4 * hidden, x.shape[1])), ("w_hh", (4 * hidden, hidden)), ("b", (4 * hidden,))]
    names = [name for name, _ in shapes]

    def build(backend: Any, x: Any, h: Any, c: Any, *weights: Any) -> Any:
        return backend.lstm_cell(x, h, c, dict(zip(names, weights, strict=True)))

    return build, ["x", "h", "c", *names], [x, h, c, *_weights(case, shapes, hidden)]


def _draw_gru_cell(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    x, h, hidden = _recurrent(case, 3)
    shapes = [("w_ih", (3 * hidden, x.shape[1])), ("w_hh", (3 * hidden, hidden)), ("b_ih", (3 * hidden,)),
              ("b_hh", (3 * hidden,))]
    names = [name for name, _ in shapes]

    def build(backend: Any, x: Any, h: Any, *weights: Any) -> Any:
        return backend.gru_cell(x, h, dict(zip(names, weights, strict=True)))

    return build, ["x", "h", *names], [x, h, *_weights(case, shapes, hidden)]


def _draw_lstm_sequence(case: Case) -> tuple[Build, list[str], list[np.ndarray]]:
    batch, steps = case.size("batch", (1, 3)), case.size("steps", (1, 4))
    inputs, hidden = case.size("input_size", (1, 3)), case.size("hidden", (1, 3))
    xs = case.array("xs", (batch, steps, inputs), case.regime())
    h0, c0 = case.array("h0", (batch, hidden), case.regime()), case.array("c0", (batch, hidden), case.regime())
    padded = case.flag("padded")
    lengths = case.keep("lengths", case.rng.integers(1, steps + 1, batch)) if padded else None
    reverse = case.flag("reverse")
    shapes = [("w_ih", (4 * hidden, inputs)), ("w_hh", (4 * hidden, hidden)), ("b", (4 * hidden,))]
    names = [name for name, _ in shapes]

    def build(backend: Any, xs: Any, h0: Any, c0: Any, *weights: Any) -> Any:
        return backend.lstm_sequence(xs, h0, c0, dict(zip(names, weights, strict=True)),
                                     lengths=_constant(case, backend, lengths), reverse=reverse)

    return build, ["xs", "h0", "c0", *names], [xs, h0, c0, *_weights(case, shapes, hidden)]


DRAWS: dict[str, Callable[[Case], tuple[Build, list[str], list[np.ndarray]]]] = {
    "softmax": _draw_softmax,
    "attention": _draw_attention,
    "attention_with_bias": _draw_attention_with_bias,
    "multi_head_attention": _draw_multi_head,
    "layer_norm": _draw_layer_norm,
    "feed_forward": _draw_feed_forward,
    "rope": _draw_rope,
    "rnn_cell": _draw_rnn_cell,
    "lstm_cell": _draw_lstm_cell,
    "gru_cell": _draw_gru_cell,
    "lstm_sequence": _draw_lstm_sequence,
}


def _cotangent(case: Case, build: Build, primals: list[np.ndarray]) -> Any:
    """A random cotangent shaped like the output; zero on padded LSTM outputs (implementation-defined)."""
    out = build(case.reference, *[np.asarray(p, np.float64) for p in primals])

    def draw(value: np.ndarray, name: str) -> np.ndarray:
        return case.array(name, np.shape(value), "normal")

    if isinstance(out, tuple):
        cotangent = tuple(draw(o, f"cotangent_{i}") for i, o in enumerate(out))
        lengths = case.arrays.get("lengths")
        if case.prop.params.get("primitive") == "lstm_sequence" and lengths is not None:
            steps = np.shape(out[0])[1]
            padded = (np.arange(steps)[None, :] >= lengths[:, None])[..., None]
            cotangent = (cast(np.where(padded, 0.0, cotangent[0]), case.dtype()), *cotangent[1:])
        return cotangent
    return draw(out, "cotangent")


# reference "own_forward": central differences through the backend's own float64 forward pass.
@checker("gradient_matches_reference", requires=("vjp",), params={
    "primitive": Param(str, default="", choices=tuple(DRAWS)),
    "reference": Param(str, default=None, choices=("numpy", "own_forward")),
    # the scales drawn for the attention primitives: the default 1/sqrt(D), an explicit one, and 0
    "scales": Param(list, default=None, choices=SCALE_KINDS),
    # attention only: is_causal fixed instead of drawn, and Dv = D instead of drawn apart
    "is_causal": Param(bool, default=None),
    "same_value_width": Param(bool, default=False)})
def gradient_matches_reference(case: Case) -> None:
    """The backend's ``vjp`` of one primitive, with respect to every input, against a float64
    central-difference gradient through the reference, on a random cotangent."""
    primitive = str(case.params.get("primitive", ""))
    if primitive not in DRAWS:
        from nnspec.errors import SpecError

        raise SpecError(f"expected check.params.primitive to be one of {sorted(DRAWS)}. Received: {primitive!r}",
                        path=case.prop.path, property_id=case.prop.id, field="check.params.primitive")
    # attention is called by name so that the parameters its drawing reads are seen as this checker's
    build, names, primals = _draw_attention(case) if primitive == "attention" else DRAWS[primitive](case)
    cotangent = _cotangent(case, build, primals)
    actual = case.gradient(build, primals, cotangent)
    expected = reference_gradient(case, build, primals, cotangent)
    scale = max(1.0, max(float(np.max(np.abs(g), initial=0.0)) for g in expected))
    yardstick = getattr(build, "half_precision_yardstick", None)
    baselines: list[Any] = [None] * len(names)
    if case.dtype() in LOW_PRECISION:
        if yardstick is None:
            raise AssertionError(f"no half-precision yardstick for the gradient of {primitive}")
        baselines = list(yardstick(cotangent))
    for name, got, want, baseline in zip(names, actual, expected, baselines, strict=True):
        case.close(f"d<cotangent, {primitive}>/d{name} against the float64 reference gradient", got, want,
                   magnitude=scale, baseline=baseline)
