"""Claim checks about memory and communication in training."""

from __future__ import annotations

import numpy as np

from nnspec.claim_checks._common import _rng, _torch
from nnspec.claims import Condition, Measurement, claim_check


def _adam_state_bytes_per_parameter() -> float | None:
    """Bytes of optimizer state torch.optim.Adam keeps per parameter, measured after one step."""
    torch = _torch()
    if torch is None:
        return None
    model = torch.nn.Linear(32, 16)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(4, 32)).sum().backward()
    optimizer.step()
    count = sum(p.numel() for p in model.parameters())
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                if torch.is_tensor(t) and t.numel() > 1)
    return float(state / count)


@claim_check("training_memory")
def training_memory(parameters: float, parts: list[str], shards: int = 1, text_adam_bytes: float | None = None) -> Measurement:
    """Bytes of the named training state for ``parameters`` parameters, over ``shards`` devices.

    Parts: ``weights_fp16``, ``gradients_fp16`` (numpy's float16 item size), ``adam_states`` (what
    torch.optim.Adam actually keeps per parameter), ``master_weights_fp32``.
    """
    adam = _adam_state_bytes_per_parameter() if "adam_states" in parts else 0.0
    sizes = {"weights_fp16": float(np.dtype(np.float16).itemsize), "gradients_fp16": float(np.dtype(np.float16).itemsize),
             "master_weights_fp32": float(np.dtype(np.float32).itemsize), "adam_states": adam}
    unknown = set(parts) - set(sizes)
    if unknown:
        raise KeyError(f"unknown training-state parts {sorted(unknown)}; known: {sorted(sizes)}")
    if any(sizes[p] is None for p in parts):
        return Measurement({"bytes": None}, "torch is not installed, so Adam's state per parameter is not measured.",
                           primary="bytes")
    per_parameter = sum(float(sizes[p] or 0.0) for p in parts)
    total = parameters * per_parameter / shards
    under: tuple[Condition, ...] = ()
    if text_adam_bytes is not None and "adam_states" in parts:
        assumed = per_parameter - float(adam or 0.0) + text_adam_bytes
        under = (Condition(f"with Adam's states at {text_adam_bytes:g} bytes per parameter (16-bit moments, not "
                           f"torch.optim.Adam's {adam:g})", {"bytes": parameters * assumed / shards}),)
    return Measurement({"bytes": total, "bytes_per_parameter": per_parameter},
                       f"{' + '.join(parts)} take {per_parameter:g} bytes per parameter"
                       + (f" (Adam: {adam:g}, measured on torch.optim.Adam)" if "adam_states" in parts else "")
                       + f"; x {parameters:.4g}" + (f" / {shards}" if shards > 1 else "") + f" = {total:.4g} bytes.",
                       primary="bytes", under=under)


def _ring_allreduce(workers: int, chunk: int = 2, seed: int = 0) -> tuple[float, float]:
    """Run a ring all-reduce over ``workers`` simulated workers; elements each one sends, as a share of the
    gradient, and the largest error of the reduced result."""
    rng = _rng(seed)
    data = rng.standard_normal((workers, workers, chunk))  # worker, chunk index, elements
    expected = data.sum(axis=0)
    sent = 0
    ring = np.arange(workers)
    for step in range(workers - 1):                       # reduce-scatter
        index = (ring - step) % workers
        incoming = data[ring, index].copy()
        data[(ring + 1) % workers, index] += incoming
        sent += chunk
    for step in range(workers - 1):                       # all-gather
        index = (ring + 1 - step) % workers
        data[(ring + 1) % workers, index] = data[ring, index]
        sent += chunk
    error = float(np.max(np.abs(data - expected[None])))
    return sent / (workers * chunk), error


@claim_check("allreduce_traffic")
def allreduce_traffic(parameters: float, bytes_per_gradient: float, workers: int) -> Measurement:
    """Bytes of gradient one ring all-reduce sends per worker, from a simulated ring of ``workers`` workers."""
    share, error = _ring_allreduce(workers)
    gradient = parameters * bytes_per_gradient
    per_worker = share * gradient
    return Measurement({"bytes_per_worker": per_worker, "gradient_bytes": gradient, "share_of_gradient_sent": share,
                        "reduction_error": error},
                       f"a simulated ring all-reduce over {workers} workers sends {share:.4g} x the gradient per worker "
                       f"(and reduces it exactly, error {error:.1e}); the gradient is {gradient:.4g} bytes, so each GPU "
                       f"sends {per_worker:.4g} bytes.", primary="bytes_per_worker")
