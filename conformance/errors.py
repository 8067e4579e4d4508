"""nnspec's one error hierarchy."""

from __future__ import annotations


class NnspecError(Exception):
    """Base of every error nnspec raises on purpose."""


class SpecError(NnspecError, ValueError):
    """A specification file is malformed: the message names the file, property, field and value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        property_id: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        where = []
        if path:
            where.append(f"{path}:{line}" if line else path)
        if property_id:
            where.append(f"property {property_id!r}")
        if field:
            where.append(f"field {field!r}")
        self.path, self.property_id, self.field, self.line = path, property_id, field, line
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class BackendError(NnspecError):
    """A backend could not be found, loaded or named uniquely."""


class ResultsError(NnspecError, ValueError):
    """A results document is malformed or of an unknown format version."""
