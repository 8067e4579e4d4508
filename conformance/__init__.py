"""nnspec: a property-based conformance suite for the building blocks of sequence models.

``import nnspec`` imports no array framework.
"""

from nnspec.errors import BackendError, NnspecError, ResultsError, SpecError

__version__ = "0.1.0"

__all__ = ["BackendError", "NnspecError", "ResultsError", "SpecError", "__version__"]
