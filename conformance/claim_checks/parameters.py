"""Claim checks about parameter counts and head dimensions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nnspec import oracles
from nnspec.claim_checks._common import _rng, _torch
from nnspec.claim_checks._counting import OperationCounter, _attention_core
from nnspec.claims import Condition, Measurement, claim_check


@claim_check("transformer_parameters")
def transformer_parameters(models: list[dict[str, Any]]) -> Measurement:
    """Parameters of torch.nn.TransformerEncoderLayer stacks (built on the meta device) against 12 L d^2."""
    torch = _torch()
    if torch is None:
        return Measurement({m["name"]: None for m in models}, "torch is not installed.")
    totals, layers_only, detail = {}, {}, []
    for model in models:
        layers, d = model["layers"], model["d_model"]
        layer = torch.nn.TransformerEncoderLayer(d, model.get("heads", max(1, d // 64)), dim_feedforward=4 * d,
                                                 device="meta")
        per_layer = sum(p.numel() for p in layer.parameters())
        embeddings = sum(p.numel() for p in (torch.nn.Embedding(model["vocab"], d, device="meta").weight,
                                             torch.nn.Embedding(model["positions"], d, device="meta").weight))
        formula = 12 * layers * d * d
        totals[model["name"]] = (layers * per_layer + embeddings) / formula
        layers_only[model["name"]] = layers * per_layer / formula
        detail.append(f"{model['name']}: {layers * per_layer + embeddings:.4g} parameters, {totals[model['name']]:.3f} "
                      f"x 12 L d^2 ({layers_only[model['name']]:.3f} x without embeddings)")
    return Measurement(dict(totals), "; ".join(detail) + ".",
                       under=(Condition("counting the layers only, not the embeddings", layers_only),))


@claim_check("ratio")
def ratio(pairs: list[list[float]]) -> Measurement:
    """b / a for each (a, b) pair."""
    ratios = [b / a for a, b in pairs]
    return Measurement({"ratios": ratios}, f"{', '.join(f'{b:g} / {a:g} = {b / a:g}' for a, b in pairs)}.",
                       primary="ratios")


@claim_check("recurrent_parameter_saving")
def recurrent_parameter_saving(input_size: int, hidden: int) -> Measurement:
    """1 - parameters(torch.nn.GRU) / parameters(torch.nn.LSTM) at the same sizes."""
    torch = _torch()
    if torch is None:
        return Measurement({"saving": None}, "torch is not installed.", primary="saving")
    lstm = sum(p.numel() for p in torch.nn.LSTM(input_size, hidden).parameters())
    gru = sum(p.numel() for p in torch.nn.GRU(input_size, hidden).parameters())
    saving = 1 - gru / lstm
    return Measurement({"saving": saving, "lstm": lstm, "gru": gru},
                       f"torch.nn.LSTM({input_size}, {hidden}) has {lstm:,} parameters, torch.nn.GRU {gru:,}: "
                       f"{saving:.1%} fewer.", primary="saving")


def _multi_head_counts(d_model: int, heads: int, n: int) -> tuple[int | None, int, int]:
    """torch.nn.MultiheadAttention's parameter count, and counted operations of h-head attention."""
    torch = _torch()
    parameters = None
    if torch is not None:
        parameters = sum(p.numel() for p in torch.nn.MultiheadAttention(d_model, heads).parameters())
    rng = _rng(0)
    x, w = rng.standard_normal((n, d_model)), rng.standard_normal((d_model, 3 * d_model))
    counter = OperationCounter()
    q, k, v = np.split(counter.matmul(x, w), 3, axis=1)
    d_k = d_model // heads
    for head in range(heads):
        part = slice(head * d_k, (head + 1) * d_k)
        _attention_core(counter, q[:, part], k[:, part], v[:, part])
    matmul_only = OperationCounter()
    for head in range(heads):
        part = slice(head * d_k, (head + 1) * d_k)
        matmul_only.matmul(matmul_only.matmul(q[:, part], k[:, part].T), v[:, part])
    return parameters, counter.operations, matmul_only.operations


@claim_check("multi_head_parameters")
def multi_head_parameters(d_model: int, heads: list[int], n: int = 256) -> Measurement:
    """torch.nn.MultiheadAttention's parameters, and counted operations, for several head counts."""
    table = {h: _multi_head_counts(d_model, h, n) for h in heads}
    parameters = [row[0] for row in table.values()]
    operations = [row[1] for row in table.values()]
    products = [row[2] for row in table.values()]
    known = None not in parameters
    values = {
        "parameters_grow_with_heads": (parameters[-1] > parameters[0]) if known else None,  # type: ignore[operator]
        "parameters_independent_of_heads": (len(set(parameters)) == 1) if known else None,
        "operations_grow_with_heads": operations[-1] > operations[0],
        "matrix_products_grow_with_heads": products[-1] > products[0],
        "parameters": dict(zip(map(str, heads), parameters, strict=True)),
        "operations": dict(zip(map(str, heads), operations, strict=True)),
    }
    return Measurement(values, f"torch.nn.MultiheadAttention({d_model}, h) has {parameters} parameters for h = {heads}; "
                               f"at {n} tokens h-head attention counts {operations} operations, of which the QK^T and PV "
                               f"products are {products} (constant): only the softmax work, h n^2, grows with heads.")


@claim_check("head_dimension")
def head_dimension(d_model: int, heads: int) -> Measurement:
    """The last axis after reshaping a (tokens, d_model) projection into (tokens, heads, d_k)."""
    d_k = np.zeros((3, d_model)).reshape(3, heads, -1).shape[-1]
    return Measurement({"d_k": d_k}, f"a (tokens, {d_model}) array reshaped into {heads} heads has {d_k} columns each.",
                       primary="d_k")


@claim_check("qkv_head_split")
def qkv_head_split(d_model: int, heads: int, n: int = 7, seed: int = 0) -> Measurement:
    """One (d_model, d_model) projection reshaped to (n, h, d_k) against h separate (d_model, d_k) projections."""
    rng = _rng(seed)
    x, w = rng.standard_normal((n, d_model)), rng.standard_normal((d_model, d_model))
    d_k = d_model // heads
    split = (x @ w).reshape(n, heads, d_k)
    separate = np.stack([x @ w[:, i * d_k:(i + 1) * d_k] for i in range(heads)], axis=1)
    gap = float(np.max(np.abs(split - separate)))
    return Measurement({"split_equals_per_head_projections": gap < 1e-9, "max_difference": gap},
                       f"reshaping X W (d_model = {d_model}) into {heads} heads differs from per-head projections by {gap:.2g}.")


@claim_check("embedding_scale")
def embedding_scale(d_model: int, tokens: int = 2000, seed: int = 0) -> Measurement:
    """How many orders of magnitude sqrt(d_model) x a torch.nn.Embedding row is from the sinusoidal encoding."""
    torch = _torch()
    pe_norm = float(np.linalg.norm(oracles.sinusoidal(np.arange(tokens), d_model), axis=1).mean())
    small = _rng(seed).standard_normal((tokens, d_model)) / math.sqrt(d_model)
    small_ratio = float(np.linalg.norm(math.sqrt(d_model) * small, axis=1).mean()) / pe_norm
    under = (Condition("for embeddings initialised N(0, 1/d_model)",
                       {"orders_of_magnitude_apart": abs(math.log10(small_ratio))}),)
    if torch is None:
        return Measurement({"orders_of_magnitude_apart": None}, "torch is not installed.", under=under)
    torch.manual_seed(seed)
    weight = torch.nn.Embedding(tokens, d_model).weight.detach().double().numpy()
    ratio_default = float(np.linalg.norm(math.sqrt(d_model) * weight, axis=1).mean()) / pe_norm
    return Measurement({"orders_of_magnitude_apart": abs(math.log10(ratio_default)), "pe_norm": pe_norm,
                        "scaled_embedding_over_pe": ratio_default, "scaled_small_init_over_pe": small_ratio},
                       f"|PE| = {pe_norm:.1f}; sqrt(d_model) x a torch.nn.Embedding row (default init N(0, 1)) is "
                       f"{ratio_default:.0f}x that, {small_ratio:.2f}x for rows drawn N(0, 1/d_model).", under=under)
