"""The registered claim checks, one module per subject: each computes a quantity a document makes a claim about.

Every function takes only the spec's ``check.params`` (never the claimed value: the registry
refuses a check with a ``claimed`` parameter) and returns a :class:`nnspec.claims.Measurement`:
named quantities and facts, computed from real arrays in float64 NumPy, from real framework objects
where the claim is about a framework (imported inside the check; absent, the fact is ``None`` and
the claim *unchecked*), from sampled statistics with a stated false-alarm rate, or from
operation counts and memory peaks measured over a size sweep. :func:`nnspec.claims.judge` holds
the claimed data against them. Random inputs come from fixed seeds, so a verdict never changes
between runs.

:func:`nnspec.claims.get` imports every module of this package (each registers its checks on
import); ``_common`` and ``_counting`` hold what several subjects share.
"""
