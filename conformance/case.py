"""The :class:`Case`: one Hypothesis example of one property on one backend, as a checker sees it.

A checker draws through the case (so Hypothesis can shrink the draw), calls the backend through it
(so arrays cross the boundary in one place), and judges through it (so the worst error and the
counterexample are recorded in one place).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

from nnspec.backends.base import Backend, InputNotSupported
from nnspec.errors import SpecError
from nnspec.model import Property
from nnspec.strategies import _values, structure_strategy
from nnspec.tolerances import EPSILON, LOW_PRECISION, Comparison, Tolerance, cast, compare, for_dtype

#: How large an array may be and still be written out in full in a counterexample.
SMALL_ARRAY = 64


class CheckFailure(AssertionError):
    """The backend departed from the property; carries the worst error and its tolerance."""

    def __init__(self, message: str, error: float | None = None, tolerance: float | None = None) -> None:
        super().__init__(message)
        self.message, self.error, self.tolerance = message, error, tolerance


class BackendRaised(Exception):
    """The backend raised while computing a primitive (as opposed to the checker crashing).

    Also carries ``SystemExit``, ``KeyboardInterrupt`` and ``GeneratorExit`` raised by a primitive:
    they end that pair as an error, never the run (a real Ctrl-C is the supervisor's, in another
    process).
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


class Worst:
    """The worst error/tolerance ratio seen over every example of one property run."""

    def __init__(self) -> None:
        self.ratio = -1.0
        self.error: float | None = None
        self.tolerance: float | None = None
        #: Observations a checker records with :meth:`Case.note`; a passing record reports them.
        self.notes: dict[str, None] = {}

    def update(self, error: float, tolerance: float) -> None:
        ratio = error / tolerance if tolerance > 0 else (0.0 if error == 0 else float("inf"))
        if ratio > self.ratio:
            self.ratio, self.error, self.tolerance = ratio, error, tolerance



class Case:
    """One Hypothesis example of one property on one backend.

    Checkers draw through it (so Hypothesis can shrink the draw), call the backend through it (so
    arrays cross the boundary in one place), and judge through it (so the worst error and the
    counterexample are recorded in one place).
    """

    def __init__(
        self,
        data: st.DataObject,
        prop: Property,
        backend: Backend,
        reference: Backend,
        worst: Worst,
        alpha: float = 1e-9,
    ) -> None:
        self.data = data
        self.prop = prop
        self.params: dict[str, Any] = prop.params
        self.backend = backend
        self.reference = reference
        self.worst = worst
        #: The false-alarm rate one statistical test in this example may spend.
        self.alpha = alpha
        self.drawn: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self._rng: np.random.Generator | None = None
        self._dtype: str | None = None
        self._structure: dict[str, Any] | None = None

    # -- drawing --------------------------------------------------------------------------------

    @property
    def structure(self) -> dict[str, Any]:
        """The example's structure, drawn from the domain in one Hypothesis draw (see the module doc)."""
        if self._structure is None:
            usable = tuple(d for d in self.prop.inputs.get("dtypes", ["float64"]) if self.backend.supports_dtype(d))
            pool = int(getattr(self.backend, "shape_pool", 0) or 0)
            self._structure = self.data.draw(structure_strategy(self.prop, usable, pool), label="inputs")
        return self._structure

    def _range(self, name: str, default: tuple[int, int] | None) -> tuple[int, int]:
        bounds = self.prop.inputs.get(name, default)
        if bounds is None:
            raise SpecError(
                f"checker {self.prop.check!r} draws {name!r}, so inputs.{name} must be given as [min, max]",
                path=self.prop.path, property_id=self.prop.id, field=f"inputs.{name}",
            )
        low, high = int(bounds[0]), int(bounds[1])
        if low > high:
            raise SpecError(f"expected [min, max] with min <= max. Received: {list(bounds)}",
                            path=self.prop.path, property_id=self.prop.id, field=f"inputs.{name}")
        return low, high

    def size(self, name: str, default: tuple[int, int] | None = None, minimum: int | None = None) -> int:
        """The example's size ``name``: from the domain's ``inputs[name]`` range (or ``default``), at
        least ``minimum``. A name in the domain has one value per example, however often it is asked
        for; draw several independent values with :meth:`choice` under distinct names or from ``rng``."""
        low, high = self._range(name, default)
        if name in self.structure:
            value = int(self.structure[name])
            if minimum is not None:
                value = max(value, minimum)
        else:
            if minimum is not None:
                low, high = max(low, minimum), max(high, minimum)
            value = self.data.draw(st.integers(low, high), label=name)
        self.drawn[name] = value
        return value

    def choice(self, name: str, options: list[Any] | tuple[Any, ...]) -> Any:
        value = self.data.draw(st.sampled_from(list(options)), label=name)
        self.drawn[name] = value
        return value

    def flag(self, name: str) -> bool:
        value = self.data.draw(st.booleans(), label=name)
        self.drawn[name] = value
        return value

    def dtype(self) -> str:
        """A dtype from the domain that the backend computes in (the first drawn stays for the example)."""
        if self._dtype is None:
            self._dtype = str(self.structure["dtype"])
            self.drawn["dtype"] = self._dtype
        return self._dtype

    def regime(self, name: str = "values") -> str:
        if name == "values":
            self.drawn[name] = self.structure["values"]
            return str(self.structure["values"])
        return str(self.choice(name, self.prop.inputs.get("values", ["normal"])))

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            seed = int(self.structure["seed"])
            self.drawn["seed"] = seed
            self._rng = np.random.default_rng(seed)
        return self._rng

    def array(self, name: str, shape: tuple[int, ...], regime: str = "normal", dtype: str | None = None,
              scale: float = 1.0) -> np.ndarray:
        """An array of ``shape`` in ``dtype`` (the example's dtype by default), bulk drawn cheaply."""
        values = cast(_values(self.rng, tuple(shape), regime) * scale, dtype or self.dtype())
        self.arrays[name] = values
        return values

    def keep(self, name: str, value: np.ndarray) -> np.ndarray:
        """Record a derived input (a mask, a permutation) for the counterexample."""
        self.arrays[name] = np.asarray(value)
        return value

    def mask(self, batch: int, q_len: int, k_len: int, kinds: list[str] | None = None) -> tuple[str, np.ndarray | None]:
        """A boolean ``(B, 1, L, S)`` mask of a kind from the domain's ``masks`` (True = may attend).

        Every query row keeps at least one admissible key, except for the kind ``none`` (no mask).
        """
        if kinds is None:
            kind = str(self.structure["mask"])
            self.drawn["mask"] = kind
        else:
            kind = str(self.choice("mask", kinds))
        if kind == "none":
            return kind, None
        rows, cols = np.arange(q_len)[:, None], np.arange(k_len)[None, :]
        if kind == "causal":
            mask = np.broadcast_to(cols <= rows, (batch, 1, q_len, k_len)).copy()
        elif kind == "padding":
            lengths = self.rng.integers(1, k_len + 1, batch)
            mask = np.broadcast_to(cols[None, None] < lengths[:, None, None, None], (batch, 1, q_len, k_len)).copy()
        elif kind == "random":
            mask = self.rng.random((batch, 1, q_len, k_len)) < 0.6
            keep = self.rng.integers(0, k_len, (batch, 1, q_len))
            np.put_along_axis(mask, keep[..., None], True, axis=-1)
        elif kind == "prefix":
            prefix = int(self.rng.integers(1, k_len + 1))
            mask = np.broadcast_to((cols < prefix) | (cols <= rows), (batch, 1, q_len, k_len)).copy()
        elif kind == "window":
            width = int(self.rng.integers(0, k_len))
            mask = np.broadcast_to(np.abs(rows - cols) <= width, (batch, 1, q_len, k_len)).copy()
            mask[..., :, 0] |= ~mask.any(axis=-1)
        else:
            raise ValueError(f"unknown mask kind {kind!r}")
        self.keep("mask", mask)
        return kind, mask

    # -- calling --------------------------------------------------------------------------------

    def _to_backend(self, value: Any, dtype: str | None) -> Any:
        if isinstance(value, np.ndarray):
            return self.backend.asarray(value, dtype if value.dtype.kind == "f" else None)
        if isinstance(value, dict):
            return {key: self._to_backend(item, dtype) for key, item in value.items()}
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
            return type(value)(self._to_backend(item, dtype) for item in value)
        return value

    def _from_backend(self, value: Any, primitive: str = "", top: bool = True) -> Any:
        """NumPy arrays of a primitive's result; anything but arrays (or tuples of them) is the backend's fault."""
        if isinstance(value, (tuple, list)):
            return tuple(self._from_backend(item, primitive, top=False) for item in value)
        if isinstance(value, (str, bytes, dict)) or value is None:
            raise CheckFailure(f"{primitive or 'the primitive'} returned a {type(value).__name__} "
                               f"({str(value)[:60]!r}); expected an array of the backend")
        array = np.asarray(self.backend.to_numpy(value))
        if array.dtype.kind not in "fciub":
            raise CheckFailure(f"{primitive or 'the primitive'} returned an array of dtype {array.dtype}; "
                               "expected a numeric array")
        return array

    def call(self, primitive: str, *args: Any, **kwargs: Any) -> Any:
        """Call the backend's ``primitive`` on NumPy inputs (cast to the example's dtype); return NumPy."""
        dtype = self._dtype
        function: Callable[..., Any] = getattr(self.backend, primitive)
        converted_args = [self._to_backend(arg, dtype) for arg in args]
        converted_kwargs = {key: self._to_backend(value, dtype) for key, value in kwargs.items()}
        with self._refusals_discarded():
            result = function(*converted_args, **converted_kwargs)
            return self._from_backend(result, primitive)

    def gradient(self, build: Callable[..., Any], primals: list[np.ndarray], cotangent: np.ndarray) -> list[np.ndarray]:
        """``vjp`` of ``build(backend, *primals)`` at ``primals`` against ``cotangent``, through the backend."""
        dtype = self._dtype
        backend_primals = [self._to_backend(p, dtype) for p in primals]
        with self._refusals_discarded():
            _, pullback = self.backend.vjp(lambda *xs: build(self.backend, *xs), *backend_primals)
            grads = pullback(self._to_backend(cotangent, dtype))
        return [np.asarray(self.backend.to_numpy(g), dtype=np.float64) for g in grads]

    @contextlib.contextmanager
    def _refusals_discarded(self) -> Iterator[None]:
        """Around every call into the backend: discard the example (not fail it) when the backend
        refuses its inputs, and mark anything else it raises as the backend's, not the checker's."""
        try:
            yield
        except InputNotSupported as refusal:
            self.drawn["refused"] = str(refusal)
            reject()
        except (CheckFailure, UnsatisfiedAssumption):
            raise
        except (Exception, SystemExit, KeyboardInterrupt, GeneratorExit) as error:
            raise BackendRaised(error) from error

    def jacobian(self, build: Callable[..., Any], primal: np.ndarray) -> np.ndarray:
        """Full Jacobian ``d build(primal) / d primal`` as ``(out.size, primal.size)``, one vjp per output."""
        with self._refusals_discarded():
            value, pullback = self.backend.vjp(lambda x: build(self.backend, x), self._to_backend(primal, self._dtype))
            out = np.asarray(self.backend.to_numpy(value), dtype=np.float64)
            rows = []
            for index in range(out.size):
                basis = np.zeros(out.size)
                basis[index] = 1.0
                cotangent = cast(basis.reshape(out.shape), self._dtype or "float64")
                (row,) = pullback(self._to_backend(cotangent, self._dtype))
                rows.append(np.asarray(self.backend.to_numpy(row), dtype=np.float64).reshape(-1))
        return np.stack(rows)

    def convert(self, value: Any) -> Any:
        """Convert NumPy arrays (or dicts of them) for direct use inside a ``gradient`` build function."""
        return self._to_backend(value, self._dtype)

    # -- judging --------------------------------------------------------------------------------

    def tolerance_for(self, dtype: str | None = None) -> Any:
        return for_dtype(self.prop.tolerance, dtype or self.dtype())

    def close(self, what: str, actual: np.ndarray, expected: np.ndarray, dtype: str | None = None,
              baseline: np.ndarray | None = None, magnitude: float | None = None) -> Comparison:
        """Fail unless ``actual`` is within the property's tolerance of the float64 ``expected``.

        ``magnitude`` is the scale of the quantities the result was computed from (for attention,
        ``max |v|``: an output is a convex combination of value rows, so its rounding error is
        relative to them, not to the output element, which may cancel to near zero).
        """
        if np.shape(actual) != np.shape(expected):  # the backend's result has the wrong shape
            raise CheckFailure(f"{what}: expected shape {tuple(np.shape(expected))}. "
                               f"Received: shape {tuple(np.shape(actual))}")
        dtype = dtype or self.dtype()
        tolerance = self.tolerance_for(dtype)
        if dtype in LOW_PRECISION and baseline is not None and dtype not in self.prop.tolerance:
            # Judged against the same-precision dense baseline: only a few ulps on top of its error.
            tolerance = Tolerance(2 * EPSILON[dtype], 2 * EPSILON[dtype])
        if magnitude is not None and magnitude > 1.0:
            tolerance = Tolerance(tolerance.atol * magnitude, tolerance.rtol, tolerance.exact)
        use_baseline = baseline if dtype in LOW_PRECISION else None
        factor = float(self.prop.tolerance.get("low_precision_factor", 4.0))
        result = compare(actual, expected, tolerance, baseline=use_baseline, low_precision_factor=factor)
        self.worst.update(result.error, result.tolerance)
        if result.ratio > 1.0:
            where = f" at index {result.index}" if result.index is not None else ""
            raise CheckFailure(
                f"{what}: error {result.error:.3g} exceeds tolerance {result.tolerance:.3g} "
                f"({tolerance.describe()}, {dtype}){where}",
                error=result.error, tolerance=result.tolerance,
            )
        return result

    def require(self, condition: bool, message: str, error: float | None = None,
                tolerance: float | None = None) -> None:
        """Fail with ``message`` unless ``condition`` holds."""
        if error is not None and tolerance is not None:
            self.worst.update(error, tolerance)
        if not condition:
            raise CheckFailure(message, error=error, tolerance=tolerance)

    def significance(self, what: str, p_value: float, statistic: float) -> None:
        """Fail when a statistical test rejects at this example's share of the false-alarm rate."""
        # Reported as error/tolerance on a log scale: -log10(p) against -log10(alpha).
        error, tolerance = -np.log10(max(p_value, 1e-300)), -np.log10(self.alpha)
        self.worst.update(float(error), float(tolerance))
        if p_value < self.alpha:
            raise CheckFailure(
                f"{what}: the test statistic {statistic:.4g} has p = {p_value:.3g}, below the "
                f"per-example false-alarm rate {self.alpha:.3g}",
                error=float(error), tolerance=float(tolerance),
            )

    def note(self, observation: str) -> None:
        """Record what the backend was seen to do (an implementation-defined choice, say); a passing
        record's message lists these, so a MAY property reports what it found, not only failures."""
        self.worst.notes[observation] = None

    def epsilon(self, dtype: str | None = None) -> float:
        return EPSILON[dtype or self.dtype()]

    # -- the counterexample ---------------------------------------------------------------------

    def counterexample(self) -> dict[str, Any]:
        arrays: dict[str, Any] = {}
        shapes: dict[str, list[int]] = {}
        for name, value in self.arrays.items():
            shapes[name] = list(value.shape)
            if value.size <= SMALL_ARRAY:
                arrays[name] = value.astype(np.float64).tolist() if value.dtype.kind == "f" else value.tolist()
            elif value.dtype.kind == "f":
                arrays[name] = {"min": float(np.min(value)), "max": float(np.max(value)),
                                "mean": float(np.mean(value))}
        return {"dtype": self._dtype, "draws": dict(self.drawn), "shapes": shapes, "arrays": arrays}
