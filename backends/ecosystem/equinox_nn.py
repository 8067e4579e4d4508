"""equinox's recurrent cells as a backend: ``equinox.nn.LSTMCell`` and ``equinox.nn.GRUCell``.

equinox runs on JAX, so the adapter subclasses the JAX backend (arrays cross as JAX arrays,
gradients by ``jax.vjp``). equinox cells take one unbatched example, so the batch is mapped with
``jax.vmap``; the protocol's weights are put into a cell with ``equinox.tree_at``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nnspec.backends.conventions import permute_gates
from nnspec.backends.ecosystem import _convert
from nnspec.backends.jax import JaxBackend

Array = Any
PIP = "'nnspec[ecosystem]' (or: pip install equinox)"


class EquinoxBackend(_convert.LibraryAdapter, JaxBackend):
    """equinox.nn's LSTM and GRU cells.

    Conversions: equinox's LSTM gate blocks are i, f, g, o, with one bias, as the protocol's; its
    GRU blocks are r, z, n as the protocol's, but it has one input-side bias for all three blocks
    plus ``bias_n`` inside the reset product, so ``bias = b_ih + (b_hr, b_hz, 0)`` and
    ``bias_n = b_hn``.
    """

    name: ClassVar[str] = "equinox"
    library: ClassVar[str] = "equinox"
    install: ClassVar[str] = PIP
    in_default_run: ClassVar[bool] = False
    divergences: ClassVar[Any] = _convert.DIVERGENCES / "equinox.txt"

    @classmethod
    def targets(cls) -> list[str]:
        return ["cpu", "gpu"]

    def __init__(self, device: str = "cpu", variant: str | None = None) -> None:
        super().__init__(device, variant)
        import equinox

        self.eqx = equinox

    def _cell(self, kind: str, input_size: int, hidden: int, dtype: Any, **weights: Array) -> Any:
        import jax

        cell_class = self.eqx.nn.LSTMCell if kind == "lstm" else self.eqx.nn.GRUCell
        cell = cell_class(input_size, hidden, dtype=dtype, key=jax.random.PRNGKey(0))
        names = tuple(weights)
        return self.eqx.tree_at(lambda c: tuple(getattr(c, n) for n in names), cell, tuple(weights.values()))

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        import jax

        order = "ifgo"  # equinox's LSTM blocks, as the protocol's: no permutation
        cell = self._cell(
            "lstm",
            x.shape[-1],
            h.shape[-1],
            x.dtype,
            weight_ih=permute_gates(params["w_ih"], order, "ifgo"),
            weight_hh=permute_gates(params["w_hh"], order, "ifgo"),
            bias=permute_gates(params["b"], order, "ifgo"),
        )
        h_next, c_next = jax.vmap(lambda x1, h1, c1: cell(x1, (h1, c1)))(x, h, c)
        return h_next, c_next

    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        import jax
        import jax.numpy as jnp

        hidden = h.shape[-1]
        hidden_bias = params["b_hh"]
        bias = params["b_ih"] + jnp.concatenate(
            [hidden_bias[: 2 * hidden], jnp.zeros_like(hidden_bias[2 * hidden :])]
        )
        cell = self._cell(
            "gru",
            x.shape[-1],
            hidden,
            x.dtype,
            weight_ih=params["w_ih"],
            weight_hh=params["w_hh"],
            bias=bias,
            bias_n=hidden_bias[2 * hidden :],
        )
        return jax.vmap(cell)(x, h)
