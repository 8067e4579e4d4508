"""Backends: the protocol every array framework is adapted to, and the shipped adapters.

Importing this package imports no array framework; each adapter imports its framework
inside its constructor, so a missing framework never breaks ``import nnspec``.
"""

from nnspec.backends.base import PRIMITIVES, Backend, InputNotSupported, Unavailable
from nnspec.backends.discovery import BackendTarget, discover, resolve

__all__ = ["PRIMITIVES", "Backend", "BackendTarget", "InputNotSupported", "Unavailable", "discover", "resolve"]
